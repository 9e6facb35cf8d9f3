"""``wm-control replay BAG``: play a rosbag2 through the stack under sim time, record what the
stack publishes, and score its commands against the recorded ones.

The bag's sensor topics (joint states, camera, goal, ...) are published unchanged (raw CDR) with
``/clock`` following the bag's log time; the recorded command topics are held back and kept for
comparison, since the stack produces its own. ``--lockstep``: whenever the clock crosses a control
tick, replay waits until the stack has answered with its command (or ``--timeout`` s), so a slow
CPU changes no result. Otherwise messages go out at ``--rate`` times real time.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.data.bags import BagWriter
from wm_control.errors import UserError
from wm_control.ros import qos
from wm_control.ros.harness import GraphRun

COMMAND_TOPICS = ("/forward_position_controller/commands", "/joint_trajectory_controller/joint_trajectory")
NEVER_REPLAY = {"/clock", "/rosout", "/diagnostics", "/parameter_events"}


def _read_bag(path: Path) -> tuple[list[tuple[str, str, int, bytes]], dict[str, str]]:
    """(topic, type, log time, CDR) of every message, in time order, and topic -> type. A cut or
    damaged MCAP gives every complete message, with a warning saying what was lost."""
    from wm_control.data.bags import BagError, iter_bag_messages

    if not path.exists():
        raise UserError(f"bag {path} not found (give a rosbag2 folder, or its .mcap / .db3 file)")
    try:
        bag = iter_bag_messages(path)
        msgs = [(m.topic, m.msgtype, m.t_ns, m.data) for m in bag]
    except BagError as exc:  # not a bag: no file, not MCAP, sqlite3 that rosbags cannot open
        raise UserError(f"cannot read {path} as a rosbag2 (MCAP or sqlite3): {exc}") from exc
    types = {t.topic: t.msgtype for t in bag.topics.values()}
    msgs.sort(key=lambda m: m[2])
    return msgs, types


#: the policy node's own topic names (what a robot config's names are remapped from)
POLICY_TOPICS = {"joint_states": "/joint_states", "goal": "/goal",
                 "position": COMMAND_TOPICS[0], "trajectory": COMMAND_TOPICS[1]}


def _stack_graph(bundle: str, device: str, command_interface: str, remappings: list[str] | None = None,
                 joint_order: list[str] | None = None) -> dict:
    params: dict[str, Any] = {"bundle": str(Path(bundle).resolve()), "device": device,
                              "command_interface": command_interface, "track_frames": False,
                              "max_joint_state_age": 0.1}
    if joint_order:
        params["joint_order"] = list(joint_order)
    if remappings:
        params["launch"] = {"remappings": list(remappings)}
    return {"/**": {"ros__parameters": {"use_sim_time": True}}, "policy": {"ros__parameters": params}}


def _bag_joint_names(msgs: list[tuple[str, str, int, bytes]], topic: str) -> list[str]:
    """The joint names of the first JointState on ``topic`` that has any."""
    from wm_control.messages import registry

    for t, typename, _, raw in msgs:
        if t == topic:
            names = list(registry().deserialize(raw, typename).name)
            if names:
                return names
    return []


def _hindsight_goals(bag: Path, robot: Any, msgs: list[tuple[str, str, int, bytes]]) -> list[tuple[int, np.ndarray]]:
    """(log time ns, goal) at the start of each episode of the bag, the goal being where the episode
    ended (as the bundle was trained: :func:`wm_control.data.dataset.hindsight_goal`)."""
    from wm_control.data.dataset import load_episodes

    eps = load_episodes([bag], robot.dataset_config(load_images=False, hindsight_goal=True))
    # episodes are on the joint states' header stamps; the stack's clock is the bag's log time
    from wm_control.messages import convert as cv
    from wm_control.messages import registry

    stamps, logs = [], []
    for t, typename, t_ns, raw in msgs:
        if t == robot.joint_states_topic:
            stamps.append(cv.stamp_sec(registry().deserialize(raw, typename).header.stamp))
            logs.append(t_ns)
    order = np.argsort(stamps, kind="stable")
    st, lg = np.asarray(stamps)[order], np.asarray(logs)[order]
    out = []
    for e in eps:
        i = min(int(np.searchsorted(st, e.t[0] - 1e-9)), len(st) - 1)
        out.append((int(lg[i]) - 1, np.asarray(e.goal[0], dtype=float)))
    return out


def replay(bag: str | Path, bundle: str | None = None, config: str | None = None, out: str | Path | None = None,
           lockstep: bool = True, rate: float = 1.0, control_rate: float | None = None, timeout: float = 2.0,
           device: str = "auto", json_path: str | None = None, echo: bool = False,
           backend: str | None = None, robot_config: str | None = None) -> dict:
    """Play ``bag`` through the stack; see the module docstring. ``robot_config``: the robot the bag
    is of (its topics, joint names, command interface and rate: the policy node's topics are remapped
    to its); without one the bag's topics must be the stack's defaults. Refused in one line before
    anything starts: a bag whose joints are not the bundle's (or the robot config's). The report says
    how many of the stack's ticks acted (followed a proposal) and why the others held; a stack that
    never acted is not scored."""
    from wm_control.ros.dds import unpad_cdr

    bag = Path(bag)
    if config is None and bundle is None:
        raise UserError("give --bundle (the policy to run) or --config (a graph YAML with use_sim_time: true)")
    robot = None
    if robot_config:
        from wm_control.robot import load_robot_config

        robot = load_robot_config(robot_config)  # RobotConfigError: one line naming the field
    b = None
    if bundle is not None:  # verified before anything starts: a bad bundle is one line, not a dead stack
        from wm_control.world.bundle import load_bundle

        b = load_bundle(bundle)
    msgs, types = _read_bag(bag)
    if not msgs:
        raise UserError(f"bag {bag} has no messages")
    js_topic = robot.joint_states_topic if robot else POLICY_TOPICS["joint_states"]
    if js_topic not in types:
        raise UserError(f"bag {bag} has no {js_topic} (its topics: {', '.join(sorted(types))}); "
                        + ("give --robot-config with this robot's joint_states_topic" if robot is None else
                           f"robot config {robot.name} names the wrong joint_states_topic, or the bag is of another robot"))
    names = _bag_joint_names(msgs, js_topic)
    if robot is not None:
        missing = [j for j in robot.joint_names if j not in names]
        if missing:
            raise UserError(f"bag {bag}: {js_topic} has joints {names}, not robot config {robot.name}'s {missing}: "
                            "the bag is of another robot (give its robot config)")
    if b is not None:
        missing = [j for j in b.joint_names if j not in names]
        if missing:
            raise UserError(f"bag {bag}: {js_topic} has joints {names}; the bundle was trained for "
                            f"{b.manifest.get('robot', {}).get('name', '?')} with joints {missing} it does not have "
                            "(replay a bundle trained on this robot's bags)")
    if robot is not None:
        cmd_topic, interface = robot.command_topic, robot.command_interface
    else:
        cmd_topic = next((t for t in COMMAND_TOPICS if t in types), COMMAND_TOPICS[0])
        interface = "trajectory" if cmd_topic.endswith("joint_trajectory") else "position"
    if control_rate is None:
        control_rate = robot.control_rate if robot else float((b.manifest.get("robot", {}) if b else {})
                                                              .get("control_rate", 50.0))
    remaps = []
    if robot is not None:
        for ours, theirs in ((POLICY_TOPICS["joint_states"], robot.joint_states_topic),
                             (POLICY_TOPICS[interface], robot.command_topic),
                             (POLICY_TOPICS["goal"], robot.goal_topic or POLICY_TOPICS["goal"])):
            if ours != theirs:
                remaps.append(f"{ours}:={theirs}")
    goal_kind = (b.manifest.get("robot", {}) if b else {}).get("goal", "topic")
    goals = _hindsight_goals(bag, robot, msgs) if goal_kind == "hindsight" and robot is not None else []
    goal_topic = (robot.goal_topic if robot else "") or POLICY_TOPICS["goal"]
    recorded = [(t, raw) for topic, _, t, raw in msgs if topic == cmd_topic]
    skip = set(COMMAND_TOPICS) | {cmd_topic} | NEVER_REPLAY
    inputs = [m for m in msgs if m[0] not in skip]
    # not beside the bag: a replay's output in the bags' folder would be read as one more robot log
    out = Path(out) if out else Path("runs/replay") / bag.name
    graph = _stack_graph(bundle, device, interface, remaps, robot.joint_names if robot else None) \
        if config is None else config
    sim_now = [msgs[0][2]]
    outputs: list[tuple[str, int, bytes]] = []
    n_cmd = [0]

    def on_command(data: bytes, _info: Any) -> None:
        outputs.append((cmd_topic, sim_now[0], unpad_cdr(data)))
        n_cmd[0] += 1

    timeouts = 0
    t_wall0 = time.monotonic()
    with GraphRun(graph, "wm_replay", backend=backend, echo=echo) as run:
        node = run.node
        pubs = {}
        for topic in sorted({m[0] for m in inputs}):
            profile = qos.LATCHED if topic in ("/goal", "/wm/estop", "/robot_description") else \
                qos.QoSProfile("reliable", "volatile", 100)
            pubs[topic] = node.create_publisher(types[topic], topic, profile)
        goal_pub = node.create_publisher("geometry_msgs/msg/PointStamped", goal_topic, qos.LATCHED) if goals else None
        pending_goals = list(goals)

        def publish_goals(t: int) -> None:  # each hindsight goal just before its episode's first state
            while pending_goals and pending_goals[0][0] <= t:
                t_g, g = pending_goals.pop(0)
                goal_pub.publish(node.msg("geometry_msgs/msg/PointStamped", header=node.msg(
                    "std_msgs/msg/Header", stamp=node.msg("builtin_interfaces/msg/Time", sec=t_g // 10**9,
                                                          nanosec=t_g % 10**9)),
                    point=node.msg("geometry_msgs/msg/Point", x=float(g[0]), y=float(g[1]), z=float(g[2]))))
        clock = node.create_publisher("rosgraph_msgs/msg/Clock", "/clock", qos.QoSProfile("reliable", "volatile", 10))
        cmd_sub = node.create_subscription(types.get(cmd_topic, "std_msgs/msg/Float64MultiArray"), cmd_topic,
                                           on_command, qos.QoSProfile("reliable", "volatile", 100), raw=True,
                                           with_info=True)
        run.start()
        if not run.wait_ready(60):
            raise UserError(f"the stack did not start: {run.failure or 'no node said ready in 60 s'}")
        # the stack reads joint states (other topics it may ignore): wait until it hears them
        # and its command writer is matched to our reader, so its first command is not missed
        js = pubs.get(js_topic)
        if js is not None and not run.spin(until=lambda: js.matched() > 0 and cmd_sub.matched() > 0, timeout=15):
            if run.failure:
                raise UserError(f"the stack stopped before the replay began: {run.failure}")
            raise UserError(f"the stack never subscribed to {js_topic} or never offered {cmd_topic}: "
                            f"check the bundle's joint names and the graph's topics against the bag's")
        node.spin(timeout=0.5)  # discovery is per side: let the stack's writer learn of our reader too
        t0 = msgs[0][2]
        last_tick = -1
        # the first instant's context (goal, latched topics) lands before the first joint state, so
        # the stack's first command never depends on which writer's sample arrived first
        first_js = next((t for topic, _, t, _ in inputs if topic == js_topic), t0)
        early = [m for m in inputs if m[2] <= first_js and m[0] != js_topic]
        for topic, _, t, raw in early:
            pubs[topic].publish_raw(raw)
        if goal_pub is not None:
            publish_goals(first_js)
        node.spin(timeout=0.2)
        for topic, _, t, raw in (m for m in inputs if not (m[2] <= first_js and m[0] != js_topic)):
            if run.failure:
                raise UserError(f"the stack stopped during the replay: {run.failure}")
            if not lockstep:
                due = t_wall0 + (t - t0) * 1e-9 / rate
                while time.monotonic() < due:
                    node.spin_once(min(0.01, max(0.0, due - time.monotonic())))
            sim_now[0] = t
            if goal_pub is not None:
                publish_goals(t)
            pubs[topic].publish_raw(raw)
            clock.publish(node.msg("rosgraph_msgs/msg/Clock",
                                   clock=node.msg("builtin_interfaces/msg/Time", sec=t // 10**9, nanosec=t % 10**9)))
            tick = math.floor(t * 1e-9 * control_rate + 1e-6)
            # the stack acts on its first state and then once per control tick: wait for each answer
            if lockstep and tick > last_tick and topic == js_topic:
                want = n_cmd[0] + 1
                if not run.spin(until=lambda: n_cmd[0] >= want, timeout=timeout):
                    timeouts += 1
            else:
                node.spin_once(0.0)
            if topic == js_topic:
                last_tick = max(last_tick, tick)
        node.spin(timeout=0.3)
        ticks = _stack_ticks(run, node, clock, msgs[-1][2]) if config is None else None
    # record what the stack published, on the bag's time line
    with BagWriter(out, overwrite=True) as w:
        w.add_topic(cmd_topic, types.get(cmd_topic, "std_msgs/msg/Float64MultiArray"))
        for topic, t, raw in outputs:
            w.write_raw(topic, t, raw)
    if ticks is not None and ticks["acted"] == 0:
        why = ", ".join(f"{k} on {v}" for k, v in ticks["reasons"].items()) or "no diagnostics"
        report = {"compared": 0, "note": f"not scored: the stack never acted ({ticks['total']} ticks held: {why})"}
    else:
        report = compare_commands(recorded, outputs, types.get(cmd_topic, "std_msgs/msg/Float64MultiArray"))
    report.update({"robot": robot.name if robot else None, "ticks": ticks})
    report.update({"bag": str(bag), "recorded_to": str(out), "mode": "lockstep" if lockstep else f"rate {rate}x",
                   "inputs_replayed": len(inputs), "stack_commands": len(outputs), "lockstep_timeouts": timeouts,
                   "wall_s": round(time.monotonic() - t_wall0, 2)})
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
    return report


def _stack_ticks(run: GraphRun, node: Any, clock: Any, t_last: int) -> dict:
    """How many of the policy's control ticks acted (followed a proposal) and why the others held, from
    its ``/diagnostics`` counters (``ticks.*``, ``held_ticks``, ``reason.*``). The clock is moved 1 s
    past the bag's end so the node's 1 s diagnostics timer reports the whole bag (its joint states
    then go stale: a tick in that second holds and is counted too)."""
    def policy_diag() -> dict | None:
        return next((v for k, v in run.diagnostics.items() if k.rsplit("/", 1)[-1] == "policy"), None)

    before = dict(policy_diag() or {})
    t_end = t_last + 1_050_000_000
    clock.publish(node.msg("rosgraph_msgs/msg/Clock",
                           clock=node.msg("builtin_interfaces/msg/Time", sec=t_end // 10**9, nanosec=t_end % 10**9)))
    run.spin(until=lambda: (policy_diag() or {}) != before and "held_ticks" in (policy_diag() or {}), timeout=3.0)
    d = policy_diag() or {}
    total = sum(int(v) for k, v in d.items() if k.startswith("ticks."))
    held = int(d.get("held_ticks", 0))
    reasons = {k[len("reason."):]: int(v) for k, v in d.items() if k.startswith("reason.")}
    return {"total": total, "acted": total - held, "held": held,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "by_source": {k[len("ticks."):]: int(v) for k, v in d.items() if k.startswith("ticks.")}}


def _values(raw: bytes, typename: str, order: list[str] | None = None) -> tuple[np.ndarray, list[str] | None]:
    """A command's positions and, for a JointTrajectory, its joint names; reordered to ``order`` when
    given (a trajectory names its joints: the stack's order need not be the recording's)."""
    from wm_control.messages import registry

    msg = registry().deserialize(raw, typename)
    if typename.endswith("JointTrajectory"):
        if not msg.points:
            return np.zeros(0), list(msg.joint_names)
        v, names = np.asarray(msg.points[0].positions, dtype=float), list(msg.joint_names)
        if order is not None and set(order) <= set(names) and len(names) == len(v):
            v, names = v[[names.index(j) for j in order]], list(order)
        return v, names
    return np.asarray(msg.data, dtype=float), None


def compare_commands(recorded: list[tuple[int, bytes]], produced: list[tuple[str, int, bytes]],
                     typename: str) -> dict:
    """Each stack command against the recorded command in effect at the same bag time."""
    if not recorded or not produced:
        return {"compared": 0, "note": "nothing to compare (no recorded or no produced commands)"}
    rt = np.array([t for t, _ in recorded])
    rv = [_values(raw, typename) for _, raw in recorded]
    errs = []
    for _, t, raw in produced:
        i = int(np.searchsorted(rt, t, side="right")) - 1
        if i < 0:
            continue
        ref, ref_names = rv[i]
        ours, _ = _values(raw, typename, ref_names)
        if ours.shape == ref.shape:
            errs.append(np.abs(ours - ref))
    if not errs:
        return {"compared": 0}
    e = np.stack(errs)
    return {"compared": int(len(e)), "mean_abs_error_rad": e.mean(0).tolist(),
            "rmse_rad": float(np.sqrt((e ** 2).mean())), "max_abs_error_rad": float(e.max()),
            "within_0.05_rad": float(np.mean(e.max(1) <= 0.05))}


__all__ = ["replay", "compare_commands"]

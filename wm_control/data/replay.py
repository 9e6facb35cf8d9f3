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


def _stack_graph(bundle: str, device: str, command_interface: str) -> dict:
    return {
        "/**": {"ros__parameters": {"use_sim_time": True}},
        "policy": {"ros__parameters": {"bundle": str(Path(bundle).resolve()), "device": device,
                                       "command_interface": command_interface, "track_frames": False,
                                       "max_joint_state_age": 0.1}},
    }


def replay(bag: str | Path, bundle: str | None = None, config: str | None = None, out: str | Path | None = None,
           lockstep: bool = True, rate: float = 1.0, control_rate: float = 50.0, timeout: float = 2.0,
           device: str = "auto", json_path: str | None = None, echo: bool = False,
           backend: str | None = None) -> dict:
    from wm_control.ros.dds import unpad_cdr

    bag = Path(bag)
    if config is None and bundle is None:
        raise UserError("give --bundle (the policy to run) or --config (a graph YAML with use_sim_time: true)")
    if bundle is not None:  # verified before anything starts: a bad bundle is one line, not a dead stack
        from wm_control.world.bundle import load_bundle

        load_bundle(bundle)
    msgs, types = _read_bag(bag)
    if not msgs:
        raise UserError(f"bag {bag} has no messages")
    cmd_topic = next((t for t in COMMAND_TOPICS if t in types), COMMAND_TOPICS[0])
    interface = "trajectory" if cmd_topic.endswith("joint_trajectory") else "position"
    recorded = [(t, raw) for topic, _, t, raw in msgs if topic == cmd_topic]
    inputs = [m for m in msgs if m[0] not in COMMAND_TOPICS and m[0] not in NEVER_REPLAY]
    out = Path(out) if out else bag.parent / f"{bag.name}_replay"
    graph = _stack_graph(bundle, device, interface) if config is None else config
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
        clock = node.create_publisher("rosgraph_msgs/msg/Clock", "/clock", qos.QoSProfile("reliable", "volatile", 10))
        cmd_sub = node.create_subscription(types.get(cmd_topic, "std_msgs/msg/Float64MultiArray"), cmd_topic,
                                           on_command, qos.QoSProfile("reliable", "volatile", 100), raw=True,
                                           with_info=True)
        run.start()
        if not run.wait_ready(60):
            raise UserError(f"the stack did not start: {run.failure or 'no node said ready in 60 s'}")
        # the stack reads joint states (other topics it may ignore): wait until it hears them
        # and its command writer is matched to our reader, so its first command is not missed
        js = pubs.get("/joint_states")
        if js is not None and not run.spin(until=lambda: js.matched() > 0 and cmd_sub.matched() > 0, timeout=15):
            if run.failure:
                raise UserError(f"the stack stopped before the replay began: {run.failure}")
            raise UserError(f"the stack never subscribed to /joint_states or never offered {cmd_topic}: "
                            f"check the bundle's joint names and the graph's topics against the bag's")
        node.spin(timeout=0.5)  # discovery is per side: let the stack's writer learn of our reader too
        t0 = msgs[0][2]
        last_tick = -1
        # the first instant's context (goal, latched topics) lands before the first joint state, so
        # the stack's first command never depends on which writer's sample arrived first
        first_js = next((t for topic, _, t, _ in inputs if topic == "/joint_states"), t0)
        early = [m for m in inputs if m[2] <= first_js and m[0] != "/joint_states"]
        for topic, _, t, raw in early:
            pubs[topic].publish_raw(raw)
        node.spin(timeout=0.2)
        for topic, _, t, raw in (m for m in inputs if not (m[2] <= first_js and m[0] != "/joint_states")):
            if run.failure:
                raise UserError(f"the stack stopped during the replay: {run.failure}")
            if not lockstep:
                due = t_wall0 + (t - t0) * 1e-9 / rate
                while time.monotonic() < due:
                    node.spin_once(min(0.01, max(0.0, due - time.monotonic())))
            sim_now[0] = t
            pubs[topic].publish_raw(raw)
            clock.publish(node.msg("rosgraph_msgs/msg/Clock",
                                   clock=node.msg("builtin_interfaces/msg/Time", sec=t // 10**9, nanosec=t % 10**9)))
            tick = math.floor(t * 1e-9 * control_rate + 1e-6)
            # the stack acts on its first state and then once per control tick: wait for each answer
            if lockstep and tick > last_tick and topic == "/joint_states":
                want = n_cmd[0] + 1
                if not run.spin(until=lambda: n_cmd[0] >= want, timeout=timeout):
                    timeouts += 1
            else:
                node.spin_once(0.0)
            if topic == "/joint_states":
                last_tick = max(last_tick, tick)
        node.spin(timeout=0.3)
    # record what the stack published, on the bag's time line
    with BagWriter(out, overwrite=True) as w:
        w.add_topic(cmd_topic, types.get(cmd_topic, "std_msgs/msg/Float64MultiArray"))
        for topic, t, raw in outputs:
            w.write_raw(topic, t, raw)
    report = compare_commands(recorded, outputs, types.get(cmd_topic, "std_msgs/msg/Float64MultiArray"))
    report.update({"bag": str(bag), "recorded_to": str(out), "mode": "lockstep" if lockstep else f"rate {rate}x",
                   "inputs_replayed": len(inputs), "stack_commands": len(outputs), "lockstep_timeouts": timeouts,
                   "wall_s": round(time.monotonic() - t_wall0, 2)})
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
    return report


def _values(raw: bytes, typename: str) -> np.ndarray:
    from wm_control.messages import registry

    msg = registry().deserialize(raw, typename)
    if typename.endswith("JointTrajectory"):
        return np.asarray(msg.points[0].positions, dtype=float)
    return np.asarray(msg.data, dtype=float)


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
        ours = _values(raw, typename)
        if ours.shape == rv[i].shape:
            errs.append(np.abs(ours - rv[i]))
    if not errs:
        return {"compared": 0}
    e = np.stack(errs)
    return {"compared": int(len(e)), "mean_abs_error_rad": e.mean(0).tolist(),
            "rmse_rad": float(np.sqrt((e ** 2).mean())), "max_abs_error_rad": float(e.max()),
            "within_0.05_rad": float(np.mean(e.max(1) <= 0.05))}


__all__ = ["replay", "compare_commands"]

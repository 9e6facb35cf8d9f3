"""rosbag2 (MCAP) writing: ``wm-control record`` (live topics) and ``wm-control collect`` (sim data).

Bags are written with ``rosbags`` (storage MCAP, rosbag2 metadata version 8, CDR payloads), so
``ros2 bag info/play`` and any rosbag2 reader open them. ``collect`` runs behaviour policies on the
simulated arm in-process (no graph, deterministic, as fast as the CPU allows) and logs exactly the
topics a real robot would: joint states, camera, commands, goal.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from . import conversions as cv
from .msgs import MessageRegistry, registry, ros_type_name
from .ros import qos as qosmod

#: the topics a ros2_control arm with a camera logs, and their types
ROBOT_TOPICS = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/forward_position_controller/commands": "std_msgs/msg/Float64MultiArray",
    "/goal": "geometry_msgs/msg/PointStamped",
}


class BagWriter:
    """An MCAP rosbag2 writer taking messages or raw CDR, with the ROS distro's type definitions."""

    def __init__(self, path: str | Path, reg: MessageRegistry | None = None, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"bag {self.path} exists; choose another name or pass --overwrite")
            shutil.rmtree(self.path)
        self.reg = reg or registry()
        self.writer = Writer(self.path, version=8, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, typename: str) -> None:
        if topic in self.connections:
            return
        self.connections[topic] = self.writer.add_connection(
            topic, typename, typestore=self.reg.store, serialization_format="cdr")
        self.counts[topic] = 0

    def write_raw(self, topic: str, t_ns: int, cdr: bytes | memoryview) -> None:
        self.writer.write(self.connections[topic], int(t_ns), cdr)
        self.counts[topic] += 1

    def write(self, topic: str, t: float, msg: Any, typename: str | None = None) -> None:
        typename = typename or msg.__msgtype__
        self.add_topic(topic, typename)
        self.write_raw(topic, int(round(t * 1e9)), self.reg.serialize(msg, typename))

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------------------------------
# collect: behaviour policies in the simulator -> one MCAP bag per run
# ------------------------------------------------------------------------------------------
@dataclass
class CollectConfig:
    robot: str = "reacher"
    policy: str = "expert"  # 'expert' | 'random'
    noise: float = 0.0
    gain: float = 1.0
    """Expert: fraction of the way to the IK solution per step (< 1: a slow, low-quality expert)."""
    episodes: int = 10
    episode_s: float = 2.0
    control_rate: float = 50.0
    joint_state_rate: float = 100.0
    camera_rate: float = 30.0
    image_width: int = 96
    image_height: int = 96
    render: bool = True
    seed: int = 0
    goal_region: str = "full"  # 'full' | 'half' (goals with y >= 0 only: a narrow data set)
    episode_reset: str = "goal"
    """'goal': each episode is a new goal from where the arm is (continuous operation, as on a real
    robot and as sim_robot runs); 'full': re-randomise the arm too (Gymnasium-style)."""

    def __post_init__(self) -> None:
        if self.policy not in ("expert", "random"):
            raise ValueError(f"policy must be expert or random, not {self.policy!r}")
        if self.episodes < 1 or self.episode_s <= 0:
            raise ValueError("episodes must be >= 1 and episode_s > 0")
        if self.episode_reset not in ("goal", "full"):
            raise ValueError("episode_reset must be 'goal' or 'full'")
        if self.goal_region not in ("full", "half"):
            raise ValueError("goal_region must be 'full' or 'half'")
        for r in ("control_rate", "joint_state_rate", "camera_rate"):
            if not getattr(self, r) > 0:
                raise ValueError(f"{r} must be > 0")


def _events(period: float, duration: float) -> np.ndarray:
    return np.arange(0.0, duration + 1e-9, period)


def collect_episode(arm: Any, policy: Any, cfg: CollectConfig, path: Path, t0: float,
                    reg: MessageRegistry, rng: np.random.Generator) -> dict:
    """Run one episode and write its bag. Time stamps are ROS times starting at ``t0``."""
    make = reg.new
    first = arm.total_time == 0.0
    fresh = (lambda: arm.reset(seed=int(rng.integers(2**31)))) if first or cfg.episode_reset == "full" \
        else arm.new_goal
    obs = fresh()
    if cfg.goal_region == "half":
        for _ in range(100):
            if obs.goal[1] >= 0:
                break
            obs = arm.new_goal()
    policy.reset(rng)
    names = list(arm.joint_names)
    # one physics "tick" grid at the finest rate; each stream publishes on its own schedule
    dt_js, dt_ctl, dt_cam = 1 / cfg.joint_state_rate, 1 / cfg.control_rate, 1 / cfg.camera_rate
    tick = min(dt_js, dt_ctl)
    n_ticks = int(round(cfg.episode_s / tick))
    next_js = next_ctl = next_cam = 0.0
    with BagWriter(path, reg, overwrite=True) as bag:
        for topic, typ in ROBOT_TOPICS.items():
            if topic != "/camera/image_raw" or cfg.render:
                bag.add_topic(topic, typ)
        bag.write("/goal", t0, cv.make_point(make, t0, obs.goal))
        for k in range(n_ticks + 1):
            ts = k * tick
            t = t0 + ts
            obs = arm.get_observation()
            if ts + 1e-9 >= next_js:
                bag.write("/joint_states", t, cv.make_joint_state(make, t, names, obs.q, obs.qd, obs.effort))
                next_js += dt_js
            if cfg.render and ts + 1e-9 >= next_cam:
                bag.write("/camera/image_raw", t, cv.make_image(make, t, arm.render()))
                next_cam += dt_cam
            if k == n_ticks:
                break
            if ts + 1e-9 >= next_ctl:
                target = np.asarray(policy(obs, arm), dtype=np.float64)
                sent = arm.set_position_target(target)
                bag.write("/forward_position_controller/commands", t + 1e-4, cv.make_multiarray(make, sent))
                next_ctl += dt_ctl
            arm.step(tick)
        counts = dict(bag.counts)
    d = float(arm.distance_to_goal())
    return {"bag": str(path), "final_distance": d, "success": d < 0.02, "messages": counts,
            "start_time": t0, "duration": cfg.episode_s}


def collect(cfg: CollectConfig, out_dir: str | Path, reg: MessageRegistry | None = None,
            progress: bool = True) -> dict:
    """Collect ``cfg.episodes`` bags under ``out_dir`` (``ep_0000`` ...) and an ``index.json``."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from .sim import ArmConfig, SimArm, make_policy

    reg = reg or registry()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arm = SimArm(ArmConfig(robot=cfg.robot, image_width=cfg.image_width, image_height=cfg.image_height,
                           render=cfg.render, seed=cfg.seed))
    arm.connect()
    kw = {"noise": cfg.noise, "gain": cfg.gain} if cfg.policy == "expert" else {}
    policy = make_policy(cfg.policy, seed=cfg.seed, **kw)
    rng = np.random.default_rng(cfg.seed)
    episodes = []
    t0 = 1_700_000_000.0  # a fixed, plausible ROS epoch time: bags are reproducible
    bar = _progress(range(cfg.episodes), "collect", progress)
    try:
        for i in bar:
            ep = collect_episode(arm, policy, cfg, out / f"ep_{i:04d}", t0, reg, rng)
            episodes.append(ep)
            t0 += cfg.episode_s + 1.0
    finally:
        arm.disconnect()
    summary = {"config": asdict(cfg), "distro": reg.distro, "episodes": episodes,
               "success_rate": float(np.mean([e["success"] for e in episodes])),
               "mean_final_distance": float(np.mean([e["final_distance"] for e in episodes]))}
    (out / "index.json").write_text(json.dumps(summary, indent=2))
    return summary


def _progress(it: Iterable, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return it
    try:
        from tqdm import tqdm

        return tqdm(it, desc=desc, unit="ep", file=sys.stderr)
    except ImportError:
        return it


# ------------------------------------------------------------------------------------------
# record: live topics -> MCAP
# ------------------------------------------------------------------------------------------
def discover_topics(node: Any, wait: float = 1.0) -> dict[str, str]:
    """ROS topic name -> type, from DDS discovery of publications (what ``ros2 topic list -t`` shows)."""
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication

    reader = BuiltinDataReader(node.context.participant, BuiltinTopicDcpsPublication)
    found: dict[str, str] = {}
    end = time.monotonic() + wait
    while time.monotonic() < end:
        for s in reader.take(N=256):
            name = getattr(s, "topic_name", "")
            typ = ros_type_name(getattr(s, "type_name", "") or "")
            if name.startswith("rt/") and typ:
                found["/" + name[3:].lstrip("/")] = typ
        time.sleep(0.05)
    return found


def record(out: str | Path, topics: list[str] | None, duration: float | None = None,
           discover_s: float = 1.5, overwrite: bool = False) -> dict:
    """Record topics (all discovered ones when ``topics`` is empty) to an MCAP bag until Ctrl-C."""
    import signal

    from .ros.dds import DdsNode, unpad_cdr

    node = DdsNode("wm_record")
    found = discover_topics(node, discover_s)
    wanted = topics or sorted(t for t in found if t not in ("/rosout",))
    missing = [t for t in wanted if t not in found and t.split(":")[0] not in found and ":" not in t]
    if missing:
        raise SystemExit(f"no publisher found for {missing} (give TOPIC:TYPE to record before one appears); "
                         f"seen: {sorted(found)}")
    bag = BagWriter(out, node.registry, overwrite=overwrite)
    for spec in wanted:
        topic, _, typ = spec.partition(":")
        typ = typ or found[topic]
        bag.add_topic(topic, typ)
        profile = qosmod.SENSOR_DATA if typ in ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState") else (
            qosmod.LATCHED if topic in ("/goal", "/wm/estop") else qosmod.DEFAULT)
        node.create_subscription(
            typ, topic, lambda data, _info, _t=topic: bag.write_raw(_t, time.time_ns(), unpad_cdr(data)),
            profile, raw=True, with_info=True)
    signal.signal(signal.SIGINT, lambda *_: node.shutdown())
    signal.signal(signal.SIGTERM, lambda *_: node.shutdown())
    node.logger.info("recording %s to %s", ", ".join(bag.connections), out)
    try:
        node.spin(timeout=duration)
    finally:
        bag.close()
        node.destroy()
    return {"bag": str(out), "messages": bag.counts}

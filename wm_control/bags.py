"""rosbag2 (MCAP) writing: ``wm-control record`` (live topics) and ``wm-control collect`` (sim data).

Bags are written with ``rosbags`` (storage MCAP, rosbag2 metadata version 8, CDR payloads), so
``ros2 bag info/play`` and any rosbag2 reader open them. ``collect`` runs behaviour policies on the
simulated arm in-process (no graph, deterministic, as fast as the CPU allows) and logs exactly the
topics a real robot would: joint states, camera, commands, goal.

The heavy imports (numpy, rosbags, the message registry, Cyclone DDS) happen inside the functions, so
``wm-control record`` reaches its signal handlers within a few tens of milliseconds of starting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .ros import qos as qosmod

if TYPE_CHECKING:
    import numpy as np

    from .msgs import MessageRegistry

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
        from rosbags.rosbag2 import StoragePlugin, Writer

        from .msgs import registry

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
    import numpy as np

    return np.arange(0.0, duration + 1e-9, period)


def collect_episode(arm: Any, policy: Any, cfg: CollectConfig, path: Path, t0: float,
                    reg: MessageRegistry, rng: np.random.Generator) -> dict:
    """Run one episode and write its bag. Time stamps are ROS times starting at ``t0``."""
    import numpy as np

    from . import conversions as cv

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
    import numpy as np

    from .msgs import registry
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
#: topics ``record`` leaves out when it records everything (as before: the log stream)
RECORD_SKIP = ("/rosout",)


@dataclass(frozen=True)
class Publication:
    """One DDS writer of a ROS topic, as discovery reports it (``None``: the QoS policy was not sent)."""

    topic: str
    typename: str
    reliability: str | None = None  # 'reliable' | 'best_effort'
    durability: str | None = None  # 'volatile' | 'transient_local'


def _offered_qos(qos: Any) -> tuple[str | None, str | None]:
    """(reliability, durability) a writer offers, from the Cyclone DDS QoS of its discovery sample."""
    from cyclonedds.qos import Policy

    try:
        rel, dur = qos[Policy.Reliability], qos[Policy.Durability]
    except Exception:
        return None, None
    reliability = None if rel is None else (
        "reliable" if isinstance(rel, Policy.Reliability.Reliable) else "best_effort")
    durability = None if dur is None else ("volatile" if dur == Policy.Durability.Volatile else "transient_local")
    return reliability, durability


class TopicDiscovery:
    """The ROS topics being published, from DDS discovery (the builtin DCPSPublication topic).

    :meth:`poll` never blocks: it takes what discovery has reported since the last call (writers that
    appeared, and writers that went away), so it can run on a timer for as long as one records.
    """

    def __init__(self, participant: Any):
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication

        self.reader = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        self.publications: dict[Any, Publication] = {}  # writer GUID -> what it publishes

    def poll(self) -> list[Publication]:
        """Take the pending discovery samples; returns the writers that appeared since the last poll."""
        from .msgs import ros_type_name

        new = []
        while True:
            samples = self.reader.take(N=256)
            for s in samples:
                info = getattr(s, "sample_info", None)
                if info is not None and not info.valid_data:  # the writer is gone
                    self.publications.pop(s.key, None)
                    continue
                name = getattr(s, "topic_name", "") or ""
                typ = ros_type_name(getattr(s, "type_name", "") or "")
                if name.startswith("rt/") and typ:
                    pub = Publication("/" + name[3:].lstrip("/"), typ, *_offered_qos(getattr(s, "qos", None)))
                    if self.publications.get(s.key) != pub:
                        self.publications[s.key] = pub
                        new.append(pub)
            if len(samples) < 256:
                return new

    def topics(self) -> dict[str, str]:
        """ROS topic name -> type of every live writer (the first type seen when writers disagree)."""
        found: dict[str, str] = {}
        for pub in self.publications.values():
            found.setdefault(pub.topic, pub.typename)
        return found

    def offered(self, topic: str) -> list[Publication]:
        """The live writers of ``topic``."""
        return [p for p in self.publications.values() if p.topic == topic]


def discover_topics(node: Any, wait: float = 1.0, stop: Callable[[], bool] | None = None) -> dict[str, str]:
    """ROS topic name -> type, from DDS discovery of publications (what ``ros2 topic list -t`` shows).

    Waits ``wait`` s for discovery to settle, or less when ``stop()`` turns true (checked every 50 ms).
    """
    disc = TopicDiscovery(node.context.participant)
    end = time.monotonic() + wait
    while True:
        disc.poll()
        if time.monotonic() >= end or (stop is not None and stop()):
            return disc.topics()
        time.sleep(0.05)


def subscription_qos(topic: str, typename: str, offered: Iterable[Publication] = ()) -> qosmod.QoSProfile:
    """The QoS ``record`` subscribes with: the profile for the kind of topic (sensor data, latched,
    default), with reliability and durability adapted to what the writers offer, as rosbag2 does:
    reliable only if every writer is, transient local (latched samples) only if every writer is."""
    base = qosmod.SENSOR_DATA if typename in ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState") else (
        qosmod.LATCHED if topic in ("/goal", "/wm/estop") else qosmod.DEFAULT)
    offered = [p for p in offered if p.reliability and p.durability]
    if not offered:
        return base
    reliable = all(p.reliability == "reliable" for p in offered)
    latched = all(p.durability == "transient_local" for p in offered)
    return dataclasses.replace(base, reliability="reliable" if reliable else "best_effort",
                               durability="transient_local" if latched else "volatile")


class _StopSignals:
    """SIGINT and SIGTERM set a flag (and wake the node) instead of raising, for the ``with`` block.

    The previous handlers come back on exit. Outside the main thread no handlers can be installed:
    then only ``set()`` (or a duration) stops.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.node: Any = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.set(signum)

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum
        if self.node is not None:
            self.node.shutdown()

    def __call__(self) -> bool:
        return self.signum is not None


class _Recorder:
    """One ``record`` run: subscribes topics into the open bag as discovery reports them."""

    def __init__(self, node: Any, bag: BagWriter, wanted: dict[str, str | None], logger: Any):
        self.node = node
        self.bag = bag
        self.logger = logger
        self.wanted = wanted  # topic -> type (None: take it from discovery); empty: every topic
        self.discovery = TopicDiscovery(node.context.participant)
        self.subscribed: dict[str, str] = {}
        self.failed: set[str] = set()
        self.t0 = time.monotonic()
        self.next_warn = 0.0

    def start(self, poll_s: float, discover_s: float, warn_s: float) -> None:
        """Subscribe what can be subscribed now and arm the discovery, waiting and idle timers."""
        self.t0 = time.monotonic()
        self.next_warn = warn_s
        self.discovery.poll()
        for topic, typ in self.wanted.items():
            if typ:  # TOPIC:TYPE records before a writer appears
                self.subscribe(topic, typ)
        self.poll()
        self.node.create_steady_timer(poll_s, self.poll)
        once = self.node.create_steady_timer(discover_s, lambda: self.report_waiting(once))
        idle = self.node.create_steady_timer(warn_s, lambda: self.warn_idle(idle))

    def poll(self) -> None:
        """Subscribe the topics discovery reports that are wanted and not subscribed yet."""
        self.discovery.poll()
        for topic, typ in sorted(self.discovery.topics().items()):
            if topic in self.subscribed or topic in self.failed:
                continue
            if (topic not in self.wanted) if self.wanted else (topic in RECORD_SKIP):
                continue
            self.subscribe(topic, self.wanted.get(topic) or typ)

    def subscribe(self, topic: str, typename: str) -> None:
        from .ros.dds import unpad_cdr

        offered = self.discovery.offered(topic)
        profile = subscription_qos(topic, typename, offered)
        try:
            self.bag.add_topic(topic, typename)
            self.node.create_subscription(
                typename, topic,
                lambda data, _info, _t=topic: self.bag.write_raw(_t, time.time_ns(), unpad_cdr(data)),
                profile, raw=True, with_info=True)
        except Exception as exc:  # an unknown type, a type clash: skip the topic, keep recording
            self.failed.add(topic)
            self.logger.warning("cannot record %s [%s]: %s", topic, typename, exc)
            return
        self.subscribed[topic] = typename
        self.logger.info("subscribed to %s [%s] (%s, %s%s)", topic, typename, profile.reliability,
                         profile.durability, ", as offered" if offered else "")

    def drain(self, rounds: int = 100) -> None:
        """Write what has arrived but is not taken yet (a stop ends the spin between two takes)."""
        for _ in range(rounds):
            before = sum(self.bag.counts.values())
            self.node.spin_once(0.0)
            if sum(self.bag.counts.values()) == before:
                return

    def missing(self) -> list[str]:
        """The topics asked for that are not subscribed (nor skipped) yet."""
        return sorted(t for t in self.wanted if t not in self.subscribed and t not in self.failed)

    def report_waiting(self, timer: Any) -> None:
        """Once, ``discover_s`` s in: name the topics given without a type that no one publishes yet."""
        timer.cancel()
        if self.missing():
            self.logger.info("waiting for a publisher on %s (TOPIC:TYPE subscribes before one appears)",
                             ", ".join(self.missing()))

    def warn_idle(self, timer: Any) -> None:
        """On the idle timer, while nothing is subscribed: say so (and which domain we are on), after
        ``warn_s``, 2 ``warn_s``, 4 ``warn_s`` ... s."""
        if self.subscribed:
            timer.cancel()
            return
        elapsed = time.monotonic() - self.t0
        if elapsed < self.next_warn - 1e-3:
            return
        self.next_warn *= 2
        what = f"no publisher on {', '.join(self.missing())}" if self.wanted else "no topics discovered"
        self.logger.warning("nothing to record yet: %s after %.0f s (ROS_DOMAIN_ID=%d)", what, elapsed,
                            self.node.context.domain_id)


def record(out: str | Path, topics: list[str] | None, duration: float | None = None,
           discover_s: float = 1.5, overwrite: bool = False, poll_s: float = 0.1,
           warn_s: float = 5.0) -> dict:
    """Record topics to an MCAP bag until Ctrl-C, SIGTERM or ``duration`` s, like ``ros2 bag record``.

    ``topics`` are ``TOPIC`` or ``TOPIC:TYPE``; empty: every topic (but ``/rosout``), including ones
    that appear while recording (``-a``). Discovery is polled every ``poll_s`` s; a topic is
    subscribed once it is seen, with the QoS its writers offer; ``TOPIC:TYPE`` at once. A plain
    ``TOPIC`` with no writer after ``discover_s`` s is reported as awaited; while nothing is
    subscribed a warning comes after ``warn_s``, 2 ``warn_s``, 4 ``warn_s`` ... s, and one at the end
    when nothing was recorded.

    The signal handlers are in place before anything slow and the bag is opened next, so a stop at any
    moment (even during start-up) closes a valid, possibly empty, bag and returns normally.
    """
    wanted: dict[str, str | None] = {}
    for spec in topics or []:
        topic, _, typ = spec.partition(":")
        wanted[topic] = typ or wanted.get(topic)
    with _StopSignals() as stop:
        bag = BagWriter(out, overwrite=overwrite)
        node = None
        try:
            from .ros.dds import DdsNode, make_logger

            logger = make_logger("/wm_record")
            if not stop():
                node = stop.node = DdsNode("wm_record")
                logger = node.logger
                logger.info("recording %s to %s (Ctrl-C to stop)",
                            ", ".join(wanted) if wanted else "all topics", out)
                rec = _Recorder(node, bag, wanted, logger)
                rec.start(poll_s, discover_s, warn_s)
                node.spin(until=stop, timeout=duration)
                rec.drain()
            _warn_if_empty(logger, bag, wanted)
        finally:
            bag.close()
            if node is not None:
                node.destroy()
    return {"bag": str(out), "messages": bag.counts}


def _warn_if_empty(logger: Any, bag: BagWriter, wanted: dict[str, str | None]) -> None:
    """One warning line when the bag holds no message: which topics were subscribed, or that none were."""
    if sum(bag.counts.values()):
        return
    if bag.connections:
        logger.warning("recorded no messages; subscribed to %s", ", ".join(bag.connections))
    elif wanted:
        logger.warning("recorded no messages; no publisher appeared on %s", ", ".join(wanted))
    else:
        logger.warning("recorded no messages; no topics were found")

"""Rosbags (ours or a real robot's) -> time-aligned episodes at the control rate.

A :class:`DatasetConfig` names the topics and joints, so a robot's own bags work as long as they
carry a JointState topic, a command topic (Float64MultiArray in a known joint order, or
JointTrajectory) and optionally a camera and a goal. Each stream keeps its own time stamps (the
header stamp where the message has one, else the bag's receive time); the episode is resampled
on a uniform grid at ``rate`` Hz:

* joint positions/velocities: linear interpolation between the two surrounding JointStates;
* action ``a[k]``: the position target in effect over the step from ``t[k]`` to ``t[k+1]`` (the
  latest command received before ``t[k+1]``; forward controllers hold the last command);
* frame and goal: the latest one captured at or before ``t[k]`` (what a causal controller saw).

States and commands go through :func:`wm_control.control.history.align_grid`, the planner node's own
aligner (the exact rules are there), so the models are trained on what they are given at run time.

A gap longer than ``max_gap`` in the joint states splits the recording into separate episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wm_control.control.history import align_grid, sort_stream
from wm_control.messages import convert as cv
from wm_control.messages import registry
from wm_control.world.frames import msg_to_rgb


class DatasetError(RuntimeError):
    """A bag that cannot be read or does not contain what the config names."""


@dataclass
class DatasetConfig:
    joint_names: list[str] = field(default_factory=list)
    """Joints to read, in this order; default: the names of the first JointState."""
    joint_states_topic: str = "/joint_states"
    command_topic: str = "/forward_position_controller/commands"
    command_joint_order: list[str] = field(default_factory=list)
    """Joint order of Float64MultiArray commands; default: joint_names."""
    image_topic: str = "/camera/image_raw"
    """'' to ignore images."""
    goal_topic: str = "/goal"
    """'' to ignore the goal."""
    goal_image_topic: str = ""
    """The goal as a picture (sensor_msgs/Image or CompressedImage: the scene as it should end, latched per goal),
    read into ``Episode.goal_images`` (with load_images); '' to ignore it."""
    label_topic: str = "/sim/ground_truth/object"
    """A labelling topic (PointStamped): read into ``Episode.object`` for evaluation and probes, never an
    input of a model; '' to ignore it. Bags without it (every real robot's) have no labels."""
    rate: float = 50.0
    max_gap: float = 0.5
    load_images: bool = True
    hindsight_goal: bool = False
    """Bags without a goal: each episode's goal is its final joint positions (zero-padded to 3; at most 3 joints)."""

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("rate must be > 0")


@dataclass
class Episode:
    t: np.ndarray  # (T,) seconds, ROS time
    q: np.ndarray  # (T, n)
    qd: np.ndarray  # (T, n)
    action: np.ndarray  # (T, n) position targets
    goal: np.ndarray | None  # (T, 3)
    frames: np.ndarray | None  # (T, H, W, 3) uint8 RGB
    frame_time: np.ndarray | None  # (T,) capture stamp of each frame
    joint_names: list[str]
    source: str
    latent: np.ndarray | None = None
    """(T, Dz) the visual world model's latent of each step's frame, when attached (not read from bags)."""
    object: np.ndarray | None = None
    """(T, 3) a label: the object's true position at each step's frame capture (the latest at or before
    it), from ``label_topic``; for evaluation and probes only, never a model's input."""
    goal_images: np.ndarray | None = None
    """(K, H, W, 3) uint8 the goal images the episode saw (``goal_image_topic``), each once."""
    goal_image_index: np.ndarray | None = None
    """(T,) which of ``goal_images`` was the goal at each step (the latest at or before it)."""
    goal_latent: np.ndarray | None = None
    """(T, Dz) the visual latent of each step's goal image, when attached (not read from bags)."""

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class _Streams:
    js_t: list[float] = field(default_factory=list)
    q: list[np.ndarray] = field(default_factory=list)
    qd: list[np.ndarray] = field(default_factory=list)
    cmd_t: list[float] = field(default_factory=list)
    cmd: list[np.ndarray] = field(default_factory=list)
    img_t: list[float] = field(default_factory=list)
    img: list[np.ndarray] = field(default_factory=list)
    goal_t: list[float] = field(default_factory=list)
    goal: list[np.ndarray] = field(default_factory=list)
    label_t: list[float] = field(default_factory=list)
    label: list[np.ndarray] = field(default_factory=list)
    goal_img_t: list[float] = field(default_factory=list)
    goal_img: list[np.ndarray] = field(default_factory=list)
    dropped: int = 0
    """Messages skipped: undecodable, or not what the config expects (wrong joint count ...)."""
    undecodable: int = 0
    """Of those, messages whose CDR did not decode (a damaged payload)."""
    truncated: str | None = None
    """What was lost, when the bag is cut or damaged (the reader's report)."""


def read_streams(path: str | Path, cfg: DatasetConfig) -> tuple[_Streams, list[str]]:
    """Decode the configured topics of one bag (a folder, with or without its metadata.yaml, or a bare
    MCAP or sqlite3 file). A cut or damaged MCAP gives every complete message (``truncated`` says what
    was lost); a message that does not decode is skipped and counted (``dropped``, ``undecodable``)."""
    import logging

    from wm_control.data.bags import BagError, iter_bag_messages

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"bag {path} does not exist")
    log = logging.getLogger("wm_control.data.dataset")
    store = registry().store
    names = list(cfg.joint_names)
    s = _Streams()
    wanted = [cfg.joint_states_topic, cfg.command_topic]
    if cfg.image_topic and cfg.load_images:
        wanted.append(cfg.image_topic)
    if cfg.goal_topic:
        wanted.append(cfg.goal_topic)
    if cfg.label_topic:
        wanted.append(cfg.label_topic)
    if cfg.goal_image_topic and cfg.load_images:
        wanted.append(cfg.goal_image_topic)
    try:
        bag = iter_bag_messages(path, topics=wanted, warn=False)
    except BagError as exc:
        raise DatasetError(f"cannot open bag {path}: {exc}") from None

    def check_topics() -> None:
        for topic in (cfg.joint_states_topic, cfg.command_topic):
            if topic not in bag.topics:
                raise DatasetError(f"bag {path} has no {topic}; topics: {sorted(bag.topics)}")

    if bag.complete:  # the topics are known before reading (else: once read)
        check_topics()

    def drop(topic: str, why: str) -> None:
        s.dropped += 1
        if s.dropped <= 3:
            log.warning("%s: dropped a message on %s: %s", path, topic, why)

    try:
        for topic, msgtype, t_ns, raw in bag:
            try:
                msg = bag.deserialize(raw, msgtype, store)
            except Exception as exc:  # bad CDR (a damaged payload), an unknown type: skip it, count it
                s.undecodable += 1
                drop(topic, f"cannot decode {msgtype}: {type(exc).__name__}: {exc}")
                continue
            try:
                t_bag = t_ns * 1e-9
                if topic == cfg.joint_states_topic:
                    if not names:
                        names = list(msg.name)
                    q, qd, _ = cv.joint_state_to_arrays(msg, names)
                    s.js_t.append(_stamp_or(msg, t_bag))
                    s.q.append(q)
                    s.qd.append(qd)
                elif topic == cfg.command_topic:
                    if not names:
                        continue  # no joint state yet: cannot order the command
                    if msgtype == "trajectory_msgs/msg/JointTrajectory":
                        _, pos = cv.trajectory_to_arrays(msg, names)
                        value = pos[0]
                    else:
                        order = cfg.command_joint_order or names
                        value = cv.multiarray_to_command(msg, len(order))
                        value = value[[order.index(n) for n in names]]
                    s.cmd_t.append(_stamp_or(msg, t_bag))  # a trajectory's header stamp (0: the bag time)
                    s.cmd.append(value)
                elif topic == cfg.image_topic:
                    s.img_t.append(_stamp_or(msg, t_bag))
                    s.img.append(msg_to_rgb(msg))  # Image or CompressedImage (JPEG/PNG)
                elif topic == cfg.goal_topic:
                    s.goal_t.append(_stamp_or(msg, t_bag))
                    s.goal.append(cv.point_to_array(msg))
                elif topic == cfg.label_topic:
                    s.label_t.append(_stamp_or(msg, t_bag))
                    s.label.append(cv.point_to_array(msg))
                elif topic == cfg.goal_image_topic:
                    s.goal_img_t.append(_stamp_or(msg, t_bag))
                    s.goal_img.append(msg_to_rgb(msg))
            except (cv.ConversionError, ValueError) as exc:
                drop(topic, str(exc))
    except BagError as exc:
        raise DatasetError(f"cannot read bag {path}: {exc}") from None
    check_topics()
    if bag.report.damaged:
        s.truncated = bag.report.what()
    return s, names


def _stamp_or(msg: Any, fallback: float) -> float:
    h = getattr(msg, "header", None)
    if h is None:
        return fallback
    t = cv.stamp_sec(h.stamp)
    return t if t > 0 else fallback


def _latest_before(times: np.ndarray, query: np.ndarray, strict: bool) -> np.ndarray:
    """Index of the latest time <= query (or < query when strict); -1 where none."""
    side = "left" if strict else "right"
    return np.searchsorted(times, query, side=side) - 1


def align(s: _Streams, names: list[str], cfg: DatasetConfig, source: str) -> list[Episode]:
    if len(s.js_t) < 2 or not s.cmd_t:
        return []
    js_t, q, qd = sort_stream(s.js_t, s.q, s.qd)
    cmd_t, cmd = sort_stream(s.cmd_t, s.cmd)
    dt = 1.0 / cfg.rate
    # split on gaps in the joint states
    cuts = np.flatnonzero(np.diff(js_t) > cfg.max_gap) + 1
    episodes = []
    for seg in np.split(np.arange(len(js_t)), cuts):
        if len(seg) < 2:
            continue
        t_start = max(js_t[seg[0]], cmd_t[0])
        if s.img_t:
            t_start = max(t_start, min(s.img_t))
        if s.goal_t:
            t_start = max(t_start, min(s.goal_t))
        if s.goal_img_t:
            t_start = max(t_start, min(s.goal_img_t))
        t_end = js_t[seg[-1]]
        if t_end - t_start < 2 * dt:
            continue
        grid = t_start + dt * np.arange(int(np.floor((t_end - t_start) / dt + 1e-9)) + 1)
        a = align_grid(grid, dt, js_t[seg], q[seg], qd[seg], cmd_t, cmd)  # every step commanded: t >= cmd_t[0]
        goal = frames = frame_time = None
        if s.goal_t:
            gt = np.asarray(s.goal_t)
            go = np.argsort(gt, kind="stable")
            gi = np.maximum(_latest_before(gt[go], grid, strict=False), 0)
            goal = np.asarray(s.goal)[go][gi]
        elif cfg.hindsight_goal:
            goal = hindsight_goal(a.q[-1])[None].repeat(len(grid), 0)
        if s.img_t:
            it = np.asarray(s.img_t)
            io = np.argsort(it, kind="stable")
            ii = np.maximum(_latest_before(it[io], grid, strict=False), 0)
            frames = np.stack([s.img[io[i]] for i in ii])
            frame_time = it[io][ii]
        obj = None
        if s.label_t:  # at the frame's capture (what the camera showed), else at the step
            lt = np.asarray(s.label_t)
            lo = np.argsort(lt, kind="stable")
            li = np.maximum(_latest_before(lt[lo], grid if frame_time is None else frame_time, strict=False), 0)
            obj = np.asarray(s.label)[lo][li]
        goal_images = goal_index = None
        if s.goal_img_t:  # each goal image once; the steps say which was in force
            gt = np.asarray(s.goal_img_t)
            go = np.argsort(gt, kind="stable")
            gi = np.maximum(_latest_before(gt[go], grid, strict=False), 0)
            used, goal_index = np.unique(gi, return_inverse=True)
            goal_images = np.stack([s.goal_img[go[i]] for i in used])
        episodes.append(Episode(t=grid, q=a.q, qd=a.qd, action=a.action, goal=goal, frames=frames,
                                frame_time=frame_time, joint_names=list(names), source=source, object=obj,
                                goal_images=goal_images, goal_image_index=goal_index))
    return episodes


def hindsight_goal(q_final: np.ndarray) -> np.ndarray:
    """(3,) the joint-space reaching goal where an episode ended: its final joint positions, zero-padded."""
    q_final = np.asarray(q_final, dtype=np.float64).ravel()
    if q_final.size > 3:
        raise DatasetError(f"a joint-space hindsight goal fits at most 3 joints, not {q_final.size}")
    return np.concatenate([q_final, np.zeros(3 - q_final.size)])


def find_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Bags under the given paths, sorted: folders with a metadata.yaml, and the .mcap files of folders
    without one (a recording that never closed)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DatasetError(f"{p} does not exist")
        if (p / "metadata.yaml").exists() or p.suffix in (".mcap", ".db3"):
            out.append(p)
        elif p.is_dir():
            dirs = {d.parent for d in p.rglob("metadata.yaml")}
            loose = {f for f in p.rglob("*.mcap") if f.parent not in dirs}
            found = sorted(dirs | loose)
            if not found:
                raise DatasetError(f"no rosbag2 bags (folders with metadata.yaml, or .mcap files) under {p}")
            out.extend(found)
        else:
            raise DatasetError(f"{p} is neither a bag nor a folder of bags")
    return out


def load_episodes(paths: Sequence[str | Path], cfg: DatasetConfig | None = None,
                  strict: bool = False) -> list[Episode]:
    """Episodes from every bag under ``paths``. A truncated or damaged bag yields every complete
    message it holds, with a warning (or a :class:`DatasetError` when ``strict``); a message that does
    not decode is skipped and counted."""
    import logging

    cfg = cfg or DatasetConfig()
    log = logging.getLogger("wm_control.data.dataset")
    episodes: list[Episode] = []
    for bag in find_bags(paths):
        streams, names = read_streams(bag, cfg)
        if streams.truncated:
            if strict:
                raise DatasetError(f"bag {bag} is truncated or damaged ({streams.truncated})")
            log.warning("bag %s is damaged (%s); using the %d joint states recovered",
                        bag, streams.truncated, len(streams.js_t))
        if streams.dropped:
            log.warning("bag %s: %d messages skipped (%d undecodable)", bag, streams.dropped,
                        streams.undecodable)
        episodes.extend(align(streams, names, cfg, str(bag)))
    return episodes

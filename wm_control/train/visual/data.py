"""Camera bags -> episodes at the camera rate (frames at model size, commands, joints, goals).

Robot logs (joint states and commands) and camera-only video are both read; the frames are resized
as camera_ingest does and cached next to the bags. ``labelled_split`` picks the few episodes whose
commands the action adapter may see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.data.dataset import DatasetConfig, find_bags, load_episodes
from wm_control.report import summary_line
from wm_control.train.visual.config import VisualConfig
from wm_control.world.frames import FrameSpec, prepare_frame


@dataclass
class VideoEpisode:
    frames: np.ndarray  # (T, S, S, 3) uint8, model resolution
    command: np.ndarray  # (T, n): the position target in effect from frame t to t+1
    q: np.ndarray  # (T, n)
    goal: np.ndarray | None  # (T, 3)
    source: str
    object: np.ndarray | None = None
    """(T, 2) a label only (the simulator's ground truth, for probes): the object's table xy at each frame."""


def dataset_config(cfg: VisualConfig) -> DatasetConfig:
    """How the camera bags are read: the robot config's topics and joints, else the simulator's defaults."""
    if cfg.robot_config:
        from wm_control.robot import load_robot_config

        rc = load_robot_config(cfg.robot_config)
        if rc.camera_kind == "none":
            raise ValueError(f"robot config {rc.name}: camera_kind none (the visual world model needs the camera)")
        return rc.dataset_config(rate=cfg.frame_rate, hindsight_goal=rc.goal_kind == "hindsight")
    return DatasetConfig(rate=cfg.frame_rate)


def ensure_video(cfg: VisualConfig, data_dir: Path, episodes: int, seed: int) -> None:
    if data_dir.exists() and any(data_dir.rglob("metadata.yaml")):
        return
    if cfg.robot_config:
        raise ValueError(f"no bags at {data_dir} (a robot config's bags are never collected; give --data)")
    from wm_control.data.bags import CollectConfig, collect
    from wm_control.sim.robots import DATA_QUALITY

    if cfg.robot in DATA_QUALITY:  # a task with data qualities: the mixed set, for the widest coverage
        what, kw = "the mixed data quality", {"quality": "mixed"}
    else:
        what, kw = f"expert, noise {cfg.collect_noise}", {"noise": cfg.collect_noise}
    summary_line(f"no bags in {data_dir}: collecting {episodes} camera episodes ({what})", tag="train visual", err=True)
    collect(CollectConfig(robot=cfg.robot, policy="expert", episodes=episodes, episode_s=cfg.episode_s, render=True,
                          seed=seed, **kw), data_dir)


def load_video(data_dir: str | Path, cfg: VisualConfig,
               with_actions: bool = True) -> tuple[list[VideoEpisode], list[str]]:
    """Episodes at the camera rate, frames resized as camera_ingest does (cached next to the bags).
    ``with_actions=False`` reads the bags as unlabelled video: the command topic is ignored."""
    data_dir = Path(data_dir)
    dcfg = dataset_config(cfg)
    key = f"_{Path(cfg.robot_config).stem}" if cfg.robot_config else ""  # other topics: another cache
    cache = data_dir / f".video_{cfg.image_size}_{cfg.frame_rate:g}{key}.npz"
    bags = sorted(str(p.parent) for p in data_dir.rglob("metadata.yaml"))
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if list(z["bags"]) == bags and "object" in z.files:  # (caches before the object labels: rebuilt)
            eps, names = _unpack(z)
            return (eps if with_actions else unlabelled(eps)), names
    spec = FrameSpec(cfg.image_size, cfg.image_size)
    eps, video_only, names = [], [], []
    for bag in find_bags([data_dir]):
        if _has_topics(bag, dcfg):
            for e in load_episodes([bag], dcfg):
                if e.frames is None:
                    raise ValueError(f"{bag}: no {dcfg.image_topic} (the visual world model needs the camera)")
                names = names or e.joint_names
                if len(e) >= cfg.window:
                    eps.append(VideoEpisode(np.stack([prepare_frame(f, spec) for f in e.frames]),
                                            e.action.astype(np.float32), e.q.astype(np.float32),
                                            None if e.goal is None else e.goal.astype(np.float32), e.source,
                                            None if e.object is None else e.object[:, :2].astype(np.float32)))
        else:
            video_only.extend(seg for seg in read_video_only(bag, dcfg, spec) if len(seg[0]) >= cfg.window)
    n = len(names)
    for frames, src in video_only:
        nan = np.full((len(frames), n), np.nan, np.float32)
        eps.append(VideoEpisode(frames, nan, nan.copy(), None, src))
    if not eps:
        raise ValueError(f"no camera episodes of {cfg.window}+ frames under {data_dir} "
                         f"(bags need {dcfg.image_topic})")
    lens = np.array([len(e.frames) for e in eps])
    np.savez(cache, bags=np.array(bags), names=np.array(names), lens=lens,
             frames=np.concatenate([e.frames for e in eps]), command=np.concatenate([e.command for e in eps]),
             q=np.concatenate([e.q for e in eps]),
             goal=np.concatenate([e.goal if e.goal is not None else np.full((len(e.q), 3), np.nan, np.float32)
                                  for e in eps]), sources=np.array([e.source for e in eps]),
             object=np.concatenate([e.object if e.object is not None else np.full((len(e.q), 2), np.nan, np.float32)
                                    for e in eps]))
    return (eps if with_actions else unlabelled(eps)), names


def unlabelled(eps: list[VideoEpisode]) -> list[VideoEpisode]:
    """The same episodes as video: the commands blanked (NaN)."""
    return [replace(e, command=np.full_like(e.command, np.nan)) for e in eps]


def _has_topics(bag: Path, dcfg: DatasetConfig) -> bool:
    """True when the bag has joint states and commands (robot logs); False for camera-only video."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as r:
        topics = {c.topic for c in r.connections}
    return dcfg.joint_states_topic in topics and dcfg.command_topic in topics


def read_video_only(bag: Path, dcfg: DatasetConfig, spec: FrameSpec) -> list[tuple[np.ndarray, str]]:
    """Camera-only bags (no joint states, no commands): frames on a uniform grid at ``dcfg.rate`` (the
    latest frame at or before each instant), split where the stream has a gap over ``dcfg.max_gap``."""
    from rosbags.highlevel import AnyReader

    from wm_control.messages import convert as cv
    from wm_control.messages import registry
    from wm_control.world.frames import image_msg_to_rgb

    stamps, frames = [], []
    with AnyReader([bag], default_typestore=registry().store) as r:
        conns = [c for c in r.connections if c.topic == dcfg.image_topic]
        if not conns:
            raise ValueError(f"{bag}: no {dcfg.image_topic}; topics {sorted(c.topic for c in r.connections)}")
        for conn, t_ns, raw in r.messages(connections=conns):
            msg = r.deserialize(raw, conn.msgtype)
            st = cv.stamp_sec(msg.header.stamp)
            stamps.append(st if st > 0 else t_ns * 1e-9)
            frames.append(prepare_frame(image_msg_to_rgb(msg), spec))
    if not stamps:
        return []
    order = np.argsort(stamps, kind="stable")
    t, f = np.asarray(stamps)[order], np.stack(frames)[order]
    out = []
    for seg in np.split(np.arange(len(t)), np.flatnonzero(np.diff(t) > dcfg.max_gap) + 1):
        grid = t[seg[0]] + np.arange(int(np.floor((t[seg[-1]] - t[seg[0]]) * dcfg.rate + 1e-9)) + 1) / dcfg.rate
        idx = seg[0] + np.searchsorted(t[seg], grid + 1e-9, side="right") - 1
        out.append((f[idx], str(bag)))
    return out


def _unpack(z: Any) -> tuple[list[VideoEpisode], list[str]]:
    cut = np.cumsum(z["lens"])[:-1]
    parts = [np.split(z[k], cut) for k in ("frames", "command", "q", "goal", "object")]
    eps = [VideoEpisode(f, c, q, None if np.isnan(g).all() else g, str(s), None if np.isnan(o).all() else o)
           for f, c, q, g, o, s in zip(*parts, z["sources"])]
    return eps, [str(n) for n in z["names"]]


def labelled_split(eps: list[VideoEpisode], fraction: float, seed: int) -> np.ndarray:
    """Indices of the labelled episodes: a fixed random ``fraction`` of all episodes (at least one),
    drawn from those whose bags carry commands (camera-only video cannot be labelled)."""
    has = np.flatnonzero([not np.isnan(e.command).all() for e in eps])
    if not len(has):
        raise ValueError("no episode has joint commands: the action adapter needs a few labelled episodes")
    rng = np.random.default_rng(seed + 17)
    k = min(len(has), max(1, int(round(fraction * len(eps)))))
    return np.sort(rng.choice(has, size=k, replace=False))

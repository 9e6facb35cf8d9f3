"""The data verbs: ``collect`` (simulated demonstrations), ``record`` (live topics: its options here, the
verb in :mod:`wm_control.cli.record`), ``bag info|repair``, ``dataset`` (bags -> time-aligned episodes)
and ``replay`` (a bag through the stack)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

from wm_control.cli.flags import choose, parse, write_json
from wm_control.errors import UserError

Device = Literal["auto", "cpu", "cuda", "tensorrt"]


@dataclass
class CollectOptions:
    """Run behaviour policies in the simulator, one MCAP bag per episode, plus index.json."""

    out: str
    """Folder for the bags."""
    image_size: int = 96
    """Camera frames are IMAGE_SIZE x IMAGE_SIZE."""
    no_images: bool = False
    """Joint states and commands only (no camera topic; much faster)."""
    episode_s: float | None = None
    """Seconds per episode (default: the simulated robot's, wm_control.sim.robots.EPISODE_S)."""


def cmd_collect(argv: list[str]) -> int:
    from wm_control.data.bags import CollectConfig, collect

    o, cfg = parse("wm-control collect", argv, CollectOptions, CollectConfig(),
                   skip=("image_width", "image_height", "render"))
    from wm_control.sim.robots import episode_s as sim_episode_s

    episode_s = o.episode_s or sim_episode_s(cfg.robot, cfg.episode_s)
    try:
        cfg = CollectConfig(**{**cfg.__dict__, "episode_s": episode_s, "image_width": o.image_size,
                               "image_height": o.image_size, "render": not o.no_images})
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = collect(cfg, o.out)
    what = (f"policy {cfg.policy} noise {cfg.noise}" if cfg.quality == "custom" else
            f"quality {cfg.quality} (" + ", ".join(f"{k} {100 * v['success_rate']:.0f}% of {v['episodes']}"
                                                   for k, v in summary["by_behaviour"].items()) + ")")
    print(f"collected {len(summary['episodes'])} bags in {o.out}: {what}, success "
          f"{100 * summary['success_rate']:.0f}% (within {summary['success_radius_m']} m), mean final distance "
          f"{summary['mean_final_distance']:.4f} m")
    return 0


@dataclass
class RecordOptions:
    """Record live topics to an MCAP rosbag2 (chunks reach the file every second)."""

    out: Annotated[str, tyro.conf.arg(aliases=("-o",))]
    """The bag (a new folder)."""
    topics: Annotated[list[str], tyro.conf.Positional, tyro.conf.arg(metavar="TOPIC")] = field(default_factory=list)
    """Topics (TOPIC or TOPIC:TYPE); default: all discovered."""
    duration: float | None = None
    """Stop after this many seconds (default: at Ctrl-C / SIGTERM)."""
    overwrite: bool = False
    """Replace an existing bag."""


@dataclass
class BagInfoOptions:
    """Topics, types and counts of what is readable, and any damage (JSON)."""

    bag: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="BAG")]
    """A rosbag2 folder or .mcap file."""


@dataclass
class BagRepairOptions:
    """Every recoverable message of a cut or damaged bag into a new, indexed MCAP rosbag2; says what
    was recovered and lost."""

    bag: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="IN")]
    """The damaged bag."""
    out: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")]
    """The new bag."""
    overwrite: bool = False
    """Replace an existing OUT."""


def cmd_bag(argv: list[str]) -> int:
    from wm_control.data.bags import bag_info, repair_bag

    what, argv = choose("wm-control bag", argv, {"info": BagInfoOptions.__doc__, "repair": "a cut or damaged bag "
                        "made whole: every recoverable message in a new indexed MCAP"})
    if what == "info":
        o, _ = parse("wm-control bag info", argv, BagInfoOptions)
        print(json.dumps(bag_info(o.bag), indent=2))
        return 0
    r, _ = parse("wm-control bag repair", argv, BagRepairOptions)
    try:
        res = repair_bag(r.bag, r.out, overwrite=r.overwrite)
    except FileExistsError as exc:
        raise UserError(str(exc)) from None
    print(f"{r.bag} -> {r.out}: {res['report'] if res['damaged'] else 'no damage found'}; "
          f"wrote {res['messages']} messages on {len(res['topics'])} topics")
    for topic, n in sorted(res["topics"].items()):
        print(f"  {topic}: {n}")
    for topic, why in sorted(res["skipped_topics"].items()):
        print(f"  {topic}: not written ({why})")
    return 0


@dataclass
class DatasetOptions:
    """Read bags into time-aligned episodes on the control grid and summarise them."""

    bags: Annotated[list[str], tyro.conf.Positional, tyro.conf.arg(metavar="BAG")]
    """Bags or folders of bags."""
    no_images: bool = False
    """Skip the camera topic."""
    json: str | None = None
    """Also write the summary here."""
    robot_config: str | None = None
    """A robot config YAML (or a name in config/robots/): its topics, joint order, rate and goal source
    replace the flags' defaults."""


def cmd_dataset(argv: list[str]) -> int:
    from wm_control.data.dataset import DatasetConfig, load_episodes

    o, cfg = parse("wm-control dataset", argv, DatasetOptions, DatasetConfig(), skip=("load_images",))
    if o.robot_config:
        from wm_control.robot import load_robot_config

        try:
            robot = load_robot_config(o.robot_config)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        cfg = robot.dataset_config(max_gap=cfg.max_gap, hindsight_goal=robot.goal_kind == "hindsight")
    if o.no_images:
        cfg.load_images = False
    eps = load_episodes(o.bags, cfg)
    info = {"episodes": len(eps), "steps": int(sum(len(e) for e in eps)),
            "joint_names": eps[0].joint_names if eps else [],
            "per_episode": [{"source": e.source, "steps": len(e), "duration_s": float(e.t[-1] - e.t[0]),
                             "frames": None if e.frames is None else list(e.frames.shape)} for e in eps]}
    print(json.dumps(info, indent=2))
    write_json(o.json, info)
    return 0


#: the DDS domains a replay's stack runs on unless --share-domain (ROS 2's upper safe range, 215-232)
REPLAY_DOMAINS = range(215, 233)


@dataclass
class ReplayOptions:
    """Play a rosbag2 through the stack under sim time (/clock); record what it publishes and score it
    against the recorded commands."""

    bag: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="BAG")]
    """The bag to play (MCAP or sqlite3)."""
    bundle: str | None = None
    """Policy bundle to run (default graph: the policy node)."""
    config: str | None = None
    """Or a graph YAML (use_sim_time: true) to run instead."""
    out: str | None = None
    """MCAP bag for what the stack publishes (default runs/replay/BAG_NAME; not beside the bag, where it would
    be read as one more robot log)."""
    rate: float | None = None
    """Play at this multiple of real time (default: lock-step)."""
    control_rate: float | None = None
    """The stack's control rate (Hz; default: the robot config's, else the bundle's)."""
    robot_config: str | None = None
    """The robot the bag is of (a YAML, or a name in config/robots/): its topics, joints and command
    interface; the policy's topics are remapped to its."""
    device: Device = "auto"
    """Where the models run."""
    json: str | None = None
    """Also write the report here."""
    verbose: Annotated[bool, tyro.conf.arg(aliases=("-v",))] = False
    """Show the stack's log."""
    share_domain: bool = False
    """Run the replayed stack on this shell's ROS_DOMAIN_ID (to watch it with rviz). By default it gets a
    DDS domain of its own: a replay publishes /clock and commands, which must never reach a live graph
    (a real controller, sim-time nodes), and a live graph's latched /goal must not steer the replay."""


def cmd_replay(argv: list[str]) -> int:
    from wm_control.data.replay import replay

    o, _ = parse("wm-control replay", argv, ReplayOptions)
    if not o.share_domain:  # before any DDS participant exists in this process or its nodes
        import os

        os.environ["ROS_DOMAIN_ID"] = str(REPLAY_DOMAINS[0] + os.getpid() % len(REPLAY_DOMAINS))
    rep = replay(o.bag, bundle=o.bundle, config=o.config, out=o.out, lockstep=not o.rate, rate=o.rate or 1.0,
                 control_rate=o.control_rate, device=o.device, json_path=o.json, echo=o.verbose,
                 robot_config=o.robot_config)
    print(json.dumps({k: v for k, v in rep.items() if k != "mean_abs_error_rad"}, indent=2))
    if rep.get("ticks") is not None and rep["ticks"]["acted"] == 0:
        print(f"wm-control replay: {rep['note']}", file=sys.stderr)
        return 1
    return 0

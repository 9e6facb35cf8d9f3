"""``wm-control launch GRAPH.yaml``: a graph from a ROS params YAML, one process per node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import tyro

from wm_control.cli.flags import config_path, parse


@dataclass
class LaunchOptions:
    """Start a graph from a ROS params YAML (node: ros__parameters: ...), one process per node."""

    config: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="GRAPH.yaml")]
    """The graph: a path, or the name of a file in config/ (demo.yaml, teleop.yaml, ...)."""
    param: Annotated[list[str], tyro.conf.UseAppendAction, tyro.conf.arg(aliases=("-p",),
                                                                        metavar="[NODE:]NAME:=VALUE")] \
        = field(default_factory=list)
    """name:=value for every node, node:name:=value for that node only; also the launch attributes,
    e.g. world_model:launch.respawn:=false (repeatable)."""
    duration: float | None = None
    """Stop after this many seconds (default: until Ctrl-C or a required node exits)."""


def cmd_launch(argv: list[str]) -> int:
    from wm_control.ros.launcher import Launcher

    o, _ = parse("wm-control launch", argv, LaunchOptions)
    # a bad graph or -p is a RosArgsError: main() prints it as one line (exit 2)
    return Launcher(config_path(o.config), overrides=o.param).run(o.duration)

"""``wm-control teleop``: the teleop node in the foreground (keyboard from this terminal or its window)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wm_control.cli.flags import parse


@dataclass
class TeleopOptions:
    """Drive the robot: keyboard / sensor_msgs/Joy -> /teleop/command (the policy node in TELEOP).
    Node parameters and remaps follow --ros-args, as for `wm-control run` (-p k:=v, --params-file F)."""

    input: Literal["keyboard", "joy", "both"] | None = None
    """Where the motion comes from (default: the node's `input` parameter, keyboard)."""
    view: Literal["auto", "window", "topic", "mjpeg", "none"] | None = None
    """Camera | preview: auto (a window where there is a display, else topic)."""
    backend: Literal["auto", "dds", "rclpy"] | None = None
    """The node's backend (as `wm-control --backend`)."""


def cmd_teleop(argv: list[str]) -> int:
    from wm_control.ros.runner import run_node

    ros_args: list[str] | None = None
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i + 1:]
    o, _ = parse("wm-control teleop", argv, TeleopOptions)
    node_argv = ["--ros-args", *ros_args] if ros_args is not None else []
    flags = [f"{k}:={v}" for k, v in (("input", o.input), ("view", o.view)) if v]
    if flags:  # the flags win over params files and -p
        node_argv += ["--ros-args", *[x for f in flags for x in ("-p", f)]]
    return run_node("teleop", node_argv, o.backend)

"""``wm-control run NODE [--ros-args ...]``: one node in the foreground.

Its arguments are ROS's own (``--ros-args -p k:=v -r a:=b --params-file F``), parsed by
:mod:`wm_control.ros.args` as ``ros2 run`` would, so this verb has no generated flags.
"""

from __future__ import annotations

import sys


def cmd_run(argv: list[str]) -> int:
    from wm_control.ros.runner import NODE_TYPES, run_node

    backend = None
    if argv[:1] and argv[0].startswith("--backend"):
        backend = argv[0].split("=", 1)[1] if "=" in argv[0] else argv[1]
        argv = argv[1:] if "=" in argv[0] else argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: wm-control run [--backend auto|dds|rclpy] NODE [--ros-args -p k:=v -r a:=b "
              "--params-file F ...]\nnodes: " + ", ".join(sorted(NODE_TYPES))
              + "\nwm-control run NODE --help: its parameters (type, default, description)")
        return 0 if argv else 2
    return run_node(argv[0], argv[1:], backend)


def node_main(node_type: str) -> int:
    """``ros2 run wm_control <node_type>`` entry point."""
    from wm_control.ros.runner import run_node

    return run_node(node_type, sys.argv[1:])

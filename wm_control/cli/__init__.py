"""``wm-control``: one command, one module per verb (see ``wm-control --help``).

Each verb's flags are generated from dataclasses (:mod:`wm_control.cli.flags`): its options and the
configuration it runs, with their field docstrings as help. ``run`` takes ROS's own arguments.
"""

from __future__ import annotations

import importlib
import os
import sys

VERBS: dict[str, tuple[str, str]] = {
    "run": ("run", "one node: run NODE [--ros-args -p k:=v ...] (run NODE --help: its parameters)"),
    "launch": ("launch", "a graph from a ROS params YAML, one process per node"),
    "demo": ("demo", "the main job: the stack on the simulated robot, with a summary"),
    "teleop": ("teleop", "drive the robot: keyboard / sensor_msgs/Joy -> /teleop/command"),
    "collect": ("data", "behaviour policies in the simulator, one MCAP bag per episode"),
    "record": ("record", "live topics to an MCAP rosbag2"),
    "bag": ("data", "bag info BAG | bag repair IN OUT: what a bag holds; a cut or damaged one made whole"),
    "dataset": ("data", "bags -> time-aligned episodes, summarised"),
    "replay": ("data", "a rosbag2 through the stack under sim time; record and score it"),
    "train": ("train", "train bc|ensemble|policy|visual --preset debug|quick|full"),
    "export": ("export", "checkpoint -> verified bundle (ONNX graphs + manifest)"),
    "bundle": ("export", "bundle verify|keygen|sign: check a bundle (its id); sign one with ed25519"),
    "verify": ("export", "verify BUNDLE [--robot CONFIG]: bundle verify, and whether it fits that robot"),
    "eval": ("eval", "eval [closed-loop|world-model|suite|visual|visual-state]: JSON + PNG"),
    "bench": ("bench", "bench transport|loop|ensemble|planner|visual: speed as JSON"),
    "topic": ("graph", "topic list|info|echo|pub|hz: the graph's topics, as `ros2 topic`"),
    "node": ("graph", "node list|info: the graph's nodes, as `ros2 node`"),
    "param": ("graph", "param list|get|set|describe NODE ...: a node's parameters, as `ros2 param`"),
}
"""verb -> (its module in wm_control.cli, one line of help); the module has ``cmd_<verb>(argv)``."""

USAGE = ("usage: wm-control [-v] [--backend auto|dds|rclpy] VERB [--help | ...]\n\n"
         "world-model robot control stack (-v: tracebacks; --backend: the backend of every node a verb "
         "starts)\n\n")


def verb_main(verb: str):
    """The function that runs ``verb`` (imported on use: `wm-control run` loads no training code)."""
    module, _ = VERBS[verb]
    return getattr(importlib.import_module(f"wm_control.cli.{module}"), f"cmd_{verb}")


def _usage() -> str:
    width = max(map(len, VERBS))
    return USAGE + "\n".join(f"  {v:<{width}}  {h}" for v, (_, h) in VERBS.items())


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message is the whole story (no traceback without -v)."""
    from wm_control.data.dataset import DatasetError
    from wm_control.errors import UserError
    from wm_control.messages.convert import ConversionError
    from wm_control.robot import RobotConfigError
    from wm_control.ros.api import ConfigError
    from wm_control.ros.args import RosArgsError
    from wm_control.world.bundle import BundleError

    return (UserError, BundleError, ConversionError, DatasetError, ConfigError, RosArgsError, RobotConfigError,
            FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    verbose = False
    while argv[:1] and (argv[0] in ("-v", "--verbose", "--backend") or argv[0].startswith("--backend=")):
        if argv[0] in ("-v", "--verbose"):
            verbose, argv = True, argv[1:]
            continue
        # every tool's own nodes and the nodes it launches: auto | dds | rclpy (as `run --backend`)
        if "=" in argv[0]:
            value, argv = argv[0].split("=", 1)[1], argv[1:]
        else:
            value, argv = (argv[1] if len(argv) > 1 else ""), argv[2:]
        if value not in ("auto", "dds", "rclpy"):
            print(f"wm-control: --backend must be auto, dds or rclpy, not {value!r}", file=sys.stderr)
            return 2
        os.environ["WM_BACKEND"] = value
    if verbose:
        os.environ["WM_VERBOSE"] = "1"
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    verb = argv[0]
    if verb not in VERBS:
        print(f"wm-control: unknown verb {verb!r}; choose one of: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    try:
        return verb_main(verb)(argv[1:])
    except KeyboardInterrupt:
        if verbose:
            raise
        print(f"wm-control {verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line that says what to fix; the traceback with -v
        if verbose:
            raise
        expected = isinstance(exc, _expected_errors())
        msg = str(exc).strip() or type(exc).__name__
        if not expected:  # one line: the cause and how to see more
            msg = f"{type(exc).__name__}: {msg.splitlines()[0]} (run `wm-control -v {verb} ...` for the traceback)"
        print(f"wm-control {verb}: {msg}", file=sys.stderr)
        return 2


def node_main(node_type: str) -> int:
    """``ros2 run wm_control <node_type>`` entry point."""
    from wm_control.cli.run import node_main as run

    return run(node_type)


if __name__ == "__main__":
    sys.exit(main())

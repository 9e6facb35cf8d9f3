"""Run one node class as a ROS 2-style executable on the ``dds`` or ``rclpy`` backend."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from typing import Any

from wm_control.ros.api import ConfigError, close_instance, config_fields, config_from_params, config_help
from wm_control.ros.args import RosArgsError, parse_ros_args, validate_node_name

#: node type -> "module:Class"; imported lazily so `wm-control run sim_robot` loads only what it needs
NODE_TYPES: dict[str, str] = {
    "sim_robot": "wm_control.ros.nodes.sim_robot:SimRobotNode",
    "scripted_controller": "wm_control.ros.nodes.scripted_controller:ScriptedControllerNode",
    "policy": "wm_control.ros.nodes.policy:PolicyNode",
    "camera_ingest": "wm_control.ros.nodes.camera_ingest:CameraIngestNode",
    "planner": "wm_control.ros.nodes.planner:PlannerNode",
    "world_model": "wm_control.ros.nodes.world_model:WorldModelNode",
    "teleop": "wm_control.ros.nodes.teleop:TeleopNode",
}


def node_class(node_type: str) -> type:
    try:
        mod, cls = NODE_TYPES[node_type].split(":")
    except KeyError:
        raise SystemExit(f"unknown node {node_type!r}; available: {', '.join(sorted(NODE_TYPES))}") from None
    return getattr(importlib.import_module(mod), cls)


def ros_available() -> bool:
    """True when ROS 2 is sourced and rclpy imports (the production path on a robot)."""
    if not os.environ.get("AMENT_PREFIX_PATH"):
        return False
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(requested: str | None) -> str:
    b = (requested or os.environ.get("WM_BACKEND", "auto")).lower()
    if b == "auto":
        return "rclpy" if ros_available() else "dds"
    if b not in ("dds", "rclpy"):
        raise SystemExit(f"unknown backend {b!r}; use auto, dds or rclpy")
    if b == "rclpy" and not ros_available():
        raise SystemExit("backend rclpy requested but ROS 2 is not sourced (source /opt/ros/<distro>/setup.bash)")
    return b


#: the dds backend never runs without the security a user asked for
SECURITY_REFUSAL = (
    "DDS Security (--enclave / ROS_SECURITY_ENABLE=true) is not available on the dds backend: this Cyclone DDS "
    "build has no security plugins (libdds_security_*). Run on ROS 2 with SROS2 keystores (--backend rclpy), "
    "or leave out --enclave and ROS_SECURITY_ENABLE.")


def localhost_discovery_by_default() -> None:
    """On rclpy, as on dds: discovery stays on this host unless the user set ``ROS_AUTOMATIC_DISCOVERY_RANGE``
    (Jazzy) or ``ROS_LOCALHOST_ONLY`` (Humble). Call before ``rclpy.init``."""
    if not (os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or os.environ.get("ROS_LOCALHOST_ONLY")):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def node_help(node_type: str) -> str:
    """``wm-control run NODE --help``: what the node is, and every parameter with its type, default
    and description (the config dataclass's field docstrings, as the rclpy backend declares them)."""
    cls = node_class(node_type)
    doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().split("\n\n")[0]
    about = " ".join(doc.split())
    return (f"usage: wm-control run [--backend auto|dds|rclpy] {node_type} "
            "[--ros-args -p NAME:=VALUE ... --params-file FILE -r FROM:=TO -r __node:=NAME -r __ns:=NS]\n\n"
            + (f"{about}\n\n" if about else "")
            + "parameters (-p NAME:=VALUE, or a --params-file):\n"
            + config_help(cls.Config) + "\n"
            "  use_sim_time (bool, default false)\n      Take the time from /clock (simulation, bag replay).\n")


def wants_help(argv: list[str]) -> bool:
    """``-h`` / ``--help`` among the node's own arguments (those before ``--ros-args``)."""
    own = argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv
    return any(a in ("-h", "--help") for a in own)


def run_node(node_type: str, argv: list[str], backend: str | None = None) -> int:
    """Start one node, spin until SIGINT/SIGTERM, clean up. Returns the process exit code."""
    cls = node_class(node_type)
    if wants_help(argv):
        print(node_help(node_type), end="")
        return 0
    try:
        args = parse_ros_args(argv)
        name = args.node_name or getattr(cls, "NAME", node_type)
        validate_node_name(name)
        ns = args.namespace or "/"
        if args.user_args:
            raise RosArgsError(f"unexpected arguments {args.user_args} (node options go after --ros-args)")
    except RosArgsError as exc:
        print(f"[ERROR] [{node_type}]: {exc}", file=sys.stderr)
        return 2
    b = choose_backend(backend)
    secure = os.environ.get("ROS_SECURITY_ENABLE", "").lower() == "true"
    if b == "dds" and (args.enclave or secure):
        print(f"[ERROR] [{name}]: {SECURITY_REFUSAL}", file=sys.stderr)
        return 2
    if b == "rclpy":
        from wm_control.ros.rclpy_backend import run_rclpy_node

        localhost_discovery_by_default()
        return run_rclpy_node(cls, name, argv)

    from wm_control.ros.dds import DdsNode

    try:
        params = args.resolved_params(name, ns)
    except RosArgsError as exc:
        print(f"[ERROR] [{name}]: {exc}", file=sys.stderr)
        return 2
    node = DdsNode(name, ns, params=params, remaps=args.remaps, log_level=args.log_level)
    known = {f[0] for f in config_fields(cls.Config)} | {"use_sim_time", "node_type"}
    for p in sorted(set(params) - known):
        node.logger.warning("parameter %r is not declared by %s; ignored", p, node_type)
    try:
        cfg = config_from_params(cls.Config, params)
        instance = cls(node, cfg)
    except (ConfigError, ValueError, RuntimeError, FileNotFoundError) as exc:
        node.logger.error("failed to start: %s", exc)
        return 1
    from wm_control.ros.params import Parameters, serve

    try:  # ~/list_parameters, ~/get_parameters, ... (rclpy has its own)
        serve(node, Parameters(cfg, getattr(instance, "on_parameters", None), {"use_sim_time": node.use_sim_time}))
    except (KeyError, RuntimeError) as exc:  # a broken install (no .srv files): the node runs without them
        node.logger.error("no parameter services: %s", exc)
    return _spin(node, instance)


def _spin(node: Any, instance: Any) -> int:
    def stop(signum: int, _frame: Any) -> None:
        node.shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        node.logger.info("ready")
        node.spin()
    except Exception:
        node.logger.error("crashed:\n%s", traceback.format_exc())
        code = 1
    finally:
        close_instance(instance, node.logger)
        node.destroy()
    return code

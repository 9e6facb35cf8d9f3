"""What the launch_ros files start, as data: pure functions, no launch_ros (``tests/test_launch_files.py``
runs them, and the launch files over fake launch modules).

- :func:`graph_nodes`: a graph YAML (the file ``wm-control launch`` reads) as nodes, with each section's
  ``launch:`` attributes read by :func:`wm_control.ros.launcher.graph_from_config` (``remappings``,
  ``required``, ``respawn``), for ``launch/sim.launch.py``;
- :func:`robot_nodes`: a physical robot's bring-up from its robot config (``launch/robot.launch.py``): the
  policy node with the robot's topics remapped as ``wm-control replay --robot-config`` remaps them
  (``/joint_states`` -> the config's ``joint_states_topic``, the command topic -> ``controller``, ``/goal``
  -> the config's ``goal_topic``), plus ``camera_ingest`` when the config has a camera;
- :func:`section_remappings`: one node's ``launch: remappings`` from a graph YAML (``teleop.launch.py``);
- :func:`policy_command`: the command interface and topic the policy node publishes on (the node calls it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wm_control.robot import RobotConfig, RobotConfigError, load_robot_config, resolve_robot_path
from wm_control.ros import topics

PACKAGE = "wm_control"


@dataclass
class NodeAction:
    """One launch_ros ``Node``: :meth:`kwargs` are its arguments."""

    executable: str
    name: str
    namespace: str | None = None
    parameters: list[Any] = field(default_factory=list)
    """params files (str) and dicts, in order: a later one wins."""
    remappings: list[tuple[str, str]] = field(default_factory=list)
    required: bool = False
    """Its exit shuts the launch down (launch ``on_exit=Shutdown()``), as ``wm-control launch``'s ``required``."""
    respawn: bool = False
    respawn_delay: float = 1.0

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = dict(package=PACKAGE, executable=self.executable, name=self.name,
                                  namespace=self.namespace, parameters=list(self.parameters),
                                  remappings=list(self.remappings), output="screen", emulate_tty=True)
        if self.respawn:
            kw.update(respawn=True, respawn_delay=self.respawn_delay)
        return kw


def launch_actions(nodes: list[NodeAction], node_cls: Any, shutdown_cls: Any) -> list[Any]:
    """launch_ros ``Node`` actions (``node_cls``, passed in: this module never imports launch_ros) for
    ``nodes``; a required node that is not respawned ends the launch when it exits (``shutdown_cls()``)."""
    actions = []
    for n in nodes:
        kw = n.kwargs()
        if n.required and not n.respawn:
            kw["on_exit"] = shutdown_cls()
        actions.append(node_cls(**kw))
    return actions


def parse_remappings(rules: list[str]) -> list[tuple[str, str]]:
    """``["from:=to", ...]`` (the launcher's ``-r`` rules) as launch_ros ``remappings`` pairs."""
    out = []
    for r in rules:
        src, sep, dst = r.partition(":=")
        if not (sep and src and dst):
            raise ValueError(f"remapping {r!r}: expected 'from:=to'")
        out.append((src, dst))
    return out


def graph_nodes(params_file: str | Path) -> list[NodeAction]:
    """The nodes of a graph YAML, as ``wm-control launch`` starts them: the section's type (``node_type``),
    name and namespace, the file as the params file, its ``launch: remappings`` as remappings."""
    from wm_control.ros.launcher import graph_from_config

    out = []
    for s in graph_from_config(params_file):
        out.append(NodeAction(executable=s.node_type, name=s.name,
                              namespace=None if s.namespace == "/" else s.namespace,
                              parameters=[str(params_file)], remappings=parse_remappings(s.remappings),
                              required=s.required, respawn=s.respawn, respawn_delay=s.respawn_delay))
    return out


def section_remappings(params_file: str | Path, name: str) -> list[tuple[str, str]]:
    """The ``launch: remappings`` of node ``name`` (in ``/``) in a params YAML, read as ``wm-control launch``
    reads them: wildcard sections first, then the node's own (the last one given wins); [] when none gives
    any. Any params file will do (its other sections need not be nodes of ours)."""
    from wm_control.ros.args import LAUNCH_PREFIX, flatten_params, match_node_key, params_sections
    from wm_control.ros.launcher import NodeSpec, _set_launch_attr

    sections = params_sections(params_file)
    spec = NodeSpec(name=name, node_type=name)
    keys = [k for k in sections if "*" in k and match_node_key(k, name, "/")] + \
        [k for k in sections if "*" not in k and match_node_key(k, name, "/")]
    for k in keys:
        value = flatten_params(sections[k]).get(f"{LAUNCH_PREFIX}.remappings")
        if value is not None:
            _set_launch_attr(spec, f"{LAUNCH_PREFIX}.remappings", value, f"params file {params_file}, section {k!r}")
    return parse_remappings(spec.remappings)


def merge_remappings(ours: list[tuple[str, str]], given: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``ours`` with ``given`` (a params file's) winning for the same source name, whether the rules are read
    first-match (rcl) or last-match (our backend): the overridden rules are left out."""
    srcs = {a for a, _ in given}
    return [r for r in ours if r[0] not in srcs] + list(given)


def policy_command(requested: str, robot: RobotConfig | None, dry_run: bool = False) -> tuple[str, str]:
    """(command interface, topic) of the policy node. ``requested``: its ``command_interface`` parameter
    ('' when not given). With a robot config, the config's interface and ``command_topic``; a parameter
    that differs is refused (ValueError, one line naming both). Without one, the parameter's (position by
    default) on the controller's default topic. ``dry_run``: the interface's dry-run topic instead
    (:data:`wm_control.ros.topics.COMMAND_TOPICS`), never the controller's."""
    if robot is not None:
        if requested and requested != robot.command_interface:
            raise ValueError(f"command_interface {requested!r} (parameter) differs from robot config "
                             f"{robot.name}'s {robot.command_interface!r}: drop the parameter or fix the robot config")
        interface, topic = robot.command_interface, robot.command_topic
    else:
        interface = requested or "position"
        topic = topics.COMMAND_TOPICS[interface][0].name
    return interface, (topics.COMMAND_TOPICS[interface][1].name if dry_run else topic)


def parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"{what}: {value!r} is not true or false")


def find_robot_config(name_or_path: str, robots_dir: str | Path | None = None) -> Path:
    """A robot config's YAML: a path, else ``robots_dir/NAME.yaml`` (the installed share folder's
    ``config/robots``), else a name in the source tree's ``config/robots``."""
    if not name_or_path:
        raise RobotConfigError("robot_config is required (a name in config/robots/ or a YAML path)")
    p = Path(name_or_path)
    if p.exists():
        return p.resolve()
    if robots_dir is not None and (Path(robots_dir) / f"{name_or_path}.yaml").exists():
        return (Path(robots_dir) / f"{name_or_path}.yaml").resolve()
    return resolve_robot_path(name_or_path).resolve()


def robot_nodes(robot_config: str, bundle: str = "", controller: str = "", dry_run: Any = False,
                params_file: str = "", robots_dir: str | Path | None = None) -> list[NodeAction]:
    """A physical robot's bring-up (``launch/robot.launch.py``). The policy node gets the robot config (its
    joints, rate, limits, command interface and topic), the bundle when given (without one: teleop and hold,
    starting in teleop), ``dry_run: true`` when asked (the launch argument can set it, never clear a params
    file's), ``params_file``'s ``policy:`` section in between (it wins over these defaults, loses to the
    arguments). ``controller``: the topic the controller reads (default: the config's ``command_topic``).
    ``camera_ingest`` runs when the config has a camera (``camera_kind`` raw | compressed), its input
    remapped to the config's ``camera_topic``; its frames give the policy's camera-to-command latency.
    The world model needs a visual bundle of its own: start it from a graph YAML (``sim.launch.py``)."""
    path = find_robot_config(robot_config, robots_dir)
    rc = load_robot_config(path)
    dry = parse_bool(dry_run, "dry_run")
    controller = controller or rc.command_topic
    if not controller.startswith("/"):
        raise ValueError(f"controller {controller!r} is not a topic name (starts with /)")
    _, own = policy_command("", rc)  # the node's own command topic (with dry_run it publishes elsewhere)
    remaps = []
    for ours, theirs in ((topics.JOINT_STATES.name, rc.joint_states_topic), (own, controller),
                         (topics.GOAL.name, rc.goal_topic or topics.GOAL.name)):
        if ours != theirs:
            remaps.append((ours, theirs))
    extra = [params_file] if params_file else []
    camera = rc.camera_kind != "none"
    defaults: dict[str, Any] = {"track_frames": camera}
    if not bundle:
        defaults["mode"] = "teleop"
    given: dict[str, Any] = {"robot_config": str(path)}
    if bundle:
        given["bundle"] = str(Path(bundle).resolve()) if Path(bundle).exists() else bundle
    if dry:
        given["dry_run"] = True
    file_remaps = (lambda name: section_remappings(params_file, name) if params_file else [])
    nodes = [NodeAction("policy", "policy", parameters=[defaults, *extra, given],
                        remappings=merge_remappings(remaps, file_remaps("policy")), required=True)]
    if camera:
        src = topics.CAMERA_COMPRESSED if rc.camera_kind == "compressed" else topics.CAMERA
        cam_remaps = [(src.name, rc.camera_topic)] if rc.camera_topic != src.name else []
        nodes.append(NodeAction("camera_ingest", "camera_ingest",
                                parameters=[{"source": "compressed" if rc.camera_kind == "compressed" else "topic"},
                                            *extra], remappings=merge_remappings(cam_remaps, file_remaps("camera_ingest"))))
    return nodes


def describe(nodes: list[NodeAction]) -> str:
    """One line: the nodes and their remappings (what the launch file logs)."""
    return "; ".join(f"{n.name}" + (f" ({', '.join(f'{a} -> {b}' for a, b in n.remappings)})" if n.remappings else "")
                     for n in nodes)


__all__ = ["NodeAction", "describe", "find_robot_config", "graph_nodes", "merge_remappings", "parse_bool",
           "parse_remappings", "policy_command", "robot_nodes", "section_remappings"]

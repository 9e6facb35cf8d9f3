"""The launch_ros files (launch/*.launch.py) without ROS: ``launch``, ``launch_ros`` and
``ament_index_python`` are stand-ins (sys.modules) that record what the file builds; each file's
generate_launch_description() runs, its OpaqueFunction is performed with the launch arguments given, and the
Node actions' executables, parameters and remappings are checked. The logic is
:mod:`wm_control.ros.bringup`'s, tested here directly too."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from wm_control.ros import bringup
from wm_control.ros.args import RosArgsError

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch"
ROBOTS = ROOT / "config" / "robots"


class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class DeclareLaunchArgument(_Action):
    @property
    def name(self):
        return self.args[0]

    @property
    def default(self):
        return self.kwargs.get("default_value")


class OpaqueFunction(_Action):
    pass


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.arguments[self.name]


class PackageNotFoundError(Exception):
    pass


def _fake_modules(share: Path, have_joy: bool = False) -> dict[str, types.ModuleType]:
    def get_package_share_directory(pkg):
        if pkg == "wm_control":
            return str(share)
        if pkg == "joy" and have_joy:
            return "/opt/ros/share/joy"
        raise PackageNotFoundError(pkg)

    mods = {name: types.ModuleType(name) for name in
            ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
             "ament_index_python", "ament_index_python.packages")}
    mods["launch"].LaunchDescription = type("LaunchDescription", (_Action,), {})
    acts = mods["launch.actions"]
    acts.DeclareLaunchArgument, acts.OpaqueFunction = DeclareLaunchArgument, OpaqueFunction
    acts.LogInfo = type("LogInfo", (_Action,), {})
    acts.Shutdown = type("Shutdown", (_Action,), {})
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch_ros.actions"].Node = type("Node", (_Action,), {})
    pk = mods["ament_index_python.packages"]
    pk.get_package_share_directory, pk.PackageNotFoundError = get_package_share_directory, PackageNotFoundError
    return mods


def run_launch(monkeypatch, name: str, have_joy: bool = False, **arguments) -> list:
    """The actions ``launch/NAME`` starts with these launch arguments (the others at their defaults)."""
    for mod_name, mod in _fake_modules(ROOT, have_joy).items():
        monkeypatch.setitem(sys.modules, mod_name, mod)
    spec = importlib.util.spec_from_file_location(f"_launch_{name.replace('.', '_')}", LAUNCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    declared = {a.name: a for a in ld.args[0] if isinstance(a, DeclareLaunchArgument)}
    unknown = set(arguments) - set(declared)
    assert not unknown, f"{name} declares no {unknown}"
    values = {k: a.default for k, a in declared.items()}
    values.update({k: str(v) for k, v in arguments.items()})
    missing = [k for k, v in values.items() if v is None]
    assert not missing, f"{name}: give {missing}"
    ctx = types.SimpleNamespace(arguments=values)
    out = []
    for a in ld.args[0]:
        if isinstance(a, OpaqueFunction):
            out += a.kwargs["function"](ctx)
    return out


def nodes(actions) -> dict:
    return {a.kwargs["name"]: a.kwargs for a in actions if type(a).__name__ == "Node"}


def merged(params: list) -> dict:
    """The parameters a node ends with (dicts only; later ones win, as launch_ros applies them)."""
    out: dict = {}
    for p in params:
        if isinstance(p, dict):
            out.update(p)
    return out


# ------------------------------------------------------------------------------------------
# robot.launch.py
# ------------------------------------------------------------------------------------------
def test_robot_launch_teleop_only_on_the_robot_configs_topics(monkeypatch):
    actions = run_launch(monkeypatch, "robot.launch.py", robot_config="ur_style")
    n = nodes(actions)
    assert set(n) == {"policy", "camera_ingest"}  # a compressed camera: camera_ingest, no world model
    pol = n["policy"]
    assert pol["package"] == "wm_control" and pol["executable"] == "policy"
    p = merged(pol["parameters"])
    assert p == {"robot_config": str(ROBOTS / "ur_style.yaml"), "mode": "teleop", "track_frames": True}
    assert "dry_run" not in p and "bundle" not in p
    # the node publishes on the config's command_topic (its interface: trajectory): no remap needed
    assert pol["remappings"] == []
    assert isinstance(pol["on_exit"], sys.modules["launch.actions"].Shutdown)  # required, as wm-control launch
    cam = n["camera_ingest"]
    assert merged(cam["parameters"]) == {"source": "compressed"} and cam["remappings"] == []
    assert any(type(a).__name__ == "LogInfo" for a in actions)


def test_robot_launch_dry_run_controller_bundle_and_params_file(monkeypatch, tmp_path):
    robot = tmp_path / "arm.yaml"
    robot.write_text("name: arm\njoint_names: [a, b]\ncommand_interface: position\ncommand_topic: /arm/commands\n"
                     "joint_states_topic: /arm/joint_states\ncamera_topic: /arm/cam\ncamera_kind: raw\n"
                     "goal_topic: /arm/goal\nlimits: {lower: -1.0, upper: 1.0, max_velocity: 1.0}\n")
    params = tmp_path / "extra.yaml"
    params.write_text("policy:\n  ros__parameters:\n    mode: hold\n    dry_run: false\n"
                      "    launch:\n      remappings: ['/goal:=/task/goal']\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    n = nodes(run_launch(monkeypatch, "robot.launch.py", robot_config=robot, dry_run="true", bundle=bundle,
                         controller="/fwd/commands", params_file=params))
    pol = n["policy"]
    assert pol["parameters"][1] == str(params)  # the params file between the defaults and the arguments
    p = merged(pol["parameters"])
    assert p["dry_run"] is True and p["bundle"] == str(bundle) and p["robot_config"] == str(robot)
    assert "mode" not in p  # with a bundle the node's own default (or the params file's)
    assert pol["remappings"] == [("/joint_states", "/arm/joint_states"), ("/arm/commands", "/fwd/commands"),
                                 ("/goal", "/task/goal")]  # the params file's remap of /goal wins
    assert n["camera_ingest"]["remappings"] == [("/camera/image_raw", "/arm/cam")]
    assert merged(n["camera_ingest"]["parameters"]) == {"source": "topic"}
    assert n["camera_ingest"]["parameters"][-1] == str(params)


def test_robot_launch_without_a_camera_and_bad_arguments(monkeypatch, tmp_path):
    robot = tmp_path / "blind.yaml"
    robot.write_text("name: blind\njoint_names: [a]\ncamera_kind: none\nlimits: {lower: -1, upper: 1}\n")
    n = nodes(run_launch(monkeypatch, "robot.launch.py", robot_config=robot, dry_run="false"))
    assert set(n) == {"policy"} and merged(n["policy"]["parameters"])["track_frames"] is False
    with pytest.raises(ValueError, match="dry_run: 'maybe' is not true or false"):
        run_launch(monkeypatch, "robot.launch.py", robot_config=robot, dry_run="maybe")
    with pytest.raises(ValueError, match="controller 'fwd' is not a topic name"):
        run_launch(monkeypatch, "robot.launch.py", robot_config=robot, controller="fwd")
    with pytest.raises(ValueError, match="robot config 'no_such_robot' not found"):
        run_launch(monkeypatch, "robot.launch.py", robot_config="no_such_robot")


def test_robot_nodes_finds_a_name_in_the_installed_share_folder(tmp_path):
    (tmp_path / "shared_arm.yaml").write_text("name: shared_arm\njoint_names: [a]\nlimits: {lower: -1, upper: 1}\n")
    pol = bringup.robot_nodes("shared_arm", robots_dir=tmp_path)[0]
    assert merged(pol.parameters)["robot_config"] == str(tmp_path / "shared_arm.yaml")


def test_policy_command_is_the_robot_configs_and_dry_run_moves_it():
    from wm_control.robot import load_robot_config

    ur = load_robot_config("ur_style")
    assert bringup.policy_command("", ur) == ("trajectory", "/scaled_joint_trajectory_controller/joint_trajectory")
    assert bringup.policy_command("trajectory", ur, dry_run=True) == ("trajectory", "/wm/dry_run/joint_trajectory")
    assert bringup.policy_command("", None) == ("position", "/forward_position_controller/commands")
    assert bringup.policy_command("", None, dry_run=True) == ("position", "/wm/dry_run/commands")
    with pytest.raises(ValueError, match=r"command_interface 'position' \(parameter\) differs from robot config "
                                         r"ur_style's 'trajectory'"):
        bringup.policy_command("position", ur)


# ------------------------------------------------------------------------------------------
# sim.launch.py and teleop.launch.py: a section's launch: remappings, as wm-control launch
# ------------------------------------------------------------------------------------------
GRAPH = """\
/**:
  ros__parameters:
    use_sim_time: false
    launch:
      remappings: ['/clock:=/sim/clock']
sim_robot:
  ros__parameters:
    robot: reacher
    launch: {required: true}
arm/ctl:
  ros__parameters:
    node_type: scripted_controller
    launch:
      remappings: ['/joint_states:=/arm/joint_states', '/goal:=/arm/goal']
      respawn: true
      respawn_delay: 2.0
teleop:
  ros__parameters:
    input: keyboard
    launch:
      remappings: ['/teleop/command:=/arm/teleop']
"""


def test_sim_launch_reads_the_graph_as_the_launcher_does(monkeypatch, tmp_path):
    from wm_control.ros.launcher import Launcher

    g = tmp_path / "graph.yaml"
    g.write_text(GRAPH)
    n = nodes(run_launch(monkeypatch, "sim.launch.py", params_file=g))
    assert set(n) == {"sim_robot", "ctl", "teleop"}
    ctl = n["ctl"]
    assert ctl["executable"] == "scripted_controller" and ctl["namespace"] == "/arm"
    assert ctl["parameters"] == [str(g)] and ctl["respawn"] is True and ctl["respawn_delay"] == 2.0
    assert "on_exit" not in ctl
    assert ctl["remappings"] == [("/joint_states", "/arm/joint_states"), ("/goal", "/arm/goal")]
    assert n["sim_robot"]["remappings"] == [("/clock", "/sim/clock")]  # the wildcard section's
    assert "on_exit" in n["sim_robot"] and n["sim_robot"]["namespace"] is None
    # the same rules our launcher hands the node as -r
    lc = Launcher(g)
    for spec in lc.specs:
        cmd = lc.command(spec)
        rules = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-r" and not cmd[i + 1].startswith("__")]
        assert [tuple(r.split(":=")) for r in rules] == n[spec.name]["remappings"]


def test_sim_launch_default_graph_and_a_bad_graph(monkeypatch, tmp_path):
    n = nodes(run_launch(monkeypatch, "sim.launch.py"))  # config/expert.yaml
    assert {"sim_robot", "scripted_controller"} <= set(n)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy:\n  ros__parameters:\n    launch:\n      remappings: ['/joint_states']\n")
    with pytest.raises(RosArgsError, match="must be a list of 'from:=to'"):
        run_launch(monkeypatch, "sim.launch.py", params_file=bad)


def test_teleop_launch_takes_its_sections_remappings(monkeypatch, tmp_path):
    g = tmp_path / "graph.yaml"
    g.write_text(GRAPH)
    actions = run_launch(monkeypatch, "teleop.launch.py", params_file=g, view="none")
    n = nodes(actions)
    assert set(n) == {"teleop"}  # no joy package here: a LogInfo instead of joy_node
    # its own section's list replaces the wildcard section's, as in wm-control launch
    assert n["teleop"]["remappings"] == [("/teleop/command", "/arm/teleop")]
    assert n["teleop"]["parameters"] == [str(g), {"view": "none"}]
    n = nodes(run_launch(monkeypatch, "teleop.launch.py", have_joy=True))  # config/teleop.yaml
    assert set(n) == {"teleop", "joy_node"} and n["teleop"]["remappings"] == []

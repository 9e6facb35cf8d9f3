"""The ROS 2 command line, params YAML and name resolution (pure functions)."""

import pytest

from wm_control.ros.api import ConfigError, config_from_params
from wm_control.ros.args import RosArgsError, load_params_file, parse_ros_args, resolve_topic
from wm_control.ros.nodes.sim_robot import SimRobotConfig


def test_parse_full_command_line(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    a: 1\n")
    a = parse_ros_args(["--ros-args", "-p", "rate:=20.5", "-p", "names:=[a, b]", "-p", "flag:=true",
                        "-r", "__node:=arm1", "-r", "__ns:=/robot", "-r", "/joint_states:=/arm/joint_states",
                        "--params-file", str(f), "--log-level", "debug"])
    assert a.node_name == "arm1" and a.namespace == "/robot"
    assert a.params == {"rate": 20.5, "names": ["a", "b"], "flag": True}
    assert a.remaps == {"/joint_states": "/arm/joint_states"}
    assert a.params_files == [str(f)] and a.log_level == "DEBUG"


@pytest.mark.parametrize("argv", [["--ros-args", "-p", "novalue"], ["--ros-args", "-r", "a"],
                                  ["--ros-args", "--params-file", "/does/not/exist.yaml"],
                                  ["--ros-args", "--bogus"], ["--ros-args", "-r", "__node:=9bad"],
                                  ["--ros-args", "-p"]])
def test_bad_command_lines_are_clear_errors(argv):
    with pytest.raises(RosArgsError):
        parse_ros_args(argv)


def test_params_yaml_wildcard_then_node_then_cli(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    rate: 1.0\n    shared: x\n"
                 "sim_robot:\n  ros__parameters:\n    rate: 2.0\n    nested:\n      k: 3\n"
                 "other:\n  ros__parameters:\n    rate: 9.0\n")
    assert load_params_file(f, "sim_robot") == {"rate": 2.0, "shared": "x", "nested.k": 3}
    assert load_params_file(f, "third") == {"rate": 1.0, "shared": "x"}
    a = parse_ros_args(["--ros-args", "--params-file", str(f), "-p", "rate:=5.0"])
    assert a.resolved_params("sim_robot", "/")["rate"] == 5.0


def test_params_yaml_namespaced_keys(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/robot/sim_robot:\n  ros__parameters:\n    rate: 3.0\n/robot/*:\n  ros__parameters:\n    x: 1\n")
    assert load_params_file(f, "sim_robot", "/robot") == {"rate": 3.0, "x": 1}
    assert load_params_file(f, "sim_robot", "/") == {}


@pytest.mark.parametrize("text", ["sim_robot:\n  rate: 1\n", "- a\n- b\n", "a: [unclosed\n"])
def test_bad_params_files(tmp_path, text):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(RosArgsError):
        load_params_file(f, "sim_robot")


def test_topic_resolution_and_remaps():
    assert resolve_topic("joint_states", "n", "/robot") == "/robot/joint_states"
    assert resolve_topic("/joint_states", "n", "/robot") == "/joint_states"
    assert resolve_topic("~/status", "n", "/robot") == "/robot/n/status"
    assert resolve_topic("/joint_states", "n", "/", {"/joint_states": "/arm/js"}) == "/arm/js"
    assert resolve_topic("cmd", "n", "/r", {"cmd": "other"}) == "/r/other"
    with pytest.raises(RosArgsError):
        resolve_topic("bad name", "n", "/")


def test_params_are_typed_and_validated():
    cfg = config_from_params(SimRobotConfig, {"camera_rate": 10, "robot": "pusher"})
    assert cfg.camera_rate == 10.0 and isinstance(cfg.camera_rate, float) and cfg.robot == "pusher"
    with pytest.raises(ConfigError, match="camera_rate"):
        config_from_params(SimRobotConfig, {"camera_rate": "fast"})
    with pytest.raises(ConfigError, match="image_width"):
        config_from_params(SimRobotConfig, {"image_width": 9.5})
    with pytest.raises(ConfigError, match="mode"):
        config_from_params(SimRobotConfig, {"mode": "warp"})
    with pytest.raises(ConfigError, match="joint_order"):
        config_from_params(SimRobotConfig, {"joint_order": "joint0"})


def test_node_specific_params(tmp_path):
    """`-p node:name:=value` (as rcl parses it) applies to that node only, after the plain `-p`."""
    a = parse_ros_args(["--ros-args", "-p", "policy:mode:=hold", "-p", "mode:=teleop", "-p", "/arm/*:rate:=5"])
    assert a.params == {"mode": "teleop"}
    assert a.resolved_params("policy", "/") == {"mode": "hold"}
    assert a.resolved_params("other", "/") == {"mode": "teleop"}
    assert a.resolved_params("cam", "/arm") == {"mode": "teleop", "rate": 5}
    for bad in ("policy:mode", ":mode:=1", "policy::=1"):
        with pytest.raises(RosArgsError, match="name:=value"):
            parse_ros_args(["--ros-args", "-p", bad])


def test_launcher_keys_are_not_node_parameters(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("cam:\n  ros__parameters:\n    node_type: sim_robot\n    rate: 2.0\n"
                 "    launch:\n      required: true\n      respawn_delay: 0.5\n")
    assert load_params_file(f, "cam")["launch.required"] is True  # the file as ROS reads it
    a = parse_ros_args(["--ros-args", "--params-file", str(f), "-p", "launch.respawn:=true"])
    assert a.resolved_params("cam", "/") == {"rate": 2.0}  # what the node gets


def test_a_key_beside_ros_parameters_is_an_error(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("policy:\n  ros__parameters:\n    mode: hold\n  paramters:\n    rate: 1\n")
    with pytest.raises(RosArgsError) as e:
        load_params_file(f, "policy")
    msg = str(e.value)
    assert "section 'policy'" in msg and "'paramters'" in msg and "only 'ros__parameters' is allowed" in msg


def test_yaml_errors_are_one_line(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("sim_robot:\n  ros__parameters:\n    rate: [1, 2\n")
    with pytest.raises(RosArgsError, match=r"is not valid YAML at line \d+, column \d+") as e:
        load_params_file(f, "sim_robot")
    assert "\n" not in str(e.value)


def test_parameter_descriptions_are_the_field_docstrings():
    import dataclasses

    from wm_control.ros.api import config_fields, field_docs
    from wm_control.ros.nodes.planner import PlannerNodeConfig
    from wm_control.ros.nodes.policy import PolicyConfig

    desc = {name: d for name, _, _, d in config_fields(PolicyConfig)}
    assert desc["bundle"] == "Model bundle folder (policy.onnx + manifest.yaml); verified at start."
    # a docstring over several lines is one line, its whitespace collapsed
    assert desc["plan_wait"] == ("Sim time with use_plan: wall seconds to wait for the plan made from the current "
                                 "instant's state before falling back to the policy (so lock-step results do not "
                                 "depend on the planner's speed).")
    assert desc["mode"] == "" and desc["position_lower"] == ""  # a field without one: no description
    assert set(desc) == {f.name for f in dataclasses.fields(PolicyConfig)}
    planner = field_docs(PlannerNodeConfig)  # the base class's fields keep their docstrings
    assert planner["horizon"] == "Control steps planned (at the bundle's control rate)."
    assert planner["bundle"].startswith("Bundle folder with an ``ensemble`` and a ``policy`` graph")
    assert "__post_init__" not in planner and "seed" not in planner


def test_field_metadata_help_and_classes_without_source():
    import dataclasses

    from wm_control.ros.api import config_fields

    @dataclasses.dataclass
    class C:
        a: int = 1
        """From the docstring."""
        b: str = dataclasses.field(default="x", metadata={"help": "From the metadata."})
        """Ignored: the metadata wins."""
        c: float = 2.0

    assert [(n, d, t, s) for n, d, t, s in config_fields(C)] == [
        ("a", 1, int, "From the docstring."), ("b", "x", str, "From the metadata."), ("c", 2.0, float, "")]
    made = dataclasses.make_dataclass("Made", [("x", int, dataclasses.field(default=3))])  # no source to read
    assert config_fields(made) == [("x", 3, int, "")]


def test_run_node_help_lists_every_parameter():
    import dataclasses
    import subprocess
    import sys

    from wm_control.ros.api import config_fields
    from wm_control.ros.nodes.policy import PolicyConfig

    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "policy", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("usage: wm-control run") and "``policy``: the control loop." in out
    for name, *_ in config_fields(PolicyConfig):
        assert f"\n  {name} (" in out, name
    assert "\n  bundle (str, default '')\n      Model bundle folder (policy.onnx + manifest.yaml); verified at start.\n" in out
    assert "\n  max_control_rate (float, default 100.0)\n      Hz; a control rate above this" in out
    assert "\n  trusted_keys (list[str], default [])\n" in out
    assert "\n  require_signature (bool, default false)\n" in out
    params = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line[2] != " "]
    assert params == [f.name for f in dataclasses.fields(PolicyConfig)] + ["use_sim_time"]
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "NODE --help" in r.stdout

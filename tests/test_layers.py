"""Folders are layers: the core (control/, world/, train/, reading logs in data/, the message codecs in
messages/) never imports the ROS layer (ros/: DDS, rclpy, nodes, launcher) nor rclpy."""

import json
import re
import subprocess
import sys
from pathlib import Path

CORE = ["wm_control.control", "wm_control.data.dataset", "wm_control.data.bags", "wm_control.messages", "wm_control.control.safety", "wm_control.control.limits",
        "wm_control.control.planner", "wm_control.control.features", "wm_control.control.kinematics",
        "wm_control.control.urdf", "wm_control.world.bundle", "wm_control.world.ensemble", "wm_control.world.stream",
        "wm_control.world.visual", "wm_control.world.frames", "wm_control.train.bc", "wm_control.train.ensemble",
        "wm_control.train.imagined", "wm_control.train.ppo", "wm_control.train.visual", "wm_control.teleop.session",
        "wm_control.teleop.keys", "wm_control.teleop.joy", "wm_control.teleop.target", "wm_control.cameras"]


def test_the_core_never_imports_the_ros_layer_or_rclpy():
    code = ("import importlib, json, sys\n"
            f"for m in {CORE!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('wm_control.ros', 'rclpy', 'rcl_')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


#: the simulated robots and their joints; a real robot is a YAML in config/robots/
ROBOT_NAMES = re.compile(r"reacher|pusher|panda|franka|\bjoint[0-9]\b", re.IGNORECASE)


def test_no_code_outside_the_simulator_names_a_robot():
    """A robot is data: outside wm_control/sim/ no module names one of the simulated robots or their
    joints (the defaults come from wm_control.sim.robots.DEFAULT_ROBOT; the rest from a robot config)."""
    root = Path(__file__).resolve().parents[1] / "wm_control"
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in (".py", ".yaml", ".json", ".txt") or \
                path.relative_to(root).parts[0] == "sim":
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if ROBOT_NAMES.search(line):
                hits.append(f"{path.relative_to(root.parent)}:{i}: {line.strip()}")
    assert hits == []


def test_the_robot_name_check_finds_a_name():
    assert ROBOT_NAMES.search('robot: str = "reacher"') and ROBOT_NAMES.search("names = ['joint0', 'joint1']")
    assert not ROBOT_NAMES.search("joint_names = ['shoulder_pan', 'elbow']")


def test_the_simulator_package_imports_without_mujoco():
    code = ("import sys\nfrom wm_control.sim import DEFAULT_ROBOT\nfrom wm_control.sim.robots import ROBOTS\n"
            "assert DEFAULT_ROBOT in ROBOTS\nprint('mujoco' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"

"""Folders are layers: the core (control/, world/, train/, reading logs in data/, the message codecs in
messages/) never imports the ROS layer (ros/: DDS, rclpy, nodes, launcher) nor rclpy."""

import json
import subprocess
import sys

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

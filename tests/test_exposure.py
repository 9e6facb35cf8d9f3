"""Exposure: DDS stays on loopback unless the user asks for the network, and security that was asked
for is never silently dropped."""

import os
import subprocess
import sys

import pytest

CHECK = ("from wm_control.ros.dds import configure_environment as c, LOOPBACK_CONFIG as L; import os; c(); "
         "print('loopback' if os.environ.get('CYCLONEDDS_URI') == L else 'network')")


def _range(env: dict) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "CYCLONEDDS_URI")}
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env={**clean, **env}, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("env,expect", [
    ({}, "loopback"),  # the default: nothing of the robot's graph on eth0
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}, "loopback"),
    ({"ROS_LOCALHOST_ONLY": "1"}, "loopback"),
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, "network"),  # the one documented setting for a robot's LAN
    ({"ROS_LOCALHOST_ONLY": "0"}, "network"),
])
def test_dds_binds_loopback_unless_the_network_is_asked_for(env, expect):
    assert _range(env) == expect


@pytest.mark.parametrize("how", [("--enclave", "/wm_control/policy"), ("-e", "/x"), ("--enclave=/x",)])
def test_enclave_is_refused_not_dropped_on_the_dds_backend(how):
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "--backend", "dds", "scripted_controller",
                        "--ros-args", *how], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "DDS Security" in r.stderr and "--backend rclpy" in r.stderr, r.stderr


def test_ros_security_enable_is_refused_on_the_dds_backend():
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "--backend", "dds", "scripted_controller"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "ROS_SECURITY_ENABLE": "true"})
    assert r.returncode == 2 and "DDS Security" in r.stderr, r.stderr

"""The Franka Panda from its own bags only, at the debug preset: collect (the simulator stands in for the
arm) -> dataset -> train bc / ensemble with ``--robot-config panda`` -> verify against the robot ->
closed-loop eval of the planner in lock-step. Nothing after the bags is told anything about the robot but
config/robots/panda.yaml (and the panda.urdf it names)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is None,
                                reason="the Panda model ships with gymnasium-robotics")


def wm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wm_control", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def panda_bags(tmp_path_factory) -> Path:
    bags = tmp_path_factory.mktemp("panda") / "bags"
    r = wm("collect", "--robot", "panda", "--no-images", "--episodes", "6", "--episode-s", "1.5", "--noise", "0.3",
           "--out", str(bags))
    assert r.returncode == 0, r.stderr[-2000:]
    return bags


def test_panda_bags_to_verified_bundles_to_a_planner_eval(panda_bags, tmp_path):
    from wm_control.robot import load_robot_config
    from wm_control.world.bundle import load_bundle

    robot = load_robot_config("panda")
    r = wm("dataset", str(panda_bags), "--robot-config", "panda", "--no-images")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["episodes"] == 6 and info["joint_names"] == robot.joint_names
    bc, planner = tmp_path / "bc", tmp_path / "planner"
    r = wm("train", "bc", "--preset", "debug", "--robot-config", "panda", "--data", str(panda_bags),
           "--out", str(tmp_path / "run_bc"), "--bundle", str(bc))
    assert r.returncode == 0, r.stderr[-2000:]
    r = wm("train", "ensemble", "--preset", "debug", "--robot-config", "panda", "--regime", "self",
           "--data", str(panda_bags), "--out", str(tmp_path / "run_ens"), "--bundle", str(planner),
           "--policy-bundle", str(bc))
    assert r.returncode == 0, r.stderr[-2000:]
    for b in (bc, planner):
        r = wm("verify", str(b), "--robot", "panda")
        assert r.returncode == 0 and "fits robot panda" in r.stdout, r.stderr
    man = load_bundle(planner).manifest["robot"]
    assert man["name"] == "panda" and man["joint_names"] == robot.joint_names
    # the reach reward's chain is the URDF's (3-D goal), and its limits the robot's
    assert man["kinematics"]["goal_dims"] == 3
    np.testing.assert_allclose(man["kinematics"]["tip"], robot.kinematics().tip)
    lower, upper, _ = robot.position_limits()
    assert [lim[0] for lim in man["position_limits"]] == lower and [lim[1] for lim in man["position_limits"]] == upper
    out = tmp_path / "eval.json"
    r = wm("eval", "closed-loop", "--robot", "panda", "--episodes", "2", "--episode-s", "1.5", "--device", "cpu",
           "--policy", f"planner:{planner}", "--json", str(out), timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["robot"] == "panda" and res["policies"][0]["episodes"] == 2
    assert all(np.isfinite(e["final_distance"]) for e in res["policies"][0]["per_episode"])

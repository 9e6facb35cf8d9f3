"""Tests for the simulated Franka Panda (the arm shipped with gymnasium-robotics, in our scene)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import importlib.util
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from wm_control.sim import ArmConfig, ExpertPolicy, SimArm
from wm_control.sim.panda import GOAL_BOX, franka_asset_dir

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is None,
                                reason="robot 'panda' needs gymnasium-robotics")

DT = 0.02  # 50 Hz command rate


def xml_joints() -> dict[str, tuple[float, float]]:
    """Joint name -> range, read straight from the shipped chain.xml."""
    root = ET.parse(os.path.join(franka_asset_dir(), "chain.xml")).getroot()
    return {j.get("name"): tuple(float(v) for v in j.get("range").split()) for j in root.iter("joint")}


@pytest.fixture(scope="module")
def panda():
    arm = SimArm(ArmConfig(robot="panda", render=False))
    arm.connect()
    yield arm
    arm.disconnect()


def test_joint_names_and_limits_come_from_the_shipped_xml(panda):
    joints = xml_joints()
    arm_joints = [n for n in joints if "finger" not in n]
    assert panda.joint_names == arm_joints == [f"robot:panda0_joint{i}" for i in range(1, 8)]
    np.testing.assert_array_equal(panda.position_limits, [joints[n] for n in arm_joints])
    assert not panda.continuous.any()
    fingers = [panda.model.joint(j).name for j in range(panda.model.njnt) if "finger" in panda.model.joint(j).name]
    assert fingers == ["robot:panda0_finger_joint1", "robot:panda0_finger_joint2"]
    obs = panda.reset(seed=0)
    assert obs.q.shape == (7,) and obs.goal.shape == (3,) and obs.object is None
    assert np.all(obs.goal >= GOAL_BOX[:3]) and np.all(obs.goal <= GOAL_BOX[3:])


def test_target_inside_limits_is_tracked(panda):
    obs = panda.reset(seed=1)
    lo, hi = panda.position_limits.T
    target = np.clip(obs.q + np.array([0.4, 0.3, -0.3, 0.4, 0.5, -0.4, 0.6]), lo + 0.05, hi - 0.05)
    np.testing.assert_allclose(panda.set_position_target(target), target)
    obs = panda.step(1.0)
    assert np.max(np.abs(obs.q - target)) < 0.01, obs.q - target
    assert np.max(np.abs(obs.qd)) < 0.05
    assert np.all(np.isfinite(obs.effort)) and np.all(np.abs(obs.effort[:4]) <= 87.0 + 1e-9)


def test_out_of_limit_targets_are_clipped(panda):
    panda.reset(seed=2)
    lo, hi = panda.position_limits.T
    np.testing.assert_allclose(panda.set_position_target(hi + 1.0), hi)
    np.testing.assert_allclose(panda.set_position_target(lo - 1.0), lo)
    obs = panda.step(1.5)
    assert np.all(obs.q >= lo - 0.02) and np.all(obs.q <= hi + 0.02)


def test_goal_region_validation():
    with pytest.raises(ValueError, match="box"):
        ArmConfig(robot="panda", goal_region=(0.0, 0.0, 0.2))
    with pytest.raises(ValueError, match="box"):
        ArmConfig(robot="panda", goal_region=(0.5, 0, 0, 0.4, 0, 0))
    with pytest.raises(ValueError, match="radius"):
        ArmConfig(robot="reacher", goal_region=GOAL_BOX)


def test_render_not_blank_and_changes_when_the_arm_moves():
    arm = SimArm(ArmConfig(robot="panda", image_width=96, image_height=96))
    arm.connect()
    try:
        obs = arm.reset(seed=0)
        img = arm.render()
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        assert img.flags["C_CONTIGUOUS"] and img.std() > 10.0
        arm.set_position_target(obs.q + np.array([1.0, 0.4, 0.0, 0.5, 0.0, 0.0, 0.0]))
        arm.step(1.0)
        moved = arm.render()
        assert np.abs(moved.astype(int) - img.astype(int)).mean() > 1.0
    finally:
        arm.disconnect()


def test_expert_reaches_goals(panda):
    finals = []
    for seed in range(5):
        obs = panda.reset(seed=seed)
        pol = ExpertPolicy()
        pol.reset(seed)
        for _ in range(round(3.0 / DT)):
            panda.set_position_target(pol(obs, panda))
            obs = panda.step(DT)
        finals.append(panda.distance_to_goal())
    assert all(d < 0.02 for d in finals), finals
    # new_goal moves only the goal
    q = panda.q
    obs = panda.new_goal()
    np.testing.assert_array_equal(obs.q, q)
    assert panda.distance_to_goal() > 0.0

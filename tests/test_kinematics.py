"""The kinematic chain read from the simulated robots, and the one read from a robot config's URDF,
reproduce MuJoCo's forward kinematics, in numpy and torch, after a round trip through the manifest's
plain numbers."""

import numpy as np
import pytest
import torch

from wm_control.control.kinematics import Chain, chain_from_sim
from wm_control.sim import ArmConfig, SimArm


@pytest.mark.parametrize("robot", ["reacher", "pusher", "panda"])
def test_chain_matches_mujoco(robot):
    chain = Chain.from_dict(chain_from_sim(robot).to_dict())
    arm = SimArm(ArmConfig(robot=robot, render=False))
    arm.connect()
    try:
        rng = np.random.default_rng(0)
        lo = np.where(arm.continuous, -np.pi, arm.position_limits[:, 0])
        hi = np.where(arm.continuous, np.pi, arm.position_limits[:, 1])
        q = rng.uniform(lo, hi, size=(25, arm.n_joints))
        ref = np.stack([arm.fingertip_jacobian(x)[0] for x in q])
    finally:
        arm.disconnect()
    assert chain.n == len(lo)
    np.testing.assert_allclose(chain.tip_position(q), ref, atol=1e-9)
    got = chain.tip_position(torch.as_tensor(q, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_reach_reward_is_minus_the_planar_distance():
    chain = chain_from_sim("reacher")
    q = np.array([[0.0, 0.0], [np.pi / 2, 0.0]])
    goal = np.array([[0.21, 0.0, 0.5], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(chain.reach_reward(q, goal), [0.0, -0.21], atol=1e-6)


def test_unknown_robot_has_no_chain():
    assert chain_from_sim("no_such_robot") is None


def _mujoco_tips(robot, n=40, seed=1):
    arm = SimArm(ArmConfig(robot=robot, render=False))
    arm.connect()
    try:
        lo, hi = arm.position_limits.T
        q = np.random.default_rng(seed).uniform(lo, hi, size=(n, arm.n_joints))
        return q, np.stack([arm.fingertip_jacobian(x)[0] for x in q]), list(arm.joint_names)
    finally:
        arm.disconnect()


def test_the_panda_urdf_chain_matches_mujoco_and_reaches_in_3d():
    from wm_control.robot import load_robot_config

    rc = load_robot_config("panda")
    chain = Chain.from_dict(rc.kinematics().to_dict())
    q, ref, names = _mujoco_tips("panda")
    assert names == rc.joint_names and chain.goal_dims == 3
    np.testing.assert_allclose(chain.tip_position(q), ref, atol=1e-7)
    goal = ref + np.array([0.0, 0.0, 0.1])  # straight above the tip: 0.1 m away in xyz, 0 in xy
    np.testing.assert_allclose(chain.reach_reward(q, goal), -0.1, atol=1e-6)
    lower, upper, vel = rc.position_limits()
    assert upper[3] == pytest.approx(-0.4) and vel[4] == pytest.approx(2.61)  # the URDF's, not a default


URDF = """<robot name="two">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="tool"/>
  <joint name="a" type="revolute"><parent link="base"/><child link="l1"/><origin xyz="0 0 0.1" rpy="0 0 0"/>
    <axis xyz="0 0 1"/><limit lower="-1" upper="1" velocity="1" effort="1"/></joint>
  <joint name="b" type="{kind}"><parent link="l1"/><child link="l2"/><origin xyz="0.5 0 0" rpy="0 0 1.5707963267948966"/>
    <axis xyz="0 0 1"/><limit lower="-1" upper="1" velocity="1" effort="1"/></joint>
  <joint name="t" type="fixed"><parent link="l2"/><child link="tool"/><origin xyz="0.25 0 0"/></joint>
</robot>"""


def test_a_urdf_chain_by_hand():
    from wm_control.control.urdf import chain_from_urdf

    chain = chain_from_urdf(URDF.format(kind="revolute"), ["a", "b"], "tool", (0.0, 0.0, 0.0), goal_dims=2)
    # q = 0: 0.5 along x, then the fixed yaw of pi/2 turns the 0.25 tool offset onto +y
    np.testing.assert_allclose(chain.tip_position(np.zeros(2)), [0.5, 0.25, 0.1], atol=1e-12)
    np.testing.assert_allclose(chain.tip_position(np.array([np.pi / 2, 0.0])), [-0.25, 0.5, 0.1], atol=1e-12)
    off = chain_from_urdf(URDF.format(kind="revolute"), ["a", "b"], "l2", (0.25, 0.0, 0.0))
    np.testing.assert_allclose(off.tip_position(np.array([0.3, -0.7])), chain.tip_position(np.array([0.3, -0.7])))


@pytest.mark.parametrize("joints,tip,kind,msg", [
    (["b", "a"], "tool", "revolute", "not joint_names"),
    (["a", "b"], "nowhere", "revolute", "no link 'nowhere'"),
    (["a", "b"], "tool", "prismatic", "type 'prismatic'"),
])
def test_a_urdf_chain_that_does_not_fit_is_refused_naming_it(joints, tip, kind, msg):
    from wm_control.control.urdf import chain_from_urdf

    with pytest.raises(ValueError, match=msg):
        chain_from_urdf(URDF.format(kind=kind), joints, tip)

"""The kinematic chain read from the simulated robots reproduces MuJoCo's forward kinematics, in numpy
and torch, after a round trip through the manifest's plain numbers."""

import numpy as np
import pytest
import torch

from wm_control.control.kinematics import Chain, chain_from_sim
from wm_control.sim import ArmConfig, SimArm


@pytest.mark.parametrize("robot", ["reacher", "pusher"])
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

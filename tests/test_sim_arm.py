"""Tests for the pure-MuJoCo simulated arm and its data-collection policies."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from wm_control.sim import ArmConfig, ExpertPolicy, RandomPolicy, SimArm, make_policy

DT = 0.02  # 50 Hz command rate


@pytest.fixture(scope="module")
def reacher():
    arm = SimArm(ArmConfig(robot="reacher", render=False))
    arm.connect()
    yield arm
    arm.disconnect()


@pytest.fixture(scope="module")
def pusher():
    arm = SimArm(ArmConfig(robot="pusher", render=False))
    arm.connect()
    yield arm
    arm.disconnect()


def run_episode(arm: SimArm, policy, seed: int, duration: float) -> tuple[float, float]:
    """Reset with ``seed``, run ``policy`` at 50 Hz; return (initial, final) goal distance."""
    obs = arm.reset(seed=seed)
    policy.reset(seed)
    d0 = arm.distance_to_goal()
    for _ in range(round(duration / DT)):
        arm.set_position_target(policy(obs, arm))
        obs = arm.step(DT)
    return d0, arm.distance_to_goal()


def test_invalid_robot_and_policy_names():
    with pytest.raises(ValueError, match="robot"):
        ArmConfig(robot="ur5")
    with pytest.raises(ValueError, match="policy"):
        make_policy("telepathy")
    assert isinstance(make_policy("expert", noise=0.3), ExpertPolicy)
    assert isinstance(make_policy("random", step_std=0.1, seed=1), RandomPolicy)


def test_reacher_interface(reacher):
    assert reacher.joint_names == ["joint0", "joint1"]
    assert reacher.position_limits.shape == (2, 2)
    np.testing.assert_array_equal(reacher.continuous, [True, False])
    np.testing.assert_allclose(reacher.position_limits[1], [-3.0, 3.0])
    obs = reacher.reset(seed=3)
    assert obs.time == 0.0 and obs.object is None
    assert obs.goal.shape == (3,) and np.linalg.norm(obs.goal[:2]) < 0.2
    assert np.all(np.abs(obs.q) <= 0.1)
    np.testing.assert_allclose(reacher.q_target, obs.q)  # servo holds the reset pose
    t0 = reacher.total_time
    reacher.step(0.1)
    assert reacher.time == pytest.approx(0.1) and reacher.total_time == pytest.approx(t0 + 0.1)
    reacher.reset()
    assert reacher.time == 0.0 and reacher.total_time == pytest.approx(t0 + 0.1)
    reacher.step(0.0001)  # rounds up to one substep
    assert reacher.time == pytest.approx(reacher.config.physics_dt)


def test_servo_tracks_target(reacher):
    obs = reacher.reset(seed=0)
    target = obs.q + np.array([0.8, -1.2])
    applied = reacher.set_position_target(target)
    np.testing.assert_allclose(applied, target)
    obs = reacher.step(1.0)
    assert np.max(np.abs(obs.q - target)) < 0.05
    assert np.max(np.abs(obs.qd)) < 0.1
    # limited joint is clipped, continuous joint is not
    applied = reacher.set_position_target(np.array([4.0, 5.0]))
    np.testing.assert_allclose(applied, [4.0, 3.0])


def test_non_finite_target_rejected_and_state_unchanged(reacher):
    reacher.reset(seed=1)
    reacher.set_position_target(np.array([0.3, 0.3]))
    reacher.step(0.1)
    before = (reacher.data.qpos.copy(), reacher.data.qvel.copy(), reacher.time, reacher.q_target)
    for bad in ([np.nan, 0.0], [0.0, np.inf]):
        with pytest.raises(ValueError):
            reacher.set_position_target(np.array(bad))
    with pytest.raises(ValueError):
        reacher.set_trajectory(np.array([0.5]), np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError):
        reacher.set_position_target(np.zeros(3))  # wrong joint count
    np.testing.assert_array_equal(reacher.data.qpos, before[0])
    np.testing.assert_array_equal(reacher.data.qvel, before[1])
    assert reacher.time == before[2]
    np.testing.assert_array_equal(reacher.q_target, before[3])


def test_trajectory_interpolates_and_reaches_last_point(reacher):
    q0 = reacher.reset(seed=2).q
    times = np.array([0.2, 0.5, 1.0])
    points = q0 + np.array([[0.4, 0.2], [1.0, -0.5], [1.5, -1.0]])
    reacher.set_trajectory(times, points)
    reacher.step(0.35)  # halfway between the first and second point
    np.testing.assert_allclose(reacher.q_target, 0.5 * (points[0] + points[1]), atol=1e-9)
    obs = reacher.step(1.5)
    np.testing.assert_allclose(reacher.q_target, points[-1])
    assert np.max(np.abs(obs.q - points[-1])) < 0.05
    # a new position target replaces the trajectory
    reacher.set_trajectory(np.array([1.0]), q0[None, :])
    reacher.set_position_target(points[-1])
    reacher.step(0.5)
    np.testing.assert_allclose(reacher.q_target, points[-1])
    with pytest.raises(ValueError):
        reacher.set_trajectory(np.array([0.5, 0.2]), points[:2])  # not increasing


def test_fingertip_jacobian_matches_finite_differences(reacher):
    reacher.reset(seed=4)
    state = reacher.data.qpos.copy()
    q = np.array([0.4, -1.1])
    pos, jac = reacher.fingertip_jacobian(q)
    assert pos.shape == (3,) and jac.shape == (3, 2)
    eps = 1e-6
    for i in range(2):
        dq = np.zeros(2)
        dq[i] = eps
        fd = (reacher.fingertip_jacobian(q + dq)[0] - reacher.fingertip_jacobian(q - dq)[0]) / (2 * eps)
        np.testing.assert_allclose(jac[:, i], fd, atol=1e-6)
    np.testing.assert_array_equal(reacher.data.qpos, state)  # pure kinematics


def test_render_shape_content_and_motion():
    arm = SimArm(ArmConfig(robot="reacher", image_width=64, image_height=48))
    arm.connect()
    try:
        obs = arm.reset(seed=0)
        img = arm.render()
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        assert img.flags["C_CONTIGUOUS"] and img.std() > 1.0
        arm.set_position_target(obs.q + np.array([2.0, 1.0]))
        arm.step(1.0)
        moved = arm.render()
        assert np.abs(moved.astype(int) - img.astype(int)).mean() > 0.5
    finally:
        arm.disconnect()


def test_random_policy_smooth_and_bounded(reacher):
    pol = RandomPolicy(step_std=0.1, seed=0)
    obs = reacher.reset(seed=5)
    targets = []
    for _ in range(100):
        targets.append(pol(obs, reacher))
        reacher.set_position_target(targets[-1])
        obs = reacher.step(DT)
    targets = np.array(targets)
    assert np.all(np.abs(targets[:, 1]) <= 3.0)
    assert np.ptp(targets, axis=0).min() > 0.1  # it explores
    assert np.abs(np.diff(targets, axis=0)).max() < 1.0  # and is smooth


def test_clean_expert_reaches_reacher_goal(reacher):
    finals = [run_episode(reacher, ExpertPolicy(noise=0.0), s, 2.0)[1] for s in range(10)]
    assert sum(d < 0.02 for d in finals) >= 9, finals


def test_noisy_expert_is_clearly_worse(reacher):
    clean = np.mean([run_episode(reacher, ExpertPolicy(noise=0.0), s, 2.0)[1] for s in range(10)])
    noisy = np.mean([run_episode(reacher, ExpertPolicy(noise=1.0, seed=s), s, 2.0)[1] for s in range(10)])
    assert noisy > 3 * clean + 0.005, (clean, noisy)


def test_pusher_loads_and_expert_pushes_object_to_goal(pusher):
    assert len(pusher.joint_names) == 7
    assert all(n.startswith("r_") and n.endswith("_joint") for n in pusher.joint_names)
    obs = pusher.reset(seed=0)
    assert obs.object is not None and obs.q.shape == (7,)
    # the scripted expert at 50 Hz for the collected episode length: most pushes end within the success radius
    results = np.array([run_episode(pusher, ExpertPolicy(), s, 5.0) for s in range(6)])
    initial, final = results.mean(axis=0)
    assert final < 0.3 * initial, results
    assert np.sum(results[:, 1] < 0.05) >= 5, results


def test_push_starts_and_goals_come_from_their_regions(pusher):
    """Goals are drawn per episode over the goal disc and objects over their box, 0.15-0.3 m apart."""
    cx, cy, r = pusher.config.goal_region
    x0, y0, x1, y1 = pusher.config.object_region
    goals, objects = [], []
    for seed in range(40):
        obs = pusher.reset(seed=seed)
        goals.append(obs.goal[:2])
        objects.append(obs.object[:2])
    goals, objects = np.array(goals), np.array(objects)
    assert np.all(np.linalg.norm(goals - [cx, cy], axis=1) <= r + 1e-9)
    assert np.ptp(goals, axis=0).min() > r  # spread over the disc, not one point
    assert np.all((objects >= [x0, y0]) & (objects <= [x1, y1]))
    d = np.linalg.norm(goals - objects, axis=1)
    assert np.all((d >= 0.15 - 1e-9) & (d <= 0.3 + 1e-9)), d
    np.testing.assert_allclose([pusher.distance_to_goal()], [d[-1]], atol=1e-9)


def test_goal_image_shows_the_object_at_the_goal_and_leaves_the_state():
    arm = SimArm(ArmConfig(robot="pusher", image_width=64, image_height=64))
    arm.connect()
    try:
        obs = arm.reset(seed=5)
        before, q = arm.render(), arm.q
        goal_img = arm.goal_image()
        np.testing.assert_array_equal(arm.render(), before)  # state untouched
        np.testing.assert_allclose(arm.q, q)

        def white_centre(img):  # the object is the only white thing on the grey table
            ys, xs = np.nonzero(img.min(axis=2) > 230)
            return np.array([xs.mean(), ys.mean()])

        shift = white_centre(goal_img) - white_centre(before)
        world = obs.goal[:2] - obs.object[:2]  # image x is world x, image y is world -y
        assert np.dot(shift, [world[0], -world[1]]) > 0.8 * np.linalg.norm(shift) * np.linalg.norm(world)
        assert np.linalg.norm(shift) > 5  # pixels: it moved to the goal, visibly at 64 x 64
    finally:
        arm.disconnect()
    with pytest.raises(ValueError, match="no object"):
        reacher = SimArm(ArmConfig(robot="reacher", image_width=32, image_height=32))
        reacher.connect()
        try:
            reacher.goal_image()
        finally:
            reacher.disconnect()

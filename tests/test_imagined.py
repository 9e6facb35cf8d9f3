"""Imagined environments inside the ensemble: observations as the node builds them, the safety
layer's clamps, one member followed per environment, the uncertainty penalty, and episode ends."""

import math

import numpy as np
import pytest
import torch

from wm_control.control.features import policy_observation, policy_observation_torch
from wm_control.train.imagined import ImaginedConfig, ImaginedEnvs
from wm_control.world.ensemble import EnsembleDynamics, StateSpec


def _envs(threshold=1e9, **kw):
    torch.manual_seed(0)
    model = EnsembleDynamics(StateSpec(["j0", "j1"], history=3), members=4, hidden=16)
    rng = np.random.default_rng(0)
    N = 50
    starts = {"sw": rng.normal(size=(N, 3, 4)).astype(np.float32), "aw": rng.normal(size=(N, 3, 2)).astype(np.float32),
              "goal": rng.normal(size=(N, 3)).astype(np.float32)}
    cfg = ImaginedConfig(**{"num_envs": 16, "max_steps": 5, **kw})
    return model, ImaginedEnvs(model, starts, cfg, threshold=threshold, position_limits=[[-1.0, 1.0], None])


@pytest.mark.parametrize("kind", ["joint_trig_goal", "joint_trig_vel_goal"])
def test_observation_matches_the_nodes(kind):
    rng = np.random.default_rng(1)
    q, qd, g = rng.normal(size=(7, 2)), rng.normal(size=(7, 2)), rng.normal(size=(7, 3))
    a = policy_observation(kind, q, qd, g)
    b = policy_observation_torch(kind, torch.as_tensor(q), torch.as_tensor(qd), torch.as_tensor(g)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_commands_pass_the_safety_clamps():
    _, env = _envs(max_step=0.1)
    env.reset()
    prev = env.aw[:, -1].clone()
    delta = torch.full((16, 2), 5.0)
    delta[0] = float("nan")
    cmd = env.command(delta)
    assert torch.all(cmd[:, 1] <= prev[:, 1] + 0.1 + 1e-6)  # rate limit on the continuous joint
    assert torch.all(cmd[:, 0] <= 1.0)  # position limit on joint 0
    np.testing.assert_allclose(cmd[0, 1], prev[0, 1])  # NaN holds the previous command
    assert torch.isfinite(cmd).all()


def test_each_env_follows_its_member_and_pays_for_uncertainty():
    model, env = _envs(lam=2.0)
    env.reset()
    sw, aw, goal, member = env.sw.clone(), env.aw.clone(), env.goal.clone(), env.member.clone()
    delta = torch.zeros(16, 2)
    cmd = env.command(delta)
    obs, reward, done, info = env.step(delta)
    aw2 = torch.cat([aw[:, 1:], cmd[:, None]], 1)
    with torch.no_grad():
        nxt, rew = model(sw.expand(4, -1, -1, -1), aw2.expand(4, -1, -1, -1), goal.expand(4, -1, -1))
    ar = torch.arange(16)
    torch.testing.assert_close(env.sw[:, -1], nxt[member, ar])
    torch.testing.assert_close(info["uncertainty"], model.uncertainty(nxt))
    torch.testing.assert_close(reward, rew[member, ar] - 2.0 * model.uncertainty(nxt))
    assert not done.any() and obs.shape == (16, env.observation_dim)


def test_episodes_end_on_time_and_on_uncertainty():
    _, env = _envs()
    env.reset()
    for k in range(5):
        _, _, done, info = env.step(torch.zeros(16, 2))
    assert done.all() and info["truncated"].all() and not info["terminated"].any()
    assert (env.t == 0).all()  # reset themselves
    _, strict = _envs(threshold=1e-9)  # any disagreement at all passes the limit
    strict.reset()
    _, _, done, info = strict.step(torch.zeros(16, 2))
    assert done.all() and info["terminated"].all()
    _, never = _envs(terminate_scale=math.inf)
    assert never.limit == math.inf


def test_bad_configs_are_refused():
    with pytest.raises(ValueError):
        ImaginedConfig(num_envs=0)
    with pytest.raises(ValueError):
        ImaginedConfig(lam=-1)
    with pytest.raises(ValueError):
        ImaginedConfig(observation="pixels")


def test_a_given_task_reward_replaces_the_head():
    torch.manual_seed(0)
    model = EnsembleDynamics(StateSpec(["j0", "j1"], history=3), members=4, hidden=16)
    rng = np.random.default_rng(0)
    starts = {"sw": rng.normal(size=(20, 3, 4)).astype(np.float32),
              "aw": rng.normal(size=(20, 3, 2)).astype(np.float32), "goal": rng.normal(size=(20, 3)).astype(np.float32)}
    env = ImaginedEnvs(model, starts, ImaginedConfig(num_envs=8, max_steps=5, lam=0.0), threshold=1e9,
                       reward_fn=lambda s, g: -(s[:, 0] - g[:, 0]).abs())
    env.reset()
    goal = env.goal.clone()
    _, reward, _, info = env.step(torch.zeros(8, 2))
    expected = -(env.sw[:, -1, 0] - goal[:, 0]).abs()
    torch.testing.assert_close(info["task_reward"], expected)
    torch.testing.assert_close(reward, expected)

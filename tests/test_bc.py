"""fit_bc: one trainer for ``train bc`` and the evaluations, on the one observation builder
(control/features), offline kinds (the visual latent, the goal's x, y) included."""

import numpy as np
import pytest
import torch

from wm_control.control.features import policy_observation
from wm_control.data.dataset import Episode
from wm_control.train.bc import fit_bc


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is many times faster than two fighting over two cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def episodes(n_ep=6, T=50, seed=0, latent=True, goal=True):
    """Random arm states; the action's change is a function of the latent only (first two dimensions)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_ep):
        q, z = rng.uniform(-2, 2, (T, 2)), rng.normal(size=(T, 4)).astype(np.float32)
        out.append(Episode(t=np.arange(T) / 50.0, q=q, qd=np.zeros((T, 2)), action=q + 0.1 * z[:, :2],
                           goal=rng.normal(size=(T, 3)) if goal else None, frames=None, frame_time=None,
                           joint_names=["joint0", "joint1"], source=f"ep{i}", latent=z if latent else None))
    return out


def test_offline_kinds_are_built_by_the_one_builder():
    e = episodes(1)[0]
    trig = np.concatenate([np.cos(e.q), np.sin(e.q)], -1)
    assert np.array_equal(policy_observation("joint_trig", e.q, None, None), trig.astype(np.float32))
    assert np.array_equal(policy_observation("joint_trig_goal_xy", e.q, None, e.goal),
                          np.concatenate([trig, e.goal[:, :2]], -1).astype(np.float32))
    assert np.array_equal(policy_observation("joint_trig_latent", e.q, None, e.goal, e.latent),
                          np.concatenate([trig, e.latent], -1).astype(np.float32))  # the goal withheld
    with pytest.raises(ValueError, match="unknown observation kind"):
        policy_observation("joint_trig_pixels", e.q, None, e.goal)


def test_fit_bc_learns_from_what_the_kind_shows_and_is_seeded():
    eps = episodes()
    policy, fit = fit_bc(eps, "joint_trig_latent", 300, seed=1, hidden=[32, 32])
    blind, fit_blind = fit_bc(eps, "joint_trig", 300, seed=1, hidden=[32, 32])
    assert fit["obs_dim"] == 2 * 2 + 4 and fit_blind["obs_dim"] == 4 and fit["steps"] == 300
    assert fit["final_train_loss"] < 0.1 < 0.5 < fit_blind["final_train_loss"]  # normalised MSE: 1 = the mean
    again, other = (fit_bc(eps, "joint_trig_latent", 300, seed=s, hidden=[32, 32])[0] for s in (1, 2))
    x = torch.from_numpy(policy_observation("joint_trig_latent", eps[0].q, None, None, eps[0].latent))
    with torch.no_grad():  # raw observation in, raw position change out
        pred, again, other = (p(x).numpy() for p in (policy, again, other))
    assert np.abs(pred - (eps[0].action - eps[0].q)).mean() < 0.3 * np.abs(eps[0].action - eps[0].q).mean()
    assert np.array_equal(pred, again) and not np.array_equal(pred, other)


def test_validation_holds_out_whole_episodes_and_missing_inputs_are_named():
    _, fit = fit_bc(episodes(), "joint_trig_goal_xy", 20, val_fraction=0.34, hidden=[8])
    assert fit["val_episodes"] == 2 and np.isfinite(fit["final_val_loss"])
    with pytest.raises(ValueError, match="ep0: observation 'joint_trig_goal' needs the goal"):
        fit_bc(episodes(goal=False), "joint_trig_goal", 5)
    with pytest.raises(ValueError, match="ep0: observation 'joint_trig_latent' needs the visual latent"):
        fit_bc(episodes(latent=False), "joint_trig_latent", 5)

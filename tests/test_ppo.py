"""PPO inside the ensemble: the estimator pieces, learning on a problem with a known answer, and the
whole path from an ensemble checkpoint to a bundle the policy node runs (debug preset)."""

import copy
import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import yaml

from tests.numerics import assert_export_matches
from wm_control.train.ppo import PPOConfig, RunningNorm, gae, ppo_loop
from wm_control.train.presets import preset


def test_running_norm_matches_the_pooled_statistics():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc=3.0, scale=s, size=(n, 4)) for s, n in ((1.0, 100), (2.0, 37), (0.5, 400))]
    norm = RunningNorm(4, torch.device("cpu"))
    for c in chunks:
        norm.update(torch.as_tensor(c))
    allx = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(norm.std.numpy(), allx.std(0), rtol=1e-3)
    const = RunningNorm(2, torch.device("cpu"))
    const.update(torch.ones(10, 2))
    assert torch.allclose(const.std, torch.ones(2, dtype=torch.float64))  # a constant input is not blown up


def test_gae_against_a_direct_sum():
    rng = np.random.default_rng(1)
    T, B, g, lam = 7, 3, 0.9, 0.8
    r, v = rng.normal(size=(T, B)), rng.normal(size=(T, B))
    d = (rng.random((T, B)) < 0.3).astype(float)
    last = rng.normal(size=B)
    adv = gae(*(torch.as_tensor(x) for x in (r, v, d, last)), g, lam).numpy()
    vn = np.concatenate([v[1:], last[None]])
    delta = r + g * vn * (1 - d) - v
    for b in range(B):
        for t in range(T):
            acc, w = 0.0, 1.0
            for k in range(t, T):
                acc += w * delta[k, b]
                if d[k, b]:
                    break
                w *= g * lam
            assert adv[t, b] == pytest.approx(acc, abs=1e-9)


@dataclass
class _Cfg:
    num_envs: int


class TargetEnv:
    """A one-step-episode problem with a known optimum: reward -|a - target(obs)|^2, target = 0.2 * obs[:2].
    A penalty lambda * |a| plays the uncertainty."""

    observation_dim, n = 3, 2

    def __init__(self, B: int, lam: float = 0.0, seed: int = 0):
        self.cfg = _Cfg(B)
        self.lam = lam
        self.gen = torch.Generator().manual_seed(seed)

    def _obs(self):
        self.o = torch.randn(self.cfg.num_envs, 3, generator=self.gen)
        return self.o

    def reset(self):
        return self._obs()

    def step(self, a):
        target = 0.2 * self.o[:, :2]
        task = -((a - target) ** 2).sum(-1)
        unc = a.abs().sum(-1)
        done = torch.ones(len(a), dtype=torch.bool)
        info = {"task_reward": task, "uncertainty": unc, "terminated": torch.zeros_like(done),
                "truncated": done, "final_obs": self.o}
        return self._obs(), task - self.lam * unc, done, info


def test_ppo_learns_the_optimum_of_a_known_problem():
    torch.manual_seed(0)
    cfg = preset(PPOConfig, "debug", iterations=60, rollout_steps=4, num_envs=256, minibatch=256, epochs=4,
                 hidden=[32], lr=3e-3, gamma=0.5, entropy_coef=0.0)
    env = TargetEnv(256)
    ac, norm, rec = ppo_loop(cfg, env, torch.device("cpu"), progress=False)
    o = torch.randn(500, 3)
    with torch.no_grad():
        a = ac.actor(norm(o)) * cfg.action_scale
    err = (a - 0.2 * o[:, :2]).abs().mean()
    assert err < 0.05, err  # untrained: the mean action is ~0, error ~0.16
    assert rec["iteration"] == 60 and np.isfinite(rec["value_loss"])


def test_the_penalty_shrinks_what_it_penalises():
    torch.manual_seed(0)
    cfg = preset(PPOConfig, "debug", iterations=60, rollout_steps=4, num_envs=256, minibatch=256, epochs=4,
                 hidden=[32], lr=3e-3, gamma=0.5, entropy_coef=0.0)
    sizes = []
    for lam in (0.0, 0.3):
        ac, norm, _ = ppo_loop(cfg, TargetEnv(256, lam=lam), torch.device("cpu"), progress=False)
        with torch.no_grad():
            sizes.append(float((ac.actor(norm(torch.randn(500, 3))) * cfg.action_scale).abs().mean()))
    assert sizes[1] < 0.6 * sizes[0], sizes


@pytest.fixture(scope="module")
def ens_ckpt(debug_ensemble):
    return debug_ensemble[0]


def test_train_export_and_run_like_the_node(ens_ckpt, tmp_path):
    """CLI sweep over two lambdas -> two checkpoints, two bundles (policy + ensemble + thresholds), a
    summary; the ONNX policy agrees with torch and has the BC policy's interface."""
    from wm_control.control.features import policy_observation
    from wm_control.train.ppo import lam_label, load_ppo
    from wm_control.world.bundle import load_bundle

    out, bundle = tmp_path / "ppo", tmp_path / "bundle"
    r = subprocess.run([sys.executable, "-m", "wm_control", "train", "policy", "--preset", "debug",
                        "--ensemble", str(ens_ckpt), "--lam", "0,0.5", "--out", str(out), "--bundle", str(bundle)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "sweep.json").read_text())
    assert [run["lam"] for run in summary["runs"]] == [0.0, 0.5]
    for run in summary["runs"]:
        for k in ("task_return", "uncertainty_mean", "terminated_fraction"):
            assert np.isfinite(run[k])
    ckpt = out / lam_label(0.5)
    meta = yaml.safe_load((ckpt / "checkpoint.yaml").read_text())
    assert meta["kind"] == "ppo_policy" and meta["config"]["lam"] == 0.5
    lines = (ckpt / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == meta["config"]["iterations"]
    b = load_bundle(f"{bundle}_{lam_label(0.5)}")
    assert {"policy", "ensemble"} <= set(b.manifest["graphs"])
    assert b.graph("policy")["action"] == "delta_position"
    assert b.manifest["thresholds"]["uncertainty_p99"] > 0
    assert b.manifest["training"]["policy"]["stage"] == "ppo"
    rng = np.random.default_rng(0)
    obs = policy_observation(b.graph("policy")["observation"], rng.normal(size=(9, 2)), np.zeros((9, 2)),
                             rng.normal(scale=0.1, size=(9, 3)))
    onnx_out = b.session("policy", "cpu").run(obs=obs)["action"]
    torch_policy, _ = load_ppo(ckpt)
    with torch.no_grad():  # float32 and float64 torch: tests/numerics.py
        ref = torch_policy(torch.as_tensor(obs)).numpy()
        exact = copy.deepcopy(torch_policy).double()(torch.as_tensor(obs, dtype=torch.float64)).numpy()
    assert_export_matches(onnx_out, ref, exact, "PPO policy")
    assert onnx_out.shape == (9, 2) and np.isfinite(onnx_out).all()


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="lam"):
        preset(PPOConfig, "quick", lam=-1)
    with pytest.raises(ValueError, match="preset"):
        preset(PPOConfig, "huge")
    with pytest.raises(ValueError, match="observation"):
        preset(PPOConfig, "quick", observation="pixels")


def test_one_preset_factory_for_every_training_config():
    """Every config's sizes come from its table in presets.py; the old per-config names are the same factory."""
    import dataclasses

    from wm_control.train.ensemble import EnsembleConfig, ensemble_preset
    from wm_control.train.imagined import ImaginedConfig
    from wm_control.train.ppo import ppo_preset
    from wm_control.train.presets import PRESETS, TABLES, BCConfig, bc_preset
    from wm_control.train.visual import VisualConfig, visual_preset

    kinds = {BCConfig: bc_preset, EnsembleConfig: ensemble_preset, PPOConfig: ppo_preset, VisualConfig: visual_preset}
    assert set(TABLES) == {k.__name__ for k in kinds}
    for kind, named in kinds.items():
        fields = {f.name for f in dataclasses.fields(kind)}
        for name in PRESETS:
            assert set(TABLES[kind.__name__][name]) <= fields
            assert preset(kind, name) == named(name)
        assert preset(kind, "quick") == kind()  # quick: the defaults
    assert preset(EnsembleConfig, "debug").members == 3 and preset(VisualConfig, "full").teacher_dim == 384
    cfg = preset(PPOConfig, "debug", iterations=None, seed=3)  # None: an option that was not given
    assert (cfg.iterations, cfg.seed, cfg.num_envs) == (3, 3, 32)
    with pytest.raises(ValueError, match="no presets for ImaginedConfig"):
        preset(ImaginedConfig, "debug")

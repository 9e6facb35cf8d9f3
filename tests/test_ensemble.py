"""RWM-U ensemble: shapes, save/load, ONNX agreement over a whole rollout, self-forcing gradients,
DDP under torchrun, calibration, and the train -> export -> eval path."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from wm_control.train.ensemble import (
    EnsembleConfig,
    batch,
    export_ensemble,
    load_ensemble,
    make_transitions,
    rollout_loss,
    train_ensemble,
)
from wm_control.train.presets import preset
from wm_control.world.ensemble import EnsembleDynamics, StateSpec, spearman


@pytest.fixture(scope="module")
def trained_ens(debug_bc, tmp_path_factory):
    """(data, self-forced checkpoint, teacher-forced checkpoint, the self-forced model as it was in memory
    when train_ensemble saved it). Tests get the model through ``trained``, a copy each."""
    import wm_control.train.ensemble as TE

    ckpt, _ = debug_bc
    data = ckpt.parent / "data"  # the debug BC data set (collected by the fixture)
    out = tmp_path_factory.mktemp("ens")
    made = []

    class Kept(EnsembleDynamics):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TE, "EnsembleDynamics", Kept)
        sf = train_ensemble(preset(EnsembleConfig, "debug"), data, out / "self", progress=False)
    tf = train_ensemble(preset(EnsembleConfig, "debug", regime="teacher"), data, out / "teacher", progress=False)
    assert len(made) == 1
    return data, sf, tf, made[0]


@pytest.fixture(scope="module")
def ens(trained_ens):
    return trained_ens[:3]


@pytest.fixture
def trained(trained_ens):
    """A copy of the trained in-memory model: what one test does to it cannot reach another."""
    return copy.deepcopy(trained_ens[3])


@pytest.mark.parametrize("arch", ["mlp", "gru"])
@pytest.mark.parametrize("B", [1, 9])
def test_shapes_and_independent_members(arch, B):
    m = EnsembleDynamics(StateSpec(["a", "b"], history=3), members=4, hidden=16, arch=arch)
    sw, aw, g = torch.randn(4, B, 3, 4), torch.randn(4, B, 3, 2), torch.randn(4, B, 3)
    nxt, r = m(sw, aw, g)
    assert nxt.shape == (4, B, 4) and r.shape == (4, B)
    same_input = m(sw[:1].expand(4, -1, -1, -1), aw[:1].expand(4, -1, -1, -1), g[:1].expand(4, -1, -1))[0]
    assert not torch.allclose(same_input[0], same_input[1])  # independently initialised members
    states, rewards = m.rollout(sw[0], aw[0], torch.randn(B, 5, 2), g[0])
    assert states.shape == (4, B, 6, 4) and rewards.shape == (4, B, 6)
    assert m.uncertainty(states).shape == (B, 6)


def test_save_load_exact(ens, trained, tmp_path):
    """What loads back from disk is the model train_ensemble had in memory: the same tensors, the same
    rollout on the same inputs bit for bit; and the ONNX export computes the in-memory model's step."""
    from tests.numerics import assert_export_matches
    from wm_control.world.bundle import load_bundle

    _, sf, _ = ens
    loaded, meta = load_ensemble(sf)
    mem, disk = trained.eval().state_dict(), loaded.state_dict()
    assert list(mem) == list(disk) and all(torch.equal(mem[k], disk[k]) for k in mem)
    M, H, ds, da = trained.members, trained.spec.history, trained.spec.state_dim, trained.spec.n
    rng = np.random.default_rng(0)
    sw, aw, fut, goal = (torch.as_tensor(rng.normal(size=s).astype(np.float32))
                         for s in ((5, H, ds), (5, H, da), (5, 11, da), (5, 3)))
    with torch.no_grad():
        want, got = trained.rollout(sw, aw, fut, goal), loaded.rollout(sw, aw, fut, goal)
    assert all(torch.equal(w, g) for w, g in zip(want, got))
    sess = load_bundle(export_ensemble(sf, tmp_path / "bundle")).session("ensemble", "cpu")
    s, a, g = (np.repeat(x.numpy()[None], M, 0) for x in (sw, aw, goal))
    out = sess.run(state_window=s, action_window=a, goal=g)
    with torch.no_grad():  # float32 and float64 torch: tests/numerics.py
        ref = trained(*map(torch.as_tensor, (s, a, g)))
        exact = copy.deepcopy(trained).double()(*(torch.as_tensor(x, dtype=torch.float64) for x in (s, a, g)))
    assert_export_matches(out["next_state"], ref[0].numpy(), exact[0].numpy(), "next_state of the trained model")
    assert_export_matches(out["reward"], ref[1].numpy(), exact[1].numpy(), "reward of the trained model")
    assert meta["config"]["regime"] == "self"
    t = meta["thresholds"]
    assert 0 < t["uncertainty_p50"] <= t["uncertainty_p95"] <= t["uncertainty_p99"]


def test_onnx_agrees_with_torch_over_a_rollout(ens, tmp_path):
    from tests.numerics import assert_export_matches
    from wm_control.world.bundle import load_bundle

    _, sf, _ = ens
    model, _ = load_ensemble(sf)
    b = load_bundle(export_ensemble(sf, tmp_path / "bundle"))
    assert b.manifest["thresholds"]["uncertainty_p99"] > 0
    sess = b.session("ensemble", "cpu")
    M, H = model.members, model.spec.history
    rng = np.random.default_rng(0)
    sw = rng.normal(size=(5, H, 4)).astype(np.float32)
    aw = rng.normal(size=(5, H, 2)).astype(np.float32)
    fut = rng.normal(size=(5, 11, 2)).astype(np.float32)
    goal = rng.normal(size=(5, 3)).astype(np.float32)
    with torch.no_grad():  # float32 (as trained) and float64 (exact): tests/numerics.py
        ref, ref_r = model.rollout(*map(torch.as_tensor, (sw, aw, fut, goal)))
        exact, exact_r = copy.deepcopy(model).double().rollout(
            *(torch.as_tensor(x, dtype=torch.float64) for x in (sw, aw, fut, goal)))
    s = np.repeat(sw[None], M, 0)
    a = np.repeat(aw[None], M, 0)
    g = np.repeat(goal[None], M, 0)
    states, rewards = [], []
    for k in range(12):  # the exported one-step graph, fed its own predictions
        out = sess.run(state_window=s, action_window=a, goal=g)
        states.append(out["next_state"])
        rewards.append(out["reward"])
        s = np.concatenate([s[:, :, 1:], out["next_state"][:, :, None]], axis=2)
        if k < 11:
            a = np.concatenate([a[:, :, 1:], np.repeat(fut[None, :, k, None], M, 0)], axis=2)
    assert_export_matches(np.stack(states, 2), ref, exact, "next_state over a 12-step rollout")
    assert_export_matches(np.stack(rewards, 2), ref_r, exact_r, "reward over a 12-step rollout")


def test_the_one_onnx_exporter_checks_the_graph_and_reads_its_io_spec(tmp_path):
    """train/onnx.py writes every bundle graph: fixed opset, free axes only where named, onnx.checker passed,
    the manifest's io spec read off the module (a free axis is -1), and ONNX Runtime agrees with torch."""
    import onnx
    import onnxruntime as ort

    from wm_control.train.onnx import OPSET, export_onnx

    class TwoOut(torch.nn.Module):
        def forward(self, x: torch.Tensor, i: torch.Tensor):
            return x * 2.0, (i + 1).to(torch.uint8)

    x, i = torch.randn(2, 3), torch.zeros(4, dtype=torch.long)
    path = tmp_path / "two.onnx"
    io = export_onnx(TwoOut(), (x, i), path, ["x", "i"], ["y", "j"], {"x": {0: "batch"}, "y": {0: "batch"}})
    assert io == {"inputs": {"x": {"shape": [-1, 3], "dtype": "float32"}, "i": {"shape": [4], "dtype": "int64"}},
                  "outputs": {"y": {"shape": [-1, 3], "dtype": "float32"}, "j": {"shape": [4], "dtype": "uint8"}}}
    assert onnx.load(str(path)).opset_import[0].version == OPSET
    y, j = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones((5, 3), np.float32), "i": np.arange(4)})
    assert y.shape == (5, 3) and np.allclose(y, 2.0) and j.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="returns 2 outputs"):
        export_onnx(TwoOut(), (x, i), tmp_path / "bad.onnx", ["x", "i"], ["y"])


def test_self_forcing_backpropagates_through_the_rollout(ens):
    data, sf, _ = ens
    from wm_control.data.dataset import DatasetConfig, load_episodes

    model, _ = load_ensemble(sf)
    model.train()
    tr = make_transitions(load_episodes([data], DatasetConfig(load_images=False)), model.spec.history, 4, "reacher")
    b = batch(tr, tr.starts[:8][None].repeat(model.members, 0), model.spec.history, 4)
    gen = torch.Generator().manual_seed(0)
    grads = []
    for p_own in (0.0, 1.0):
        model.zero_grad()
        loss, _ = rollout_loss(model, b, 4, p_own, 0.0, gen)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    # feeding back its own predictions changes the gradient: it flows through earlier steps
    assert not torch.allclose(grads[0], grads[1])


def test_spearman():
    x = np.arange(10.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert abs(spearman(x, np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3.0]))) < 1


def test_torchrun_ddp(ens, tmp_path):
    data, _, _ = ens
    code = ("from wm_control.train.ensemble import EnsembleConfig, train_ensemble;"
            "from wm_control.train.presets import preset;"
            f"train_ensemble(preset(EnsembleConfig, 'debug', iterations=6), r'{data}', r'{tmp_path / 'ddp'}',"
            " progress=False)")
    script = tmp_path / "ddp_train.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                        str(script)], capture_output=True, text=True, timeout=180,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    _, meta = load_ensemble(tmp_path / "ddp")
    assert meta["world_size"] == 2


def test_cli_train_export_eval_world_model(ens, tmp_path):
    data, sf, tf = ens
    env = {**os.environ}
    r = subprocess.run([sys.executable, "-m", "wm_control", "eval", "world-model", "--model", str(sf), "--teacher",
                        str(tf), "--heldout", str(tmp_path / "held"), "--ood", str(tmp_path / "ood"), "--json",
                        str(tmp_path / "wm.json")], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "wm.json").read_text())
    sfm = res["models"]["self_forced"]
    assert set(sfm["relative_error"]) == {"1", "5", "10", "25", "50"}
    assert all(v == pytest.approx(1.0) for v in res["baseline_nothing_changes"].values())
    assert -1 <= sfm["spearman_uncertainty_error"] <= 1
    assert 0 <= sfm["coverage"]["2std"] <= 1
    assert res["uncertainty_in_vs_out_of_distribution"]["out_of_distribution_mean"] > 0
    assert (tmp_path / "wm.png").stat().st_size > 1000


def _toy_transitions(episodes: int = 40, T: int = 30):
    from wm_control.train.ensemble import Transitions

    N = episodes * T
    ep = np.repeat(np.arange(episodes), T)
    starts = np.concatenate([np.arange(e * T + 3, e * T + T - 1) for e in range(episodes)])
    z = np.zeros((N, 4), np.float32)
    return Transitions(z, z[:, :2], np.zeros((N, 3), np.float32), np.zeros(N, np.float32), starts, ep)


def test_episode_bootstrap_resamples_whole_episodes():
    from wm_control.train.ensemble import bootstrap_indices

    tr = _toy_transitions()
    rng = np.random.default_rng(0)
    boot = bootstrap_indices(tr, 5, "episode", rng)
    assert boot.shape == (5, len(tr.starts))
    seen = [set(tr.episode_of[tr.starts[b]]) for b in boot]
    # each member sees about 1 - 1/e of the episodes, never all of them, and the members differ
    assert all(0.4 * 40 < len(s) < 40 for s in seen)
    assert len({frozenset(s) for s in seen}) == 5
    win = bootstrap_indices(tr, 5, "window", np.random.default_rng(0))
    assert all(len(set(tr.episode_of[tr.starts[b]])) == 40 for b in win)  # windows: every episode appears


def test_randomised_prior_is_fixed_and_saved(tmp_path):
    m = EnsembleDynamics(StateSpec(["a", "b"], history=3), members=3, hidden=16, prior_scale=1.0)
    assert m.prior and not any(p.requires_grad for p in m.prior.parameters())
    sw, aw = torch.randn(3, 8, 3, 4), torch.randn(3, 8, 3, 2)
    before = [p.clone() for p in m.prior.parameters()]
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    m(sw, aw)[0].pow(2).sum().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.prior.parameters()))
    assert any(k.startswith("prior.") for k in m.state_dict())
    no_prior = EnsembleDynamics(StateSpec(["a", "b"], history=3), members=3, hidden=16)
    assert not any(k.startswith("prior.") for k in no_prior.state_dict())


def test_uncertainty_is_in_the_models_output_units():
    m = EnsembleDynamics(StateSpec(["a"], history=2), members=2, hidden=8)
    with torch.no_grad():
        m.delta_std.copy_(torch.tensor([0.01, 1.0]))
        m.state_std.copy_(torch.tensor([10.0, 1.0]))  # a joint that winds round: large state spread
    states = torch.zeros(2, 1, 2)
    states[1, 0, 0] = 0.02  # members disagree by 0.02 rad on the position
    # std over 2 members of (0, 2) in units of 0.01 = sqrt(2); state units would give 0.0014
    assert m.uncertainty(states).item() == pytest.approx(np.sqrt(2), rel=1e-5)


def test_imagined_envs_from_logs(ens):
    from wm_control.data.dataset import DatasetConfig, load_episodes
    from wm_control.train.imagined import ImaginedConfig, ImaginedEnvs

    data, sf, _ = ens
    model, meta = load_ensemble(sf)
    eps = load_episodes([data], DatasetConfig(rate=50.0, load_images=False))
    env = ImaginedEnvs.from_logs(model, meta["thresholds"], eps, "reacher", ImaginedConfig(num_envs=64, max_steps=10))
    obs = env.reset()
    assert obs.shape == (64, env.observation_dim)
    for _ in range(10):
        obs, r, done, info = env.step(torch.zeros(64, 2))
        assert torch.isfinite(obs).all() and torch.isfinite(r).all()
    # holding still from logged states: the members' task reward is the (negative) fingertip distance
    assert (info["task_reward"] <= 0.05).all()


def test_imagined_start_windows_align_with_training_windows(ens):
    """A start holds states s[t-H+1..t] and the commands executed before them, a[t-H..t-1]: stepping with
    the logged a[t] feeds the model exactly the window it was trained on (batch())."""
    from wm_control.data.dataset import DatasetConfig, load_episodes
    from wm_control.train.ensemble import batch, make_transitions
    from wm_control.train.imagined import ImaginedConfig, ImaginedEnvs

    data, sf, _ = ens
    model, meta = load_ensemble(sf)
    eps = load_episodes([data], DatasetConfig(rate=50.0, load_images=False))
    env = ImaginedEnvs.from_logs(model, meta["thresholds"], eps, "reacher", ImaginedConfig(num_envs=8))
    H = model.spec.history
    tr = make_transitions(eps, H, 1, "reacher", rewards=False)
    ok = tr.starts[(tr.starts >= H) & (tr.episode_of[np.maximum(tr.starts - H, 0)] == tr.episode_of[tr.starts])]
    b = batch(tr, ok[None], H, 1)
    np.testing.assert_allclose(env.sw_all.numpy(), b["sw"][0].numpy())
    np.testing.assert_allclose(env.aw_all[:, 1:].numpy(), b["aw"][0, :, :-1].numpy())  # shifted by one command
    t = torch.as_tensor(ok)
    np.testing.assert_allclose(env.aw_all[:, -1].numpy(), tr.A[ok - 1])  # the command in force at s[t]
    # stepping with the logged a[t] (as a change from q[t]) reproduces the model's one-step prediction
    env.reset()
    env.sw, env.aw, env.goal = env.sw_all[:8].clone(), env.aw_all[:8].clone(), env.goal_all[:8].clone()
    env.member = torch.zeros(8, dtype=torch.long)
    a_t = torch.as_tensor(tr.A[ok[:8]])
    env.cfg.max_step = 1e9  # no rate limit: the logged command passes unchanged
    env.step(a_t - env.sw[:, -1, :2])
    with torch.no_grad():
        M = model.members
        ref, _ = model(*(b[k][0, :8].expand(M, *b[k][0, :8].shape) for k in ("sw", "aw", "goal")))
    np.testing.assert_allclose(env.sw[:, -1].numpy(), ref[0].numpy(), atol=1e-5)
    assert t.numel() == len(env.sw_all)


def test_reward_samples_cover_the_joint_ranges_with_kinematic_labels():
    from wm_control.train.bc import sim_position_limits
    from wm_control.train.ensemble import fingertip_distance, reward_samples

    tr = _toy_transitions(episodes=3, T=10)
    names = ["joint0", "joint1"]
    aug = reward_samples("reacher", tr, 2000, names, np.random.default_rng(0))
    q, g = aug["S"][:, :2].numpy(), aug["G"].numpy()
    limits = sim_position_limits("reacher", names)
    for j, lim in enumerate(limits):
        lo, hi = (-np.pi, np.pi) if lim[0] is None else lim
        assert q[:, j].min() >= lo - 1e-6 and q[:, j].max() <= hi + 1e-6
        assert q[:, j].max() - q[:, j].min() > 0.9 * (hi - lo)  # the whole range, not where the logs went
    assert (aug["S"][:, 2:] == 0).all()
    np.testing.assert_allclose(aug["R"].numpy(), fingertip_distance("reacher", q, g), atol=1e-5)
    assert reward_samples("reacher", tr, 0, names, np.random.default_rng(0)) is None

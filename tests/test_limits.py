"""The one clamp kernel (control/limits.py): numpy and torch agree, and both equal what the safety layer
commands on the same inputs, NaN/inf, e-stop and every rate included; the planner and the imagined
environments call it."""

import math

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wm_control.control.limits import clamp_command, clamp_command_torch, clamp_sequence
from wm_control.control.safety import SafetyConfig, SafetyLayer

INF = math.inf
wild = st.one_of(st.floats(-10, 10), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308]))


@st.composite
def cases(draw):
    n = draw(st.integers(1, 4))
    cont = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    lower = draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    width = draw(st.lists(st.floats(0.05, 6), min_size=n, max_size=n))
    lo = np.array([-INF if c else a for c, a in zip(cont, lower)])
    hi = np.array([INF if c else a + w for c, a, w in zip(cont, lower, width)])
    step = np.array(draw(st.lists(st.floats(1e-3, 0.5), min_size=n, max_size=n)))
    span_lo, span_hi = np.where(np.isinf(lo), -10, lo), np.where(np.isinf(hi), 10, hi)
    prev = np.array([draw(st.floats(float(a), float(b))) for a, b in zip(span_lo, span_hi)])
    targets = [np.array([draw(wild) for _ in range(n)]) for _ in range(draw(st.integers(1, 12)))]
    estops = [draw(st.sampled_from([False] * 8 + [True])) for _ in targets]
    return lo, hi, step, prev, targets, estops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_kernel_numpy_torch_and_safety_layer_agree(case):
    lo, hi, step, prev, targets, estops = case
    n = len(lo)
    layer = SafetyLayer(SafetyConfig([f"j{i}" for i in range(n)], lo.tolist(), hi.tolist(), step.tolist()))
    layer.step(0.0, prev, prev, "seed")  # the previous command: the arm is there (a perfect servo)
    p = prev.copy()
    for target, estop in zip(targets, estops):
        if estop:
            layer.estop(True, "test")
        expected = p if estop else clamp_command(target, p, step, lo, hi)  # an e-stop holds (where the arm is)
        got = layer.step(0.0, p, target, "policy").command
        np.testing.assert_array_equal(got, expected)
        tt = clamp_command_torch(torch.as_tensor(target), torch.as_tensor(p), torch.as_tensor(step),
                                 torch.as_tensor(lo), torch.as_tensor(hi)).numpy()
        np.testing.assert_array_equal(tt, expected if not estop else clamp_command(target, p, step, lo, hi))
        assert np.all(np.isfinite(got)) and np.all((lo <= got) & (got <= hi))
        assert np.all(np.abs(got - p) <= step)
        if estop:
            layer.estop(False, "test")
            assert layer.reset_estop()
        p = got


def test_the_planner_and_the_imagined_envs_call_the_kernel(monkeypatch):
    """Not copies: replacing the kernel changes what they do."""
    import wm_control.control.planner as planner_mod
    import wm_control.train.imagined as imagined_mod

    calls = []
    monkeypatch.setattr(planner_mod, "clamp_command", lambda *a: calls.append("planner") or a[1])
    monkeypatch.setattr(imagined_mod, "clamp_command_torch", lambda *a: calls.append("imagined") or a[1])
    import inspect

    assert "clamp_command(" in inspect.getsource(planner_mod.Planner._rollout)
    assert "clamp_sequence(" in inspect.getsource(planner_mod.Planner.plan)
    assert "clamp_command_torch(" in inspect.getsource(imagined_mod.ImaginedEnvs.command)
    assert planner_mod.clamp_sequence is clamp_sequence


def test_sequence_is_the_kernel_step_after_step():
    rng = np.random.default_rng(0)
    u = rng.normal(scale=2.0, size=(5, 7, 3))
    u[1, 3, 2] = np.nan
    lo, hi, step = np.array([-1.0, -2.0, -INF]), np.array([1.0, 0.5, INF]), np.array([0.05, 0.1, 0.2])
    prev = np.zeros((5, 3))
    out = clamp_sequence(u, prev, step, lo, hi)
    p = prev
    for k in range(7):
        p = clamp_command(u[:, k], p, step, lo, hi)
        np.testing.assert_array_equal(out[:, k], p)
    np.testing.assert_array_equal(out[1, 3], out[1, 2])  # NaN: held

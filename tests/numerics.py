"""Is an exported graph the same function as the torch model? A judgement that holds on any correct build.

A fixed absolute tolerance (``atol=1e-4``) fails a correct export on another BLAS or a newer ONNX
Runtime (the values are large, or the rollout is deep) and passes a wrong one when the values are small.
Instead every comparison runs the torch model three ways on the same inputs:

- ``exact``: float64, our stand-in for exact arithmetic;
- ``torch32``: float32, what training saw; its distance from ``exact`` is the float32 rounding error of
  *this* function, at *these* values and *this* depth, on this machine: it grows with the size of the
  values and compounds along a rollout exactly as the export's does;
- ``candidate``: the exported graph (ONNX Runtime, float32).

A correct export computes the same function in float32 with other kernels and another order of
operations, so its rounding error is of the same order as torch's own: the worst-case bound of a
float32 evaluation (n * eps * |w| * |x| for a fan-in n) is the same for any order of summation, and
the errors actually made are random-walk-like around it. Measured on every exported graph of this
project (BC and PPO policies, the ensemble over 12 steps, the planner's rollouts, the encoder and the
student over 24 cached steps: ``WM_NUMERICS_REPORT=1 pytest -s ...`` prints them) the export's error
is 0.5x to 3.5x torch's own. We allow ``FACTOR = 10``, plus a floor of a few float32 ulps of the
largest value (an output rounded once more, e.g. a fused multiply-add where torch rounds twice, or
torch agreeing with float64 exactly by luck). A wrong export (a perturbed
weight, a missing normaliser, a wrong op) differs from ``exact`` by a model error that does not scale
with eps at all: orders of magnitude above this bound. ``test_a_perturbed_weight_fails_the_check``
(the BC policy's ONNX file with one layer stored at half precision: 35x over the bound) and the visual
rollout test (one of the student's weight matrices 1% off: 15x over) show such exports failing while
the true ones pass.
"""

from __future__ import annotations

import os

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
FACTOR = 10.0
ULPS = 8.0


def export_error(candidate, torch32, exact) -> dict:
    """The candidate's and float32 torch's worst distance from the float64 run, and the bound."""
    c, t, e = (np.asarray(x, np.float64) for x in (candidate, torch32, exact))
    assert c.shape == t.shape == e.shape, (c.shape, t.shape, e.shape)
    scale = float(np.abs(e).max()) if e.size else 0.0
    err_c = float(np.abs(c - e).max()) if e.size else 0.0
    err_t = float(np.abs(t - e).max()) if e.size else 0.0
    bound = FACTOR * err_t + ULPS * EPS32 * max(scale, EPS32)
    return {"candidate": err_c, "torch32": err_t, "scale": scale, "bound": bound}


def assert_export_matches(candidate, torch32, exact, what: str = "output") -> dict:
    """Fail unless ``candidate`` is within float32 rounding of ``exact`` (see the module docstring)."""
    r = export_error(candidate, torch32, exact)
    if os.environ.get("WM_NUMERICS_REPORT"):  # print the margins (how far each export is from its bound)
        print(f"\n[numerics] {what}: export {r['candidate']:.3g}, torch32 {r['torch32']:.3g}, "
              f"bound {r['bound']:.3g}, values up to {r['scale']:.3g}")
    assert np.all(np.isfinite(np.asarray(candidate))), f"{what}: non-finite values from the export"
    assert r["candidate"] <= r["bound"], (
        f"{what}: export differs from float64 by {r['candidate']:.3g} (values up to {r['scale']:.3g}); "
        f"float32 torch differs by {r['torch32']:.3g}, so a correct float32 build stays under {r['bound']:.3g}")
    return r

"""The one clamp kernel: what the safety layer lets through from a target, one step from the previous command.

In order: a target with any non-finite value holds the previous command (all joints); then the position
limits; then at most ``max_step`` (elementwise) from the previous command; then the limits again (a step
from a previous command outside the limits). ``prev`` must be finite. Every place that predicts what the
robot will be commanded uses this one function, so they cannot drift apart:

* :meth:`wm_control.control.safety.SafetyLayer.step` (the robot's real commands, numpy);
* the planner's candidates and its policy row (:func:`clamp_sequence`, numpy);
* the imagined environments PPO trains in (:func:`clamp_command_torch`, torch).

The numpy and torch versions are the same arithmetic; ``tests/test_limits.py`` pins them to each other
and to the safety layer (hypothesis, including NaN/inf and every rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def clamp_command(target: np.ndarray, prev: np.ndarray, max_step: Any, lo: Any, hi: Any) -> np.ndarray:
    """``target (..., n)`` -> the command, one step from ``prev (..., n)`` (see the module docstring)."""
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(prev, dtype=np.float64)
    finite = np.all(np.isfinite(t), axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.clip(np.where(finite, t, p), lo, hi)
        delta = t - p
        small = np.abs(delta) <= max_step  # an overflowed (inf) delta is not small
        cmd = np.clip(np.where(small, t, p + np.sign(delta) * max_step), lo, hi)
        # p + max_step can round one ulp past max_step away from p: pull it back in (the limits win over the
        # rate when p itself is outside them, e.g. a logged command)
        return np.clip(np.where(np.abs(cmd - p) > max_step, np.nextafter(cmd, p), cmd), lo, hi)


def clamp_sequence(u: np.ndarray, prev: np.ndarray, max_step: Any, lo: Any, hi: Any) -> np.ndarray:
    """``u (..., K, n)`` targets -> the commands, step after step from ``prev (..., n)``."""
    out = np.empty(np.shape(u), dtype=np.float64)
    p = np.broadcast_to(np.asarray(prev, np.float64), out[..., 0, :].shape)
    for k in range(out.shape[-2]):
        p = out[..., k, :] = clamp_command(u[..., k, :], p, max_step, lo, hi)
    return out


def clamp_command_torch(target, prev, max_step, lo, hi):
    """:func:`clamp_command` in torch (any float dtype and device; ``max_step``/``lo``/``hi`` tensors or
    floats broadcastable to ``target``)."""
    import torch

    def as_t(x):
        return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=target.dtype, device=target.device)

    step, lo_t, hi_t = as_t(max_step), as_t(lo), as_t(hi)
    finite = torch.isfinite(target).all(dim=-1, keepdim=True)
    t = torch.minimum(torch.maximum(torch.where(finite, target, prev), lo_t), hi_t)
    delta = t - prev
    small = delta.abs() <= step
    cmd = torch.minimum(torch.maximum(torch.where(small, t, prev + torch.sign(delta) * step), lo_t), hi_t)
    cmd = torch.where((cmd - prev).abs() > step, torch.nextafter(cmd, prev), cmd)
    return torch.minimum(torch.maximum(cmd, lo_t), hi_t)


__all__ = ["clamp_command", "clamp_sequence", "clamp_command_torch"]

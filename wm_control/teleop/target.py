"""The commanded position target: integrated velocities and key steps, bounded (no wind-up)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class TargetIntegrator:
    """Position target for n joints: starts from the measured positions, integrates velocities,
    takes key steps; clamped to the position limits and to ``max_lead`` around the measured position."""

    def __init__(self, n: int, lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
                 max_lead: float = 0.0):
        self.n = n
        self.lower = np.full(n, -np.inf) if not lower else np.asarray(lower, dtype=np.float64)
        self.upper = np.full(n, np.inf) if not upper else np.asarray(upper, dtype=np.float64)
        if self.lower.shape != (n,) or self.upper.shape != (n,):
            raise ValueError(f"position limits need {n} values each, got {len(self.lower)} and {len(self.upper)}")
        if np.any(self.lower > self.upper):
            raise ValueError(f"position_lower {self.lower.tolist()} must be <= position_upper {self.upper.tolist()}")
        if not max_lead >= 0:
            raise ValueError(f"max_lead must be >= 0 (0: no bound), got {max_lead}")
        self.max_lead = float(max_lead)
        self.target: np.ndarray | None = None
        self.measured: np.ndarray | None = None

    def measure(self, q: np.ndarray) -> None:
        """The latest measured joint positions (bounds the lead of the target)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n,) or not np.all(np.isfinite(q)):
            raise ValueError(f"measured positions must be {self.n} finite values, got {q}")
        self.measured = q.copy()

    def reset(self, q: np.ndarray | None = None) -> None:
        """Start again from the measured positions (or ``q``)."""
        if q is not None:
            self.measure(q)
        if self.measured is None:
            raise ValueError("no measured joint positions yet")
        self.target = self._clamp(self.measured.copy())

    def _clamp(self, t: np.ndarray) -> np.ndarray:
        if self.max_lead > 0 and self.measured is not None:
            t = np.clip(t, self.measured - self.max_lead, self.measured + self.max_lead)
        return np.clip(t, self.lower, self.upper)

    def step(self, velocity: np.ndarray, dt: float) -> np.ndarray:
        """Advance the target by ``velocity * dt``; returns the new target."""
        if self.target is None:
            self.reset()
        v = np.asarray(velocity, dtype=np.float64)
        if v.shape != (self.n,) or not np.all(np.isfinite(v)):
            raise ValueError(f"velocity must be {self.n} finite values, got {v}")
        self.target = self._clamp(self.target + v * dt)
        return self.target

    def nudge(self, joint: int, delta: float) -> np.ndarray:
        """Move one joint's target by ``delta`` rad (a key press)."""
        if self.target is None:
            self.reset()
        if not 0 <= joint < self.n:
            raise IndexError(f"joint {joint} out of range (0..{self.n - 1})")
        t = self.target.copy()
        t[joint] += float(delta)
        self.target = self._clamp(t)
        return self.target

"""The robot's history on the control grid: one definition, for the training data and for the planner.

The dataset reader (:func:`wm_control.data.dataset.align`, offline, whole recordings) and the planner
node (:class:`ControlHistory`, online, the last few steps) both call :func:`align_grid`, so a model
sees at run time exactly what it was trained on. From two stamped streams, in any order:

* **states** (joint positions and velocities): linear interpolation between the two surrounding
  states, sorted by stamp; of samples with the same stamp the last received stands (it replaces the
  earlier ones, online and offline alike: ``np.interp`` over repeated stamps would otherwise depend on
  which of them a trimmed window still holds); before the first state the first one, after the last
  the last one;
* **commands**: ``action[k]`` is the command in force over the step from ``grid[k]`` to the next
  grid point (``grid[k] + dt`` after the last): the latest one received more than :data:`TIME_EPS`
  before the step's end (forward controllers hold the last command; of commands with the same
  time, the last received). A command stamped at the step's end itself (under sim time: the
  instant it answers) belongs to the next step, whatever the float error in the grid. Where no
  command precedes, ``commanded`` is False and the row holds the measured position.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

#: s: a command must precede a step's end by more than this to be in force over it. Grid times are
#: computed (t0 + k dt, t - k dt) and commands are stamped with the instants they answer; without the
#: margin the float error decides which step such a command belongs to.
TIME_EPS = 1e-6


@dataclass
class Aligned:
    """Streams on a grid: ``q, qd (T, n)``, ``action (T, n)`` (see the module) and ``commanded (T,)``
    (False where no command preceded the step's end: ``action`` is then the measured position)."""

    q: np.ndarray
    qd: np.ndarray
    action: np.ndarray
    commanded: np.ndarray


def sort_stream(t, *values) -> tuple[np.ndarray, ...]:
    """``(t, *values)`` as arrays in stamp order, one sample per stamp: of equal stamps the last received
    (a stable sort of arrival order, then the last of each run), as :class:`ControlHistory` keeps them."""
    t = np.asarray(t, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    last = np.append(ts[1:] != ts[:-1], True) if len(ts) else np.zeros(0, bool)
    order = order[last]
    return (t[order], *(np.asarray(v)[order] for v in values))


def interpolate(t: np.ndarray, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``x (N, d)`` stamped ``t`` (sorted) linearly interpolated at ``grid`` (ends held): ``(len(grid), d)``."""
    return np.stack([np.interp(grid, t, x[:, j]) for j in range(x.shape[1])], axis=1)


def align_grid(grid: np.ndarray, dt: float, state_t: np.ndarray, q: np.ndarray, qd: np.ndarray,
               cmd_t: np.ndarray, cmd: np.ndarray) -> Aligned:
    """States and commands on ``grid`` (increasing, step ``dt``). Both streams sorted by time
    (:func:`sort_stream`); ``state_t`` not empty, ``cmd_t`` may be. See the module for the rules."""
    grid = np.asarray(grid, dtype=np.float64)
    qi, qdi = interpolate(state_t, q, grid), interpolate(state_t, qd, grid)
    ends = np.append(grid[1:], grid[-1] + dt) - TIME_EPS
    idx = np.searchsorted(cmd_t, ends, side="left") - 1  # the latest command strictly before each end
    commanded = idx >= 0
    action = qi.copy()
    if len(cmd_t):
        action[commanded] = np.asarray(cmd, dtype=np.float64)[idx[commanded]]
    return Aligned(qi, qdi, action, commanded)


class _Stream:
    """Stamped samples kept sorted by stamp (stable), trimmed to the last ``keep`` s before the newest
    plus the one before that (it is still the value in force, or the left end of an interpolation)."""

    def __init__(self, keep: float):
        self.keep = keep
        self.t: list[float] = []
        self.v: list[tuple[np.ndarray, ...]] = []

    def add(self, t: float, *values: np.ndarray) -> None:
        i = bisect.bisect_right(self.t, t)
        if i > 0 and self.t[i - 1] == t:  # the same stamp again: the last received stands (as sort_stream)
            self.v[i - 1] = values
            return
        self.t.insert(i, t)
        self.v.insert(i, values)
        cut = bisect.bisect_left(self.t, self.t[-1] - self.keep) - 1
        if cut > 0:
            del self.t[:cut], self.v[:cut]

    def arrays(self, n: int) -> tuple[np.ndarray, ...]:
        t = np.asarray(self.t, dtype=np.float64)
        if not self.v:
            return t, np.zeros((0, n))
        return (t, *(np.stack(c).astype(np.float64) for c in zip(*self.v)))


class ControlHistory:
    """The online aligner: joint states and commands as they arrive (any order), and the window of
    the last ``history`` control steps ending at a tick, by :func:`align_grid` (as in training).

    Keeps the last ``keep`` seconds of each stream (before its newest sample; default ``(history + 2)
    dt + 1`` s: the window and a second of lateness or clock offset) plus the sample before them, so a
    window ending at or after the newest state minus a second is what the whole recording would give."""

    def __init__(self, dt: float, history: int, n: int, keep: float | None = None):
        if not dt > 0 or history < 1:
            raise ValueError("dt must be > 0 and history >= 1")
        self.dt, self.H, self.n = float(dt), int(history), int(n)
        keep = (self.H + 2) * self.dt + 1.0 if keep is None else float(keep)
        self.states, self.commands = _Stream(keep), _Stream(keep)

    @property
    def newest_state(self) -> float | None:
        """The newest state's stamp (None before any)."""
        return self.states.t[-1] if self.states.t else None

    def add_state(self, t: float, q: np.ndarray, qd: np.ndarray) -> None:
        self.states.add(float(t), np.asarray(q, np.float64), np.asarray(qd, np.float64))

    def add_command(self, t: float, value: np.ndarray) -> None:
        """A command in force from ``t`` (its receive time, or under sim time the instant it answers)."""
        self.commands.add(float(t), np.asarray(value, np.float64))

    def window(self, t: float, lo: np.ndarray | None = None, hi: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The history ending at ``t``: states ``(H, 2n)`` = (q, qd) at ``t - (H-1) dt ... t``, the
        commands ``(H-1, n)`` in force over the steps between them, and the command in force at ``t``
        (over the step ending there). Before any command: the measured position (at the step's start;
        for the last, at ``t``), clipped to ``lo, hi``. Needs at least one state."""
        if not self.states.t:
            raise ValueError("no joint states yet")
        H, n = self.H, self.n
        grid = t - self.dt * np.arange(H, -1, -1)  # one step before the window: the steps' ends are the window
        st, q, qd = self.states.arrays(n)
        ct, cmd = self.commands.arrays(n)
        a = align_grid(grid, self.dt, st, q, qd, ct, cmd)
        lo = -np.inf if lo is None else lo
        hi = np.inf if hi is None else hi
        hold = np.clip(a.q, lo, hi)
        acts = np.where(a.commanded[:, None], a.action, hold)
        now = acts[H - 1] if a.commanded[H - 1] else hold[H]
        return np.concatenate([a.q[1:], a.qd[1:]], axis=1), acts[1:H], now

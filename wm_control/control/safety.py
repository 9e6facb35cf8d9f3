"""The safety layer between every source of joint position commands and the robot.

Pure and deterministic: no ROS, no clock of its own (``now`` and input stamps are passed in, all on the
node's clock), no randomness. The ``policy`` node calls :meth:`SafetyLayer.step` once per control tick
and publishes ``result.command``. Guarantees, for every command it returns:

* it is finite and within ``[lower + margin, upper - margin]`` (continuous joints: no position limit);
* when it is not a hold, it is within ``max_step`` (elementwise) of the previously returned command;
  the first command after construction or :meth:`SafetyLayer.reset` is within ``max_step`` of the
  measured position clipped into the limits;
* it holds while the e-stop is latched or any e-stop source is active, a required input is missing or
  stale, the measured position is unknown / non-finite, or the proposal is absent, malformed or
  non-finite. A hold freezes the robot where it *measurably* is: its first tick commands the measured
  position (clipped into the limits), not the last command (which may lead the arm: the arm would
  keep moving up to it); later ticks of the same hold keep that target, unless the measured position
  has left it by more than ``hold_repin`` (the arm was pushed: re-freeze where it now is instead of
  driving it back). Without a finite measurement a hold keeps the last command. The hold target is
  the last command, so the release moves from where the arm stopped towards the new target at the
  rate limit;
* a measured position that moved further than ``max_measured_jump`` since the previous tick's (no arm
  moves so far in one tick: the robot or the simulator was reset, a driver restarted, a reading glitched)
  holds that tick (``measured_jump``): the hold freezes where the arm now is, so the rate limit starts
  from there, never from a last command far from the arm;
* ``command`` is ``None`` (reason ``'no_safe_command'``) only when there is no previous command and
  the measured position is unknown: the node then publishes nothing, and the forward controller keeps
  its last target.

Positions are absolute: continuous joints are never wrapped, so a proposal of ``q + 2*pi - eps`` is a
large move (rate-limited), not a small step backwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wm_control.control.limits import clamp_command
from wm_control.control.urdf import joint_limits_from_urdf


@dataclass
class SafetyConfig:
    """Limits and watchdog settings; validated and normalised (lists of floats) on construction.

    ``lower`` / ``upper``: position limits; a joint is continuous when ``continuous[i]`` is true or both
    its limits are infinite, and then both must be infinite (``-inf``, ``+inf``). Other joints need
    finite limits with ``lower + margin < upper - margin``. ``max_step``: the largest change of the
    command per tick (one float for all joints or one per joint; e.g. velocity limit / control rate).
    ``max_input_age``: inputs that are REQUIRED, with their maximum age in seconds (``inf``: it must
    have arrived once). ``margin``: shrinks the limits of the non-continuous joints inwards.
    ``hold_repin``: how far (rad, any joint) the measured position may leave a hold's target before the
    hold re-freezes at the measured position (0: four times ``max_step``). ``max_measured_jump``: how far
    (rad, any joint) the measured position may move between two ticks before that tick holds
    (``measured_jump``; 0: twice ``max_step``).
    """

    joint_names: list[str]
    lower: list[float]
    upper: list[float]
    max_step: list[float] | float
    max_input_age: dict[str, float] = field(default_factory=dict)
    margin: float = 0.0
    continuous: list[bool] | None = None
    hold_repin: float = 0.0
    max_measured_jump: float = 0.0

    def __post_init__(self) -> None:
        names = list(self.joint_names)
        n = len(names)
        if n == 0 or len(set(names)) != n or not all(isinstance(s, str) and s for s in names):
            raise ValueError(f"joint_names must be non-empty, unique, non-empty strings: {names}")
        step = [self.max_step] * n if np.ndim(self.max_step) == 0 else list(self.max_step)
        cont = [False] * n if self.continuous is None else [bool(c) for c in self.continuous]
        for what, v in (("lower", self.lower), ("upper", self.upper), ("max_step", step), ("continuous", cont)):
            if len(v) != n:
                raise ValueError(f"{what} has {len(v)} values for {n} joints {names}")
        lower, upper, step = ([float(x) for x in v] for v in (self.lower, self.upper, step))
        margin = float(self.margin)
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be finite and >= 0, got {self.margin}")
        for i, name in enumerate(names):
            lo, hi = lower[i], upper[i]
            if not (math.isfinite(step[i]) and step[i] > 0):
                raise ValueError(f"joint {name!r}: max_step must be finite and > 0, got {step[i]}")
            if cont[i] or (lo == -math.inf and hi == math.inf):
                if not (lo == -math.inf and hi == math.inf):
                    raise ValueError(f"continuous joint {name!r} must have limits (-inf, inf), got ({lo}, {hi})")
                cont[i] = True
            elif not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"joint {name!r}: limits ({lo}, {hi}) must be finite (or both infinite "
                                 "for a continuous joint)")
            elif not lo + margin < hi - margin:
                raise ValueError(f"joint {name!r}: need lower + margin < upper - margin, got lower={lo}, "
                                 f"upper={hi}, margin={margin}")
        ages = {}
        for key, age in dict(self.max_input_age).items():
            try:
                ages[key] = float(age)
            except (TypeError, ValueError):
                ages[key] = math.nan
            if not (isinstance(key, str) and key and ages[key] > 0):  # NaN fails too
                raise ValueError(f"max_input_age[{key!r}] must be > 0 seconds (inf: must arrive once), got {age}")
        repin = float(self.hold_repin)
        if not (math.isfinite(repin) and repin >= 0):
            raise ValueError(f"hold_repin must be finite and >= 0, got {self.hold_repin}")
        self.hold_repin = repin or 4.0 * max(step)
        jump = float(self.max_measured_jump)
        if not (math.isfinite(jump) and jump >= 0):
            raise ValueError(f"max_measured_jump must be finite and >= 0, got {self.max_measured_jump}")
        self.max_measured_jump = jump or 2.0 * max(step)
        self.joint_names, self.lower, self.upper, self.max_step = names, lower, upper, step
        self.continuous, self.margin, self.max_input_age = cont, margin, ages

    @classmethod
    def from_urdf(cls, path: str, joint_names: Sequence[str], max_step: list[float] | float,
                  max_input_age: dict[str, float], margin: float = 0.0) -> SafetyConfig:
        """Limits (narrowed by ``<safety_controller>``) and continuity from a URDF file or text."""
        lim = joint_limits_from_urdf(path, joint_names)
        names = list(joint_names)
        return cls(names, [lim[j].lower for j in names], [lim[j].upper for j in names], max_step,
                   dict(max_input_age), margin, [lim[j].continuous for j in names])

    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """The effective (lower, upper) after the margin; (-inf, inf) for continuous joints."""
        c = np.asarray(self.continuous)
        lo = np.where(c, -np.inf, np.asarray(self.lower) + self.margin)
        hi = np.where(c, np.inf, np.asarray(self.upper) - self.margin)
        return lo, hi


@dataclass(frozen=True)
class SafetyResult:
    """One tick's decision. ``command`` is None only with reason 'no_safe_command' (publish nothing)."""

    command: np.ndarray | None
    held: bool
    reasons: list[str]
    source: str


class SafetyLayer:
    """Watchdog, e-stop latch, position clip and rate limit. State: ``last_command`` (what was last
    returned; None at start / after a reset), ``holding`` (the last tick was a hold), ``estop_latched``,
    ``estop_sources`` (source -> its last e-stop value), ``stamps`` (input name -> last receive time)
    and ``counters`` (reason -> ticks).

    The e-stop has sources (one per publisher): every ``True`` from any source latches; the robot moves
    only when no source's last value is ``True`` *and* a reset came after the last one cleared. A source
    cannot clear another's e-stop, and a ``True`` immediately followed by ``False`` still latches.
    """

    def __init__(self, config: SafetyConfig):
        self.config = config
        self.lo, self.hi = config.limits()
        self.max_step = np.asarray(config.max_step, dtype=np.float64)
        self.last_command: np.ndarray | None = None
        self.last_measured: np.ndarray | None = None
        self.holding = False
        self.estop_latched = False
        self.estop_sources: dict[str, bool] = {}
        self.stamps: dict[str, float] = {}
        self.counters: dict[str, int] = {}

    @property
    def estop_input(self) -> bool:
        """Is any e-stop source active (its last value True)?"""
        return any(self.estop_sources.values())

    def active_estop_sources(self) -> list[str]:
        return sorted(s for s, v in self.estop_sources.items() if v)

    # ---- inputs ---------------------------------------------------------------------------------
    def update_input(self, name: str, stamp: float) -> None:
        """Record that input ``name`` arrived at ``stamp`` (receive time, node clock). The latest call
        wins: a stamp in the future of ``now`` (the clock jumped back) counts as stale."""
        self.stamps[name] = float(stamp)

    def input_ages(self, now: float) -> dict[str, float | None]:
        """Age of every required input at ``now`` (None: never received), for /diagnostics."""
        return {k: (now - self.stamps[k] if k in self.stamps else None) for k in self.config.max_input_age}

    def estop(self, active: bool, source: str = "default") -> None:
        """An e-stop event from ``source``. True latches the e-stop; False only says that this source no
        longer holds it (it clears nothing: see reset_estop)."""
        self.estop_sources[str(source)] = bool(active)
        if active:
            self.estop_latched = True

    def latch_estop(self) -> None:
        """Latch without changing any source's state (an old True that arrived after a newer False)."""
        self.estop_latched = True

    def reset_estop(self) -> bool:
        """Clear a latched e-stop when no source holds it; True when no e-stop is latched afterwards.
        Motion resumes from the hold target (where the arm was measured) at the rate limit."""
        if self.estop_input:
            return False
        self.estop_latched = False
        return True

    def reset(self) -> None:
        """Forget the last command: the next one is rate-limited from the measured position."""
        self.last_command = None
        self.last_measured = None
        self.holding = False

    # ---- the tick -------------------------------------------------------------------------------
    def step(self, now: float, measured_q: np.ndarray | None, proposed: np.ndarray | None,
             source: str) -> SafetyResult:
        """The command to publish this tick (see the module docstring for the guarantees).

        ``measured_q`` (None: unknown) must have one value per joint, in config order (a wrong shape is
        a programming error: ValueError). A proposal of the wrong shape holds with 'bad_proposal'.
        """
        n = len(self.config.joint_names)
        reasons: list[str] = []
        if self.estop_latched:
            reasons.append("estop")
        for name, max_age in self.config.max_input_age.items():
            if name not in self.stamps:
                reasons.append(f"missing:{name}")
            elif not 0.0 <= now - self.stamps[name] <= max_age:  # NaN, future stamps and old ones
                reasons.append(f"stale:{name}")

        q = None if measured_q is None else np.asarray(measured_q, dtype=np.float64)
        if q is not None and q.shape != (n,):
            raise ValueError(f"measured_q has shape {q.shape}, expected ({n},)")
        if q is None or not np.all(np.isfinite(q)):
            reasons.append("measured_nonfinite")
            q = None
        else:
            if self.last_measured is not None and np.any(np.abs(q - self.last_measured) > self.config.max_measured_jump):
                reasons.append("measured_jump")  # a reset or a glitch: hold where the arm now is
            self.last_measured = q.copy()

        target = None
        if proposed is None:
            reasons.append("no_proposal")
        else:
            try:
                target = np.asarray(proposed, dtype=np.float64)
            except (TypeError, ValueError):
                target = None
            if target is None or target.shape != (n,):
                reasons.append("bad_proposal")
                target = None
            elif not np.all(np.isfinite(target)):
                reasons.append("nonfinite_proposal")
                target = None
        held = bool(reasons)

        base = self.last_command
        measured = None if q is None else np.clip(q, self.lo, self.hi)
        if measured is not None and not np.array_equal(measured, q) and (base is None or held):
            reasons.append("measured_outside_limits")
        if held:
            if measured is not None and (base is None or not self.holding or np.any(
                    np.abs(measured - base) > self.config.hold_repin)):
                base = measured  # freeze where the arm is (at the hold's start, or after a push)
            if base is None:
                return self._finish(None, True, reasons + ["no_safe_command"], source)
            return self._finish(base, True, reasons, source)
        if base is None:
            base = measured

        clipped = np.clip(target, self.lo, self.hi)
        if not np.array_equal(clipped, target):
            reasons.append("clipped_to_limits")
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.all(np.abs(clipped - base) <= self.max_step):  # an overflowed (inf) delta is not small
                reasons.append("rate_limited")
        cmd = clamp_command(target, base, self.max_step, self.lo, self.hi)  # the one kernel (control/limits.py)
        return self._finish(cmd, False, reasons, source)

    def _finish(self, cmd: np.ndarray | None, held: bool, reasons: list[str], source: str) -> SafetyResult:
        for r in reasons:
            self.counters[r] = self.counters.get(r, 0) + 1
        if cmd is not None:
            self.last_command = cmd.copy()
            self.holding = held
            cmd = cmd.copy()
        return SafetyResult(cmd, held, reasons, source)

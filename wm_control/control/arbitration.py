"""Who commands this tick, and whether a plan may be followed: pure functions of plain data and a given
``now`` (no messages, no clock), called by the policy node every tick.

* :func:`choose_source`: the mode's source. ``hold`` (or no joint state yet): nothing; ``teleop``: the
  operator's target while fresh; ``autonomous``: the plan's action when it may be followed, else the
  policy (the reason the plan was not followed is returned, to be counted).
* :func:`follow_plan`: the plan's action for ``now`` or why not. Every number from the wire is checked
  before any arithmetic (a ``dt`` of 5e-324 would overflow ``round(age / dt)``). Reasons, in the order
  they are checked: ``wait_timeout`` (sim time: the plan of the instant did not come in time),
  ``no_plan``, ``uncertain_status`` / ``failed`` / ``no_input`` / ``bad_status`` (the plan's status),
  ``joint_names``, ``malformed`` (horizon < 1; dt non-finite, below :data:`MIN_PLAN_DT` or above the
  maximum age; sizes that do not match; non-finite actions), ``stale`` (older than the maximum age, or
  past its horizon), ``future`` (made from a state after ``now``), ``uncertain`` (the step's uncertainty
  above the threshold, or NaN); else ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

MIN_PLAN_DT = 1e-4  # s: a plan's step; shorter ones are malformed (no controller runs at 10 kHz)
STATUS_REASONS = {1: "uncertain_status", 2: "failed", 3: "no_input"}
"""A plan's status (other than OK, 0) -> the reason it is not followed; any other value: ``bad_status``."""
FALLBACK_REASONS = ("wait_timeout", "no_plan", *STATUS_REASONS.values(), "bad_status", "joint_names", "malformed",
                    "stale", "future", "uncertain")


@dataclass(frozen=True)
class PlanView:
    """A plan's numbers as received (nothing checked yet): ``stamp`` (s, the state it was made from),
    ``dt`` (s per step), ``horizon`` (steps), ``status`` (0 OK), ``joint_names``, ``actions`` (flat,
    row-major ``[step][joint]`` position targets) and ``uncertainty`` (per step)."""

    stamp: float
    dt: float
    horizon: int
    status: int
    joint_names: tuple[str, ...]
    actions: np.ndarray = field(repr=False)
    uncertainty: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, stamp: float, dt: float, horizon: int, status: int, joint_names: Sequence[str],
           actions: Sequence[float], uncertainty: Sequence[float]) -> "PlanView":
        return cls(float(stamp), float(dt), int(horizon), int(status), tuple(joint_names),
                   np.asarray(actions, dtype=np.float64).ravel(), np.asarray(uncertainty, dtype=np.float64).ravel())


def follow_plan(plan: PlanView | None, names: Sequence[str], now: float, acted_at: float, max_plan_age: float,
                threshold: float, timed_out: bool = False) -> tuple[np.ndarray | None, str]:
    """The action of ``plan`` for ``now`` (step ``round(age / dt)``: a plan made from an earlier state still
    gives the action for the current time), or None and why not (see the module). ``age`` is measured
    from ``max(now, acted_at)``: under sim time the instant acted on (the first state may come before its
    clock); ``acted_at`` = -inf otherwise. ``threshold``: the largest per-step uncertainty followed."""
    if timed_out:
        return None, "wait_timeout"
    p = plan
    if p is None:
        return None, "no_plan"
    if p.status != 0:
        return None, STATUS_REASONS.get(p.status, "bad_status")
    if list(p.joint_names) != list(names):
        return None, "joint_names"
    n, K, dt = len(names), p.horizon, p.dt
    if (K < 1 or not (math.isfinite(dt) and MIN_PLAN_DT <= dt <= max_plan_age)
            or p.actions.size != K * n or p.uncertainty.size != K or not np.all(np.isfinite(p.actions))):
        return None, "malformed"
    age = max(now, acted_at) - p.stamp
    if age > max_plan_age:
        return None, "stale"
    k = int(round(age / dt))
    if k < 0:
        return None, "future"
    if k >= K:
        return None, "stale"
    if not p.uncertainty[k] <= threshold:  # NaN is not certain
        return None, "uncertain"
    return p.actions.reshape(K, n)[k], "ok"


class Choice(NamedTuple):
    """``source``: hold | teleop | plan | policy (the safety layer's source, the ``ticks.<source>`` counter);
    ``action``: the teleop target or the plan's action (None: nothing, or for ``policy``: run the policy);
    ``fallback``: why the plan was not followed (None: it was, or it was not consulted)."""

    source: str
    action: np.ndarray | None
    fallback: str | None = None


def choose_source(mode: str, have_state: bool, teleop: np.ndarray | None = None, teleop_age: float = math.inf,
                  max_teleop_age: float = 0.5, plan: tuple[np.ndarray | None, str] | None = None) -> Choice:
    """The source of this tick's proposal. ``mode``: autonomous | teleop | hold; ``have_state``: a joint
    state has been taken; ``teleop``: the operator's last target, received ``teleop_age`` s ago;
    ``plan``: :func:`follow_plan`'s answer when plans are used (None: they are not)."""
    if mode == "hold" or not have_state:
        return Choice(mode, None)
    if mode == "teleop":
        return Choice("teleop", teleop if teleop_age <= max_teleop_age else None)
    if plan is not None:
        action, why = plan
        if action is not None:
            return Choice("plan", action)
        return Choice("policy", None, why)
    return Choice("policy", None)

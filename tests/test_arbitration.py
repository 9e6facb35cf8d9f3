"""The control decisions as pure functions (:mod:`wm_control.control.arbitration`): every reason a plan is
not followed, the step followed for several ages, and the mode's source, on hand-built plans and a given
``now`` (no DDS, no clock, no sleeps)."""

import math

import numpy as np
import pytest

from wm_control.control.arbitration import (
    FALLBACK_REASONS,
    MIN_PLAN_DT,
    PlanView,
    choose_source,
    follow_plan,
)

NAMES = ["joint0", "joint1"]
NOW = 100.0
AGE, THRESHOLD = 0.5, 1.0  # max_plan_age, plan_uncertainty_threshold


def plan(stamp=NOW, dt=0.02, horizon=8, status=0, names=NAMES, actions=None, uncertainty=None) -> PlanView:
    """Step k of the plan targets (k, -k) (each step names itself)."""
    k = np.arange(horizon, dtype=float)
    acts = np.stack([k, -k], axis=1) if actions is None else actions
    unc = np.full(horizon, 0.1) if uncertainty is None else uncertainty
    return PlanView.of(stamp, dt, horizon, status, names, acts, unc)


def follow(p, now=NOW, acted_at=-math.inf, timed_out=False, threshold=THRESHOLD):
    return follow_plan(p, NAMES, now, acted_at, AGE, threshold, timed_out)


@pytest.mark.parametrize("ages_in_steps", [0, 1, 3, 7])
def test_ok_follows_the_step_for_the_current_time(ages_in_steps):
    a, why = follow(plan(stamp=NOW - ages_in_steps * 0.02))
    assert why == "ok" and np.array_equal(a, [ages_in_steps, -ages_in_steps])


@pytest.mark.parametrize("age,k", [(0.009, 0), (0.011, 1), (0.029, 1), (0.031, 2), (0.139, 7)])
def test_ok_rounds_the_age_to_the_nearest_step(age, k):
    a, why = follow(plan(stamp=NOW - age))
    assert why == "ok" and a[0] == k


def test_ok_measures_the_age_from_the_instant_acted_on_when_it_is_later():
    """Sim time: the first state of an instant may come before its /clock; the age counts from the instant."""
    a, why = follow(plan(stamp=NOW), now=NOW - 1.0, acted_at=NOW + 0.04)
    assert why == "ok" and a[0] == 2
    assert follow(plan(stamp=NOW), now=NOW + 0.04, acted_at=NOW - 1.0)[0][0] == 2


def test_wait_timeout_comes_first():
    assert follow(plan(), timed_out=True) == (None, "wait_timeout")
    assert follow(None, timed_out=True) == (None, "wait_timeout")


def test_no_plan():
    assert follow(None) == (None, "no_plan")


@pytest.mark.parametrize("status,reason", [(1, "uncertain_status"), (2, "failed"), (3, "no_input"),
                                           (4, "bad_status"), (-1, "bad_status"), (255, "bad_status")])
def test_status(status, reason):
    assert follow(plan(status=status)) == (None, reason)


def test_a_status_is_judged_before_its_numbers():
    """A NO_INPUT plan has no actions: it says no_input, not malformed."""
    assert follow(plan(status=3, horizon=0, actions=np.zeros(0), uncertainty=np.zeros(0))) == (None, "no_input")


@pytest.mark.parametrize("names", [NAMES[::-1], NAMES[:1], NAMES + ["joint2"], []])
def test_joint_names(names):
    assert follow(plan(names=names)) == (None, "joint_names")


@pytest.mark.parametrize("kw", [
    {"horizon": 0, "actions": np.zeros(0), "uncertainty": np.zeros(0)},  # horizon < 1
    {"horizon": -3, "actions": np.zeros(0), "uncertainty": np.zeros(0)},
    {"dt": math.nan}, {"dt": math.inf}, {"dt": -math.inf},  # dt non-finite
    {"dt": 5e-324}, {"dt": 0.0}, {"dt": -0.02}, {"dt": MIN_PLAN_DT / 2},  # below MIN_PLAN_DT
    {"dt": AGE * 1.01},  # above the maximum age
    {"actions": np.zeros(15)}, {"actions": np.zeros(17)}, {"actions": np.zeros(8)},  # size mismatch
    {"uncertainty": np.zeros(7)}, {"uncertainty": np.zeros(9)},
    {"actions": np.where(np.arange(16) == 5, np.nan, 0.0)},  # non-finite actions
    {"actions": np.where(np.arange(16) == 15, np.inf, 0.0)}, {"actions": np.full(16, -np.inf)},
])
def test_malformed(kw):
    assert follow(plan(**kw)) == (None, "malformed")


def test_dt_at_its_bounds_is_not_malformed():
    assert follow(plan(dt=MIN_PLAN_DT, horizon=4))[1] == "ok"
    assert follow(plan(dt=AGE, horizon=4))[1] == "ok"


def test_a_denormal_dt_does_not_overflow():
    assert follow(plan(stamp=NOW - 0.1, dt=5e-324)) == (None, "malformed")


def test_stale_too_old():
    assert follow(plan(stamp=NOW - AGE - 1e-6, horizon=100)) == (None, "stale")
    assert follow(plan(stamp=NOW - 3600.0)) == (None, "stale")


def test_stale_past_its_horizon():
    assert follow(plan(stamp=NOW - 8 * 0.02, horizon=8)) == (None, "stale")  # k = 8 = horizon
    assert follow(plan(stamp=NOW - 7 * 0.02, horizon=8))[1] == "ok"  # k = 7, the last step
    assert follow(plan(stamp=NOW - 0.02, horizon=1)) == (None, "stale")


def test_future():
    assert follow(plan(stamp=NOW + 0.011)) == (None, "future")  # round(-0.55) = -1
    assert follow(plan(stamp=NOW + 0.009))[1] == "ok"  # within half a step: step 0
    assert follow(plan(stamp=NOW + 0.02), acted_at=NOW + 0.02)[1] == "ok"  # sim time: that instant


@pytest.mark.parametrize("value", [THRESHOLD * 1.001, math.inf, math.nan])
def test_uncertain_at_the_step_followed(value):
    unc = np.full(8, 0.1)
    unc[3] = value
    assert follow(plan(stamp=NOW - 3 * 0.02, uncertainty=unc)) == (None, "uncertain")
    assert follow(plan(stamp=NOW - 2 * 0.02, uncertainty=unc))[1] == "ok"  # another step: certain enough


def test_uncertainty_at_the_threshold_is_followed():
    assert follow(plan(uncertainty=np.full(8, THRESHOLD)))[1] == "ok"
    assert follow(plan(uncertainty=np.full(8, 5.0)), threshold=math.inf)[1] == "ok"


def test_every_reason_is_known():
    assert set(FALLBACK_REASONS) == {"wait_timeout", "no_plan", "uncertain_status", "failed", "no_input",
                                     "bad_status", "joint_names", "malformed", "stale", "future", "uncertain"}


def test_plan_view_reads_wire_sequences():
    p = PlanView.of(1.5, np.float32(0.02), np.uint32(2), np.int8(0), iter(NAMES), [0.0, 1.0, 2.0, 3.0],
                    np.array([0.1, 0.2], np.float32))
    assert p.joint_names == tuple(NAMES) and p.actions.dtype == np.float64 and p.uncertainty.shape == (2,)
    a, why = follow_plan(p, NAMES, 1.52, -math.inf, AGE, THRESHOLD)
    assert why == "ok" and np.array_equal(a, [2.0, 3.0])


# ---- the source --------------------------------------------------------------------------------
TARGET = np.array([0.3, 0.4])
ACTION = np.array([0.5, 0.6])


@pytest.mark.parametrize("mode", ["hold", "teleop", "autonomous"])
def test_nothing_without_a_state_and_nothing_in_hold(mode):
    c = choose_source(mode, have_state=False, teleop=TARGET, teleop_age=0.0, plan=(ACTION, "ok"))
    assert c.source == mode and c.action is None and c.fallback is None
    c = choose_source("hold", have_state=True, teleop=TARGET, teleop_age=0.0, plan=(ACTION, "ok"))
    assert c == ("hold", None, None)


def test_teleop_while_fresh():
    c = choose_source("teleop", True, TARGET, teleop_age=0.5, max_teleop_age=0.5, plan=(ACTION, "ok"))
    assert c.source == "teleop" and c.action is TARGET and c.fallback is None
    assert choose_source("teleop", True, TARGET, teleop_age=0.51, max_teleop_age=0.5) == ("teleop", None, None)
    assert choose_source("teleop", True, None) == ("teleop", None, None)  # never any


def test_autonomous_follows_the_plan_or_says_why_not():
    c = choose_source("autonomous", True, TARGET, 0.0, plan=(ACTION, "ok"))
    assert c.source == "plan" and c.action is ACTION and c.fallback is None
    assert choose_source("autonomous", True, plan=(None, "stale")) == ("policy", None, "stale")
    assert choose_source("autonomous", True, TARGET, 0.0, plan=None) == ("policy", None, None)  # plans not used

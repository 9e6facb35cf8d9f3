"""The safety layer (pure, no graph): property tests over adversarial tick sequences, unit tests, URDF."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wm_control.control.safety import SafetyConfig, SafetyLayer
from wm_control.control.urdf import JointLimit, joint_limits_from_urdf

DATA = Path(__file__).parent / "data"
URDF = DATA / "two_joint.urdf"
AGES = {"joint_states": 0.1, "plan": 0.5}
INF = math.inf


def arm(**kw) -> SafetyLayer:
    """Two revolute joints in [-1, 1] and [-2, 0.5], one continuous; steps 0.05, 0.1, 0.2."""
    args = {"joint_names": ["a", "b", "c"], "lower": [-1.0, -2.0, -INF], "upper": [1.0, 0.5, INF],
            "max_step": [0.05, 0.1, 0.2], "max_input_age": dict(AGES)}
    args.update(kw)
    return SafetyLayer(SafetyConfig(**args))


def fresh(layer: SafetyLayer, now: float) -> None:
    for name in layer.config.max_input_age:
        layer.update_input(name, now)


# ------------------------------------------------------------------------------------------
# Property tests: every emitted command is finite, in limits, rate-limited, and holds on e-stop
# ------------------------------------------------------------------------------------------
BAD = st.sampled_from([math.nan, INF, -INF, 1e300, -1e300, 1.7e308])


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 3))
    cont = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    lower = draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    width = draw(st.lists(st.floats(0.05, 6), min_size=n, max_size=n))
    cfg = SafetyConfig(
        joint_names=[f"j{i}" for i in range(n)],
        lower=[-INF if c else lo for c, lo in zip(cont, lower)],
        upper=[INF if c else lo + w for c, lo, w in zip(cont, lower, width)],
        max_step=draw(st.one_of(st.floats(1e-3, 0.5), st.lists(st.floats(1e-3, 0.5), min_size=n, max_size=n))),
        max_input_age={k: v for k, v in AGES.items() if draw(st.booleans())},
        margin=draw(st.sampled_from([0.0, 0.01, 0.02])),
    )
    lo, hi = cfg.limits()
    span_lo, span_hi = np.where(np.isinf(lo), -10, lo), np.where(np.isinf(hi), 10, hi)

    def vec(extra):  # a joint vector: in range, far outside, near the limits, or adversarial
        el = [st.one_of(st.floats(float(a) - 5, float(b) + 5), st.sampled_from([float(a), float(b)]), extra)
              for a, b in zip(span_lo, span_hi)]
        return st.tuples(*el).map(np.array)

    good = vec(st.nothing())
    tick = st.fixed_dictionaries({
        "dt": st.one_of(st.sampled_from([0.02, 0.02, 0.0, 0.2, 0.6, -1.0]), st.floats(-0.1, 1.0)),
        "ages": st.fixed_dictionaries({k: st.one_of(*[st.floats(0, 0.09)] * 3, st.none(), st.floats(-0.3, 1.0),
                                                    st.just(math.nan)) for k in AGES}),
        "estop": st.sampled_from([None] * 15 + [True, False]),
        "estop_source": st.sampled_from(["a", "b"]),
        "reset_estop": st.sampled_from([False] * 6 + [True]),
        "reset": st.sampled_from([False] * 20 + [True]),
        "measured": st.one_of(*[good] * 4, vec(BAD), st.none()),
        "proposal": st.one_of(*[good] * 4, vec(BAD), vec(st.floats(-1e6, 1e6)), st.none(),
                              st.sampled_from([np.zeros(n + 1), np.zeros((n, 1))])),
    })
    return cfg, draw(st.lists(tick, min_size=20, max_size=80))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_command_is_safe(scenario):
    cfg, ticks = scenario
    layer = SafetyLayer(cfg)
    lo, hi, step = *cfg.limits(), np.asarray(cfg.max_step)
    n = len(cfg.joint_names)
    prev, latched, sources, was_held, now = None, False, {}, False, 100.0
    last_q = None  # the last finite measurement since a reset: a jump from it holds (a reset, a glitch)
    for t in ticks:
        now += t["dt"]
        if t["estop"] is not None:
            layer.estop(t["estop"], t["estop_source"])
            sources[t["estop_source"]] = t["estop"]
            latched |= t["estop"]
        if t["reset_estop"]:
            estop_in = any(sources.values())  # any source still holding refuses the reset
            assert layer.reset_estop() == (not estop_in)
            latched = latched and estop_in
        if t["reset"]:
            layer.reset()
            prev, was_held, last_q = None, False, None
        for name, age in t["ages"].items():
            if age is not None:
                layer.update_input(name, now - age)
        q, p = t["measured"], t["proposal"]
        res = layer.step(now, q, p, "test")

        q_ok = q is not None and bool(np.all(np.isfinite(q)))
        p_ok = p is not None and p.shape == (n,) and bool(np.all(np.isfinite(p)))
        inputs_ok = all(k in layer.stamps and 0 <= now - layer.stamps[k] <= a for k, a in cfg.max_input_age.items())
        jumped = q_ok and last_q is not None and bool(np.any(np.abs(q - last_q) > cfg.max_measured_jump))
        last_q = q if q_ok else last_q
        must_hold = latched or jumped or not (q_ok and p_ok and inputs_ok)
        assert ("measured_jump" in res.reasons) == jumped
        assert layer.estop_latched == latched
        assert res.held == must_hold, res.reasons
        assert ("estop" in res.reasons) == latched
        assert res.source == "test"

        if prev is None and not q_ok:
            assert res.command is None and "no_safe_command" in res.reasons
            continue
        cmd = res.command
        assert cmd is not None and cmd.shape == (n,)
        assert np.all(np.isfinite(cmd))
        assert np.all((lo <= cmd) & (cmd <= hi))
        if must_hold:  # a hold never moves toward a proposal: it freezes where the arm is measured
            if q_ok:
                at = np.clip(q, lo, hi)
                keep = was_held and prev is not None and np.all(np.abs(at - prev) <= cfg.hold_repin)
                assert np.array_equal(cmd, prev if keep else at)
            else:
                assert np.array_equal(cmd, prev)
        else:
            base = prev if prev is not None else np.clip(q, lo, hi)
            assert np.all(np.abs(cmd - base) <= step + 1e-12)
            if not res.reasons:
                assert np.array_equal(cmd, p)
        prev, was_held = cmd, must_hold


# ------------------------------------------------------------------------------------------
# Unit tests
# ------------------------------------------------------------------------------------------
def test_fresh_small_in_range_proposal_passes_unchanged():
    layer = arm()
    fresh(layer, 10.0)
    q = np.array([0.1, -0.5, 3.0])
    p = q + np.array([0.04, -0.09, 0.19])
    res = layer.step(10.05, q, p, "policy")
    assert res.command.tolist() == p.tolist() and not res.held and res.reasons == [] and res.source == "policy"
    assert layer.counters == {}


def test_stale_and_missing_inputs_hold():
    layer = arm()
    q = np.array([0.1, -0.5, 3.0])
    layer.update_input("joint_states", 0.0)
    res = layer.step(0.05, q, q + 0.01, "policy")
    assert res.held and res.reasons == ["missing:plan"] and res.command.tolist() == q.tolist()
    layer.update_input("plan", 0.1)
    res = layer.step(0.2, q, q + 0.01, "policy")
    assert res.held and res.reasons == ["stale:joint_states"] and res.command.tolist() == q.tolist()
    layer.update_input("joint_states", 0.3)  # a stamp in the future of `now` (clock jumped back): stale
    assert layer.step(0.25, q, q, "policy").reasons == ["stale:joint_states"]
    assert layer.counters == {"missing:plan": 1, "stale:joint_states": 2}
    assert layer.input_ages(0.5) == {"joint_states": pytest.approx(0.2), "plan": pytest.approx(0.4)}


def test_estop_latches_until_reset_and_then_restarts_from_measured():
    layer = arm()
    fresh(layer, 0.0)
    q = np.zeros(3)
    layer.step(0.0, q, q + 0.01, "policy")
    layer.estop(True)
    layer.estop(False)  # a pulse: still latched
    for _ in range(3):
        res = layer.step(0.0, q, q + 0.03, "policy")
        assert res.held and res.reasons == ["estop"] and res.command.tolist() == q.tolist()  # where it is
    layer.estop(True)
    assert layer.reset_estop() is False and layer.estop_latched  # refused while the input is active
    layer.estop(False)
    moved = np.array([0.5, -1.0, 7.0])  # the robot was pushed while stopped: re-freeze where it is
    assert layer.step(0.0, moved, moved + 0.5, "policy").command.tolist() == moved.tolist()
    assert layer.reset_estop() is True and not layer.estop_latched
    res = layer.step(0.0, moved, moved + 0.01, "policy")
    assert not res.held and res.command.tolist() == (moved + 0.01).tolist()


def test_hold_freezes_at_the_measured_position_not_the_lead():
    """The arm lags its command (the lead): a hold commands where it is, so it stops there; a small
    sag keeps the target, a push re-freezes; the release is rate-limited from the hold target."""
    layer = arm(max_step=0.05)
    fresh(layer, 0.0)
    q = np.zeros(3)
    for k in range(4):  # the command runs 0.2 rad ahead of the arm
        layer.step(0.0, q, q + 1.0, "policy")
    assert np.allclose(layer.last_command, 0.2)
    layer.estop(True, "pendant")
    res = layer.step(0.0, q + 0.01, q + 1.0, "policy")
    assert res.held and res.command.tolist() == (q + 0.01).tolist()  # not 0.2: where it is
    assert layer.step(0.0, q + 0.02, q, "policy").command.tolist() == (q + 0.01).tolist()  # sag: hold on
    pushed = np.array([0.7, -1.2, 3.0])  # well past hold_repin (4 x 0.05)
    assert layer.step(0.0, pushed, q, "policy").command.tolist() == pushed.tolist()  # pushed: no drive back
    layer.estop(False, "pendant")
    assert layer.reset_estop()
    res = layer.step(0.0, pushed, q, "policy")
    assert not res.held and np.allclose(np.abs(res.command - pushed), 0.05)  # released at the rate limit


def test_a_jump_in_the_measurement_holds_where_the_arm_now_is():
    """A reset teleports the arm (or a driver restarts): the next tick holds at the new measurement, so the
    rate limit starts there and not from the last command, which is far from the arm; ordinary motion
    (within twice max_step per tick) never trips it."""
    layer = arm(max_step=0.05)
    fresh(layer, 0.0)
    q = np.zeros(3)
    for k in range(10):  # moving at the rate limit: no jump
        q = layer.step(0.0, q, q + 1.0, "policy").command
        assert "measured_jump" not in layer.counters
    assert np.allclose(q, 0.5)
    rest = np.array([-0.3, 0.0, 0.1])  # a full reset: 0.8 rad away on the first joint
    res = layer.step(0.0, rest, rest + 1.0, "policy")
    assert res.held and "measured_jump" in res.reasons and res.command.tolist() == rest.tolist()
    res = layer.step(0.0, rest, rest + 1.0, "policy")
    assert not res.held and np.allclose(res.command, rest + 0.05)  # from the arm, at the rate limit
    assert SafetyConfig(["j"], [-1.0], [1.0], 0.1).max_measured_jump == pytest.approx(0.2)


def test_estop_sources_cannot_clear_each_other():
    layer = arm()
    fresh(layer, 0.0)
    q = np.zeros(3)
    layer.estop(True, "pendant")
    layer.estop(False, "teleop")  # another source's false + reset: refused, still holding
    assert layer.reset_estop() is False and layer.active_estop_sources() == ["pendant"]
    assert layer.step(0.0, q, q + 0.01, "policy").held
    layer.estop(False, "pendant")
    assert layer.step(0.0, q, q + 0.01, "policy").held  # cleared, but no reset yet
    assert layer.reset_estop() is True
    assert not layer.step(0.0, q, q + 0.01, "policy").held


def test_bad_proposals_hold():
    layer = arm()
    fresh(layer, 0.0)
    q = np.array([0.2, 0.0, 0.0])
    for p, reason in [(None, "no_proposal"), (np.array([0.2, np.nan, 0.0]), "nonfinite_proposal"),
                      (np.array([0.2, 0.0, np.inf]), "nonfinite_proposal"), (np.zeros(2), "bad_proposal"),
                      (["x", 1, 2], "bad_proposal")]:
        res = layer.step(0.0, q, p, "teleop")
        assert res.held and res.reasons == [reason] and res.command.tolist() == q.tolist()


def test_clip_and_rate_limit():
    layer = arm(margin=0.1)
    fresh(layer, 0.0)
    q = np.array([0.85, 0.35, 0.0])
    res = layer.step(0.0, q, np.array([5.0, 0.0, -1.0]), "planner")
    assert not res.held and res.reasons == ["clipped_to_limits", "rate_limited"]
    assert res.command == pytest.approx([0.9, 0.25, -0.2])
    # measured outside the margin-shrunk limits: the first command starts from the clipped position
    layer = arm(margin=0.1)
    fresh(layer, 0.0)
    res = layer.step(0.0, np.array([0.95, 0.0, 0.0]), np.array([0.95, 0.0, 0.0]), "planner")
    assert res.command.tolist() == [0.9, 0.0, 0.0]
    assert res.reasons == ["measured_outside_limits", "clipped_to_limits"]


def test_continuous_joint_is_not_wrapped():
    layer = arm()
    fresh(layer, 0.0)
    q = np.array([0.0, 0.0, 1.0])
    res = layer.step(0.0, q, q + np.array([0, 0, 2 * math.pi - 1e-3]), "policy")
    assert res.reasons == ["rate_limited"] and res.command[2] == pytest.approx(1.2)  # +0.2, not -0.001
    res = layer.step(0.0, q, np.array([0.0, 0.0, 1e300]), "policy")
    assert res.reasons == ["rate_limited"] and res.command[2] == pytest.approx(1.4)  # no clip, still limited


def test_nonfinite_measured():
    layer = arm()
    fresh(layer, 0.0)
    res = layer.step(0.0, np.array([np.nan, 0, 0]), np.zeros(3), "policy")
    assert res.command is None and res.held and res.reasons == ["measured_nonfinite", "no_safe_command"]
    assert layer.step(0.0, None, np.zeros(3), "policy").command is None
    q = np.array([0.1, 0.1, 0.1])
    layer.step(0.0, q, q, "policy")
    res = layer.step(0.0, np.array([np.inf, 0, 0]), np.zeros(3), "policy")
    assert res.held and res.reasons == ["measured_nonfinite"] and res.command.tolist() == q.tolist()
    with pytest.raises(ValueError, match="shape"):
        layer.step(0.0, np.zeros(2), np.zeros(3), "policy")


@pytest.mark.parametrize("kw,err", [
    ({"lower": [-1.0, -2.0]}, "lower has 2 values for 3 joints"),
    ({"max_step": [0.1, 0.1]}, "max_step has 2 values"),
    ({"joint_names": ["a", "a", "c"]}, "unique"),
    ({"lower": [1.0, -2.0, -INF]}, "lower \\+ margin < upper - margin"),
    ({"margin": 1.0}, "lower \\+ margin < upper - margin"),
    ({"margin": -0.1}, "margin must be"),
    ({"max_step": 0.0}, "max_step must be finite and > 0"),
    ({"max_step": [0.1, math.nan, 0.1]}, "max_step must be finite and > 0"),
    ({"upper": [INF, 0.5, INF]}, "must be finite"),
    ({"lower": [-1.0, -2.0, 0.0]}, "must be finite"),
    ({"continuous": [True, False, True]}, "continuous joint 'a' must have limits"),
    ({"max_input_age": {"joint_states": 0.0}}, "max_input_age"),
    ({"max_input_age": {"plan": math.nan}}, "max_input_age"),
])
def test_config_validation(kw, err):
    with pytest.raises(ValueError, match=err):
        arm(**kw)


def test_config_normalises():
    cfg = arm(max_step=0.1).config
    assert cfg.max_step == [0.1, 0.1, 0.1] and cfg.continuous == [False, False, True]


# ------------------------------------------------------------------------------------------
# URDF
# ------------------------------------------------------------------------------------------
def test_urdf_limits():
    lim = joint_limits_from_urdf(URDF, ["wrist", "shoulder"])
    assert list(lim) == ["wrist", "shoulder"]
    assert lim["shoulder"] == JointLimit(-1.4, 1.5, 2.0, False)  # soft lower narrows; soft upper is wider
    assert lim["wrist"] == JointLimit(-INF, INF, 4.0, True)
    assert joint_limits_from_urdf(URDF.read_text(), ["shoulder"]) == {"shoulder": lim["shoulder"]}


def test_urdf_config():
    cfg = SafetyConfig.from_urdf(str(URDF), ["shoulder", "wrist"], max_step=[0.04, 0.08], max_input_age=AGES)
    assert cfg.lower == [-1.4, -INF] and cfg.upper == [1.5, INF] and cfg.continuous == [False, True]


@pytest.mark.parametrize("names,err", [
    (["shoulder", "elbow"], "missing joints \\['elbow'\\]"),
    (["phantom"], "missing joints \\['phantom'\\]"),  # a <transmission>'s <joint> is not a joint
    (["tool_mount"], "type 'fixed'"),
])
def test_urdf_joint_errors(names, err):
    with pytest.raises(ValueError, match=err):
        joint_limits_from_urdf(URDF, names)


@pytest.mark.parametrize("joint,err", [
    ('<joint name="j" type="revolute"/>', "revolute joint 'j' has no <limit>"),
    ('<joint name="j" type="prismatic"><limit lower="0" velocity="1"/></joint>', "lacks \\['upper'\\]"),
    ('<joint name="j" type="revolute"><limit lower="1" upper="0" velocity="1"/></joint>', "lower <= upper"),
    ('<joint name="j" type="revolute"><limit lower="a" upper="0" velocity="1"/></joint>', "bad number"),
    ('<joint name="j" type="revolute"><limit lower="0" upper="1" velocity="0"/></joint>', "velocity"),
])
def test_urdf_limit_errors(joint, err):
    with pytest.raises(ValueError, match=err):
        joint_limits_from_urdf(f'<robot name="r">{joint}</robot>', ["j"])


@pytest.mark.parametrize("text,err", [
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><robot name="&a;"/>', "DOCTYPE"),
    ('<robot name="r"><joint', "not well-formed"),
    ('<sdf/>', "expected <robot>"),
])
def test_urdf_refuses_bad_documents(text, err):
    with pytest.raises(ValueError, match=err):
        joint_limits_from_urdf(text, ["j"])


def test_urdf_missing_file():
    with pytest.raises(ValueError, match="cannot read"):
        joint_limits_from_urdf(DATA / "nope.urdf", ["j"])

"""The uncertainty-aware planner: the MPPI core on a model with known dynamics and on a trained
(debug) ensemble, the planner node over DDS, and the policy node following plans (real time: the
time-indexed action, fallbacks with their reasons; sim time: waiting for the plan of the instant,
then the grace period)."""

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import NodeProcess
from wm_control.control.limits import clamp_sequence
from wm_control.control.planner import STATUS_FAILED, STATUS_OK, STATUS_UNCERTAIN, Planner, PlannerConfig
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode
from wm_control.world.bundle import BundleError, write_bundle

NAMES = ["joint0", "joint1"]
DT = 0.02


# ------------------------------------------------------------------------------------------
# A model with known dynamics: member m moves q a fraction gain[m] of the way to the target in one
# step, so members disagree exactly as far as the arm is asked to move; reward -|q - goal xy| (the
# goal's x, y read as joint targets). Its policy holds still. Exported as a real bundle.
# ------------------------------------------------------------------------------------------
class ToyEnsemble(torch.nn.Module):
    def __init__(self, gains):
        super().__init__()
        self.register_buffer("gain", torch.tensor(gains, dtype=torch.float32).reshape(-1, 1, 1))

    def forward(self, state_window, action_window, goal):
        q = state_window[:, :, -1, :2]
        nq = q + self.gain * (action_window[:, :, -1] - q)
        return torch.cat([nq, (nq - q) / DT], dim=-1), -torch.linalg.vector_norm(nq - goal[..., :2], dim=-1)


class HoldPolicy(torch.nn.Module):
    def forward(self, obs):
        return obs[:, :2] * 0.0


def toy_bundle(out: Path, gains=(0.5, 0.6, 0.7), limits=((-3.0, 3.0), (-3.0, 3.0)), with_policy=True) -> Path:
    src = out.parent / (out.name + "_src")
    src.mkdir(parents=True, exist_ok=True)
    M, H = len(gains), 4
    dyn = {k: {1: "batch"} for k in ("state_window", "action_window", "goal", "next_state", "reward")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ToyEnsemble(gains), (torch.zeros(M, 2, H, 4), torch.zeros(M, 2, H, 2), torch.zeros(M, 2, 3)),
                          str(src / "ensemble.onnx"), dynamo=False, opset_version=17, dynamic_axes=dyn,
                          input_names=["state_window", "action_window", "goal"], output_names=["next_state", "reward"])
        torch.onnx.export(HoldPolicy(), (torch.zeros(2, 7),), str(src / "policy.onnx"), dynamo=False, opset_version=17,
                          input_names=["obs"], output_names=["action"],
                          dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}})
    graphs = {"ensemble": (src / "ensemble.onnx", {
        "inputs": {"state_window": {"shape": [M, -1, H, 4], "dtype": "float32"},
                   "action_window": {"shape": [M, -1, H, 2], "dtype": "float32"},
                   "goal": {"shape": [M, -1, 3], "dtype": "float32"}},
        "outputs": {"next_state": {"shape": [M, -1, 4], "dtype": "float32"},
                    "reward": {"shape": [M, -1], "dtype": "float32"}},
        "members": M, "history": H})}
    if with_policy:
        graphs["policy"] = (src / "policy.onnx", {
            "inputs": {"obs": {"shape": [-1, 7], "dtype": "float32"}},
            "outputs": {"action": {"shape": [-1, 2], "dtype": "float32"}},
            "observation": "joint_trig_goal", "action": "delta_position"})
    return write_bundle(out, graphs, robot={"name": "toy", "joint_names": NAMES, "control_rate": 1 / DT,
                                            "max_step": 0.15, "position_limits": [list(lim) for lim in limits]},
                        normalizers={"ensemble_uncertainty_scale": {"std": [1.0, 1.0, 1.0, 1.0]}},
                        thresholds={"first_step_p99": 0.05, "uncertainty_p99": 1.0})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_bundle(tmp_path_factory.mktemp("toy") / "bundle")


def at_rest(q):
    q = np.asarray(q, float)
    return np.repeat(np.concatenate([q, np.zeros(2)])[None], 4, 0), np.repeat(q[None], 3, 0)


def planner(bundle, **kw):
    return Planner(bundle, PlannerConfig(device="cpu", threads=1, **kw))


# ------------------------------------------------------------------------------------------
# The core
# ------------------------------------------------------------------------------------------
def test_plans_obey_limits_and_rate_limit(toy):
    lower, upper = [-0.3, -0.5], [0.3, 0.5]
    p = planner(toy, max_step=0.02, position_lower=lower, position_upper=upper, noise_std=1.0, samples=64, lam=0.0)
    states, acts = at_rest([0.25, -0.45])
    prev = np.array([0.29, -0.49])
    plan = p.plan(states, acts, np.array([2.0, -2.0, 0.0]), prev_command=prev)  # the goal is out of reach
    a = plan.actions
    assert a.shape == (16, 2) and plan.status in (STATUS_OK, STATUS_UNCERTAIN)
    assert np.all(a >= np.array(lower) - 1e-9) and np.all(a <= np.array(upper) + 1e-9)
    steps = np.abs(np.diff(np.concatenate([prev[None], a]), axis=0))
    assert np.all(steps <= 0.02 + 1e-6)
    # the clamps themselves: a target with a non-finite value holds the previous one (every joint, as the
    # safety layer holds), then limits and rate limit
    u = np.array([[[np.nan, 5.0], [0.0, -5.0]]])
    c = clamp_sequence(u, np.array([0.1, 0.1]), np.array([0.02, 0.02]), np.array(lower), np.array(upper))
    assert np.allclose(c, [[[0.1, 0.1], [0.08, 0.08]]])


def test_plan_beats_the_policys_proposal_and_lam_buys_certainty(toy):
    states, acts = at_rest([0.0, 0.0])
    goal = np.array([0.6, -0.4, 0.0])
    bold = planner(toy, lam=0.0, warm_start=False).plan(states, acts, goal)
    assert bold.expected_return > bold.nominal_return + 0.2  # the policy holds still; the plan moves
    assert np.linalg.norm(bold.actions[-1] - goal[:2]) < np.linalg.norm(goal[:2])
    careful = planner(toy, lam=0.1, warm_start=False).plan(states, acts, goal)
    assert careful.uncertainty.sum() < 0.1 * bold.uncertainty.sum()
    assert careful.expected_return < bold.expected_return  # certainty costs return here


def test_warm_start_shifts_the_last_plan_and_continues_the_optimisation(toy):
    states, acts = at_rest([0.0, 0.0])
    goal = np.array([0.6, -0.4, 0.0])
    p = planner(toy, lam=0.0)
    first = p.plan(states, acts, goal, stamp=10.0)
    assert not first.warm
    shifted = p.warm_start_for(10.0 + DT, goal)
    assert np.array_equal(shifted, np.concatenate([first.actions[1:], first.actions[-1:]]))
    assert np.array_equal(p.warm_start_for(10.0, goal), first.actions)
    assert p.warm_start_for(10.0 + 20 * DT, goal) is None  # older than the horizon
    assert p.warm_start_for(10.0 - DT, goal) is None  # from the future
    assert p.warm_start_for(10.0 + DT, goal + 0.1) is None  # another goal
    assert p.plan(states, acts, goal, stamp=10.0 + DT).warm
    # re-planning at the same instant keeps optimising from where the last plan left off; a cold start does not
    p.reset()
    warm_costs = [p.plan(states, acts, goal, stamp=10.0).cost for _ in range(6)]
    cold = planner(toy, lam=0.0, warm_start=False)
    cold_costs = [cold.plan(states, acts, goal, stamp=10.0).cost for _ in range(6)]
    assert np.all(np.diff(warm_costs) < 0)
    assert warm_costs[-1] < min(cold_costs) - 0.5


def test_status_uncertain_and_failed(toy):
    states, acts = at_rest([0.0, 0.0])
    goal = np.array([0.6, -0.4, 0.0])
    p = planner(toy, lam=0.0)  # threshold: the bundle's first_step_p99 (0.05); moving makes members disagree
    plan = p.plan(states, acts, goal)
    assert p.threshold == 0.05
    assert plan.status == STATUS_UNCERTAIN and "first-step uncertainty" in plan.message
    assert plan.uncertainty[0] > 0.05
    assert planner(toy, lam=0.0, uncertainty_threshold=10.0).plan(states, acts, goal).status == STATUS_OK
    bad = states.copy()
    bad[-1, 0] = np.nan
    failed = p.plan(bad, acts, goal)
    assert failed.status == STATUS_FAILED and "non-finite input" in failed.message
    assert np.allclose(failed.actions, acts[-1])  # holds the command in force
    failed = p.plan(states, acts, np.array([np.inf, 0.0, 0.0]))  # every candidate's reward is non-finite
    assert failed.status == STATUS_FAILED and "non-finite" in failed.message
    assert p.last is None  # no warm start from a failure
    with pytest.raises(ValueError, match="needs states"):
        p.plan(states[:2], acts, goal)


def test_bundle_without_ensemble_or_policy_is_refused(toy, tmp_path, debug_bc):
    _, bc = debug_bc
    with pytest.raises(BundleError, match="'ensemble' graph"):
        Planner(bc)
    with pytest.raises(BundleError, match="'policy' graph.*--policy-bundle"):
        Planner(toy_bundle(tmp_path / "no_policy", with_policy=False))


def test_uncertainty_is_the_ensembles_own_along_member_trajectories(debug_ensemble):
    import copy

    from tests.numerics import assert_export_matches
    from wm_control.train.ensemble import load_ensemble

    ckpt, bundle = debug_ensemble
    model, meta = load_ensemble(ckpt)
    p = planner(bundle, horizon=8, samples=16, reward="head")
    assert p.threshold == pytest.approx(meta["thresholds"]["first_step_p99"])
    rng = np.random.default_rng(0)
    states, acts = at_rest([0.3, -0.5])
    goal = np.array([0.1, -0.1, 0.01])
    u = clamp_sequence(acts[-1] + 0.05 * rng.standard_normal((5, 8, 2)), acts[-1], p.max_step, p.lo, p.hi)
    r = p._rollout(states.astype(np.float32), acts.astype(np.float32), goal, u, acts[-1], policy_row=False)
    t = torch.as_tensor
    aw = t(np.concatenate([np.repeat(acts[None], 5, 0), u[:, :1]], axis=1), dtype=torch.float32)
    sw = t(np.repeat(states[None], 5, 0), dtype=torch.float32)
    g = t(np.repeat(goal[None], 5, 0), dtype=torch.float32)
    with torch.no_grad():  # float32 as trained, float64 as exact: tests/numerics.py
        ref_states, ref_rewards = model.rollout(sw, aw, t(u[:, 1:], dtype=torch.float32), g)
        m64 = copy.deepcopy(model).double()
        ex_states, ex_rewards = m64.rollout(sw.double(), aw.double(), t(u[:, 1:], dtype=torch.float64), g.double())
    assert_export_matches(r["uncertainty"], model.uncertainty(ref_states).numpy(), m64.uncertainty(ex_states).numpy(),
                          "uncertainty along the planner's rollouts")
    assert_export_matches(r["rewards"], ref_rewards.mean(0).numpy(), ex_rewards.mean(0).numpy(),
                          "rewards along the planner's rollouts")
    # by default (the bundle has the robot's kinematic chain) the reward is the task's, from each member's state
    from wm_control.control.kinematics import chain_from_sim

    pk = planner(bundle, horizon=8, samples=16)
    assert pk.chain is not None
    rk = pk._rollout(states.astype(np.float32), acts.astype(np.float32), goal, u, acts[-1], policy_row=False)
    chain = chain_from_sim("reacher")
    expected = chain.reach_reward(ref_states[..., :2].double(), t(goal)[None, None, None])
    exact = chain.reach_reward(ex_states[..., :2], t(goal)[None, None, None])
    assert_export_matches(rk["rewards"], expected.mean(0).numpy(), exact.mean(0).numpy(), "kinematic rewards")
    plan = p.plan(states, acts, goal, stamp=0.0)
    assert plan.status in (STATUS_OK, STATUS_UNCERTAIN) and np.all(np.isfinite(plan.actions))


# ------------------------------------------------------------------------------------------
# The planner node
# ------------------------------------------------------------------------------------------
def stamp_of(m) -> float:
    return cv.stamp_sec(m.header.stamp)


def test_planner_node_publishes_plans_from_the_state_it_planned(toy):
    node = DdsNode("planner_rig")
    plans, stamps = [], []
    ns = "/planner_test"  # topics of its own: a latched /goal of another test's graph must not reach it
    node.create_subscription("wm_control/msg/Plan", f"{ns}/plan", plans.append, qos.QoSProfile(depth=100))
    js = node.create_publisher("sensor_msgs/msg/JointState", f"{ns}/joint_states", qos.SENSOR_DATA)
    cmd = node.create_publisher("std_msgs/msg/Float64MultiArray", f"{ns}/commands")
    goal = node.create_publisher("geometry_msgs/msg/PointStamped", f"{ns}/goal", qos.LATCHED)
    q = np.array([0.2, -0.3])

    def tick():
        t = node.now()
        stamps.append(t)
        js.publish(cv.make_joint_state(node.msg, t, NAMES[::-1], q[::-1], np.zeros(2)))  # by name, any order

    node.create_timer(0.01, tick)
    node.create_timer(DT, lambda: cmd.publish(cv.make_multiarray(node.msg, q[::-1])))  # in joint_order
    with NodeProcess("planner", "-p", f"bundle:={toy}", "-p", "device:=cpu", "-p", "threads:=1", "-p", "samples:=64",
                     "-p", "horizon:=8", "-p", "rate:=25.0", "-p", f"joint_order:={NAMES[::-1]}",
                     "-r", f"/wm/plan:={ns}/plan", "-r", f"/joint_states:={ns}/joint_states", "-r", f"/goal:={ns}/goal",
                     "-r", f"/forward_position_controller/commands:={ns}/commands") as proc:
        # under load the first plans may still wait for states or commands: await the one that wants a goal
        assert node.spin(until=lambda: any("no goal" in m.message for m in plans), timeout=30), proc.output()
        assert all(m.status == 3 and m.horizon == 0 for m in plans)  # NO_INPUT
        goal.publish(cv.make_point(node.msg, node.now(), np.array([0.5, -0.5, 0.0])))
        assert node.spin(until=lambda: sum(m.status in (0, 1) for m in plans) >= 10, timeout=15), proc.output()
    node.destroy()
    good = [m for m in plans if m.status in (0, 1)]
    for m in good:
        assert list(m.joint_names) == NAMES and m.dt == pytest.approx(DT) and m.horizon == 8
        a = np.asarray(m.actions).reshape(8, 2)
        assert len(m.uncertainty) == 8 and np.all(np.isfinite(m.uncertainty))
        assert min(abs(stamp_of(m) - s) for s in stamps) < 1e-6  # the stamp of a state it received
        steps = np.abs(np.diff(np.concatenate([q[None], a]), axis=0))  # from the command in force
        assert np.all(steps <= 0.15 + 1e-6)
        assert np.isfinite(m.expected_return)
    s = [stamp_of(m) for m in good]
    assert np.all(np.diff(s) > 0)  # each plan from a newer state
    assert 0.02 < np.median(np.diff(s)) < 0.08  # ~25 Hz


# ------------------------------------------------------------------------------------------
# The policy node following plans
# ------------------------------------------------------------------------------------------
Q0 = np.array([0.1, -0.2])
STEP = np.array([0.01, 0.02])


class PlanRig:
    """Joint states at Q0 (100 Hz), a goal, plans published by the test, and every command recorded."""

    def __init__(self, sim_time: bool = False):
        self.node = n = DdsNode("plan_rig")
        self.cmds: list[tuple[float, np.ndarray]] = []
        self.plans: dict[float, np.ndarray] = {}
        self.diag: dict[str, dict] = {}
        n.create_subscription("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands",
                              lambda m: self.cmds.append((time.monotonic(), np.asarray(m.data, float).copy())),
                              qos.QoSProfile("reliable", "volatile", 1000))
        n.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", self._diag, qos.DIAGNOSTICS)
        n.create_subscription("wm_control/msg/Plan", "/wm/plan", self._plan, qos.QoSProfile(depth=100))
        self.js = n.create_publisher("sensor_msgs/msg/JointState", "/joint_states", qos.SENSOR_DATA)
        self.pub_plan = n.create_publisher("wm_control/msg/Plan", "/wm/plan")
        self.clock = n.create_publisher("rosgraph_msgs/msg/Clock", "/clock", qos.CLOCK)
        n.create_publisher("geometry_msgs/msg/PointStamped", "/goal", qos.LATCHED).publish(
            cv.make_point(n.msg, 0.0, np.array([0.1, 0.1, 0.0])))
        self.plan_kw: dict | None = None
        if not sim_time:
            n.create_timer(0.01, lambda: self.js.publish(cv.make_joint_state(n.msg, n.now(), NAMES, Q0, np.zeros(2))))
            n.create_timer(DT, self._publish_plan)

    def _diag(self, m):
        for s in m.status:
            self.diag[s.name] = {kv.key: kv.value for kv in s.values} | {"_msg": s.message}

    def _plan(self, m):
        if m.status == 0:
            self.plans[round(stamp_of(m), 6)] = np.asarray(m.actions).reshape(m.horizon, -1)

    def _publish_plan(self):
        if self.plan_kw is not None:
            self.pub_plan.publish(self.make_plan(self.node.now() - self.plan_kw.get("age", 0.0), **self.plan_kw))

    def make_plan(self, stamp, age=0.0, status=0, names=NAMES, uncertainty=0.0, horizon=16):
        m = self.node.msg
        acts = Q0 + np.arange(horizon)[:, None] * STEP
        return m("wm_control/msg/Plan", header=cv.header(m, stamp), joint_names=list(names), dt=DT, horizon=horizon,
                 actions=acts.ravel(), uncertainty=np.full(horizon, uncertainty, np.float32), expected_return=0.0,
                 status=status, message="test plan")

    def counter(self, key: str) -> int:
        return int(self.diag.get("policy", {}).get(key, 0))

    def run(self, seconds):
        self.node.spin(timeout=seconds)


@pytest.fixture(scope="class")
def plan_follower(toy):
    with NodeProcess("policy", "-p", f"bundle:={toy}", "-p", "device:=cpu", "-p", "use_plan:=true",
                     "-p", "max_plan_age:=0.3", "-p", "plan_uncertainty_threshold:=0.5", "-p", "max_step:=0.5",
                     "-p", "track_frames:=false", "-r", "/wm/mode:=/plan_test/mode") as p:
        rig = PlanRig()
        assert rig.node.spin(until=lambda: len(rig.cmds) > 5, timeout=20), p.output()
        yield rig, p
        rig.node.destroy()


class TestPlanFollowing:
    """One policy node (real time) fed plans by the test; it is stopped before the lock-step test."""

    def test_follows_the_time_indexed_action_of_a_fresh_plan(self, plan_follower):
        rig, proc = plan_follower
        rig.plan_kw = {"age": 3 * DT}  # made from the state of three control periods ago
        rig.run(0.3)
        start, plan0 = len(rig.cmds), rig.counter("ticks.plan")
        rig.run(1.3)
        cmds = np.stack([c for _, c in rig.cmds[start:]])
        k = (cmds - Q0) / STEP  # the plan's step index each command came from
        assert np.allclose(k[:, 0], k[:, 1]) and np.allclose(k, np.round(k), atol=1e-6), cmds
        idx = np.round(k[:, 0]).astype(int)  # round((now - stamp) / dt): 3 periods + delivery (+ load spikes)
        assert idx.min() >= 3 and int(np.median(idx)) in {3, 4, 5}, idx
        assert rig.counter("ticks.plan") > plan0 + 30
        assert "via plan" in rig.diag["policy"]["_msg"]

    @pytest.mark.parametrize("kw,reason", [({"age": 1.0}, "stale"), ({"uncertainty": 1.0}, "uncertain"),
                                           ({"names": NAMES[::-1]}, "joint_names"),
                                           ({"status": 1}, "uncertain_status")])
    def test_falls_back_to_the_policy_and_says_why(self, plan_follower, kw, reason):
        rig, proc = plan_follower
        rig.plan_kw = kw
        rig.run(0.3)
        start, before = len(rig.cmds), rig.counter(f"plan_fallback.{reason}")
        rig.run(1.2)  # diagnostics come at 1 Hz
        cmds = np.stack([c for _, c in rig.cmds[start:]])
        assert np.allclose(cmds, Q0, atol=1e-9)  # the (holding) policy's command, none of the plan's
        assert rig.counter(f"plan_fallback.{reason}") > before + 20
        assert f"plan not followed: {reason}" in rig.diag["policy"]["_msg"], rig.diag["policy"]


def test_sim_time_waits_for_the_plan_of_the_instant_then_falls_back_after_the_grace(toy):
    """Lock-step: the rig is the simulator (state + /clock at T, then it waits for the command); the real
    planner plans from every instant and the policy acts on that plan; without a planner, after plan_wait.
    (Diagnostics run on sim time: they come when sim time passes a whole second.)"""
    rig = PlanRig(sim_time=True)
    n = rig.node
    q = Q0.copy()
    sim = ["-p", "use_sim_time:=true", "-p", f"bundle:={toy}", "-p", "device:=cpu"]
    with NodeProcess("planner", *sim, "-p", "threads:=1", "-p", "samples:=32", "-p", "horizon:=8", "-p", "lam:=0.0",
                     "-p", "uncertainty_threshold:=100.0") as planner_proc, \
            NodeProcess("policy", *sim, "-p", "use_plan:=true", "-p", "plan_wait:=0.4", "-p", "max_step:=0.5",
                        "-p", "plan_uncertainty_threshold:=100.0", "-p", "track_frames:=false",
                        "-p", "max_joint_state_age:=5.0") as policy_proc:
        n.spin(timeout=1.0)  # discovery

        def step(t: float, first: bool = False) -> float:
            nonlocal q
            before = len(rig.cmds)
            t0 = time.monotonic()
            while True:  # the state of instant t and its clock (again, if nobody answered: discovery)
                rig.js.publish(cv.make_joint_state(n.msg, t, NAMES, q, np.zeros(2)))
                rig.clock.publish(n.msg("rosgraph_msgs/msg/Clock",
                                        clock=n.msg("builtin_interfaces/msg/Time", **cv.time_fields(t))))
                if n.spin(until=lambda: len(rig.cmds) > before, timeout=0.6 if first else 10.0):
                    break
                assert first and time.monotonic() - t0 < 5, (t, len(rig.cmds), planner_proc.output() + policy_proc.output())
            n.spin(timeout=0.03)
            q = rig.cmds[-1][1].copy()  # a perfect servo
            return rig.cmds[-1][0] - t0

        step(DT, first=True)
        for i in range(2, 56):  # through t = 1 s, when the policy's diagnostics come
            t = round(i * DT, 6)
            step(t)
            assert t in rig.plans, (t, sorted(rig.plans)[-5:], policy_proc.output())
            np.testing.assert_allclose(q, rig.plans[t][0], atol=1e-9)  # the plan made from this very instant
        n.spin(timeout=0.3)
        assert rig.counter("ticks.plan") >= 45 and rig.counter("plan_fallback.wait_timeout") == 0, rig.diag
        planner_proc.stop()
        for i in range(56, 59):
            held = q.copy()
            assert step(round(i * DT, 6)) >= 0.35  # the grace, then the (holding) policy
            np.testing.assert_allclose(q, held, atol=1e-9)
        step(2.02)  # sim time passes 2 s: the diagnostics of the timeouts
        n.spin(timeout=0.3)
        assert rig.counter("plan_fallback.wait_timeout") >= 3, rig.diag
        assert "plan not followed: wait_timeout" in rig.diag["policy"]["_msg"]
    n.destroy()

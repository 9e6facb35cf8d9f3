"""Random plans, goals, joint states and stamps straight into the policy node's handlers (no DDS, a fake
clock): no input kills the node or blinds it, and every command it publishes stays safe."""

import logging
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wm_control.messages import convert as cv
from wm_control.messages import registry
from wm_control.ros.nodes.policy import PolicyConfig, PolicyNode

MAX_STEP = 0.05
LOWER, UPPER = [-1.0, -1.5], [1.0, 1.5]
make = registry().new


class _Pub:
    def __init__(self):
        self.sent = []

    def publish(self, msg):
        self.sent.append(msg)


class _Timer:
    def __init__(self, period, cb):
        self.period, self.cb = period, cb


class FakeNode:
    """Just enough of :class:`wm_control.ros.api.Node` for PolicyNode; the test fires the control tick."""

    name, namespace, backend = "fuzz_policy", "/", "fake"

    def __init__(self, sim_time: bool = False):
        self.t, self.use_sim_time = 1000.0, sim_time
        self.logger = logging.getLogger("test_policy_fuzz")
        self.pubs: dict[str, _Pub] = {}
        self.subs: dict[str, list] = {}
        self.timers: list[_Timer] = []
        self.msg = make

    def create_publisher(self, typename, topic, qos=None):
        return self.pubs.setdefault(topic, _Pub())

    def create_subscription(self, typename, topic, callback, qos=None, raw=False, with_info=False):
        self.subs.setdefault(topic, []).append((callback, with_info))

    def create_timer(self, period, callback):
        self.timers.append(_Timer(period, callback))
        return self.timers[-1]

    create_steady_timer = create_timer

    def now(self) -> float:
        return self.t

    def now_msg(self):
        return make("builtin_interfaces/msg/Time", **cv.time_fields(self.t))

    def resolve(self, topic):
        return topic

    def deliver(self, topic, msg, info=None):
        for cb, with_info in self.subs.get(topic, []):
            cb(msg, info) if with_info else cb(msg)


@pytest.fixture(scope="module")
def bundle(debug_bc):
    return debug_bc[1]


def make_node(bundle, **kw):
    node = FakeNode()
    cfg = PolicyConfig(bundle=str(bundle), device="cpu", max_step=MAX_STEP, position_lower=LOWER,
                       position_upper=UPPER, use_plan=True, track_frames=False, **kw)
    return node, PolicyNode(node, cfg)


def tick(node, policy):
    policy.act()
    return node.pubs["/forward_position_controller/commands"].sent


def stamp(t):
    """Any float as a builtin_interfaces/Time the wire could carry (sec int32, nanosec uint32)."""
    if not math.isfinite(t):
        return make("builtin_interfaces/msg/Time", sec=2**31 - 1 if t > 0 else -(2**31), nanosec=999999999)
    sec = int(np.clip(math.floor(t), -(2**31), 2**31 - 1))
    return make("builtin_interfaces/msg/Time", sec=sec, nanosec=int(np.clip((t - math.floor(t)) * 1e9, 0, 999999999)))


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10),
                   st.sampled_from([5e-324, -5e-324, 1e-300, 1e300, 0.0, 0.02]))
offsets = st.one_of(st.floats(-1e9, 1e9), st.floats(-2, 2), st.sampled_from([3600.0, -3600.0, 0.0, 1e-9]))


def plan_msg(draw, t_now):
    horizon = draw(st.sampled_from([0, 1, 4, 8, 10**6]))
    n_act = draw(st.sampled_from([0, 2 * max(horizon, 1), 3, 2 * min(horizon, 8)]))
    return make("wm_control/msg/Plan",
                header=make("std_msgs/msg/Header", stamp=stamp(t_now + draw(offsets)), frame_id=""),
                joint_names=draw(st.sampled_from([["joint0", "joint1"], ["joint1", "joint0"], [], ["x"]])),
                horizon=int(np.clip(horizon, 0, 2**31 - 1)), dt=draw(floats),
                actions=[draw(floats) for _ in range(min(n_act, 16))],
                uncertainty=[draw(floats) for _ in range(draw(st.sampled_from([0, 1, 8])))],
                status=draw(st.sampled_from([0, 1, 2, 3, 7, 255])), message="fuzz")


@st.composite
def events(draw):
    kind = draw(st.sampled_from(["plan", "goal", "js", "js", "tick", "tick", "tick", "clock"]))
    return kind, draw(st.data())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(events(), min_size=10, max_size=60))
def test_random_plans_goals_and_stamps_never_kill_or_blind_the_node(bundle, evs):
    node, policy = make_node(bundle)
    q = np.array([0.1, -0.2])
    good_js = lambda: cv.make_joint_state(make, node.t, ["joint0", "joint1"], q, np.zeros(2))  # noqa: E731
    node.deliver("/joint_states", good_js())
    node.deliver("/goal", cv.make_point(make, node.t, np.array([0.1, 0.1, 0.01])))
    for kind, data in evs:
        if kind == "plan":
            node.deliver("/wm/plan", plan_msg(data.draw, node.t))
        elif kind == "goal":
            v = [data.draw(floats) for _ in range(3)]
            node.deliver("/goal", make("geometry_msgs/msg/PointStamped",
                                       header=make("std_msgs/msg/Header", stamp=stamp(node.t + data.draw(offsets))),
                                       point=make("geometry_msgs/msg/Point", x=v[0], y=v[1], z=v[2])))
        elif kind == "js":
            pos = [data.draw(floats) for _ in range(data.draw(st.sampled_from([2, 2, 1, 3])))]
            m = cv.make_joint_state(make, node.t + data.draw(offsets), ["joint0", "joint1", "j2"][:len(pos)],
                                    np.array(pos), np.zeros(len(pos)))
            node.deliver("/joint_states", m)
        elif kind == "clock":
            node.t += data.draw(st.sampled_from([0.02, 0.02, 0.5, 5.0]))
        else:
            tick(node, policy)
    # after any of that: good inputs at a steady clock are followed again (not blinded)
    sent_before = len(node.pubs["/forward_position_controller/commands"].sent)
    for _ in range(5):
        node.t += 0.02
        node.deliver("/joint_states", good_js())
        tick(node, policy)
    cmds = [np.asarray(m.data, float) for m in node.pubs["/forward_position_controller/commands"].sent]
    assert len(cmds) >= sent_before + 5
    c = np.stack(cmds)
    assert np.all(np.isfinite(c)) and np.all(c >= np.array(LOWER) - 1e-9) and np.all(c <= np.array(UPPER) + 1e-9)


def test_a_plan_with_a_denormal_dt_is_malformed_not_a_crash(bundle):
    node, policy = make_node(bundle)
    node.deliver("/joint_states", cv.make_joint_state(make, node.t, ["joint0", "joint1"], np.zeros(2), np.zeros(2)))
    plan = make("wm_control/msg/Plan", header=make("std_msgs/msg/Header", stamp=stamp(node.t - 0.1)),
                joint_names=["joint0", "joint1"], horizon=4, dt=5e-324, actions=[0.0] * 8, uncertainty=[0.0] * 4,
                status=0, message="")
    node.deliver("/wm/plan", plan)
    assert policy.plan_action(node.t) == (None, "malformed")
    tick(node, policy)  # no OverflowError


def test_a_plan_from_the_future_does_not_disable_plan_following(bundle):
    node, policy = make_node(bundle)
    node.deliver("/joint_states", cv.make_joint_state(make, node.t, ["joint0", "joint1"], np.zeros(2), np.zeros(2)))

    def plan(t):
        return make("wm_control/msg/Plan", header=make("std_msgs/msg/Header", stamp=stamp(t)),
                    joint_names=["joint0", "joint1"], horizon=4, dt=0.02, actions=[0.01] * 8, uncertainty=[0.0] * 4,
                    status=0, message="")

    node.deliver("/wm/plan", plan(node.t + 3600.0))  # one plan stamped an hour ahead
    node.deliver("/wm/plan", plan(node.t))  # then the real ones
    assert policy.plan_action(node.t)[1] == "ok"
    assert policy.diag.counters.get("dropped.plan_future", 0) == 1


def test_joint_states_stamped_an_hour_off_are_not_fresh_under_sim_time(bundle):
    node = FakeNode(sim_time=True)
    policy = PolicyNode(node, PolicyConfig(bundle=str(bundle), device="cpu", max_step=MAX_STEP, position_lower=LOWER,
                                           position_upper=UPPER, track_frames=False))
    for off in (3600.0, -3600.0):
        node.deliver("/joint_states", cv.make_joint_state(make, node.t + off, ["joint0", "joint1"], np.zeros(2),
                                                          np.zeros(2)))
    assert policy.q is None  # neither was taken as the arm's state
    assert policy.diag.counters.get("dropped.joint_states_future_stamp") == 1
    assert policy.diag.counters.get("dropped.joint_states_stale_stamp") == 1
    node.deliver("/joint_states", cv.make_joint_state(make, node.t, ["joint0", "joint1"], np.zeros(2), np.zeros(2)))
    assert policy.q is not None

"""Managed (lifecycle) nodes: the pure state machine (rcl_lifecycle's default graph: every transition it allows,
every one it refuses, callbacks that fail or raise), then the policy and planner nodes with ``lifecycle:=true``
over real DDS, driven as ``ros2 lifecycle`` drives them: a client that is plain cyclonedds with the types of the
shipped lifecycle_msgs ``.srv`` texts, laid out as rmw_cyclonedds lays them out (tests/test_services.py)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.helpers import NodeProcess
from tests.test_policy_node import LOWER, MAX_STEP, UPPER, Rig, check_safe
from tests.test_services import RawClient, nested
from wm_control.messages import convert as cv
from wm_control.messages import registry
from wm_control.ros import lifecycle as lc
from wm_control.ros import qos, topics
from wm_control.ros.dds import DdsNode

# (start, request id, end) for every transition a request may take (callbacks succeeding)
VALID = [(lc.UNCONFIGURED, lc.CONFIGURE, lc.INACTIVE), (lc.UNCONFIGURED, lc.UNCONFIGURED_SHUTDOWN, lc.FINALIZED),
         (lc.INACTIVE, lc.CLEANUP, lc.UNCONFIGURED), (lc.INACTIVE, lc.ACTIVATE, lc.ACTIVE),
         (lc.INACTIVE, lc.INACTIVE_SHUTDOWN, lc.FINALIZED), (lc.ACTIVE, lc.DEACTIVATE, lc.INACTIVE),
         (lc.ACTIVE, lc.ACTIVE_SHUTDOWN, lc.FINALIZED)]
LABEL = {lc.CONFIGURE: "configure", lc.CLEANUP: "cleanup", lc.ACTIVATE: "activate", lc.DEACTIVATE: "deactivate",
         lc.UNCONFIGURED_SHUTDOWN: "shutdown", lc.INACTIVE_SHUTDOWN: "shutdown", lc.ACTIVE_SHUTDOWN: "shutdown"}
CALLBACK = {lc.CONFIGURE: "configure", lc.CLEANUP: "cleanup", lc.ACTIVATE: "activate", lc.DEACTIVATE: "deactivate",
            lc.UNCONFIGURED_SHUTDOWN: "shutdown", lc.INACTIVE_SHUTDOWN: "shutdown", lc.ACTIVE_SHUTDOWN: "shutdown"}
# every id a lifecycle_msgs/msg/Transition may carry (the public ones, the callbacks' results, the return codes)
ALL_IDS = sorted(registry().constants("lifecycle_msgs/msg/Transition").values())


class Recorder:
    """Callbacks that say ``results[name]`` (default success) and record (name, previous state)."""

    def __init__(self, **results):
        self.calls: list[tuple[str, int]] = []
        self.results = results

    def callbacks(self):
        def make(name):
            def cb(state):
                self.calls.append((name, state))
                r = self.results.get(name, lc.SUCCESS)
                if isinstance(r, Exception):
                    raise r
                return r
            return cb
        return {name: make(name) for name in ("configure", "cleanup", "activate", "deactivate", "shutdown", "error")}


def machine_in(state, **results):
    rec = Recorder(**results)
    m = lc.StateMachine(rec.callbacks(), state=state)
    events = []
    m.listeners.append(lambda t, a, b: events.append((t.id, a, b)))
    return m, rec, events


# ------------------------------------------------------------------------------------------
# The state machine
# ------------------------------------------------------------------------------------------
def test_the_constants_are_lifecycle_msgs():
    reg = registry()
    states = reg.constants("lifecycle_msgs/msg/State")
    assert {k: v for k, v in states.items()} == {
        f"{'PRIMARY_STATE' if s < 10 else 'TRANSITION_STATE'}_{label.upper()}": s for s, label in lc.STATE_LABELS.items()}
    tr = reg.constants("lifecycle_msgs/msg/Transition")
    assert (tr["TRANSITION_CONFIGURE"], tr["TRANSITION_CLEANUP"], tr["TRANSITION_ACTIVATE"], tr["TRANSITION_DEACTIVATE"],
            tr["TRANSITION_UNCONFIGURED_SHUTDOWN"], tr["TRANSITION_INACTIVE_SHUTDOWN"],
            tr["TRANSITION_ACTIVE_SHUTDOWN"]) == (1, 2, 3, 4, 5, 6, 7)
    internal = {t.id for t in lc.TRANSITIONS if t.label in (lc.SUCCESS, lc.FAILURE, lc.ERROR)}
    assert internal == {v for k, v in tr.items() if k.startswith("TRANSITION_ON_")}  # every result transition, once
    assert len({t.id for t in lc.TRANSITIONS}) == len(lc.TRANSITIONS)


@pytest.mark.parametrize("start,tid,end", VALID)
@pytest.mark.parametrize("by", ["id", "label"])
def test_every_valid_transition(start, tid, end, by):
    m, rec, events = machine_in(start)
    out = m.trigger(tid) if by == "id" else m.trigger(0, LABEL[tid])  # a label wins over the id (0: unset)
    assert out.success and out.result == lc.SUCCESS and m.state == end == out.state
    assert rec.calls == [(CALLBACK[tid], start)]  # the callback gets the state it starts from
    busy = next(t.goal for t in lc.TRANSITIONS if t.id == tid)
    assert events == [(tid, start, busy), (next(t.id for t in lc.TRANSITIONS if t.start == busy
                                               and t.label == lc.SUCCESS), busy, end)]


def test_available_transitions_are_rcl_lifecycles():
    def available(state):
        return [(t.label, t.id, lc.STATE_LABELS[t.goal]) for t in lc.StateMachine(state=state).available()]

    assert available(lc.UNCONFIGURED) == [("configure", 1, "configuring"), ("shutdown", 5, "shuttingdown")]
    assert available(lc.INACTIVE) == [("cleanup", 2, "cleaningup"), ("activate", 3, "activating"),
                                      ("shutdown", 6, "shuttingdown")]
    assert available(lc.ACTIVE) == [("deactivate", 4, "deactivating"), ("shutdown", 7, "shuttingdown")]
    assert available(lc.FINALIZED) == []


@pytest.mark.parametrize("start", lc.PRIMARY_STATES)
def test_every_invalid_transition_is_refused_and_changes_nothing(start):
    valid = {tid for s, tid, _ in VALID if s == start}
    for tid in ALL_IDS:
        if tid in valid:
            continue
        m, rec, events = machine_in(start)
        out = m.trigger(tid)
        assert (out.success, out.result, m.state, rec.calls, events) == (False, None, start, [], []), tid
    labels = {LABEL[t] for t in valid}
    for label in ["configure", "cleanup", "activate", "deactivate", "shutdown", lc.SUCCESS, lc.FAILURE, "nope"]:
        if label in labels:
            continue
        m, rec, events = machine_in(start)
        out = m.trigger(lc.CONFIGURE if start == lc.UNCONFIGURED else 0, label)  # the label wins: refused
        assert (out.success, m.state, rec.calls, events) == (False, start, [], []), label
        assert "no transition" in out.reason and lc.STATE_LABELS[start] in out.reason


@pytest.mark.parametrize("start,tid,end", VALID)
def test_a_failing_callback_returns_to_the_start_state(start, tid, end):
    m, rec, events = machine_in(start, **{CALLBACK[tid]: lc.FAILURE})
    out = m.trigger(tid)
    want = lc.FINALIZED if CALLBACK[tid] == "shutdown" else start  # rcl: a failed shutdown finalizes all the same
    assert (out.success, out.result, m.state) == (False, lc.FAILURE, want)
    assert rec.calls == [(CALLBACK[tid], start)]  # the error callback is not called on a failure
    assert events[-1][2] == want and len(events) == 2


def test_callback_results_false_none_and_failure_with_a_reason():
    m, _, _ = machine_in(lc.UNCONFIGURED, configure=False)
    assert not m.trigger(lc.CONFIGURE).success and m.state == lc.UNCONFIGURED
    m, _, _ = machine_in(lc.UNCONFIGURED, configure=None)
    assert m.trigger(lc.CONFIGURE).success and m.state == lc.INACTIVE
    m, rec, _ = machine_in(lc.UNCONFIGURED, configure=lc.Failure("check 'sha256': policy.onnx differs"))
    out = m.trigger(lc.CONFIGURE)
    assert (out.success, out.result, out.reason, m.state) == (False, lc.FAILURE, "check 'sha256': policy.onnx differs",
                                                              lc.UNCONFIGURED)
    assert [c for c, _ in rec.calls] == ["configure"]


@pytest.mark.parametrize("start,tid,end", VALID)
def test_an_error_goes_through_error_processing(start, tid, end):
    m, rec, events = machine_in(start, **{CALLBACK[tid]: RuntimeError("boom")})
    out = m.trigger(tid)
    assert (out.success, out.result, m.state) == (False, lc.ERROR, lc.UNCONFIGURED)  # on_error succeeded
    assert "RuntimeError: boom" in out.reason
    assert rec.calls == [(CALLBACK[tid], start), ("error", start)]
    assert [e[2] for e in events][-2:] == [lc.ERRORPROCESSING, lc.UNCONFIGURED]
    m, rec, _ = machine_in(start, **{CALLBACK[tid]: lc.ERROR, "error": lc.FAILURE})
    assert not m.trigger(tid).success and m.state == lc.FINALIZED  # error processing failed
    m, rec, _ = machine_in(start, **{CALLBACK[tid]: lc.ERROR, "error": ValueError("worse")})
    assert m.trigger(tid).result == lc.ERROR and m.state == lc.FINALIZED


def test_without_callbacks_transitions_succeed_and_an_error_finalizes():
    m = lc.StateMachine()
    assert [m.trigger(t).success for t in (lc.CONFIGURE, lc.ACTIVATE, lc.DEACTIVATE, lc.CLEANUP)] == [True] * 4
    assert m.state == lc.UNCONFIGURED
    m = lc.StateMachine({"configure": lambda s: lc.ERROR})  # rclcpp_lifecycle's on_error default: FAILURE
    assert not m.trigger(lc.CONFIGURE).success and m.state == lc.FINALIZED
    with pytest.raises(ValueError, match="unknown lifecycle callbacks"):
        lc.StateMachine({"configur": lambda s: None})


def test_a_request_from_inside_a_callback_is_refused():
    inner = []
    m = lc.StateMachine({"configure": lambda s: inner.append(m.trigger(lc.CLEANUP))})
    assert m.trigger(lc.CONFIGURE).success and m.state == lc.INACTIVE
    assert inner[0].result is None and inner[0].state == lc.CONFIGURING  # refused in the transition state


# ------------------------------------------------------------------------------------------
# The nodes over DDS
# ------------------------------------------------------------------------------------------
TRANSITION = "lifecycle_msgs/msg/Transition"


class LifecycleClient:
    """A node's lifecycle services called as ``ros2 lifecycle`` calls them (raw cyclonedds, shipped .srv)."""

    def __init__(self, participant, node):
        srv = {"change": ("change_state", "ChangeState"), "get": ("get_state", "GetState"),
               "available": ("get_available_transitions", "GetAvailableTransitions"),
               "states": ("get_available_states", "GetAvailableStates"),
               "graph": ("get_transition_graph", "GetAvailableTransitions")}
        self.clients = {k: RawClient(participant, f"{node}/{name}", f"lifecycle_msgs/srv/{typ}")
                        for k, (name, typ) in srv.items()}

    def _empty(self, key):
        return self.clients[key](timeout=30, structure_needs_at_least_one_member=0)  # an empty request, as rosidl

    def set(self, tid=0, label=""):
        return self.clients["change"](timeout=60, transition=nested(TRANSITION, id=tid, label=label)).success

    def state(self):
        s = self._empty("get").current_state
        return s.id, s.label

    def available(self):
        return [(d.transition.label, d.transition.id, d.start_state.label, d.goal_state.label)
                for d in self._empty("available").available_transitions]


@pytest.fixture(scope="module")
def participant():
    from cyclonedds.domain import DomainParticipant

    from wm_control.ros.dds import configure_environment

    configure_environment()  # loopback, as the nodes have it
    return DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))


POLICY_ARGS = ("-p", "device:=cpu", "-p", f"max_step:={MAX_STEP}", "-p", f"position_lower:={LOWER}",
               "-p", f"position_upper:={UPPER}", "-p", "max_joint_state_age:=0.1", "-p", "lifecycle:=true",
               "-r", "/wm/estop:=/test/estop", "-r", "/wm/estop_reset:=/test/estop_reset", "-r", "/wm/mode:=/test/mode")


@pytest.fixture(scope="module")
def managed_policy(debug_bc, participant):
    _, bundle = debug_bc
    with NodeProcess("policy", "-p", f"bundle:={bundle}", *POLICY_ARGS) as p:
        rig = Rig()
        events = []
        rig.node.create_subscription(topics.TRANSITION_EVENT.type, "/policy/transition_event", events.append,
                                     qos.QoSProfile("reliable", "volatile", 100))
        yield p, rig, events, LifecycleClient(participant, "/policy")
        rig.node.destroy()


def test_managed_policy(managed_policy):
    proc, rig, events, client = managed_policy
    assert client.state() == (1, "unconfigured")
    assert client.available() == [("configure", 1, "unconfigured", "configuring"),
                                  ("shutdown", 5, "unconfigured", "shuttingdown")]
    states = client._empty("states").available_states
    assert [(s.id, s.label) for s in states] == list(lc.STATE_LABELS.items())
    assert len(client._empty("graph").available_transitions) == len(lc.TRANSITIONS)
    rig.run(1.0)  # joint states and a goal flow, e-stop clear: an unmanaged node would command by now
    assert rig.cmds == [], "an unconfigured node commands nothing"
    assert "policy" in rig.diag and rig.diag["policy"]["lifecycle"] == "unconfigured"

    # out of order: refused, the state unchanged, no event
    assert not client.set(lc.ACTIVATE)
    assert not client.set(0, "deactivate")
    assert client.state() == (1, "unconfigured")
    rig.run(0.5)
    assert rig.cmds == [] and events == []
    assert "lifecycle: activate refused: no transition id 3 from unconfigured" in proc.output()

    assert client.set(lc.CONFIGURE)  # loads, verifies and warms the bundle
    assert client.state() == (2, "inactive")
    rig.run(0.5)
    assert rig.cmds == [], "an inactive node commands nothing"

    assert client.set(0, "activate")  # by label, as `ros2 lifecycle set /policy activate`
    assert client.state() == (3, "active")
    assert rig.node.spin(until=lambda: len(rig.cmds) > 10, timeout=20), proc.output()
    check_safe(rig.cmds, rig)  # through the safety layer as ever: in limits, rate-limited
    d = rig.diag
    assert rig.node.spin(until=lambda: d.get("policy", {}).get("lifecycle") == "active", timeout=5)
    assert int(d["policy"].get("ticks.policy", 0)) > 0 and "ticks.hold" not in d["policy"]

    assert client.set(lc.DEACTIVATE)
    assert client.state() == (2, "inactive")
    rig.run(0.5)
    n = len(rig.cmds)
    rig.run(1.0)
    assert len(rig.cmds) == n, "deactivated: no new commands"
    # the deactivation's one hold tick (the arm frozen where it is measured), then nothing
    assert rig.node.spin(until=lambda: d["policy"].get("lifecycle") == "inactive" and "ticks.hold" in d["policy"],
                         timeout=5), d["policy"]
    assert int(d["policy"]["ticks.hold"]) == 1

    assert client.set(lc.ACTIVATE)
    m = len(rig.cmds)
    assert rig.node.spin(until=lambda: len(rig.cmds) > m + 10, timeout=20), "commanding again after activate"
    check_safe(rig.cmds[m:], rig)

    assert client.set(0, "shutdown")  # active -> finalized (the active shutdown, id 7, by its label)
    assert client.state() == (4, "finalized")
    assert client.available() == []
    assert not client.set(lc.CONFIGURE)
    rig.run(0.5)
    k = len(rig.cmds)
    rig.run(1.0)
    assert len(rig.cmds) == k

    assert rig.node.spin(until=lambda: len(events) >= 10, timeout=5)  # one per step, none for a refusal
    assert [(e.transition.id, e.start_state.label, e.goal_state.label) for e in events] == [
        (1, "unconfigured", "configuring"), (10, "configuring", "inactive"),
        (3, "inactive", "activating"), (30, "activating", "active"),
        (4, "active", "deactivating"), (40, "deactivating", "inactive"),
        (3, "inactive", "activating"), (30, "activating", "active"),
        (7, "active", "shuttingdown"), (50, "shuttingdown", "finalized")]
    assert all(e.timestamp > 0 for e in events)
    assert proc.p.poll() is None


def test_an_estop_heard_while_unconfigured_holds_after_activate(debug_bc, participant):
    _, bundle = debug_bc
    with NodeProcess("policy", "-p", f"bundle:={bundle}", *POLICY_ARGS, "-r", "__node:=policy_estop") as proc:
        rig = Rig()
        client = LifecycleClient(participant, "/policy_estop")
        try:
            assert rig.node.spin(until=lambda: rig.estop.matched() > 0, timeout=10)
            rig.estop.publish(rig.node.msg("std_msgs/msg/Bool", data=True))
            rig.run(0.5)
            rig.estop.publish(rig.node.msg("std_msgs/msg/Bool", data=False))  # released, never reset: still latched
            rig.run(0.5)
            assert client.set(lc.CONFIGURE) and client.set(lc.ACTIVATE)
            assert rig.node.spin(until=lambda: len(rig.cmds) > 20, timeout=20), proc.output()
            assert np.allclose(np.stack(rig.cmds), rig.cmds[0]), "latched: every command holds"
            d = rig.diag
            assert rig.node.spin(until=lambda: int(d.get("policy_estop", {}).get("reason.estop", 0)) > 0, timeout=5)
            rig.reset.publish(rig.node.msg("std_msgs/msg/Empty"))
            assert rig.node.spin(until=lambda: "estop" not in d["policy_estop"]["_msg"], timeout=10), \
                "released by the reset: the policy commands again"
            check_safe(rig.cmds, rig)
        finally:
            rig.node.destroy()


def test_configure_with_a_bad_bundle_fails_and_stays_unconfigured(debug_bc, participant, tmp_path):
    _, good = debug_bc
    bad = tmp_path / "bundle"
    shutil.copytree(good, bad)
    onnx = bad / "policy.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + bytes([onnx.read_bytes()[-1] ^ 1]))  # one bit off: its hash
    with NodeProcess("policy", "-p", f"bundle:={bad}", *POLICY_ARGS, "-r", "__node:=policy_bad") as proc:
        client = LifecycleClient(participant, "/policy_bad")
        assert client.state() == (1, "unconfigured")  # it starts: nothing is loaded before configure
        assert not client.set(lc.CONFIGURE)
        assert client.state() == (1, "unconfigured")
        assert not client.set(lc.ACTIVATE)
        failed = [line for line in proc.output().splitlines() if "lifecycle: configure failed" in line]
        assert len(failed) == 1 and "sha256" in failed[0], proc.output()
        shutil.copy(good / "policy.onnx", onnx)  # repaired: configure may be asked again
        assert client.set(lc.CONFIGURE)
        assert client.state() == (2, "inactive")
        assert client.set(lc.CLEANUP) and client.state() == (1, "unconfigured")  # unloads
        assert proc.p.poll() is None


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from tests.test_planner import toy_bundle

    return toy_bundle(tmp_path_factory.mktemp("toy_lifecycle") / "bundle")


def test_managed_planner(toy, participant):
    from tests.test_planner import NAMES

    ns = "/lifecycle_planner"  # topics of its own
    node = DdsNode("lifecycle_planner_rig")
    plans, events = [], []
    node.create_subscription("wm_control/msg/Plan", f"{ns}/plan", plans.append, qos.QoSProfile(depth=100))
    node.create_subscription(topics.TRANSITION_EVENT.type, "/planner/transition_event", events.append,
                             qos.QoSProfile("reliable", "volatile", 100))
    js = node.create_publisher("sensor_msgs/msg/JointState", f"{ns}/joint_states", qos.SENSOR_DATA)
    goal = node.create_publisher("geometry_msgs/msg/PointStamped", f"{ns}/goal", qos.LATCHED)
    q = np.array([0.2, -0.3])
    node.create_timer(0.01, lambda: js.publish(cv.make_joint_state(node.msg, node.now(), NAMES, q, np.zeros(2))))
    goal.publish(cv.make_point(node.msg, node.now(), np.array([0.5, -0.5, 0.0])))
    try:
        with NodeProcess("planner", "-p", f"bundle:={toy}", "-p", "device:=cpu", "-p", "threads:=1",
                         "-p", "samples:=32", "-p", "horizon:=8", "-p", "rate:=25.0", "-p", "lifecycle:=true",
                         "-r", f"/wm/plan:={ns}/plan", "-r", f"/joint_states:={ns}/joint_states",
                         "-r", f"/goal:={ns}/goal", "-r", f"/forward_position_controller/commands:={ns}/commands") as p:
            client = LifecycleClient(participant, "/planner")
            assert client.state() == (1, "unconfigured")
            node.spin(timeout=1.0)
            assert plans == [], "an unconfigured planner publishes no plans"
            assert not client.set(lc.ACTIVATE) and client.state() == (1, "unconfigured")
            assert client.set(lc.CONFIGURE) and client.state() == (2, "inactive")
            node.spin(timeout=1.0)
            assert plans == [], "an inactive planner publishes no plans"
            assert client.set(lc.ACTIVATE) and client.state() == (3, "active")
            assert node.spin(until=lambda: sum(m.status in (0, 1) for m in plans) >= 5, timeout=30), p.output()
            assert all(list(m.joint_names) == NAMES and m.horizon == 8 for m in plans if m.status in (0, 1))
            assert client.set(lc.DEACTIVATE) and client.state() == (2, "inactive")
            node.spin(timeout=0.5)
            n = len(plans)
            node.spin(timeout=1.0)
            assert len(plans) == n, "deactivated: no new plans"
            assert client.set(lc.CLEANUP) and client.state() == (1, "unconfigured")
            assert node.spin(until=lambda: len(events) >= 8, timeout=5)
            assert [(e.start_state.id, e.goal_state.id) for e in events] == [
                (1, 10), (10, 2), (2, 13), (13, 3), (3, 14), (14, 2), (2, 11), (11, 1)]
            assert p.p.poll() is None
    finally:
        node.destroy()

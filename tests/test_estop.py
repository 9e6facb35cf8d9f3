"""The e-stop attacked over the wire (the policy node as a real process over DDS): a pulse cannot be
lost, one source cannot clear another's, a publisher with any ROS 2 QoS is heard, and a hold freezes
the arm where it measurably is, then releases at the rate limit. The reset as a service
(``/wm/reset_estop``, std_srvs/Trigger) answers whether it cleared, called by our client and by a raw
cyclonedds one built from the shipped .srv text; the mode services switch teleop and hold."""

import os

import numpy as np
import pytest

from tests.helpers import NodeProcess
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode

MAX_STEP = 0.05
NS = "/estop_test"


@pytest.fixture(scope="module")
def policy(debug_bc):
    _, bundle = debug_bc
    with NodeProcess("policy", "-p", f"bundle:={bundle}", "-p", "device:=cpu", "-p", f"max_step:={MAX_STEP}",
                     "-p", "position_lower:=[-3.0, -3.0]", "-p", "position_upper:=[3.0, 3.0]",
                     "-p", "mode:=teleop", "-p", "max_teleop_age:=5.0",
                     "-r", f"/wm/estop:={NS}/estop", "-r", f"/wm/estop_reset:={NS}/reset",
                     "-r", f"/wm/reset_estop:={NS}/reset_estop", "-r", f"/wm/set_mode/hold:={NS}/set_mode/hold",
                     "-r", f"/wm/set_mode/teleop:={NS}/set_mode/teleop",
                     "-r", f"/teleop/command:={NS}/teleop", "-r", f"/joint_states:={NS}/joint_states",
                     "-r", f"/forward_position_controller/commands:={NS}/commands",
                     "-r", f"/diagnostics:={NS}/diagnostics") as p:
        yield p


class Servo:
    """A robot whose joints follow the command at a limited speed (they lag it, as a real arm does),
    and an operator holding a teleop target far away (so the arm wants to move all the time)."""

    def __init__(self, speed: float = 0.02):
        self.node = n = DdsNode("estop_rig")
        self.cmds: list[np.ndarray] = []
        self.states: list[np.ndarray] = []  # what the robot reported, in order
        self.q = np.zeros(2)
        self.speed = speed  # rad per 10 ms tick: a lag behind the command
        self.push: np.ndarray | None = None
        n.create_subscription("std_msgs/msg/Float64MultiArray", f"{NS}/commands",
                              lambda m: self.cmds.append(np.asarray(m.data, float).copy()),
                              qos.QoSProfile("reliable", "volatile", 1000))
        self.js = n.create_publisher("sensor_msgs/msg/JointState", f"{NS}/joint_states", qos.SENSOR_DATA)
        self.teleop = n.create_publisher("sensor_msgs/msg/JointState", f"{NS}/teleop")
        self.reset_pub = n.create_publisher("std_msgs/msg/Empty", f"{NS}/reset")
        self.target = np.array([2.5, -2.5])
        self.clients = {}
        n.create_timer(0.01, self._tick)

    def _tick(self):
        if self.push is not None:
            self.q, self.push = self.push, None
        elif self.cmds:
            d = self.cmds[-1] - self.q
            self.q = self.q + np.clip(d, -self.speed, self.speed)
        self.states.append(self.q.copy())
        if np.abs(self.q - self.target).max() < 0.2:  # there: the operator turns back
            self.target = -self.target
        n = self.node
        self.js.publish(cv.make_joint_state(n.msg, n.now(), ["joint0", "joint1"], self.q, np.zeros(2)))
        self.teleop.publish(cv.make_joint_state(n.msg, n.now(), ["joint0", "joint1"], self.target))

    def estop_pub(self, profile):
        return self.node.create_publisher("std_msgs/msg/Bool", f"{NS}/estop", profile)

    def bool(self, v):
        return self.node.msg("std_msgs/msg/Bool", data=v)

    def reset(self):
        self.reset_pub.publish(self.node.msg("std_msgs/msg/Empty"))

    def trigger(self, service: str):
        """Call a std_srvs/Trigger service of the policy node (under NS) with our client."""
        cli = self.clients.get(service) or self.clients.setdefault(
            service, self.node.create_client("std_srvs/srv/Trigger", f"{NS}/{service}"))
        return cli.call(self.node.msg("std_srvs/srv/Trigger_Request"), timeout=10)

    def run(self, s):
        self.node.spin(timeout=s)

    def moving(self, s: float = 0.3) -> bool:
        i = len(self.cmds)
        self.run(s)
        tail = self.cmds[i:]
        return len(tail) > 1 and not np.allclose(np.stack(tail), tail[0])

    def release_all(self, pubs):
        for p in pubs:
            p.publish(self.bool(False))
        self.run(0.1)
        self.reset()
        assert self.node.spin(until=lambda: self.moving(0.2), timeout=5), "could not release the e-stop"


@pytest.fixture(scope="module")
def servo(policy):
    s = Servo()
    assert s.node.spin(until=lambda: len(s.cmds) > 10, timeout=20), policy.output()
    yield s
    s.node.destroy()


def pulse_latches(servo, pub) -> bool:
    pub.publish(servo.bool(True))
    pub.publish(servo.bool(False))  # immediately after: a depth-1 reader kept only this one
    servo.run(0.15)
    return not servo.moving(0.3)


@pytest.mark.parametrize("profile", [qos.LATCHED, qos.DEFAULT, qos.QoSProfile("best_effort", "volatile", 10)],
                         ids=["latched", "ros_default", "best_effort"])
def test_estop_pulse_is_never_lost_whatever_the_publishers_qos(servo, profile):
    pub = servo.estop_pub(profile)
    assert servo.node.spin(until=lambda: pub.matched() > 0, timeout=5), "no e-stop reader matched this QoS"
    servo.release_all([pub])
    latched = 0
    for _ in range(8):
        latched += pulse_latches(servo, pub)
        servo.reset()
        assert servo.node.spin(until=lambda: servo.moving(0.2), timeout=5)
    assert latched == 8


def test_one_source_cannot_clear_another_sources_estop(servo):
    a, b = servo.estop_pub(qos.LATCHED), servo.estop_pub(qos.LATCHED)
    servo.node.spin(until=lambda: a.matched() > 0 and b.matched() > 0, timeout=5)
    servo.release_all([a, b])
    a.publish(servo.bool(True))
    servo.run(0.2)
    b.publish(servo.bool(False))  # the teleop `c` key: its own false, then a reset
    servo.run(0.1)
    servo.reset()
    assert not servo.moving(0.5)  # A still holds
    a.publish(servo.bool(False))
    servo.run(0.1)
    assert not servo.moving(0.3)  # no source holds, but no reset came after
    servo.reset()
    assert servo.node.spin(until=lambda: servo.moving(0.2), timeout=5)


def test_hold_freezes_where_the_arm_is_and_releases_at_the_rate_limit(servo):
    pub = servo.estop_pub(qos.LATCHED)
    servo.node.spin(until=lambda: pub.matched() > 0, timeout=5)
    servo.release_all([pub])
    servo.run(0.3)  # moving at the rate limit, the arm lagging its command
    lead = np.abs(servo.cmds[-1] - servo.q).max()
    assert lead > 2 * servo.speed, lead
    pub.publish(servo.bool(True))
    servo.run(0.3)
    i = len(servo.cmds)
    servo.run(0.3)
    hold = servo.cmds[i:]
    assert np.allclose(np.stack(hold), hold[0])
    assert np.abs(hold[0] - servo.q).max() < 2 * servo.speed + 1e-9  # where the arm is, not ahead of it
    moved = servo.q.copy()
    servo.push = moved + np.array([1.0, 0.0])  # pushed while stopped: no drive back
    servo.run(0.4)
    assert np.allclose(servo.cmds[-1], moved + np.array([1.0, 0.0]), atol=2 * servo.speed)
    pub.publish(servo.bool(False))
    servo.run(0.1)
    j = len(servo.cmds)
    servo.reset()
    assert servo.node.spin(until=lambda: len(servo.cmds) > j + 5 and not np.allclose(servo.cmds[-1], servo.cmds[j]),
                           timeout=5)
    steps = np.abs(np.diff(np.stack(servo.cmds[j - 1:]), axis=0))
    assert steps.max() <= MAX_STEP + 1e-9  # released from the hold at the rate limit: no jump


@pytest.fixture(scope="module")
def raw_reset(policy):
    """A Trigger client on the reset service as rmw_cyclonedds makes one, its types from the shipped .srv."""
    from cyclonedds.domain import DomainParticipant

    from tests.test_services import RawClient
    from wm_control.ros.dds import configure_environment

    configure_environment()
    participant = DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))
    return RawClient(participant, f"{NS}/reset_estop", "std_srvs/srv/Trigger", guid=0x5E7)


def test_reset_service_clears_only_when_no_source_holds_and_says_who_holds(servo, raw_reset):
    a, b = servo.estop_pub(qos.DEFAULT), servo.estop_pub(qos.QoSProfile("best_effort", "volatile", 10))
    assert servo.node.spin(until=lambda: a.matched() > 0 and b.matched() > 0, timeout=5)
    servo.release_all([a, b])
    r = servo.trigger("reset_estop")
    assert (r.success, r.message) == (True, "no e-stop latched")
    a.publish(servo.bool(True))
    b.publish(servo.bool(True))
    servo.run(0.2)
    assert not servo.moving(0.3)
    r = servo.trigger("reset_estop")
    assert not r.success and r.message.startswith("e-stop still held by publisher 0x"), r.message
    assert r.message.count("publisher 0x") == 2, r.message  # both sources named
    b.publish(servo.bool(False))
    servo.run(0.1)
    r = raw_reset(structure_needs_at_least_one_member=0)  # an empty request, as rosidl lays it out
    assert not r.success and r.message.count("publisher 0x") == 1, r.message  # a still holds
    assert not servo.moving(0.3)
    a.publish(servo.bool(False))
    servo.run(0.1)
    assert not servo.moving(0.3)  # no source holds, but latched until a reset
    r = raw_reset(structure_needs_at_least_one_member=0)
    assert (r.guid, r.success, r.message) == (0x5E7, True, "e-stop cleared")
    assert servo.node.spin(until=lambda: servo.moving(0.2), timeout=5)


def test_mode_services_hold_and_resume_teleop(servo):
    pub = servo.estop_pub(qos.LATCHED)
    servo.node.spin(until=lambda: pub.matched() > 0, timeout=5)
    servo.release_all([pub])
    r = servo.trigger("set_mode/hold")
    assert (r.success, r.message) == (True, "mode hold")
    servo.run(0.2)
    assert not servo.moving(0.3)
    r = servo.trigger("set_mode/teleop")
    assert (r.success, r.message) == (True, "mode teleop")
    assert servo.node.spin(until=lambda: servo.moving(0.2), timeout=5)

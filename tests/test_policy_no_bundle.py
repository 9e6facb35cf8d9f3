"""The policy node without a bundle: ``robot_config`` gives the joints, rate and limits; teleop and hold
work through the safety layer (limits, rate limit, e-stop, watchdog), autonomous is refused and the node
holds, a robot config without limits refuses the start. In process on a stand-in node, then as a real
process over DDS."""

import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import NodeProcess
from tests.test_policy_fuzz import FakeNode
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode
from wm_control.ros.nodes.policy import PolicyConfig, PolicyNode

JOINTS = ["shoulder_pan", "elbow"]  # config/robots/two_joint.yaml: limits +-3.1, +-2.6; 2 rad/s at 50 Hz
LOWER, UPPER, STEP = np.array([-3.1, -2.6]), np.array([3.1, 2.6]), 2.0 / 50.0
NS = "/nobundle_test"
COMMANDS = "/forward_position_controller/commands"


# ------------------------------------------------------------------------------------------
# In process
# ------------------------------------------------------------------------------------------
def make(**kw):
    node = FakeNode()
    return node, PolicyNode(node, PolicyConfig(robot_config="two_joint", track_frames=False, **kw))


def js(node, q):
    node.deliver("/joint_states", cv.make_joint_state(node.msg, node.t, JOINTS, np.asarray(q, float), np.zeros(2)))


def test_limits_and_rate_come_from_the_robot_config():
    _, p = make(mode="teleop")
    assert p.names == JOINTS and p.rate == 50.0 and p.policy is None
    assert np.allclose(p.safety.lo, LOWER) and np.allclose(p.safety.hi, UPPER)
    assert np.allclose(p.safety.max_step, STEP)
    _, p = make(mode="teleop", max_step=0.01, position_lower=[-1.0, -1.0], position_upper=[1.0, 1.0], rate=20.0)
    assert np.allclose(p.safety.hi, [1.0, 1.0]) and np.allclose(p.safety.max_step, 0.01) and p.rate == 20.0


def test_teleop_goes_through_limits_and_rate_limit_and_the_watchdog_holds():
    node, p = make(mode="teleop")
    q = np.zeros(2)
    node.deliver("/teleop/command", cv.make_joint_state(node.msg, node.t, JOINTS, np.array([9.0, -9.0])))
    out = []
    for _ in range(200):
        js(node, q)
        p.act()
        q = np.asarray(node.pubs[COMMANDS].sent[-1].data, float)  # the arm follows at once
        out.append(q)
    steps = np.abs(np.diff(np.stack([np.zeros(2)] + out), axis=0))
    assert steps.max() <= STEP + 1e-9
    assert np.allclose(out[-1], UPPER * [1, -1])  # clipped into the config's limits
    n = len(node.pubs[COMMANDS].sent)
    node.t += 1.0  # no joint state for 1 s: stale, hold
    p.act()
    assert p.safety.counters.get("stale:joint_states") == 1 and len(node.pubs[COMMANDS].sent) == n + 1


def test_autonomous_is_refused_and_the_node_holds(caplog):
    node, p = make()  # the default mode, autonomous: refused at the start
    assert p.mode == "hold"
    node, p = make(mode="teleop")
    caplog.clear()
    with caplog.at_level("WARNING"):
        node.deliver("/wm/mode", node.msg("std_msgs/msg/String", data="autonomous"))
        node.deliver("/wm/mode", node.msg("std_msgs/msg/String", data="autonomous"))
    assert p.mode == "hold"
    refusals = [r for r in caplog.records if "autonomous refused" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0].getMessage()  # one line, then counted (throttled)
    assert p.set_mode("autonomous", "test") == (False, "mode autonomous refused: no bundle (teleop and hold "
                                                       "only); holding")
    assert p.set_mode("teleop", "test") == (True, "mode teleop") and p.mode == "teleop"


def test_estop_holds_without_a_bundle():
    node, p = make(mode="teleop")
    node.deliver("/teleop/command", cv.make_joint_state(node.msg, node.t, JOINTS, np.array([1.0, 1.0])))
    js(node, [0.0, 0.0])
    node.deliver("/wm/estop", node.msg("std_msgs/msg/Bool", data=True))
    p.act()
    assert np.allclose(node.pubs[COMMANDS].sent[-1].data, [0.0, 0.0])
    assert p.reset_estop("test")[0] is False
    node.deliver("/wm/estop", node.msg("std_msgs/msg/Bool", data=False))
    assert p.reset_estop("test") == (True, "e-stop cleared")
    p.act()
    assert np.allclose(node.pubs[COMMANDS].sent[-1].data, [STEP, STEP])


def test_a_robot_config_without_limits_refuses_the_start_in_one_line():
    with pytest.raises(ValueError, match="robot config 'reacher' gives no joint limits"):
        PolicyNode(FakeNode(), PolicyConfig(robot_config="reacher"))
    with pytest.raises(ValueError, match="'bundle' is required .* or 'robot_config'"):
        PolicyNode(FakeNode(), PolicyConfig())
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "policy", "--ros-args",
                        "-p", "robot_config:=reacher", "-r", f"__ns:={NS}_refused"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    failed = [ln for ln in (r.stdout + r.stderr).splitlines() if "failed to start" in ln]
    assert len(failed) == 1 and "gives no joint limits" in failed[0], r.stdout + r.stderr


def test_with_a_bundle_the_robot_configs_limits_join_the_robots_own(debug_bc, tmp_path):
    cfg = tmp_path / "tight.yaml"
    cfg.write_text("name: tight\njoint_names: [joint1, joint0]\nlimits:\n  lower: [-0.5, -0.4]\n"
                   "  upper: [0.5, 0.4]\n  max_velocity: 0.5\n")
    node = FakeNode()
    p = PolicyNode(node, PolicyConfig(bundle=str(debug_bc[1]), device="cpu", robot_config=str(cfg),
                                      track_frames=False))
    assert p.names == ["joint0", "joint1"] and p.mode == "autonomous"
    assert np.allclose(p.safety.hi, [0.4, 0.5]) and np.allclose(p.safety.max_step, 0.5 / p.rate)


# ------------------------------------------------------------------------------------------
# A real process over DDS
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy():
    remaps = ["/wm/estop", "/wm/estop_reset", "/wm/mode", "/teleop/command", "/joint_states", COMMANDS,
              "/diagnostics", "/wm/reset_estop", "/wm/set_mode/autonomous", "/wm/set_mode/teleop"]
    args = [x for r in remaps for x in ("-r", f"{r}:={NS}/{r.strip('/').replace('/', '_')}")]
    with NodeProcess("policy", "-p", "robot_config:=two_joint", "-p", "mode:=teleop", "-p", "max_teleop_age:=5.0",
                     *args) as p:
        yield p


def topic(name):
    return f"{NS}/{name.strip('/').replace('/', '_')}"


class Arm:
    """A robot that follows the command at once, and an operator holding a target beyond the limits."""

    def __init__(self):
        self.node = n = DdsNode("nobundle_rig")
        self.cmds: list[np.ndarray] = []
        self.q = np.zeros(2)
        n.create_subscription("std_msgs/msg/Float64MultiArray", topic(COMMANDS),
                              lambda m: self.cmds.append(np.asarray(m.data, float).copy()),
                              qos.QoSProfile("reliable", "volatile", 1000))
        self.js = n.create_publisher("sensor_msgs/msg/JointState", topic("/joint_states"), qos.SENSOR_DATA)
        self.teleop = n.create_publisher("sensor_msgs/msg/JointState", topic("/teleop/command"))
        self.mode = n.create_publisher("std_msgs/msg/String", topic("/wm/mode"), qos.LATCHED)
        self.estop = n.create_publisher("std_msgs/msg/Bool", topic("/wm/estop"), qos.DEFAULT)  # volatile
        self.target = np.array([9.0, -9.0])
        n.create_timer(0.01, self._tick)

    def _tick(self):
        if self.cmds:
            self.q = self.cmds[-1]
        n = self.node
        self.js.publish(cv.make_joint_state(n.msg, n.now(), JOINTS, self.q, np.zeros(2)))
        self.teleop.publish(cv.make_joint_state(n.msg, n.now(), JOINTS, self.target))

    def call(self, service):
        cli = self.node.create_client("std_srvs/srv/Trigger", topic(service))
        return cli.call(self.node.msg("std_srvs/srv/Trigger_Request"), timeout=10)

    def moving(self, s=0.3):
        i = len(self.cmds)
        self.node.spin(timeout=s)
        tail = self.cmds[i:]
        return len(tail) > 1 and not np.allclose(np.stack(tail), tail[0])


@pytest.fixture(scope="module")
def arm(policy):
    a = Arm()
    assert a.node.spin(until=lambda: len(a.cmds) > 10, timeout=20), policy.output()
    yield a
    a.node.destroy()


def test_over_dds_teleop_follows_through_limits_and_rate_limit(arm, policy):
    assert "no bundle: robot two_joint" in policy.output()
    assert arm.node.spin(until=lambda: np.allclose(arm.cmds[-1], [3.1, -2.6]), timeout=10), arm.cmds[-1]
    steps = np.abs(np.diff(np.stack(arm.cmds), axis=0))
    assert steps.max() <= STEP + 1e-9
    arm.target = np.array([0.0, 0.0])
    assert arm.moving()


def test_over_dds_autonomous_is_refused_and_estop_holds(arm, policy):
    arm.mode.publish(arm.node.msg("std_msgs/msg/String", data="autonomous"))
    arm.node.spin(timeout=0.3)
    assert not arm.moving()
    assert "mode autonomous refused: no bundle" in policy.output()
    r = arm.call("/wm/set_mode/autonomous")
    assert not r.success and "no bundle" in r.message
    assert arm.call("/wm/set_mode/teleop").success
    arm.target = np.array([-2.0, 2.0])
    assert arm.moving()
    assert arm.node.spin(until=lambda: arm.estop.matched() > 0, timeout=5)
    arm.estop.publish(arm.node.msg("std_msgs/msg/Bool", data=True))
    arm.node.spin(timeout=0.3)
    assert not arm.moving()
    r = arm.call("/wm/reset_estop")
    assert not r.success and "still held by" in r.message
    arm.estop.publish(arm.node.msg("std_msgs/msg/Bool", data=False))
    arm.node.spin(timeout=0.2)
    assert arm.call("/wm/reset_estop").success
    assert arm.node.spin(until=lambda: arm.moving(0.2), timeout=5)

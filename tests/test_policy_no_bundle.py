"""The policy node without a bundle: ``robot_config`` gives the joints, rate and limits; teleop and hold
work through the safety layer (limits, rate limit, e-stop, watchdog), autonomous is refused and the node
holds, a robot config without limits refuses the start; the command interface and topic are the robot
config's (trajectory here; a differing parameter refuses the start); ``dry_run`` sends every command to the
dry-run topic and none to the controller's. In process on a stand-in node, then as real processes over DDS."""

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
COMMANDS = "/arm_controller/joint_trajectory"  # two_joint's command_interface: trajectory, on its command_topic
DRY = "/wm/dry_run/joint_trajectory"


# ------------------------------------------------------------------------------------------
# In process
# ------------------------------------------------------------------------------------------
def make(**kw):
    node = FakeNode()
    return node, PolicyNode(node, PolicyConfig(robot_config="two_joint", track_frames=False, **kw))


def sent(node, name=COMMANDS):
    """The positions of every one-point JointTrajectory published on ``name``."""
    return [np.asarray(m.points[0].positions, float) for m in node.pubs[name].sent]


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
        q = sent(node)[-1]  # the arm follows at once
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
    assert np.allclose(sent(node)[-1], [0.0, 0.0])
    assert p.reset_estop("test")[0] is False
    node.deliver("/wm/estop", node.msg("std_msgs/msg/Bool", data=False))
    assert p.reset_estop("test") == (True, "e-stop cleared")
    p.act()
    assert np.allclose(sent(node)[-1], [STEP, STEP])


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


def test_the_command_interface_and_topic_are_the_robot_configs():
    node, p = make(mode="teleop")  # two_joint: trajectory on /arm_controller/joint_trajectory, no parameter given
    assert (p.interface, p.command_topic) == ("trajectory", COMMANDS)
    js(node, [0.0, 0.0])
    p.act()
    msg = node.pubs[COMMANDS].sent[-1]
    assert list(msg.joint_names) == JOINTS and len(msg.points) == 1
    assert set(node.pubs) & {"/forward_position_controller/commands", "/joint_trajectory_controller/joint_trajectory"} \
        == set()
    _, p = make(mode="teleop", command_interface="trajectory")  # the same, given: fine
    assert p.interface == "trajectory"


def test_a_command_interface_parameter_that_differs_from_the_robot_config_refuses_the_start():
    with pytest.raises(ValueError, match=r"^command_interface 'position' \(parameter\) differs from robot config "
                                         r"two_joint's 'trajectory'"):
        make(command_interface="position")
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "policy", "--ros-args", "-p",
                        "robot_config:=two_joint", "-p", "command_interface:=position", "-r", f"__ns:={NS}_iface"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    failed = [ln for ln in (r.stdout + r.stderr).splitlines() if "failed to start" in ln]
    assert len(failed) == 1 and "'position' (parameter)" in failed[0] and "'trajectory'" in failed[0], \
        r.stdout + r.stderr


def test_without_a_robot_config_the_parameter_still_chooses(debug_bc):
    node = FakeNode()
    p = PolicyNode(node, PolicyConfig(bundle=str(debug_bc[1]), device="cpu", track_frames=False))
    assert (p.interface, p.command_topic) == ("position", "/forward_position_controller/commands")
    p = PolicyNode(FakeNode(), PolicyConfig(bundle=str(debug_bc[1]), device="cpu", track_frames=False,
                                            command_interface="trajectory"))
    assert p.command_topic == "/joint_trajectory_controller/joint_trajectory"


def test_a_dry_run_computes_the_same_commands_and_publishes_none_to_the_controller(tmp_path):
    runs = {}
    for dry in (False, True):
        node, p = make(mode="teleop", dry_run=dry)
        assert p.diag.values["dry_run"] == ("true" if dry else "false")
        q = np.zeros(2)
        node.deliver("/teleop/command", cv.make_joint_state(node.msg, node.t, JOINTS, np.array([9.0, -9.0])))
        for _ in range(100):
            js(node, q)
            p.act()
            q = sent(node, DRY if dry else COMMANDS)[-1]
            node.t += 0.02
        runs[dry] = (sent(node, DRY if dry else COMMANDS), dict(p.diag.counters))
        assert (DRY in node.pubs) == dry and (COMMANDS in node.pubs) == (not dry)  # no publisher there at all
    assert np.allclose(np.stack(runs[True][0]), np.stack(runs[False][0]))  # the same safety layer, the same commands
    assert runs[True][1] == runs[False][1]  # and the same diagnostics counters
    cfg = tmp_path / "pos.yaml"  # a position robot: Float64MultiArray on /wm/dry_run/commands
    cfg.write_text("name: pos\njoint_names: [a, b]\nlimits: {lower: -1.0, upper: 1.0, max_velocity: 1.0}\n")
    node = FakeNode()
    p = PolicyNode(node, PolicyConfig(robot_config=str(cfg), mode="teleop", dry_run=True, track_frames=False))
    node.deliver("/joint_states", cv.make_joint_state(node.msg, node.t, ["a", "b"], np.zeros(2), np.zeros(2)))
    p.act()
    assert set(node.pubs) == {"/wm/dry_run/commands", "/diagnostics"}
    assert np.allclose(node.pubs["/wm/dry_run/commands"].sent[-1].data, [0.0, 0.0])


# ------------------------------------------------------------------------------------------
# A real process over DDS
# ------------------------------------------------------------------------------------------
REMAPPED = ["/wm/estop", "/wm/estop_reset", "/wm/mode", "/teleop/command", "/joint_states", COMMANDS, DRY,
            "/diagnostics", "/wm/reset_estop", "/wm/set_mode/autonomous", "/wm/set_mode/teleop"]


def topic(name, ns=NS):
    return f"{ns}/{name.strip('/').replace('/', '_')}"


def remaps(ns):
    return [x for r in REMAPPED for x in ("-r", f"{r}:={topic(r, ns)}")]


@pytest.fixture(scope="module")
def policy():
    with NodeProcess("policy", "-p", "robot_config:=two_joint", "-p", "mode:=teleop", "-p", "max_teleop_age:=5.0",
                     *remaps(NS)) as p:
        yield p


class Arm:
    """A robot that follows the command at once (on ``follow``: the controller's topic, or the dry-run topic),
    and an operator holding a target beyond the limits. Records what comes on both command topics and the
    policy's /diagnostics key values."""

    def __init__(self, ns=NS, follow=COMMANDS):
        self.ns = ns
        self.node = n = DdsNode(f"nobundle_rig{ns.replace('/', '_')}")
        self.seen: dict[str, list[np.ndarray]] = {COMMANDS: [], DRY: []}
        self.cmds = self.seen[follow]
        self.diag: dict[str, str] = {}
        self.q = np.zeros(2)
        for name, got in self.seen.items():
            n.create_subscription("trajectory_msgs/msg/JointTrajectory", topic(name, ns),
                                  lambda m, got=got: got.append(np.asarray(m.points[0].positions, float).copy()),
                                  qos.QoSProfile("reliable", "volatile", 1000))
        n.create_subscription("diagnostic_msgs/msg/DiagnosticArray", topic("/diagnostics", ns), self._on_diag,
                              qos.DIAGNOSTICS)
        self.js = n.create_publisher("sensor_msgs/msg/JointState", topic("/joint_states", ns), qos.SENSOR_DATA)
        self.teleop = n.create_publisher("sensor_msgs/msg/JointState", topic("/teleop/command", ns))
        self.mode = n.create_publisher("std_msgs/msg/String", topic("/wm/mode", ns), qos.LATCHED)
        self.estop = n.create_publisher("std_msgs/msg/Bool", topic("/wm/estop", ns), qos.DEFAULT)  # volatile
        self.target = np.array([9.0, -9.0])
        n.create_timer(0.01, self._tick)

    def _on_diag(self, msg):
        for st in msg.status:
            self.diag.update({kv.key: kv.value for kv in st.values})

    def _tick(self):
        if self.cmds:
            self.q = self.cmds[-1]
        n = self.node
        self.js.publish(cv.make_joint_state(n.msg, n.now(), JOINTS, self.q, np.zeros(2)))
        self.teleop.publish(cv.make_joint_state(n.msg, n.now(), JOINTS, self.target))

    def call(self, service):
        cli = self.node.create_client("std_srvs/srv/Trigger", topic(service, self.ns))
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


def test_over_dds_commands_go_to_the_controller_and_none_to_the_dry_run_topic(arm, policy):
    assert arm.node.spin(until=lambda: "dry_run" in arm.diag, timeout=10), policy.output()
    n = len(arm.seen[COMMANDS])
    arm.node.spin(timeout=0.3)
    assert len(arm.seen[COMMANDS]) > n and not arm.seen[DRY]
    assert arm.diag["dry_run"] == "false" and arm.diag["command_topic"] == COMMANDS


@pytest.fixture(scope="module")
def dry():
    ns = f"{NS}_dry"
    with NodeProcess("policy", "-p", "robot_config:=two_joint", "-p", "mode:=teleop", "-p", "max_teleop_age:=5.0",
                     "-p", "dry_run:=true", *remaps(ns)) as p:
        a = Arm(ns, follow=DRY)  # the rig follows the dry-run commands: the operator sees the same motion
        try:
            assert a.node.spin(until=lambda: len(a.cmds) > 10, timeout=20), p.output()
            yield a, p
        finally:
            a.node.destroy()


def test_over_dds_a_dry_run_publishes_on_the_dry_run_topic_only(dry):
    a, p = dry
    assert "DRY RUN: commands go to /wm/dry_run/joint_trajectory only" in p.output()
    assert a.node.spin(until=lambda: np.allclose(a.cmds[-1], [3.1, -2.6]), timeout=10), a.cmds[-1]
    assert np.abs(np.diff(np.stack(a.cmds), axis=0)).max() <= STEP + 1e-9  # the same limits and rate limit
    assert a.node.spin(until=lambda: a.diag.get("dry_run") == "true", timeout=10), a.diag
    assert a.diag["command_topic"] == DRY
    assert not a.seen[COMMANDS]  # nothing ever on the controller's topic

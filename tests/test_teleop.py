"""Teleoperation: key / Joy mapping, the target integrator, the operator's view (pure), then over real DDS:
a gamepad drives the simulated arm through the policy node (mode teleop, safety layer) only while the
deadman is held, and the view is served as MJPEG over HTTP by `wm-control teleop`."""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque

import cv2
import numpy as np
import pytest

from tests.helpers import NodeProcess
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.api import ConfigError, config_from_params
from wm_control.teleop.joy import JoyMapping, apply_deadzone
from wm_control.teleop.keys import ESC, KeyAction, KeyMap, key_action, split_keys, window_key
from wm_control.teleop.mjpeg import MjpegServer
from wm_control.teleop.target import TargetIntegrator
from wm_control.teleop.view import BAR_H, GAP, GAP_COLOUR, compose_view, encode_jpeg, preview_frames
from wm_control.world.frames import image_msg_to_rgb

RED, BLUE = (220, 30, 30), (30, 30, 220)


# ------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------
def test_key_mapping():
    km = KeyMap()
    assert key_action("q", km, 2) == KeyAction("joint", 0, +1)
    assert key_action("a", km, 2) == KeyAction("joint", 0, -1)
    assert key_action("W", km, 2) == KeyAction("joint", 1, +1)  # case-insensitive
    assert key_action("s", km, 2) == KeyAction("joint", 1, -1)
    assert key_action("e", km, 2) is None  # joint 2 does not exist on a 2-joint arm
    assert key_action("e", km, 7) == KeyAction("joint", 2, +1)
    assert key_action("j", km, 7) == KeyAction("joint", 6, -1)
    assert key_action(" ", km, 2).kind == "estop"
    assert key_action("c", km, 2).kind == "reset"
    assert key_action("m", km, 2).kind == "mode"
    assert key_action(ESC, km, 2).kind == "quit"
    assert key_action("+", km, 2).factor > 1 and key_action("-", km, 2).factor < 1
    assert key_action("z", km, 2) is None and key_action("", km, 2) is None
    with pytest.raises(ValueError, match="bound twice"):
        KeyMap(plus="qm", minus="as")  # m is the mode key
    with pytest.raises(ValueError, match="same length"):
        KeyMap(plus="qw", minus="a")
    assert "joint0: q (+) / a (-)" in km.help(2, ["joint0", "joint1"])


def test_terminal_input_is_split_into_keys():
    assert split_keys("q\x1b[Aw") == ["q", "w"]  # an arrow key's escape sequence is dropped
    assert split_keys("\x1b[1;5Ca\x1bOPs") == ["a", "s"]  # CSI with parameters, SS3 (F1)
    assert split_keys("a\x1b") == ["a", ESC]  # a lone Esc is the Esc key
    assert window_key(-1) is None and window_key(ord("q")) == "q" and window_key(27) == ESC


# ------------------------------------------------------------------------------------------
# Joy
# ------------------------------------------------------------------------------------------
def test_deadzone_is_zero_inside_and_rescaled_outside():
    dz = apply_deadzone(np.array([0.0, 0.05, -0.1, 0.55, -1.0, 1.0, 2.0]), 0.1)
    assert np.allclose(dz, [0, 0, 0, 0.5, -1.0, 1.0, 1.0])
    x = np.linspace(-1, 1, 2001)
    y = apply_deadzone(x, 0.2)
    assert np.all(np.diff(y) >= 0) and np.max(np.abs(np.diff(y))) < 0.01  # monotone, continuous
    assert np.allclose(apply_deadzone(x, 0.0), x)


def test_joy_axes_to_joint_velocities():
    joy = JoyMapping(3, axes=[0, -1, 3], scale=[1.0, 2.0, -0.5], deadzone=0.1)
    axes = [0.55, 0.9, 0.0, 1.0, 0.3]
    assert np.allclose(joy.velocity(axes), [0.5, 0.0, -0.5])  # joint 1 unmapped; joint 2 flipped
    assert np.allclose(joy.velocity([0.05, 0, 0, -0.08]), 0.0)  # all inside the deadzone
    one = JoyMapping(2, axes=[1, 0], scale=[0.5], deadzone=0.0)
    assert np.allclose(one.velocity([0.2, -1.0]), [-0.5, 0.1])  # one scale for all joints, axes swapped
    with pytest.raises(ValueError, match="has 2 axes"):
        joy.velocity([0.0, 0.0])
    with pytest.raises(ValueError, match="non-finite"):
        joy.velocity([np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="scale"):
        JoyMapping(3, scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="maps no axis"):
        JoyMapping(2, axes=[-1, -1])
    with pytest.raises(ValueError, match="deadman"):
        JoyMapping(2, enable_button=-1)


def test_deadman_button():
    joy = JoyMapping(2, enable_button=4)
    assert not joy.enabled([0, 0, 0, 0, 0, 0])
    assert joy.enabled([0, 0, 0, 0, 1, 0])
    assert not joy.enabled([1, 1, 1, 1])  # a pad with fewer buttons never enables
    assert not joy.enabled([])
    assert JoyMapping(2, enable_button=-1, require_enable=False).enabled([])
    stop = JoyMapping(2, estop_button=1, reset_button=7)
    assert stop.estop_pressed([0, 1]) and not stop.reset_pressed([0, 1])


# ------------------------------------------------------------------------------------------
# The target
# ------------------------------------------------------------------------------------------
def test_integrator_starts_from_measured_and_integrates():
    it = TargetIntegrator(2)
    with pytest.raises(ValueError, match="no measured"):
        it.reset()
    it.measure(np.array([0.3, -0.2]))
    it.reset()
    assert np.allclose(it.target, [0.3, -0.2])
    for _ in range(50):
        it.step(np.array([1.0, -0.5]), 0.02)
    assert np.allclose(it.target, [1.3, -0.7])
    it.nudge(1, 0.05)
    assert np.allclose(it.target, [1.3, -0.65])
    with pytest.raises(ValueError):
        it.step(np.array([np.nan, 0.0]), 0.02)


def test_integrator_clamps_to_limits_and_lead():
    it = TargetIntegrator(2, lower=[-1.0, -0.5], upper=[1.0, 0.5])
    it.reset(np.array([0.9, 0.0]))
    for _ in range(100):
        it.step(np.array([1.0, -1.0]), 0.02)
    assert np.allclose(it.target, [1.0, -0.5])  # the limits, not 2.9 / -2.0
    lead = TargetIntegrator(1, max_lead=0.2)
    lead.reset(np.array([0.0]))
    for _ in range(10):
        lead.nudge(0, 0.05)
    assert np.isclose(lead.target[0], 0.2)  # no wind-up past the robot
    lead.measure(np.array([0.15]))
    lead.step(np.array([1.0]), 0.5)  # 0.2 + 0.5, bounded to 0.15 + 0.2
    assert np.isclose(lead.target[0], 0.35)
    with pytest.raises(ValueError, match="<="):
        TargetIntegrator(1, lower=[1.0], upper=[0.0])
    with pytest.raises(ValueError, match="2 values"):
        TargetIntegrator(2, lower=[0.0], upper=[1.0])


# ------------------------------------------------------------------------------------------
# The view
# ------------------------------------------------------------------------------------------
def solid(h, w, colour):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = colour
    return img


def test_view_composition_camera_left_preview_right():
    cam = solid(64, 64, RED)
    strip = solid(64, 3 * 64, BLUE)  # k = 3 predicted frames
    assert preview_frames(strip) == 3 and preview_frames(solid(64, 100, BLUE)) == 1
    v = compose_view(cam, strip, height=128, status="TELEOP")
    assert v.shape == (BAR_H + 128 + BAR_H, 128 + GAP + 3 * 128, 3) and v.dtype == np.uint8
    body = v[BAR_H: BAR_H + 128]
    assert np.all(body[:, :128] == RED)  # the camera is the left part, scaled x2 exactly
    assert np.all(body[:, 128 + GAP:] == BLUE)  # the preview strip the right
    assert np.all(body[:, 128: 128 + GAP] == GAP_COLOUR)
    assert v[: BAR_H].std() > 0 and v[-BAR_H:].std() > 0  # labels and status are drawn
    # nearest neighbour: a one-pixel detail becomes a sharp 2x2 block
    cam[10, 20] = (0, 255, 0)
    body = compose_view(cam, strip, height=128)[BAR_H:]
    assert np.all(body[20:22, 40:42] == (0, 255, 0)) and np.all(body[19, 40] == RED) and np.all(body[22, 40] == RED)
    # different resolutions are brought to one height; missing images are placeholders
    v = compose_view(solid(96, 128, RED), None, height=48)
    assert v.shape == (BAR_H + 48, 64 + GAP + 48, 3)
    assert np.all(v[BAR_H:, :64] == RED)
    with pytest.raises(ValueError):
        compose_view(np.zeros((8, 8), np.uint8), None)
    # a long preview (8 frames) is made lower to stay within max_width, at a whole multiple of 64 px
    v = compose_view(solid(64, 64, RED), solid(64, 8 * 64, BLUE), height=256, max_width=1600)
    assert v.shape == (BAR_H + 128, 128 + GAP + 8 * 128, 3)
    assert compose_view(solid(64, 64, RED), solid(64, 8 * 64, BLUE), height=256).shape[1] == 256 + GAP + 2048


def get(url, timeout=3.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def read_stream_frame(url, timeout=5.0):
    """The first JPEG of a multipart/x-mixed-replace stream: (content type, jpeg bytes)."""
    r = urllib.request.urlopen(url, timeout=timeout)
    ctype = r.headers.get("Content-Type")
    boundary = ctype.split("boundary=")[1].encode()
    assert r.readline().strip() == b"--" + boundary
    headers = {}
    while (line := r.readline().strip()):
        k, v = line.decode().split(":", 1)
        headers[k.lower()] = v.strip()
    assert headers["content-type"] == "image/jpeg"
    data = r.read(int(headers["content-length"]))
    r.close()
    return ctype, data


def test_mjpeg_server_serves_frames():
    srv = MjpegServer("127.0.0.1", 0)
    try:
        assert get(srv.url)[0] == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            get(srv.url + "nothing")
        assert e.value.code == 404
        frame = compose_view(solid(32, 32, RED), solid(32, 64, BLUE), height=64)
        srv.update(encode_jpeg(frame))
        status, ctype, data = get(srv.url + "frame.jpg")
        assert status == 200 and ctype == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == frame.shape
        ctype, data = read_stream_frame(srv.url + "stream")
        assert ctype.startswith("multipart/x-mixed-replace")
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == frame.shape
        with pytest.raises(RuntimeError, match="another mjpeg_port"):
            MjpegServer("127.0.0.1", srv.port)  # the port is taken
    finally:
        srv.close()


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------
def test_config_errors_are_clear(monkeypatch):
    from wm_control.ros.dds import DdsNode
    from wm_control.ros.nodes.teleop import TeleopConfig, TeleopNode

    for bad, match in [({"input": "mouse"}, "input must be one of"), ({"view": "tv"}, "view must be one of"),
                       ({"rate": 0.0}, "rate must be > 0"), ({"deadzone": 1.0}, "deadzone"),
                       ({"keys_plus": "qm", "keys_minus": "as"}, "bound twice"),
                       ({"input": "joy", "enable_button": -1}, "deadman"), ({"input": 3}, "must be a string")]:
        with pytest.raises(ConfigError, match=match):
            config_from_params(TeleopConfig, bad)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    node = DdsNode("teleop_cfg_test")
    try:
        with pytest.raises(ValueError, match="view 'window' is not possible: no display"):
            TeleopNode(node, config_from_params(TeleopConfig, {"view": "window"}))
        with pytest.raises(ValueError, match="scale needs 1 value or one per joint"):
            TeleopNode(node, config_from_params(TeleopConfig, {"input": "joy", "view": "none", "scale": [1.0, 2.0],
                                                               "joint_names": ["a", "b", "c"]}))
        # joints from the first /joint_states that the parameters do not fit: a clear error, exit code 1
        teleop = TeleopNode(node, config_from_params(TeleopConfig, {"input": "joy", "view": "none",
                                                                    "scale": [1.0, 2.0], "set_mode": False}))
        with pytest.raises(SystemExit) as e:
            teleop.on_joint_state(cv.make_joint_state(node.msg, 0.0, ["a", "b", "c"], np.zeros(3)))
        assert e.value.code == 1
        teleop.close()
    finally:
        node.destroy()


def test_teleop_graph_config_is_launchable():
    """config/teleop.yaml: every section is a known node whose parameters are valid."""
    from wm_control.ros.args import load_params_file
    from wm_control.ros.launcher import graph_from_config
    from wm_control.ros.runner import node_class

    path = os.path.join(os.path.dirname(__file__), "..", "config", "teleop.yaml")
    specs = {s.name: s for s in graph_from_config(path)}
    assert set(specs) == {"sim_robot", "camera_ingest", "policy", "world_model", "teleop"}
    for s in specs.values():
        params = load_params_file(path, s.name, s.namespace)
        params.pop("use_sim_time", None)
        cfg = config_from_params(node_class(s.node_type).Config, params)
        if s.name == "teleop":
            assert cfg.view == "mjpeg" and cfg.uses_joy
        if s.name == "policy":
            assert cfg.mode == "teleop" and cfg.bundle == "bundles/bc"
        if s.name == "camera_ingest":
            assert (cfg.width, cfg.height) == (64, 64)
        if s.name == "world_model":
            assert cfg.bundle == "bundles/visual" and cfg.preview_steps > 0


# ------------------------------------------------------------------------------------------
# Over DDS: the view on a topic (in-process), a gamepad driving the simulated arm (processes)
# ------------------------------------------------------------------------------------------
def spin(nodes, seconds, until=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for n in nodes:
            n.spin_once(0.005)
        if until is not None and until():
            return True
    return bool(until and until())


def test_view_on_a_topic():
    from wm_control.ros.dds import DdsNode
    from wm_control.ros.nodes.teleop import TeleopConfig, TeleopNode

    node = DdsNode("teleop_view_test", remaps={"/wm/frame": "/vt/frame", "/wm/preview": "/vt/preview",
                                               "/wm/teleop_view": "/vt/view", "/wm/mode": "/vt/mode"})
    cfg = config_from_params(TeleopConfig, {"view": "topic", "input": "joy", "joint_names": ["joint0", "joint1"],
                                            "view_height": 96, "view_rate": 20.0})
    teleop = TeleopNode(node, cfg)
    rig = DdsNode("teleop_view_rig")
    views = []
    rig.create_subscription("sensor_msgs/msg/Image", "/vt/view", views.append, qos.SENSOR_DATA)
    cam = rig.create_publisher("sensor_msgs/msg/Image", "/vt/frame", qos.SENSOR_DATA)
    prev = rig.create_publisher("sensor_msgs/msg/Image", "/vt/preview", qos.SENSOR_DATA)
    try:
        def got_both():
            cam.publish(cv.make_image(rig.msg, rig.now(), solid(64, 64, RED)))
            prev.publish(cv.make_image(rig.msg, rig.now(), solid(64, 128, BLUE)))
            if not views:
                return False
            v = image_msg_to_rgb(views[-1])
            return np.all(v[BAR_H + 10, 10] == RED) and np.all(v[BAR_H + 10, -10] == BLUE)

        assert spin([node, rig], 10.0, got_both), f"{len(views)} views, none with camera and preview"
        v = views[-1]
        assert v.encoding == "rgb8"
        assert (v.height, v.width) == (BAR_H + 96 + BAR_H, 96 + GAP + 192)
    finally:
        teleop.close()
        node.destroy()
        rig.destroy()


@pytest.mark.parametrize("profile", [qos.DEFAULT, qos.QoSProfile("best_effort", "volatile", 10), qos.LATCHED],
                         ids=["ros_default", "best_effort", "latched"])
def test_teleop_hears_an_estop_from_a_publisher_of_any_qos(profile):
    """/wm/estop read as the policy node reads it: a volatile (ROS 2 default) or best-effort publisher's
    e-stop stops the teleop commands too, not only a latched one; each source holds its own."""
    from wm_control.ros.dds import DdsNode
    from wm_control.ros.nodes.teleop import TeleopConfig, TeleopNode

    node = DdsNode("teleop_estop_test", remaps={"/wm/estop": "/te/estop", "/wm/mode": "/te/mode",
                                                "/joint_states": "/te/joint_states"})
    teleop = TeleopNode(node, config_from_params(TeleopConfig, {"view": "none", "input": "joy", "set_mode": False,
                                                                "joint_names": ["joint0", "joint1"]}))
    rig = DdsNode("teleop_estop_rig")
    a, b = (rig.create_publisher("std_msgs/msg/Bool", "/te/estop", profile) for _ in range(2))
    bool_ = lambda v: rig.msg("std_msgs/msg/Bool", data=v)  # noqa: E731
    try:
        assert spin([node, rig], 5.0, lambda: a.matched() > 0 and b.matched() > 0)
        a.publish(bool_(True))
        assert spin([node, rig], 5.0, lambda: teleop.session.estop), "teleop did not hear the e-stop"
        assert not teleop.session.can_move
        b.publish(bool_(False))  # another source's false does not clear a's
        spin([node, rig], 0.3)
        assert teleop.session.estop
        a.publish(bool_(False))
        assert spin([node, rig], 5.0, lambda: not teleop.session.estop)
        assert len(teleop.session.estop_sources) == 2  # one per publisher, each sample taken once
    finally:
        teleop.close()
        node.destroy()
        rig.destroy()


@pytest.fixture(scope="module")
def graph(debug_bc):
    """sim_robot + policy (mode hold until teleop sets teleop) + teleop on Joy, all real processes."""
    from concurrent.futures import ThreadPoolExecutor

    _, bundle = debug_bc
    args = [("sim_robot", "-p", "render:=false", "-p", "episode_s:=0.0"),
            ("policy", "-p", f"bundle:={bundle}", "-p", "device:=cpu", "-p", "mode:=hold", "-p", "track_frames:=false"),
            ("teleop", "-p", "input:=joy", "-p", "view:=none", "-p", "axis_map:=[0, 1]", "-p", "scale:=[0.8]",
             "-p", "enable_button:=4", "-p", "max_lead:=0.3")]
    with ThreadPoolExecutor(3) as ex:  # start them side by side
        futures = [ex.submit(NodeProcess, *a) for a in args]
    procs = [f.result() for f in futures if f.exception() is None]
    try:
        for f in futures:
            if f.exception() is not None:
                raise f.exception()
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()


class JoyRig:
    def __init__(self):
        from wm_control.ros.dds import DdsNode

        self.node = n = DdsNode("teleop_joy_rig")
        self.cmds: list[tuple[float, np.ndarray]] = []  # (receive time, joint0/joint1 target)
        self.q = None
        self.modes: list[str] = []
        n.create_subscription("sensor_msgs/msg/JointState", "/teleop/command", self._cmd,
                              qos.QoSProfile("reliable", "volatile", 1000))
        n.create_subscription("sensor_msgs/msg/JointState", "/joint_states", self._js, qos.SENSOR_DATA)
        n.create_subscription("std_msgs/msg/String", "/wm/mode", lambda m: self.modes.append(m.data), qos.LATCHED)
        self.pub = n.create_publisher("sensor_msgs/msg/Joy", "/joy", qos.SENSOR_DATA)
        self.axes, self.buttons = [0.0] * 6, [0] * 8
        n.create_timer(0.02, self._joy)  # like joy_node's autorepeat

    def _cmd(self, m):
        self.cmds.append((time.monotonic(), cv.joint_state_to_arrays(m, ["joint0", "joint1"])[0]))

    def _js(self, m):
        self.q = cv.joint_state_to_arrays(m, ["joint0", "joint1"])[0]

    def _joy(self):
        n = self.node
        self.pub.publish(n.msg("sensor_msgs/msg/Joy", header=cv.header(n.msg, n.now()),
                               axes=np.array(self.axes, np.float32), buttons=np.array(self.buttons, np.int32)))

    def set(self, axis0=0.0, enable=False):
        self.axes[0] = axis0
        self.buttons[4] = int(enable)

    def run(self, seconds, until=None):
        return self.node.spin(until=until, timeout=seconds)


def test_joy_drives_the_arm_through_policy_only_with_deadman(graph):
    sim, policy, teleop = graph
    rig = JoyRig()
    try:
        assert rig.run(10, until=lambda: rig.q is not None and "teleop" in rig.modes), \
            f"modes {rig.modes}\n{teleop.output()}"
        # stick pushed, deadman released: nothing is commanded, the arm stays
        rig.set(axis0=1.0, enable=False)
        q0 = rig.q.copy()
        rig.run(0.8)
        assert rig.cmds == [], f"{len(rig.cmds)} commands without the enable button"
        assert abs(rig.q[0] - q0[0]) < 0.02

        # deadman held, stick +: the target and the joint move +
        rig.set(axis0=1.0, enable=True)
        t0 = time.monotonic()
        rig.run(1.2)
        fwd = [c for t, c in rig.cmds if t >= t0]
        assert len(fwd) > 30, f"only {len(fwd)} commands in 1.2 s\n{teleop.output()}"
        tgt = np.stack(fwd)
        assert tgt[-1, 0] - tgt[0, 0] > 0.4 and np.all(np.diff(tgt[:, 0]) >= -1e-9)  # only ever forward
        assert abs(tgt[-1, 1] - tgt[0, 1]) < 0.05  # the other joint's target stays
        assert np.all(tgt[:, 0] <= rig.q[0] + 0.3 + 0.2)  # bounded lead on what the robot does
        q1 = rig.q.copy()
        assert q1[0] - q0[0] > 0.3, f"joint0 moved {q1[0] - q0[0]:.3f} rad\n{policy.output()}"
        assert abs(q1[1] - q0[1]) < 0.1

        # stick -: back
        rig.set(axis0=-1.0, enable=True)
        t1 = time.monotonic()
        rig.run(1.0)
        back = np.stack([c for t, c in rig.cmds if t >= t1])
        assert back[-1, 0] < back[0, 0] - 0.3
        q2 = rig.q.copy()
        assert q2[0] < q1[0] - 0.2, f"joint0 went {q2[0] - q1[0]:.3f} rad with the stick back"

        # deadman released again (stick still pushed): commands stop, the arm comes to rest
        rig.set(axis0=-1.0, enable=False)
        rig.run(0.15)
        n = len(rig.cmds)
        rig.run(0.8)
        assert len(rig.cmds) == n, f"{len(rig.cmds) - n} commands after the enable button was released"
        q3 = rig.q.copy()
        rig.run(0.4)
        assert abs(rig.q[0] - q3[0]) < 0.02  # held by the policy, not drifting on
    finally:
        rig_modes = rig.modes
        rig.node.destroy()
    assert teleop.p.poll() is None and policy.p.poll() is None and sim.p.poll() is None
    assert rig_modes[-1] == "teleop"


def test_teleop_reset_calls_the_service_and_says_who_still_holds_the_estop(graph):
    """The 'c' key's reset is the policy node's /wm/reset_estop Trigger: refused while another source holds
    the e-stop, and the log line names that source (its publisher); granted once it is released."""
    import logging

    from wm_control.ros.dds import DdsNode
    from wm_control.ros.nodes.teleop import TeleopConfig, TeleopNode

    node = DdsNode("teleop_reset_test")
    teleop = TeleopNode(node, config_from_params(TeleopConfig, {"view": "none", "input": "joy", "set_mode": False,
                                                                "joint_names": ["joint0", "joint1"]}))
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda r: lines.append(r.getMessage())
    teleop.log.addHandler(handler)
    rig = DdsNode("teleop_reset_rig")
    other = rig.create_publisher("std_msgs/msg/Bool", "/wm/estop", qos.LATCHED)
    probe = rig.create_client("std_srvs/srv/Trigger", "/wm/reset_estop")
    try:
        assert teleop.reset_client.wait_for_service(10.0), "the policy node serves no /wm/reset_estop"
        other.publish(rig.msg("std_msgs/msg/Bool", data=True))
        assert spin([node, rig], 5.0, lambda: teleop.session.estop), "teleop did not hear the e-stop"
        # the policy node has latched it once a reset is refused
        assert spin([node, rig], 5.0, lambda: not probe.call(rig.msg("std_srvs/srv/Trigger_Request")).success)
        teleop._reset_estop()
        refused = [m for m in lines if "e-stop reset refused" in m]
        assert refused and "still held by publisher" in refused[0], lines  # the rig's writer, by its handle
        other.publish(rig.msg("std_msgs/msg/Bool", data=False))
        assert spin([node, rig], 5.0, lambda: probe.call(rig.msg("std_srvs/srv/Trigger_Request")).success)
        lines.clear()
        teleop._reset_estop()
        assert any(m.startswith("e-stop reset:") for m in lines), lines
    finally:
        teleop.log.removeHandler(handler)
        teleop.close()
        node.destroy()
        rig.destroy()


def test_teleop_sets_hold_when_it_stops(graph):
    from wm_control.ros.dds import DdsNode

    *_, teleop = graph
    node = DdsNode("teleop_mode_rig")
    modes = []
    node.create_subscription("std_msgs/msg/String", "/wm/mode", lambda m: modes.append(m.data), qos.LATCHED)
    try:
        assert node.spin(until=lambda: "teleop" in modes, timeout=5)
        assert teleop.stop() == 0
        assert node.spin(until=lambda: modes[-1] == "hold", timeout=5), modes
        assert "mode -> hold" in teleop.output()
    finally:
        node.destroy()


# ------------------------------------------------------------------------------------------
# `wm-control teleop --view mjpeg`: the view over HTTP from a real process
# ------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_teleop_serves_mjpeg():
    from wm_control.ros.dds import DdsNode

    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "wm_control", "teleop", "--input", "joy", "--view", "mjpeg",
                          "--ros-args", "-p", f"mjpeg_port:={port}", "-p", "joint_names:=[joint0, joint1]",
                          "-p", "view_height:=128", "-p", "set_mode:=false", "-r", "/wm/frame:=/mj/frame",
                          "-r", "/wm/preview:=/mj/preview"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: deque[str] = deque(maxlen=200)
    threading.Thread(target=lambda: [lines.append(x) for x in p.stdout], daemon=True).start()
    rig = DdsNode("teleop_mjpeg_rig")
    cam = rig.create_publisher("sensor_msgs/msg/Image", "/mj/frame", qos.SENSOR_DATA)
    prev = rig.create_publisher("sensor_msgs/msg/Image", "/mj/preview", qos.SENSOR_DATA)
    rig.create_timer(0.05, lambda: (cam.publish(cv.make_image(rig.msg, rig.now(), solid(64, 64, RED))),
                                    prev.publish(cv.make_image(rig.msg, rig.now(), solid(64, 128, BLUE)))))
    url = f"http://127.0.0.1:{port}/"
    try:
        img = None
        end = time.monotonic() + 20
        while time.monotonic() < end and p.poll() is None:
            rig.spin(timeout=0.2)
            try:
                ctype, data = read_stream_frame(url + "stream", timeout=2)
            except (urllib.error.URLError, ConnectionError, OSError):
                continue
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]  # -> RGB
            y = BAR_H + 64
            if np.abs(img[y, 64].astype(int) - RED).max() < 40 and np.abs(img[y, -64].astype(int) - BLUE).max() < 40:
                break
        out = "\n".join(lines)
        assert img is not None, f"no MJPEG frame from {url}stream:\n{out}"
        assert ctype.startswith("multipart/x-mixed-replace")
        assert img.shape == (BAR_H + 128 + BAR_H, 128 + GAP + 256, 3), out
        y = BAR_H + 64
        assert np.abs(img[y, 64].astype(int) - RED).max() < 40, "the camera is not on the left"
        assert np.abs(img[y, -64].astype(int) - BLUE).max() < 40, "the preview is not on the right"
        assert f"view mjpeg at {url}" in out and "no keyboard input" not in out  # input joy: no keyboard wanted
    finally:
        rig.destroy()
        _interrupt(p)
    assert p.returncode == 0, "\n".join(lines)


# ------------------------------------------------------------------------------------------
# `wm-control teleop` with the keyboard, on a terminal (a pseudo-terminal here)
# ------------------------------------------------------------------------------------------
def _take_terminal():
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes this new session's controlling terminal


def test_cli_teleop_keyboard_on_a_terminal():
    import pty

    from wm_control.ros.dds import DdsNode

    master, slave = pty.openpty()
    remaps = [x for a, b in [("/joint_states", "/kb/joint_states"), ("/teleop/command", "/kb/command"),
                             ("/wm/mode", "/kb/mode"), ("/wm/estop", "/kb/estop"),
                             ("/wm/estop_reset", "/kb/estop_reset"), ("/wm/reset_estop", "/kb/reset_estop")]
              for x in ("-r", f"{a}:={b}")]
    p = subprocess.Popen([sys.executable, "-m", "wm_control", "teleop", "--view", "none", "--ros-args",
                          "-p", "key_step:=0.05", "-p", "max_lead:=0.3", "-p", "joint_names:=[joint0, joint1]",
                          *remaps],
                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=_take_terminal,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    os.close(slave)
    out = bytearray()

    def pump():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            out.extend(chunk)

    threading.Thread(target=pump, daemon=True).start()
    rig = DdsNode("teleop_kb_rig")
    cmds, modes, estops, resets = [], [], [], []
    rig.create_subscription("sensor_msgs/msg/JointState", "/kb/command",
                            lambda m: cmds.append(cv.joint_state_to_arrays(m, ["joint0", "joint1"])[0]),
                            qos.QoSProfile("reliable", "volatile", 1000))
    rig.create_subscription("std_msgs/msg/String", "/kb/mode", lambda m: modes.append(m.data), qos.LATCHED)
    rig.create_subscription("std_msgs/msg/Bool", "/kb/estop", lambda m: estops.append(bool(m.data)), qos.LATCHED)
    rig.create_subscription("std_msgs/msg/Empty", "/kb/estop_reset", resets.append, qos.DEFAULT)
    js = rig.create_publisher("sensor_msgs/msg/JointState", "/kb/joint_states", qos.SENSOR_DATA)
    q = np.array([0.1, -0.2])
    rig.create_timer(0.02, lambda: js.publish(cv.make_joint_state(rig.msg, rig.now(), ["joint1", "joint0"], q[::-1])))
    text = lambda: out.decode(errors="replace")  # noqa: E731

    def keys(s, settle=0.3):
        os.write(master, s.encode())
        rig.spin(timeout=settle)

    try:
        assert rig.spin(until=lambda: len(cmds) > 5, timeout=15), f"no held target published:\n{text()}"
        assert "keyboard: terminal" in text() and modes[-1] == "teleop"
        assert np.allclose(cmds[-1], q)  # the held target starts at the measured position
        keys("qqq")
        assert np.allclose(cmds[-1], [0.25, -0.2]), cmds[-1]
        keys("s\x1b[A")  # joint1 -, then an arrow key (ignored, not Esc)
        assert np.allclose(cmds[-1], [0.25, -0.25]), cmds[-1]
        keys("+a")  # faster: one step is 0.075
        assert np.allclose(cmds[-1], [0.175, -0.25]), cmds[-1]
        keys(" ")  # E-STOP: latched on /wm/estop, no more commands
        assert estops[-1] is True
        n = len(cmds)
        rig.spin(timeout=0.3)
        assert len(cmds) == n
        keys("c", settle=0.1)  # clear: false, then the reset (no policy node serves /wm/reset_estop here: the
        # topic); commands resume from the measured position
        assert rig.spin(until=lambda: resets and estops[-1] is False, timeout=5), (estops, resets)
        assert rig.spin(until=lambda: "no /wm/reset_estop service answered" in text(), timeout=3), text()
        assert len(cmds) > n and np.allclose(cmds[-1], q)
        keys("m")  # hold: the mode goes to the policy, teleop stops commanding
        assert modes[-1] == "hold"
        n = len(cmds)
        rig.spin(timeout=0.3)
        assert len(cmds) == n
        keys("\x1b", settle=0.1)  # Esc quits
        p.wait(10)
        assert p.returncode == 0, text()
        assert rig.spin(until=lambda: modes[-1] == "hold", timeout=3)
    finally:
        rig.destroy()
        _interrupt(p)
        os.close(master)


def _interrupt(p: subprocess.Popen) -> None:
    """Ctrl-C a process still running (and kill it if it does not stop within 10 s)."""
    if p.poll() is None:
        p.send_signal(2)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _raw_get(port: int, path: str, host: str | None, extra: str = "") -> int:
    """An HTTP GET with a Host header of our choosing (urllib always sends the true one)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        hdr = f"Host: {host}\r\n" if host is not None else ""
        s.sendall(f"GET {path} HTTP/1.1\r\n{hdr}{extra}Connection: close\r\n\r\n".encode())
        return int(s.recv(64).split()[1])


def test_mjpeg_refuses_a_foreign_host_header_dns_rebinding():
    srv = MjpegServer("127.0.0.1", 0)
    try:
        srv.update(encode_jpeg(solid(16, 16, RED)))
        assert _raw_get(srv.port, "/frame.jpg", f"127.0.0.1:{srv.port}") == 200
        assert _raw_get(srv.port, "/frame.jpg", f"localhost:{srv.port}") == 200
        assert _raw_get(srv.port, "/frame.jpg", f"evil.example:{srv.port}") == 403  # a rebinding page
        assert _raw_get(srv.port, "/frame.jpg", "127.0.0.1:1") == 403  # another port: not us
        assert _raw_get(srv.port, "/frame.jpg", None) == 403
    finally:
        srv.close()


def test_mjpeg_token_is_required_when_set():
    srv = MjpegServer("127.0.0.1", 0, token="s3cret")
    try:
        srv.update(encode_jpeg(solid(16, 16, RED)))
        host = f"127.0.0.1:{srv.port}"
        assert _raw_get(srv.port, "/frame.jpg", host) == 401
        assert _raw_get(srv.port, "/frame.jpg?token=wrong", host) == 401
        assert _raw_get(srv.port, "/frame.jpg?token=s3cret", host) == 200
        assert _raw_get(srv.port, "/frame.jpg", host, "Authorization: Bearer s3cret\r\n") == 200
        page = urllib.request.urlopen(srv.url + "?token=s3cret", timeout=5).read().decode()
        assert 'src="/stream?token=s3cret"' in page  # the page's stream carries it on
    finally:
        srv.close()

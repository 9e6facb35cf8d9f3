"""``teleop``: an operator drives the robot with the keyboard and/or a gamepad (``sensor_msgs/Joy``),
through the policy node's TELEOP mode and its safety layer, watching the camera beside the world
model's preview.

Never talks to the controller: it publishes ``/teleop/command`` (``sensor_msgs/JointState``, named
position targets) at ``rate``; the policy node follows it in mode ``teleop`` through its limits, rate
limit and e-stop, and holds when it goes stale (0.5 s). On start it sets ``/wm/mode`` (latched) to
``teleop``, on shutdown to ``hold``. ``/wm/estop`` is read as the policy node reads it: a publisher of any
QoS is heard (:data:`wm_control.ros.topics.ANY_QOS_READERS`), each publisher a source of its own.

Input (``input``: keyboard | joy | both):

* keyboard: joint i moves by ``key_step`` (times the speed) with ``keys_plus[i]`` / ``keys_minus[i]``
  (default rows ``qwertyu`` / ``asdfghj``); ``m`` teleop <-> hold, space E-STOP (``/wm/estop`` true),
  ``c`` clears it (``/wm/estop`` false, then the ``/wm/reset_estop`` call, whose refusal names the sources
  that still hold it; ``/wm/estop_reset`` where no service answers), ``+`` / ``-`` speed, Esc quits. Keys
  come from the OpenCV window when there is one, else from the terminal (only when stdin is a TTY in
  the foreground; otherwise a log line says there is no keyboard). The held target is published.
* joy: ``axis_map[i]`` drives joint i at ``scale`` rad/s at full deflection (after ``deadzone``), only
  while ``enable_button`` (the deadman) is held; nothing is published while it is released, or when
  no Joy message came for ``joy_timeout`` s. ``estop_button`` / ``estop_reset_button`` (-1: none).

The target starts from the measured joint positions (``/joint_states``, by name; ``joint_names``
default: the names in the first message), is integrated at ``rate``, clamped to
``position_lower/upper`` (optional: the policy enforces the robot's limits anyway) and kept within
``max_lead`` rad of the measured position. After hold, an e-stop or a deadman release it starts again
from the measured positions.

View (``view``: auto | window | topic | mjpeg | none): camera (``camera_topic``, default ``/wm/frame``)
| preview strip (``preview_topic``, ``/wm/preview``), scaled to ``view_height``, labelled, with a status
line. ``window``: an OpenCV window (``auto`` picks it where DISPLAY / WAYLAND_DISPLAY is set and OpenCV
has a GUI, else ``topic``); ``topic``: an rgb8 ``sensor_msgs/Image`` on ``view_topic``; ``mjpeg``: HTTP
on ``mjpeg_host:mjpeg_port`` (``/`` a page, ``/stream`` multipart MJPEG, ``/frame.jpg`` one frame).

``/diagnostics``: ``commands.rate_hz``, the ages of ``joy``, ``keys``, ``joint_states``, ``camera``,
``preview``, the mode, e-stop, speed, deadman, keyboard source, dropped messages. The state machine:
:class:`wm_control.teleop.session.TeleopSession`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from wm_control.messages import convert as cv
from wm_control.ros import qos, topics
from wm_control.ros.api import Diagnostics, Node
from wm_control.ros.throttle import ThrottledLog
from wm_control.teleop.joy import JoyMapping
from wm_control.teleop.keys import KeyMap, window_key
from wm_control.teleop.mjpeg import MjpegServer
from wm_control.teleop.session import Effect, TeleopSession
from wm_control.teleop.target import TargetIntegrator
from wm_control.teleop.terminal import TerminalKeys, terminal_usable
from wm_control.teleop.view import compose_view, encode_jpeg, gui_available, preview_frames
from wm_control.world import frames as im

INPUTS = ("keyboard", "joy", "both")
VIEWS = ("auto", "window", "topic", "mjpeg", "none")
WARN_PERIOD = 5.0
RESET_SERVICE_WAIT = 0.5  # s to find /wm/reset_estop before falling back to the /wm/estop_reset topic


@dataclass
class TeleopConfig:
    joint_names: list[str] = field(default_factory=list)
    """Joints to drive, by name; empty: every joint of the first /joint_states message."""
    rate: float = 50.0
    """Hz of /teleop/command and of the target integration."""
    input: str = "keyboard"
    """keyboard | joy | both."""
    joy_topic: str = "/joy"
    axis_map: list[int] = field(default_factory=lambda: [0, 1, 3, 4])
    """Joy axis per joint (joint i <- axis_map[i]; -1 or beyond the list: none). Default: the two sticks
    of a joy_node gamepad (left X, left Y, right X, right Y)."""
    scale: list[float] = field(default_factory=lambda: [0.5])
    """rad/s at full deflection: one value for all joints or one per joint (negative flips)."""
    deadzone: float = 0.1
    """|axis| below this is 0; above it the axis is rescaled to span [-1, 1]."""
    enable_button: int = 4
    """The deadman: joints move only while this button is held (4: left shoulder on joy_node)."""
    require_enable: bool = True
    """false: no deadman (motion whenever Joy messages come). Not recommended."""
    estop_button: int = -1
    """Joy button that latches the e-stop (-1: none)."""
    estop_reset_button: int = -1
    """Joy button that clears the e-stop (-1: none)."""
    joy_timeout: float = 0.5
    """s without a Joy message -> treated as released."""
    key_step: float = 0.05
    """rad per key press (times the speed)."""
    keys_plus: str = "qwertyu"
    keys_minus: str = "asdfghj"
    position_lower: list[float] = field(default_factory=list)
    """Optional clamp of the target (per joint); the policy's safety layer applies the robot's limits anyway."""
    position_upper: list[float] = field(default_factory=list)
    max_lead: float = 0.3
    """rad the target may run ahead of the measured position (0: unbounded)."""
    set_mode: bool = True
    """Publish /wm/mode teleop on start and hold on shutdown."""
    view: str = "auto"
    """auto | window | topic | mjpeg | none."""
    view_rate: float = 15.0
    view_height: int = 256
    """Height of the camera and the preview in the view, px (nearest-neighbour scaling)."""
    view_max_width: int = 1600
    """The view is made lower where a long preview strip would make it wider than this (0: no limit)."""
    view_topic: str = "/wm/teleop_view"
    mjpeg_host: str = "127.0.0.1"
    mjpeg_port: int = 8080
    """0: any free port (logged)."""
    mjpeg_token: str = ""
    """When set, every MJPEG request must carry it (?token=... or Authorization: Bearer ...)."""
    mjpeg_allowed_hosts: list[str] = field(default_factory=list)
    """Host header names answered besides localhost / loopback / mjpeg_host (e.g. the robot PC's name)."""
    jpeg_quality: int = 85
    camera_topic: str = "/wm/frame"
    preview_topic: str = "/wm/preview"

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {'|'.join(INPUTS)}, not {self.input!r}")
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {'|'.join(VIEWS)}, not {self.view!r}")
        for name in ("rate", "view_rate", "joy_timeout", "key_step"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be > 0, got {v}")
        if not 0 <= self.deadzone < 1:
            raise ValueError(f"deadzone must be in [0, 1), got {self.deadzone}")
        if len(set(self.joint_names)) != len(self.joint_names) or any(not n for n in self.joint_names):
            raise ValueError(f"joint_names must be distinct and non-empty, got {self.joint_names}")
        TargetIntegrator(len(self.joint_names) or len(self.position_lower), self.position_lower, self.position_upper,
                         self.max_lead)  # raises on bad limits or max_lead
        if not 8 <= self.view_height <= 4096:
            raise ValueError(f"view_height must be in 8..4096 px, got {self.view_height}")
        if self.view_max_width != 0 and self.view_max_width < 64:
            raise ValueError(f"view_max_width must be 0 (no limit) or >= 64 px, got {self.view_max_width}")
        if not 0 <= self.mjpeg_port <= 65535:
            raise ValueError(f"mjpeg_port must be in 0..65535, got {self.mjpeg_port}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.uses_joy and self.require_enable and self.enable_button < 0:
            raise ValueError("require_enable needs an enable_button >= 0 (the deadman button)")
        KeyMap(plus=self.keys_plus, minus=self.keys_minus)  # raises on clashing keys

    @property
    def uses_joy(self) -> bool:
        return self.input in ("joy", "both")


class TeleopNode:
    NAME = "teleop"
    Config = TeleopConfig

    def __init__(self, node: Node, cfg: TeleopConfig):
        self.node, self.cfg = node, cfg
        self.log = node.logger
        self.session = TeleopSession(KeyMap(plus=cfg.keys_plus, minus=cfg.keys_minus), cfg.key_step, cfg.rate,
                                     cfg.joy_timeout)
        self.names: list[str] = []
        self.camera = self.preview = None  # the last Image messages
        self.window: str | None = None
        self.terminal: TerminalKeys | None = None
        self.mjpeg: MjpegServer | None = None
        self.view_pub = None
        self.warn = ThrottledLog(node.logger, WARN_PERIOD)
        self._closed = False

        self.view_kind = self._choose_view()
        self.diag = Diagnostics(node, hardware_id=f"teleop:{cfg.input}")
        self.pub_cmd = node.create_publisher("sensor_msgs/msg/JointState", "/teleop/command", qos.DEFAULT)
        self.pub_mode = node.create_publisher("std_msgs/msg/String", "/wm/mode", qos.LATCHED)
        self.pub_estop = node.create_publisher("std_msgs/msg/Bool", "/wm/estop", qos.LATCHED)
        self.pub_reset = node.create_publisher("std_msgs/msg/Empty", "/wm/estop_reset", qos.DEFAULT)
        # the reset as the policy node's Trigger: its answer says which sources still hold the e-stop
        self.reset_client = node.create_client(topics.RESET_ESTOP.type, topics.RESET_ESTOP.name)
        node.create_subscription("sensor_msgs/msg/JointState", "/joint_states", self.on_joint_state, qos.SENSOR_DATA)
        node.create_subscription("std_msgs/msg/String", "/wm/mode", lambda m: self._apply(self.session.on_mode(m.data)),
                                 qos.LATCHED)
        topics.ESTOP.subscribe_any_qos(node, self.on_estop)  # as the policy node hears it: any publisher's QoS
        if cfg.uses_joy:
            node.create_subscription("sensor_msgs/msg/Joy", cfg.joy_topic, self.on_joy, qos.SENSOR_DATA)
        for what in ("camera", "preview") if self.view_kind != "none" else ():
            node.create_subscription("sensor_msgs/msg/Image", getattr(cfg, f"{what}_topic"),
                                     lambda m, w=what: self.on_image(w, m), qos.SENSOR_DATA)
        if cfg.joint_names:
            self._configure_joints(list(cfg.joint_names))  # bad axis_map / scale / limits fail the start

        self._open_view()
        self.key_source = self._open_keyboard()
        self.session.keyboard = self.key_source != "none"
        if self.names:
            self._announce()
        for k, v in (("input", cfg.input), ("view", self.view_kind), ("keyboard", self.key_source)):
            self.diag.set(k, v)
        self._status()
        if cfg.set_mode:
            self._apply(self.session.set_mode("teleop"))
        node.create_timer(1.0 / cfg.rate, self.tick)
        node.create_timer(1.0, self.warn.flush)
        if self.view_kind != "none":
            node.create_timer(1.0 / cfg.view_rate, self.view_tick)
        self.log.info("teleop: input %s (keyboard: %s), view %s%s, %.0f Hz on %s", cfg.input, self.key_source,
                      self.view_kind, f" at {self.mjpeg.url}" if self.mjpeg else "", cfg.rate,
                      node.resolve("/teleop/command"))

    # ---- configuration --------------------------------------------------------------------
    def _choose_view(self) -> str:
        v = self.cfg.view
        if v not in ("auto", "window"):
            return v
        ok, why = gui_available()
        if not ok and v == "window":
            raise ValueError(f"view 'window' is not possible: {why}; use view:=topic or view:=mjpeg")
        return "window" if ok else "topic"

    def _open_view(self) -> None:
        cfg = self.cfg
        if self.view_kind == "window":
            self.window = "wm_control teleop"
            try:
                cv2.namedWindow(self.window, cv2.WINDOW_AUTOSIZE)
            except cv2.error as exc:
                if cfg.view == "window":
                    raise RuntimeError(f"cannot open an OpenCV window: {exc}") from None
                self.log.warning("cannot open an OpenCV window (%s): publishing the view on %s instead",
                                 str(exc).strip().splitlines()[-1], cfg.view_topic)
                self.window, self.view_kind = None, "topic"
        if self.view_kind == "topic":
            self.view_pub = self.node.create_publisher("sensor_msgs/msg/Image", cfg.view_topic, qos.SENSOR_DATA)
        elif self.view_kind == "mjpeg":
            self.mjpeg = MjpegServer(cfg.mjpeg_host, cfg.mjpeg_port, log=self.log.debug, token=cfg.mjpeg_token,
                                     allowed_hosts=cfg.mjpeg_allowed_hosts)
            self.diag.set("mjpeg_url", self.mjpeg.url)

    def _open_keyboard(self) -> str:
        if self.cfg.input == "joy":
            return "none"
        if self.window is not None:
            return "window"
        ok, why = terminal_usable(0)
        if not ok:
            self.log.warning("no keyboard input: %s and there is no window (run `wm-control teleop` in a "
                             "terminal, or use a display, or input:=joy)", why)
            return "none"
        try:
            self.terminal = TerminalKeys(0)
        except Exception as exc:  # noqa: BLE001  (termios can refuse: report, run without keys)
            self.log.warning("no keyboard input: cannot put the terminal in cbreak mode (%s)", exc)
            return "none"
        return "terminal"

    def _configure_joints(self, names: list[str]) -> None:
        cfg, n = self.cfg, len(names)
        integ = TargetIntegrator(n, cfg.position_lower or None, cfg.position_upper or None, cfg.max_lead)
        joy = JoyMapping(n, axes=list(cfg.axis_map), scale=list(cfg.scale), deadzone=cfg.deadzone,
                         enable_button=cfg.enable_button, require_enable=cfg.require_enable,
                         estop_button=cfg.estop_button, reset_button=cfg.estop_reset_button) if cfg.uses_joy else None
        self.names, self.session.integrator, self.session.joy_map = names, integ, joy
        self.diag.set("joints", ",".join(names))

    def _announce(self) -> None:
        """Say which joints are driven and how (once the joints and the keyboard are known)."""
        cfg, names = self.cfg, self.names
        lines = [f"teleop joints {names}"]
        if self.key_source != "none":
            lines.append(f"keys ({self.key_source}):\n" + self.session.keymap.help(len(names), names))
        if self.session.joy_map is not None:
            axes = ", ".join(f"{nm} <- axis {a}" for nm, a in zip(names, self.session.joy_map.joint_axes) if a >= 0)
            dead = f"while button {cfg.enable_button} is held" if cfg.require_enable else "no deadman button!"
            lines.append(f"joy ({cfg.joy_topic}): {axes}, up to {cfg.scale} rad/s; {dead}")
        self.log.info("%s", "\n".join(lines))

    # ---- inputs -------------------------------------------------------------------------------
    def on_joint_state(self, msg: Any) -> None:
        if self.session.integrator is None:
            names = list(msg.name)
            try:
                self._configure_joints(names)
            except ValueError as exc:
                self.log.error("failed: cannot drive the joints of /joint_states %s: %s", names, exc)
                raise SystemExit(1) from None  # the runner closes the node; the exit code says it failed
            self._announce()
        try:
            q = cv.joint_state_to_arrays(msg, self.names)[0]
        except cv.ConversionError as exc:
            self._drop("joint_states", f"dropped joint state: {exc}")
            return
        self.session.integrator.measure(q)
        self.diag.tick("joint_states")

    def on_estop(self, msg: Any, info: Any = None) -> None:
        """/wm/estop from one of the readers; its source is the publisher (one source where the backend
        does not say), a sample heard on several readers is taken once (source timestamp)."""
        source, stamp = topics.sample_source(info, "/wm/estop")
        self.session.on_estop(bool(msg.data), source, stamp)

    def on_joy(self, msg: Any) -> None:
        self.diag.tick("joy")
        self._apply(self.session.on_joy(msg.axes, msg.buttons, time.monotonic()))

    def on_image(self, what: str, msg: Any) -> None:
        setattr(self, what, msg)  # the camera or the preview
        self.diag.tick(what)

    # ---- the session's effects --------------------------------------------------------------
    def _apply(self, effects: list[Effect]) -> None:
        """Carry out what the session asks for, in its order."""
        n = self.node
        for kind, value in effects:
            if kind == "command":
                self.pub_cmd.publish(cv.make_joint_state(n.msg, n.now(), self.names, value))
                self.diag.tick("commands")
            elif kind == "mode":
                self.pub_mode.publish(n.msg("std_msgs/msg/String", data=value))
            elif kind == "estop":
                self.pub_estop.publish(n.msg("std_msgs/msg/Bool", data=value))
            elif kind == "reset":
                threading.Thread(target=self._reset_estop, name="teleop-reset", daemon=True).start()
            elif kind == "dropped":
                self._drop(*value)
            elif kind == "quit":
                self._quit()
            else:
                getattr(self.log, kind)("%s", value)

    def _reset_estop(self) -> None:
        """Call ``/wm/reset_estop`` and say what came of it (refused: the sources that still hold it); where no
        server answers (a policy node without the service), publish ``/wm/estop_reset`` as before. Off the
        executor's thread: the call waits for its reply."""
        n = self.node
        try:
            if self.reset_client.wait_for_service(timeout=RESET_SERVICE_WAIT):
                r = self.reset_client.call(n.msg(f"{topics.RESET_ESTOP.type}_Request"), timeout=2.0)
                if r.success:
                    self.log.info("e-stop reset: %s", r.message or "clear")
                else:
                    self.log.error("e-stop reset refused: %s", r.message)
                return
        except (TimeoutError, RuntimeError) as exc:
            self.log.warning("e-stop reset call failed (%s): publishing /wm/estop_reset", exc)
        if not self._closed:
            self.pub_reset.publish(n.msg("std_msgs/msg/Empty"))
            self.log.info("e-stop reset published on /wm/estop_reset (no %s service answered)", topics.RESET_ESTOP.name)

    def _drop(self, what: str, text: str) -> None:
        self.diag.count(f"dropped.{what}")
        self.warn.log(what, "%s", text)

    def _quit(self) -> None:
        getattr(self.node, "shutdown", lambda: None)()

    # ---- the loop -----------------------------------------------------------------------------
    def tick(self) -> None:
        keys = self.terminal.read() if self.terminal is not None else []
        for _ in keys:
            self.diag.tick("keys")
        now = time.monotonic()
        self._apply(self.session.tick(now, keys))
        self.diag.set("deadman", self.session.joy_enabled(now))
        self._status()

    def _status(self) -> None:
        s = self.session
        for k, v in (("mode", s.mode), ("estop", s.estop), ("speed", s.speed)):
            self.diag.set(k, v)
        warn, text = s.status()
        self.diag.status(Diagnostics.WARN if warn else Diagnostics.OK, text)

    # ---- the view -------------------------------------------------------------------------------
    def _image(self, msg: Any, what: str) -> np.ndarray | None:
        if msg is None:
            return None
        try:
            return im.image_msg_to_rgb(msg)
        except (cv.ConversionError, ValueError) as exc:
            self._drop(what, f"cannot show {what} image: {exc}")
            return None

    def compose(self) -> np.ndarray:
        cam, prev = self._image(self.camera, "camera"), self._image(self.preview, "preview")
        cam_label = "camera" if cam is None else f"camera {cam.shape[1]}x{cam.shape[0]}"
        prev_label = "preview (world model)"
        if prev is not None:
            k = preview_frames(prev)
            age = self.node.now() - cv.stamp_sec(self.preview.header.stamp)
            prev_label = f"preview: {k} frame{'s' if k != 1 else ''}, from {1e3 * age:.0f} ms ago"
        return compose_view(cam, prev, self.cfg.view_height, cam_label, prev_label,
                            self.session.status_line(time.monotonic()), max_width=self.cfg.view_max_width)

    def view_tick(self) -> None:
        if self._closed:
            return
        rgb = self.compose()  # (this timer runs only with a view)
        if self.view_pub is not None:
            self.view_pub.publish(cv.make_image(self.node.msg, self.node.now(), rgb, frame_id="teleop_view"))
        elif self.mjpeg is not None:
            self.mjpeg.update(encode_jpeg(rgb, self.cfg.jpeg_quality))
            self.diag.set("mjpeg_clients", self.mjpeg.clients)
        elif self.window is not None:
            cv2.imshow(self.window, rgb[..., ::-1])
            for _ in range(16):
                key = window_key(cv2.waitKey(1))
                if key is None:
                    break
                self.diag.tick("keys")
                self._apply(self.session.key(key, time.monotonic()))
            try:
                closed = cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1
            except cv2.error:
                closed = True
            if closed and not self._closed:
                self.log.info("view window closed: stopping")
                self._quit()
        self.diag.tick("view")

    # ---- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.warn.flush(force=True)
        if self.terminal is not None:
            self.terminal.close()
        if self.cfg.set_mode:
            try:
                self.pub_mode.publish(self.node.msg("std_msgs/msg/String", data="hold"))
                self.log.info("mode -> hold")
                _wait_delivered(self.pub_mode)
            except Exception as exc:  # noqa: BLE001  (the graph may already be gone)
                self.log.warning("could not set /wm/mode to hold on shutdown: %s", exc)
        if self.mjpeg is not None:
            self.mjpeg.close()
        if self.window is not None:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.window)


def _wait_delivered(pub: Any, timeout: float = 1.0) -> None:
    """Give a reliable message time to reach the matched readers before the process goes away."""
    writer = getattr(pub, "_writer", None)  # dds backend: wait for the acknowledgements
    if writer is not None and hasattr(writer, "wait_for_acks"):
        writer.wait_for_acks(int(timeout * 1e9))
    else:
        time.sleep(0.2)

"""Teleoperation core: keyboard and gamepad (``sensor_msgs/Joy``) input to joint position targets, and
the operator's side-by-side view (camera | world-model preview). No ROS imports: the node
(:mod:`wm_control.ros.nodes.teleop`) wires these pieces to topics.

* :class:`KeyMap` / :func:`key_action`: per-joint +/- keys (joint i: ``plus[i]`` / ``minus[i]``, by default
  the rows ``qwertyu`` / ``asdfghj``) and the keys for mode, e-stop, e-stop reset, speed and quit.
* :class:`JoyMapping`: axes -> joint velocities (deadzone with rescaling, per-joint scale and sign), a
  deadman (``enable_button``, as in ``teleop_twist_joy``), optional e-stop / reset buttons.
* :class:`TargetIntegrator`: the commanded position target. It starts from the measured joint positions,
  integrates velocities at a fixed period, takes key steps, and is clamped to optional position limits
  and to ``max_lead`` rad around the measured position (no wind-up when the robot lags or is held).
* :func:`compose_view`: camera frame | preview strip, scaled (nearest neighbour) to one height, labelled.
* :class:`MjpegServer`: the view as ``multipart/x-mixed-replace`` JPEG over HTTP (stdlib, its own thread).
* :class:`TerminalKeys`: key presses from the terminal (cbreak mode, non-blocking), only where stdin is a
  TTY in the foreground.
"""

from __future__ import annotations

import atexit
import http.server
import math
import os
import select
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

# ------------------------------------------------------------------------------------------
# Keyboard
# ------------------------------------------------------------------------------------------
ESC = "\x1b"
KEY_NAMES = {" ": "space", ESC: "Esc", "\t": "Tab", "\r": "Enter", "\n": "Enter"}


def key_name(k: str) -> str:
    return KEY_NAMES.get(k, k)


@dataclass(frozen=True)
class KeyAction:
    """What one key press asks for. ``kind``: joint | mode | estop | reset | speed | quit."""

    kind: str
    joint: int = -1
    sign: int = 0
    factor: float = 1.0


@dataclass
class KeyMap:
    plus: str = "qwertyu"
    """Joint i moves + with plus[i]."""
    minus: str = "asdfghj"
    """Joint i moves - with minus[i]."""
    mode: str = "m"
    """Toggle teleop <-> hold."""
    estop: str = " "
    """Latch the e-stop (space)."""
    reset: str = "c"
    """Clear the e-stop (/wm/estop false, then /wm/estop_reset)."""
    faster: str = "+="
    slower: str = "-_"
    quit: str = ESC
    speed_factor: float = 1.5

    def __post_init__(self) -> None:
        if len(self.plus) != len(self.minus):
            raise ValueError(f"plus keys {self.plus!r} and minus keys {self.minus!r} must have the same length")
        seen: dict[str, str] = {}
        for what in ("plus", "minus", "mode", "estop", "reset", "faster", "slower", "quit"):
            for k in getattr(self, what):
                k = k.lower()
                if k in seen:
                    raise ValueError(f"key {key_name(k)!r} is bound twice ({seen[k]} and {what})")
                seen[k] = what
        if not self.speed_factor > 1:
            raise ValueError(f"speed_factor must be > 1, got {self.speed_factor}")

    def help(self, n_joints: int, names: Sequence[str] | None = None) -> str:
        names = list(names) if names is not None else [f"joint {i}" for i in range(n_joints)]
        lines = [f"  {names[i]}: {self.plus[i]} (+) / {self.minus[i]} (-)"
                 for i in range(min(n_joints, len(self.plus)))]
        if n_joints > len(self.plus):
            lines.append(f"  ({n_joints - len(self.plus)} more joints have no keys)")
        ks = lambda s: "/".join(key_name(k) for k in s)  # noqa: E731
        lines.append(f"  {ks(self.mode)}: teleop <-> hold   {ks(self.estop)}: E-STOP   {ks(self.reset)}: clear e-stop")
        lines.append(f"  {ks(self.faster)}: faster   {ks(self.slower)}: slower   {ks(self.quit)}: quit")
        return "\n".join(lines)


def key_action(key: str, keymap: KeyMap, n_joints: int) -> KeyAction | None:
    """The action of one key (a one-character string), or None when it is not bound."""
    if not key or len(key) != 1:
        return None
    k = key.lower()
    if k in keymap.plus.lower():
        i = keymap.plus.lower().index(k)
        return KeyAction("joint", i, +1) if i < n_joints else None
    if k in keymap.minus.lower():
        i = keymap.minus.lower().index(k)
        return KeyAction("joint", i, -1) if i < n_joints else None
    for kind in ("mode", "estop", "reset", "quit"):
        if k in getattr(keymap, kind).lower():
            return KeyAction(kind)
    if k in keymap.faster:
        return KeyAction("speed", factor=keymap.speed_factor)
    if k in keymap.slower:
        return KeyAction("speed", factor=1.0 / keymap.speed_factor)
    return None


def split_keys(text: str) -> list[str]:
    """Terminal input -> single key presses. Escape sequences (arrows, function keys: ESC [ ... or ESC O x)
    are dropped; a lone ESC is the Esc key."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ESC and i + 1 < len(text) and text[i + 1] in "[O":
            j = i + 2
            if text[i + 1] == "O":
                i = j + 1  # SS3: one final character
                continue
            while j < len(text) and not ("\x40" <= text[j] <= "\x7e"):
                j += 1  # CSI parameters
            i = j + 1
            continue
        keys.append(c)
        i += 1
    return keys


def window_key(code: int) -> str | None:
    """A ``cv2.waitKey`` code -> a one-character key (None for none / non-character keys)."""
    if code is None or code < 0:
        return None
    c = code & 0xFF
    if c == 255:
        return None
    return chr(c)


# ------------------------------------------------------------------------------------------
# Gamepad
# ------------------------------------------------------------------------------------------
def apply_deadzone(v: np.ndarray | float, deadzone: float) -> np.ndarray:
    """Zero inside ``deadzone``; outside it, rescaled so that the output still spans [-1, 1] continuously."""
    v = np.clip(np.asarray(v, dtype=np.float64), -1.0, 1.0)
    if deadzone <= 0:
        return v
    mag = np.abs(v)
    return np.where(mag <= deadzone, 0.0, np.sign(v) * (mag - deadzone) / (1.0 - deadzone))


def button(buttons: Sequence[int], index: int) -> bool:
    """Whether Joy button ``index`` is pressed (False for -1 or a button the message does not have)."""
    return 0 <= index < len(buttons) and bool(buttons[index])


@dataclass
class JoyMapping:
    """``sensor_msgs/Joy`` -> joint velocities (rad/s), gated by a deadman button.

    ``axes[i]`` is the Joy axis driving joint i (-1: none; joints beyond the list: none); ``scale[i]`` the
    velocity at full deflection (one value: every joint; a negative value flips the direction).
    """

    n_joints: int
    axes: list[int] = field(default_factory=lambda: [0, 1, 3, 4])
    scale: list[float] = field(default_factory=lambda: [0.5])
    deadzone: float = 0.1
    enable_button: int = 4
    require_enable: bool = True
    estop_button: int = -1
    reset_button: int = -1

    def __post_init__(self) -> None:
        if self.n_joints < 1:
            raise ValueError("JoyMapping needs at least one joint")
        if not 0 <= self.deadzone < 1:
            raise ValueError(f"deadzone must be in [0, 1), got {self.deadzone}")
        if self.require_enable and self.enable_button < 0:
            raise ValueError("require_enable needs an enable_button >= 0 (the deadman button)")
        if any(a < -1 for a in self.axes):
            raise ValueError(f"axis_map entries must be >= 0 (or -1 for none), got {self.axes}")
        if len(self.scale) not in (1,) and len(self.scale) < self.n_joints:
            raise ValueError(f"scale needs 1 value or one per joint ({self.n_joints}), got {len(self.scale)}")
        if not all(math.isfinite(s) for s in self.scale):
            raise ValueError(f"scale must be finite, got {self.scale}")
        if all(a < 0 for a in self.axes[: self.n_joints]):
            raise ValueError(f"axis_map {self.axes} maps no axis to any of the {self.n_joints} joints")
        self._scale = np.array(self.scale * self.n_joints if len(self.scale) == 1 else self.scale[: self.n_joints],
                               dtype=np.float64)
        self._axes = [self.axes[i] if i < len(self.axes) else -1 for i in range(self.n_joints)]

    @property
    def joint_axes(self) -> list[int]:
        return list(self._axes)

    @property
    def joint_scales(self) -> np.ndarray:
        return self._scale.copy()

    def enabled(self, buttons: Sequence[int]) -> bool:
        """The deadman: motion only while the enable button is held (or always when not required)."""
        return (not self.require_enable) or button(buttons, self.enable_button)

    def estop_pressed(self, buttons: Sequence[int]) -> bool:
        return button(buttons, self.estop_button)

    def reset_pressed(self, buttons: Sequence[int]) -> bool:
        return button(buttons, self.reset_button)

    def velocity(self, axes: Sequence[float]) -> np.ndarray:
        """Joint velocities (rad/s) for these axis values; ValueError for a message that does not fit."""
        a = np.asarray(axes, dtype=np.float64)
        need = max(self._axes) + 1
        if a.size < need:
            raise ValueError(f"Joy message has {a.size} axes but axis_map uses axis {need - 1}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Joy message has non-finite axes {a.tolist()}")
        raw = np.array([a[k] if k >= 0 else 0.0 for k in self._axes])
        return apply_deadzone(raw, self.deadzone) * self._scale


# ------------------------------------------------------------------------------------------
# The commanded target
# ------------------------------------------------------------------------------------------
class TargetIntegrator:
    """Position target for n joints: starts from the measured positions, integrates velocities,
    takes key steps; clamped to the position limits and to ``max_lead`` around the measured position."""

    def __init__(self, n: int, lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
                 max_lead: float = 0.0):
        self.n = n
        self.lower = np.full(n, -np.inf) if not lower else np.asarray(lower, dtype=np.float64)
        self.upper = np.full(n, np.inf) if not upper else np.asarray(upper, dtype=np.float64)
        if self.lower.shape != (n,) or self.upper.shape != (n,):
            raise ValueError(f"position limits need {n} values each, got {len(self.lower)} and {len(self.upper)}")
        if np.any(self.lower > self.upper):
            raise ValueError(f"position_lower {self.lower.tolist()} must be <= position_upper {self.upper.tolist()}")
        if not max_lead >= 0:
            raise ValueError(f"max_lead must be >= 0 (0: no bound), got {max_lead}")
        self.max_lead = float(max_lead)
        self.target: np.ndarray | None = None
        self.measured: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self.target is not None

    def measure(self, q: np.ndarray) -> None:
        """The latest measured joint positions (bounds the lead of the target)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n,) or not np.all(np.isfinite(q)):
            raise ValueError(f"measured positions must be {self.n} finite values, got {q}")
        self.measured = q.copy()

    def reset(self, q: np.ndarray | None = None) -> None:
        """Start again from the measured positions (or ``q``)."""
        if q is not None:
            self.measure(q)
        if self.measured is None:
            raise ValueError("no measured joint positions yet")
        self.target = self._clamp(self.measured.copy())

    def _clamp(self, t: np.ndarray) -> np.ndarray:
        if self.max_lead > 0 and self.measured is not None:
            t = np.clip(t, self.measured - self.max_lead, self.measured + self.max_lead)
        return np.clip(t, self.lower, self.upper)

    def step(self, velocity: np.ndarray, dt: float) -> np.ndarray:
        """Advance the target by ``velocity * dt``; returns the new target."""
        if self.target is None:
            self.reset()
        v = np.asarray(velocity, dtype=np.float64)
        if v.shape != (self.n,) or not np.all(np.isfinite(v)):
            raise ValueError(f"velocity must be {self.n} finite values, got {v}")
        self.target = self._clamp(self.target + v * dt)
        return self.target

    def nudge(self, joint: int, delta: float) -> np.ndarray:
        """Move one joint's target by ``delta`` rad (a key press)."""
        if self.target is None:
            self.reset()
        if not 0 <= joint < self.n:
            raise IndexError(f"joint {joint} out of range (0..{self.n - 1})")
        t = self.target.copy()
        t[joint] += float(delta)
        self.target = self._clamp(t)
        return self.target


# ------------------------------------------------------------------------------------------
# The operator's view
# ------------------------------------------------------------------------------------------
BAR_H = 20  # label / status bar height, px
GAP = 4  # px between camera and preview
BAR_COLOUR = (32, 32, 32)
GAP_COLOUR = (0, 0, 0)
TEXT_COLOUR = (235, 235, 235)


def scale_to_height(img: np.ndarray, height: int) -> np.ndarray:
    """Nearest-neighbour resize to ``height`` rows, keeping the aspect ratio (pixels stay sharp)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    if h == height:
        return img
    width = max(1, int(round(w * height / h)))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)


def preview_frames(strip: np.ndarray) -> int:
    """How many predicted frames a preview strip holds (square frames side by side; else 1)."""
    h, w = strip.shape[:2]
    return w // h if h > 0 and w % h == 0 and w >= h else 1


def placeholder(height: int, width: int, text: str) -> np.ndarray:
    img = np.full((height, width, 3), 64, np.uint8)
    _text(img, text, (4, height // 2 + 5))
    return img


def _text(img: np.ndarray, text: str, org: tuple[int, int]) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.42, TEXT_COLOUR, 1, cv2.LINE_AA)


def _bar(width: int, items: Sequence[tuple[int, str]]) -> np.ndarray:
    bar = np.empty((BAR_H, width, 3), np.uint8)
    bar[:] = BAR_COLOUR
    for x, text in items:
        _text(bar, text, (x + 4, BAR_H - 6))
    return bar


def fit_height(camera: np.ndarray | None, preview: np.ndarray | None, height: int, max_width: int) -> int:
    """The common height of the view: ``height``, lowered where the row would be wider than ``max_width``
    (0: no limit); a multiple of the images' own height where they share one and it fits (sharp pixels)."""
    if max_width <= 0:
        return height
    aspect = sum(img.shape[1] / img.shape[0] if img is not None else 1.0 for img in (camera, preview))
    fit = int((max_width - GAP) // aspect)
    if fit >= height:
        return height
    base = {img.shape[0] for img in (camera, preview) if img is not None}
    if len(base) == 1 and fit >= (b := base.pop()):
        fit = fit // b * b
    return max(8, fit)


def compose_view(camera: np.ndarray | None, preview: np.ndarray | None, height: int = 256,
                 camera_label: str = "camera", preview_label: str = "preview", status: str = "",
                 max_width: int = 0) -> np.ndarray:
    """The operator's view: camera (left) | preview strip (right), both scaled with nearest neighbour to
    ``height`` rows (less where the row would be wider than ``max_width``, see :func:`fit_height`), a label
    bar on top, a status bar at the bottom when ``status`` is given.

    Shape: (BAR_H + h [+ BAR_H], w_camera + GAP + w_preview, 3) uint8 RGB. A missing image is a grey
    square with a note.
    """
    if height < 8:
        raise ValueError(f"view height must be >= 8 px, got {height}")
    height = fit_height(camera, preview, height, max_width)
    cam = scale_to_height(camera, height) if camera is not None else placeholder(height, height, "no camera")
    prev = scale_to_height(preview, height) if preview is not None else placeholder(height, height, "no preview")
    gap = np.empty((height, GAP, 3), np.uint8)
    gap[:] = GAP_COLOUR
    body = np.concatenate([cam, gap, prev], axis=1)
    width = body.shape[1]
    rows = [_bar(width, [(0, camera_label), (cam.shape[1] + GAP, preview_label)]), body]
    if status:
        rows.append(_bar(width, [(0, status)]))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def gui_available() -> tuple[bool, str]:
    """Whether an OpenCV window can be opened here, and why not."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY / WAYLAND_DISPLAY unset)"
    gui = [ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")]
    if gui and gui[0].split(":", 1)[1].strip().upper() == "NONE":
        return False, "this OpenCV build has no GUI (opencv-python-headless); install opencv-python"
    return True, ""


# ------------------------------------------------------------------------------------------
# MJPEG over HTTP
# ------------------------------------------------------------------------------------------
BOUNDARY = "wmframe"
_PAGE = """<!doctype html><html><head><title>wm_control teleop</title></head>
<body style="background:#202020;color:#ddd;font-family:sans-serif">
<p>wm_control teleop: camera | world-model preview</p><img src="/stream" style="image-rendering:pixelated">
</body></html>"""


class MjpegServer:
    """Serves the newest JPEG: ``/stream`` (``multipart/x-mixed-replace``), ``/frame.jpg`` (one frame), ``/``
    (a page showing the stream). A thread per client (``ThreadingHTTPServer``); :meth:`update` from any thread.

    Only requests whose ``Host`` header names this server (``localhost``, a loopback address, the bound
    host, or one of ``allowed_hosts``) are answered: a web page elsewhere cannot read the robot's camera
    through a browser on this machine (DNS rebinding). With ``token`` every request must carry it
    (``?token=...`` or ``Authorization: Bearer ...``); the page passes it on to its stream."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, log: Callable[[str], None] | None = None,
                 token: str = "", allowed_hosts: Sequence[str] = ()):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self._clients = 0
        self._log = log or (lambda _m: None)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt: str, *args: object) -> None:  # quiet: no access log on stderr
                server._log(fmt % args)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, _, query = self.path.partition("?")
                if not server.host_allowed(self.headers.get("Host")):
                    self._reply(403, "text/plain", b"forbidden: unknown Host\n")
                    return
                if server.token and not server.token_ok(query, self.headers.get("Authorization", "")):
                    self._reply(401, "text/plain", b"unauthorized: give ?token=... (the teleop node's mjpeg_token)\n")
                    return
                if path in ("/", "/index.html"):
                    q = f"?token={server.token}" if server.token else ""
                    body = _PAGE.replace('src="/stream"', f'src="/stream{q}"').encode()
                    self._reply(200, "text/html; charset=utf-8", body)
                elif path == "/frame.jpg":
                    jpeg = server.wait_frame(-1, timeout=2.0)[1]
                    if jpeg is None:
                        self._reply(503, "text/plain", b"no frame yet\n")
                    else:
                        self._reply(200, "image/jpeg", jpeg)
                elif path in ("/stream", "/stream.mjpg"):
                    server._stream(self)
                else:
                    self._reply(404, "text/plain", b"not found: try / or /stream or /frame.jpg\n")

            def _reply(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        try:
            self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RuntimeError(f"cannot serve MJPEG on {host}:{port}: {exc} (choose another mjpeg_port)") from None
        self.httpd.daemon_threads = True
        self.token = str(token or "")
        self.allowed = {h.lower() for h in ("localhost", "127.0.0.1", "::1", host, *allowed_hosts)
                        if h and h not in ("0.0.0.0", "::")}
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="teleop.mjpeg", daemon=True)
        self._thread.start()

    def host_allowed(self, header: str | None) -> bool:
        """Is ``Host: header`` this server (any port spelling of an allowed name)?"""
        if not header:
            return False
        h = header.strip().lower()
        if h.startswith("["):
            name, _, rest = h[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            name, _, port = h.partition(":")
        if port and port != str(self.port):
            return False
        return name in self.allowed or name.startswith("127.")

    def token_ok(self, query: str, authorization: str) -> bool:
        import hmac
        from urllib.parse import parse_qs

        given = parse_qs(query).get("token", [""])[0]
        if authorization.lower().startswith("bearer "):
            given = given or authorization[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        return self._clients

    def update(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def wait_frame(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        """The newest frame once its sequence number is past ``after`` (or what there is at the timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._jpeg is not None and self._seq > after), timeout)
            return self._seq, self._jpeg

    def _stream(self, h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        h.send_header("Cache-Control", "no-store")
        h.send_header("Connection", "close")
        h.end_headers()
        with self._cond:
            self._clients += 1
        seq = 0
        try:
            while not self._closed:
                new, jpeg = self.wait_frame(seq, timeout=1.0)
                if self._closed:
                    break
                if jpeg is None or new == seq:
                    continue
                seq = new
                h.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                              .encode() + jpeg + b"\r\n")
                h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            pass  # the client went away
        finally:
            with self._cond:
                self._clients -= 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=2.0)


# ------------------------------------------------------------------------------------------
# Terminal keys
# ------------------------------------------------------------------------------------------
def terminal_usable(fd: int = 0) -> tuple[bool, str]:
    """Whether key presses can be read from ``fd``: a TTY whose foreground process group is ours (a node
    started by a launcher in its own session must not touch the launcher's terminal)."""
    try:
        if not os.isatty(fd):
            return False, "stdin is not a TTY"
        if os.tcgetpgrp(fd) != os.getpgrp():
            return False, "stdin is a TTY but this process is not in its foreground"
    except OSError as exc:
        return False, f"stdin cannot be used ({exc})"
    return True, ""


class TerminalKeys:
    """Key presses from a terminal in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts),
    read without blocking. The terminal's settings are restored by :meth:`close` (and at exit)."""

    def __init__(self, fd: int = 0):
        import termios
        import tty

        self.fd = fd
        self._termios = termios
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd, termios.TCSANOW)
        self._closed = False
        atexit.register(self.close)

    def read(self) -> list[str]:
        if self._closed:
            return []
        data = b""
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 1024)
            if not chunk:  # EOF
                break
            data += chunk
            if len(data) > 4096:
                break
        return split_keys(data.decode("utf-8", errors="ignore"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)
        except Exception:  # noqa: BLE001  (the terminal may be gone at exit)
            pass

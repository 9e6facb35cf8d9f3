"""``camera_ingest``: camera frames in, model-resolution RGB frames out on ``/wm/frame``.

Sources (``source``):

* ``topic``: ``sensor_msgs/Image`` on ``input_topic`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16,
  yuv422 / uyvy, yuv422_yuy2 / yuyv);
* ``compressed``: ``sensor_msgs/CompressedImage`` (JPEG / PNG, as image_transport's compressed plugin
  publishes it) on ``input_topic`` (default ``/camera/image_raw/compressed``);
* ``opencv``: ``cv2.VideoCapture`` on ``device`` (a camera index like ``"0"``, a ``/dev/videoN``
  path or a video file, which is replayed at ``opencv_fps`` and loops when ``loop``). A capture
  thread stamps each frame with the node's ROS time when it is read and leaves the newest one in a
  one-slot buffer that a timer on the executor thread takes; a frame replaced before it was taken is
  counted (``dropped.superseded``).

For every frame: the capture stamp's age against the node's ROS time (``/clock`` under sim time) is
measured at arrival; frames older than ``max_age`` (``dropped.stale``) or not newer than the last
published frame (``dropped.out_of_order``) are dropped before any decoding; the rest are decoded
(``dropped.malformed`` on a bad encoding, size, step or corrupt data, with a rate-limited warning),
cropped and resized (``dropped.crop`` when the crop does not fit the image) and published as an
``rgb8`` ``sensor_msgs/Image`` carrying the ORIGINAL capture stamp, never restamped. The frame id is
the input's unless ``frame_id`` is set.

``/diagnostics``: ``input.rate_hz``, ``output.rate_hz``, ``frame_age.p50_ms`` / ``p99_ms`` (age at
arrival), ``dropped.<reason>`` counters, and the level (WARN while nothing is published).

The model resolution is a :class:`~wm_control.image.FrameSpec`; today it comes from the ``width``,
``height`` and ``crop`` parameters (:func:`frame_spec_from_config`); a caller holding a bundle passes
its own ``spec`` to :class:`CameraIngestNode`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .. import image as im
from ..conversions import ConversionError
from ..ros import qos
from ..ros.api import Diagnostics, Node, sec_to_sec_nsec

SOURCES = ("topic", "compressed", "opencv")
DEFAULT_TOPIC = "/camera/image_raw"
DROP_REASONS = ("stale", "out_of_order", "malformed", "crop", "superseded")
WARN_PERIOD = 5.0  # s between two warnings of one drop reason


@dataclass
class CameraIngestConfig:
    source: str = "topic"
    """'topic' (sensor_msgs/Image), 'compressed' (sensor_msgs/CompressedImage) or 'opencv' (VideoCapture)."""
    input_topic: str = DEFAULT_TOPIC
    """Input topic; with source 'compressed' the default becomes /camera/image_raw/compressed."""
    device: str = ""
    """opencv source: a camera index ("0"; quote it on the command line: -p device:="'0'"), a /dev/videoN
    path or a video file."""
    opencv_fps: float = 30.0
    """opencv source: frame rate asked of a camera; the replay rate of a video file."""
    loop: bool = True
    """opencv source, video file: start again at the end (false: stop with a log line)."""
    width: int = 64
    """Width of the published frame (the model's input)."""
    height: int = 64
    crop: list[int] = field(default_factory=list)
    """[x, y, w, h] in source pixels, applied before the resize; [] for the whole image."""
    output_topic: str = "/wm/frame"
    max_age: float = 0.1
    """Seconds; frames whose capture stamp is older than this on arrival are dropped. 0 disables."""
    frame_id: str = ""
    """frame_id of the published frames; empty keeps the input's."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.source == "compressed" and self.input_topic == DEFAULT_TOPIC:
            self.input_topic = DEFAULT_TOPIC + "/compressed"  # image_transport's compressed sub-topic
        if self.source != "opencv" and not self.input_topic:
            raise ValueError("input_topic must not be empty")
        if self.source == "opencv" and not self.device.strip():
            raise ValueError("source 'opencv' needs a device: a camera index like \"0\", /dev/videoN or a video file")
        if not (self.opencv_fps > 0 and math.isfinite(self.opencv_fps)):
            raise ValueError(f"opencv_fps must be > 0, got {self.opencv_fps}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be > 0, got {self.width}x{self.height}")
        if self.crop:
            if len(self.crop) != 4:
                raise ValueError(f"crop must be [] or [x, y, w, h], got {self.crop}")
            x, y, w, h = self.crop
            if x < 0 or y < 0 or w <= 0 or h <= 0:
                raise ValueError(f"crop [x, y, w, h] needs x, y >= 0 and w, h > 0, got {self.crop}")
        if not (self.max_age >= 0 and math.isfinite(self.max_age)):
            raise ValueError(f"max_age must be >= 0 seconds (0 disables), got {self.max_age}")
        if not self.output_topic:
            raise ValueError("output_topic must not be empty")


def frame_spec_from_config(cfg: CameraIngestConfig) -> im.FrameSpec:
    """The model resolution from the node parameters (a bundle manifest will supply its own)."""
    return im.FrameSpec.from_params(cfg.width, cfg.height, cfg.crop)


def _stamp_ns(stamp: Any) -> int:
    sec, nsec = int(stamp.sec), int(stamp.nanosec)
    if not 0 <= nsec < 1_000_000_000:
        raise ConversionError(f"header stamp nanosec {nsec} out of range")
    return sec * 1_000_000_000 + nsec


class CameraIngestNode:
    NAME = "camera_ingest"
    Config = CameraIngestConfig

    def __init__(self, node: Node, cfg: CameraIngestConfig, spec: im.FrameSpec | None = None):
        self.node, self.cfg = node, cfg
        self.spec = spec if spec is not None else frame_spec_from_config(cfg)
        self.sim_time = bool(getattr(node, "use_sim_time", False))
        self.last_ns: int | None = None  # stamp of the last published frame
        self._warned: dict[str, tuple[float, int]] = {}  # reason -> (monotonic time of last warning, suppressed)
        self._cap: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._slot: tuple[int, np.ndarray] | None = None  # newest (capture stamp ns, BGR frame)
        self._slot_lock = threading.Lock()
        self._superseded = 0

        self.pub = node.create_publisher("sensor_msgs/msg/Image", cfg.output_topic, qos.SENSOR_DATA)
        self.diag = Diagnostics(node, hardware_id=self._hardware_id())
        for reason in DROP_REASONS:
            self.diag.count(f"dropped.{reason}", 0)
        self.diag.set("output_size", f"{self.spec.width}x{self.spec.height}")
        self.diag.status(Diagnostics.WARN, "no frame yet")

        if cfg.source == "opencv":
            self._open_capture()  # raises (node fails to start) when the device cannot be read
            node.create_timer(max(0.002, min(0.01, 0.25 / cfg.opencv_fps)), self._poll_capture)
        elif cfg.source == "compressed":
            node.create_subscription("sensor_msgs/msg/CompressedImage", cfg.input_topic, self.on_compressed,
                                     qos.SENSOR_DATA)
        else:
            node.create_subscription("sensor_msgs/msg/Image", cfg.input_topic, self.on_image, qos.SENSOR_DATA)
        node.create_timer(1.0, self._update_status)
        if cfg.source == "opencv":
            self._thread = threading.Thread(target=self._capture_loop, name="camera_ingest.capture", daemon=True)
            self._thread.start()
        src = cfg.device if cfg.source == "opencv" else node.resolve(cfg.input_topic)
        crop = f", crop {list(self.spec.crop)}" if self.spec.crop else ""
        node.logger.info("camera_ingest: %s %s -> %s %dx%d %s%s, max_age %.3g s", cfg.source, src,
                         node.resolve(cfg.output_topic), self.spec.width, self.spec.height, self.spec.encoding,
                         crop, cfg.max_age)

    def _hardware_id(self) -> str:
        c = self.cfg
        return f"opencv:{c.device}" if c.source == "opencv" else f"{c.source}:{c.input_topic}"

    # ---- topic sources ------------------------------------------------------------------------
    def on_image(self, msg: Any) -> None:
        self.process(msg.header, lambda: im.image_msg_to_rgb(msg))

    def on_compressed(self, msg: Any) -> None:
        self.process(msg.header, lambda: im.compressed_to_rgb(msg))

    # ---- the pipeline, for every frame -----------------------------------------------------
    def process(self, header: Any, decode: Callable[[], np.ndarray]) -> bool:
        """Check, decode, prepare and publish one frame; True when it was published. Never raises."""
        self.diag.tick("input")
        try:
            stamp_ns = _stamp_ns(header.stamp)
            frame_id = self.cfg.frame_id or str(header.frame_id)
        except (ConversionError, AttributeError, TypeError, ValueError) as exc:
            return self.drop("malformed", f"bad header: {exc}")
        now = self.node.now()
        if not (self.sim_time and now == 0.0):  # under sim time, no age before the first /clock
            age = now - stamp_ns * 1e-9
            self.diag.latency("frame_age", age)
            if self.cfg.max_age > 0 and age > self.cfg.max_age:
                return self.drop("stale", f"frame stamped {age:.3f} s ago > max_age {self.cfg.max_age} s")
        if self.last_ns is not None and stamp_ns <= self.last_ns:
            return self.drop("out_of_order", f"stamp {stamp_ns * 1e-9:.6f} is not newer than the last "
                                             f"published frame's {self.last_ns * 1e-9:.6f}")
        try:
            rgb = decode()
        except ConversionError as exc:
            return self.drop("malformed", str(exc))
        except Exception as exc:  # noqa: BLE001  (a malformed message must never take the node down)
            return self.drop("malformed", f"{type(exc).__name__}: {exc}")
        try:
            frame = im.prepare_frame(rgb, self.spec)
        except ConversionError as exc:
            return self.drop("crop", str(exc))
        self.publish(stamp_ns, frame_id, frame)
        return True

    def publish(self, stamp_ns: int, frame_id: str, frame: np.ndarray) -> None:
        make = self.node.msg
        sec, nsec = divmod(stamp_ns, 1_000_000_000)
        h, w = frame.shape[:2]
        header = make("std_msgs/msg/Header", stamp=make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                      frame_id=frame_id)
        self.pub.publish(make("sensor_msgs/msg/Image", header=header, height=h, width=w,
                              encoding=self.spec.encoding, is_bigendian=0, step=w * 3, data=frame.reshape(-1)))
        self.last_ns = stamp_ns
        self.diag.tick("output")

    def drop(self, reason: str, why: str) -> bool:
        self.diag.count(f"dropped.{reason}")
        t = time.monotonic()
        last, suppressed = self._warned.get(reason, (-math.inf, 0))
        if t - last >= WARN_PERIOD:
            more = f" ({suppressed} more since the last warning)" if suppressed else ""
            self.node.logger.warning("dropped frame (%s): %s%s", reason, why, more)
            self._warned[reason] = (t, 0)
        else:
            self._warned[reason] = (last, suppressed + 1)
        return False

    def _update_status(self) -> None:
        out = self.diag.rates.get("output")
        if out is not None and out.age() < 1.0:
            self.diag.status(Diagnostics.OK, "ok")
        elif self.diag.rates.get("input") is None or self.diag.rates["input"].age() >= 1.0:
            self.diag.status(Diagnostics.WARN, "no input frames")
        else:
            worst = max(DROP_REASONS, key=lambda r: self.diag.counters.get(f"dropped.{r}", 0))
            self.diag.status(Diagnostics.WARN, f"input frames are all dropped (mostly {worst})")

    # ---- opencv source ------------------------------------------------------------------------
    def _open_capture(self) -> None:
        dev = self.cfg.device.strip()
        self._is_file = not (dev.isdigit() or dev.startswith("/dev/"))
        if self._is_file and not os.path.isfile(dev):
            raise ValueError(f"opencv device {dev!r} is neither a camera index, a /dev/video path nor an "
                             "existing video file")
        cap = cv2.VideoCapture(int(dev) if dev.isdigit() else dev)
        if not cap.isOpened():
            cap.release()
            raise RuntimeError(f"cannot open opencv device {dev!r} (cv2.VideoCapture failed)")
        if not self._is_file:
            cap.set(cv2.CAP_PROP_FPS, self.cfg.opencv_fps)
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            raise RuntimeError(f"opened opencv device {dev!r} but could not read a frame from it")
        self._cap = cap
        self._first: np.ndarray | None = bgr
        self.diag.set("device", dev)

    def _capture_loop(self) -> None:
        """Capture thread: read frames, stamp them with the node's time, keep only the newest."""
        cap, cfg, log = self._cap, self.cfg, self.node.logger
        period = 1.0 / cfg.opencv_fps
        deadline = time.monotonic()
        frames, failures, loops = 0, 0, 0
        while not self._stop.is_set():
            if self._first is not None:
                ok, bgr, self._first = True, self._first, None
            else:
                ok, bgr = cap.read()
            if not ok or bgr is None:
                if self._is_file:
                    if frames == 0:
                        log.error("video file %s gives no frames; capture stopped", cfg.device)
                        return
                    if not cfg.loop:
                        log.info("end of video file %s after %d frames; no more frames", cfg.device, frames)
                        return
                    loops += 1
                    if loops == 1:
                        log.info("end of video file %s after %d frames; looping", cfg.device, frames)
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("opencv device %s: read failed (%d in a row)", cfg.device, failures)
                self._stop.wait(0.05)
                continue
            failures = 0
            if self._is_file:  # replay at opencv_fps on absolute deadlines
                deadline += period
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                elif wait < -period:
                    deadline = time.monotonic()  # fell behind (slow machine): re-phase, do not burst
            sec, nsec = sec_to_sec_nsec(self.node.now())
            stamp_ns = sec * 1_000_000_000 + nsec
            frames += 1
            with self._slot_lock:
                if self._slot is not None:
                    self._superseded += 1  # folded into the diagnostics on the executor thread
                self._slot = (stamp_ns, bgr)

    def _poll_capture(self) -> None:
        with self._slot_lock:
            item, self._slot = self._slot, None
            superseded, self._superseded = self._superseded, 0
        if superseded:
            self.diag.count("dropped.superseded", superseded)
        if item is None:
            return
        stamp_ns, bgr = item
        header = self.node.msg("std_msgs/msg/Header", frame_id=self.cfg.frame_id or "camera",
                               stamp=self.node.msg("builtin_interfaces/msg/Time",
                                                   sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000))
        self.process(header, lambda: self._bgr_to_rgb(bgr))

    @staticmethod
    def _bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        if bgr.ndim != 3 or bgr.shape[2] not in (3, 4) or bgr.dtype != np.uint8:
            raise ConversionError(f"opencv frame has shape {bgr.shape} {bgr.dtype}, expected 8-bit BGR")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB if bgr.shape[2] == 3 else cv2.COLOR_BGRA2RGB)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():  # stuck in a blocking read: releasing under it could crash
                self.node.logger.warning("capture thread did not stop; device left open")
                return
        if self._cap is not None:
            self._cap.release()
            self._cap = None

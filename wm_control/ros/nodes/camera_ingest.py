"""``camera_ingest``: camera frames in, model-resolution RGB frames out on ``/wm/frame``.

Sources (``source``):

* ``topic``: ``sensor_msgs/Image`` on ``input_topic`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16,
  yuv422 / uyvy, yuv422_yuy2 / yuyv);
* ``compressed``: ``sensor_msgs/CompressedImage`` (JPEG / PNG, as image_transport's compressed plugin
  publishes it) on ``input_topic`` (default ``/camera/image_raw/compressed``);
* ``opencv``: a :class:`wm_control.cameras.OpenCVCamera` on ``device`` (a camera index like ``"0"``, a
  ``/dev/videoN`` path or a video file, which is replayed at ``opencv_fps`` and loops when ``loop``). Its
  reader thread stamps each frame with the node's ROS time when it is read and keeps the newest, which a
  timer on the executor thread takes; a frame replaced before it was taken is counted
  (``dropped.superseded``).

For every frame, before anything else: a message whose data is over ``max_input_bytes`` is dropped
(``dropped.too_large``). Then the capture stamp is held against the node's ROS time (``/clock`` under
sim time; no time checks before the first ``/clock``): frames stamped more than ``max_future_stamp``
ahead of it (``dropped.future``), older than ``max_age`` (``dropped.stale``) or older than the last
PUBLISHED frame (``dropped.out_of_order``) are dropped before any decoding; one with the last one's stamp
(a lock-step simulator re-announcing its instant until a controller answers) is passed on (``repeated``):
a late joiner downstream gets it, and the world model drops a frame it already has. Only a published frame
becomes the reference of that order, so a frame from the future (one would hide every real frame
until the clock passed it) never does; and when the clock goes back (sim time restarted, a bag
looped, the wall clock set back) so that the last published stamp lies ahead of it by more than
``max_future_stamp``, the order starts again (``order_resets``). The rest are decoded: the size is
read from the header first and an image of more than ``max_input_pixels`` is refused before it is
decoded (``dropped.too_large``: a 300 KB PNG can unpack to 300 MB); a JPEG must be complete, its
scans followed to their last MCU (``verify_jpeg``; :func:`wm_control.world.frames.check_jpeg`); a bad
encoding, size, step or corrupt or truncated data is ``dropped.malformed``. Frames are then cropped
and resized (``dropped.crop`` when the crop does not fit the image) and published as an ``rgb8``
``sensor_msgs/Image`` carrying the ORIGINAL capture stamp, never restamped. The frame id is the
input's unless ``frame_id`` is set.

Warnings cannot flood the log: the first drop of each reason is logged in full, later ones are
counted and summarised at most once every 5 s ("dropped 523 more frames (future) in the last 5.0 s;
the latest: ..."; :class:`wm_control.ros.throttle.ThrottledLog`), while ``/diagnostics`` counts
every one.

``/diagnostics``: ``input.rate_hz``, ``output.rate_hz``, ``frame_age.p50_ms`` / ``p99_ms`` (age at
arrival, of frames not from the future), ``dropped.<reason>`` counters, ``order_resets``, and the
level (WARN while nothing is published).

The model resolution is a :class:`~wm_control.world.frames.FrameSpec`; today it comes from the ``width``,
``height`` and ``crop`` parameters (:func:`frame_spec_from_config`); a caller holding a bundle passes
its own ``spec`` to :class:`CameraIngestNode`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from wm_control.cameras import OpenCVCamera, OpenCVCameraConfig
from wm_control.messages import convert as cv
from wm_control.messages.convert import ConversionError
from wm_control.ros import topics
from wm_control.ros.api import Diagnostics, Node
from wm_control.ros.throttle import ThrottledLog
from wm_control.world import frames as im

SOURCES = ("topic", "compressed", "opencv")
DEFAULT_TOPIC = topics.CAMERA.name
DROP_REASONS = ("too_large", "future", "stale", "out_of_order", "malformed", "crop", "superseded")
WARN_PERIOD = 5.0  # s between two log lines of one drop reason (the first in full, then counts)


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
    output_topic: str = topics.FRAME.name
    max_age: float = 0.1
    """Seconds; frames whose capture stamp is older than this on arrival are dropped. 0 disables."""
    max_future_stamp: float = 0.5
    """Seconds; frames stamped further than this ahead of the node's clock are dropped. 0 disables."""
    max_input_bytes: int = 32 * 1024 * 1024
    """Bytes; Image / CompressedImage messages with more data are dropped before anything is done with
    them (32 MiB: a 4K rgb8 frame is 24.9 MB). 0 disables."""
    max_input_pixels: int = 4096 * 4096
    """width * height; larger images are refused from their header, before decoding (PNG IHDR, JPEG
    SOF, Image width/height). 0 disables."""
    verify_jpeg: bool = True
    """Follow every JPEG's entropy-coded data to its last MCU and drop truncated ones (libjpeg decodes
    them, the rest grey); only sequential Huffman (baseline) JPEGs are then accepted. Costs about 0.1 ms
    per KB of JPEG: 0.15-0.2 ms for a 96x96 rendered frame, a few ms for a 640x480 camera frame."""
    frame_id: str = ""
    """frame_id of the published frames; empty keeps the input's."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.source == "compressed" and self.input_topic == DEFAULT_TOPIC:
            self.input_topic = topics.CAMERA_COMPRESSED.name  # image_transport's compressed sub-topic
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
        if not (self.max_future_stamp >= 0 and math.isfinite(self.max_future_stamp)):
            raise ValueError(f"max_future_stamp must be >= 0 seconds (0 disables), got {self.max_future_stamp}")
        if self.max_input_bytes < 0 or self.max_input_pixels < 0:
            raise ValueError(f"max_input_bytes and max_input_pixels must be >= 0 (0 disables), got "
                             f"{self.max_input_bytes} and {self.max_input_pixels}")
        if not self.output_topic:
            raise ValueError("output_topic must not be empty")


def frame_spec_from_config(cfg: CameraIngestConfig) -> im.FrameSpec:
    """The model resolution from the node parameters (a bundle manifest will supply its own)."""
    return im.FrameSpec.from_params(cfg.width, cfg.height, cfg.crop)


def _data_size(msg: Any) -> int:
    """Bytes in a message's ``data`` (numpy array, bytes, array.array or list); 0 when it has none."""
    data = getattr(msg, "data", None)
    if data is None:
        return 0
    if isinstance(data, np.ndarray):
        return int(data.nbytes)
    try:
        return memoryview(data).nbytes
    except TypeError:
        return len(data)


class CameraIngestNode:
    NAME = "camera_ingest"
    Config = CameraIngestConfig

    def __init__(self, node: Node, cfg: CameraIngestConfig, spec: im.FrameSpec | None = None):
        self.node, self.cfg = node, cfg
        self.spec = spec if spec is not None else frame_spec_from_config(cfg)
        self.sim_time = bool(getattr(node, "use_sim_time", False))
        self.last_ns: int | None = None  # stamp of the last published frame: the reference of the order
        self.warn = ThrottledLog(node.logger, WARN_PERIOD, first="dropped frame ({key}): {message}",
                                 summary="dropped {count} more frames ({key}) in the last {seconds:.1f} s; "
                                         "the latest: {message}")
        self.notes = ThrottledLog(node.logger, WARN_PERIOD)  # the node's other repeatable lines
        self.camera: OpenCVCamera | None = None

        self.pub = topics.FRAME.publisher(node, cfg.output_topic)
        self.diag = Diagnostics(node, hardware_id=self._hardware_id())
        for reason in DROP_REASONS:
            self.diag.count(f"dropped.{reason}", 0)
        self.diag.count("order_resets", 0)
        self.diag.count("repeated", 0)
        self.diag.set("output_size", f"{self.spec.width}x{self.spec.height}")
        self.diag.status(Diagnostics.WARN, "no frame yet")

        if cfg.source == "opencv":
            self.camera = OpenCVCamera(OpenCVCameraConfig(cfg.device, fps=cfg.opencv_fps, loop=cfg.loop),
                                       clock=node.now, logger=node.logger, on_read_failure=self._read_failed)
            self.camera.connect()  # raises (node fails to start) when the device cannot be read
            self.diag.set("device", self.camera.device)
            node.create_timer(max(0.002, min(0.01, 0.25 / cfg.opencv_fps)), self._poll_capture)
        elif cfg.source == "compressed":
            topics.CAMERA_COMPRESSED.subscribe(node, self.on_compressed, cfg.input_topic)
        else:
            topics.CAMERA.subscribe(node, self.on_image, cfg.input_topic)
        node.create_timer(1.0, self._update_status)
        src = cfg.device if cfg.source == "opencv" else node.resolve(cfg.input_topic)
        crop = f", crop {list(self.spec.crop)}" if self.spec.crop else ""
        node.logger.info("camera_ingest: %s %s -> %s %dx%d %s%s, max_age %.3g s, max_future_stamp %.3g s, "
                         "max_input_bytes %d, max_input_pixels %d%s", cfg.source, src,
                         node.resolve(cfg.output_topic), self.spec.width, self.spec.height, self.spec.encoding,
                         crop, cfg.max_age, cfg.max_future_stamp, cfg.max_input_bytes, cfg.max_input_pixels,
                         "" if cfg.verify_jpeg else ", JPEGs not verified")

    def _hardware_id(self) -> str:
        c = self.cfg
        return f"opencv:{c.device}" if c.source == "opencv" else f"{c.source}:{c.input_topic}"

    # ---- topic sources ------------------------------------------------------------------------
    def on_image(self, msg: Any) -> None:
        pixels = self.cfg.max_input_pixels or None
        self.process(msg.header, lambda: im.image_msg_to_rgb(msg, pixels), _data_size(msg))

    def on_compressed(self, msg: Any) -> None:
        pixels, verify = self.cfg.max_input_pixels or None, self.cfg.verify_jpeg
        self.process(msg.header, lambda: im.compressed_to_rgb(msg, pixels, verify), _data_size(msg))

    # ---- the pipeline, for every frame -----------------------------------------------------
    def process(self, header: Any, decode: Callable[[], np.ndarray], nbytes: int = 0) -> bool:
        """Check, decode, prepare and publish one frame of ``nbytes`` of data; True when it was published.
        Never raises."""
        self.diag.tick("input")
        cfg = self.cfg
        if cfg.max_input_bytes and nbytes > cfg.max_input_bytes:
            return self.drop("too_large", f"message of {nbytes} bytes > max_input_bytes {cfg.max_input_bytes}")
        try:
            stamp_ns = cv.stamp_ns(header.stamp)
            frame_id = cfg.frame_id or str(header.frame_id)
        except (ConversionError, AttributeError, TypeError, ValueError) as exc:
            return self.drop("malformed", f"bad header: {exc}")
        now = self.node.now()
        if not (self.sim_time and now == 0.0):  # under sim time, no time checks before the first /clock
            age = now - stamp_ns * 1e-9
            if cfg.max_future_stamp > 0 and -age > cfg.max_future_stamp:
                return self.drop("future", f"frame stamped {-age:.3f} s ahead of the node's clock > "
                                           f"max_future_stamp {cfg.max_future_stamp} s")
            self.diag.latency("frame_age", age)
            if cfg.max_age > 0 and age > cfg.max_age:
                return self.drop("stale", f"frame stamped {age:.3f} s ago > max_age {cfg.max_age} s")
            ahead = None if self.last_ns is None else self.last_ns * 1e-9 - now
            if ahead is not None and cfg.max_future_stamp > 0 and ahead > cfg.max_future_stamp:
                # the clock went back (sim time restarted, a bag looped, the wall clock was set back), or a
                # frame was published before the first /clock: order starts again rather than wait for it
                self.diag.count("order_resets")
                self.notes.info("order_reset", "the last published frame is stamped %.3f s ahead of the clock "
                                "(the clock went back?): frame order starts again", ahead)
                self.last_ns = None
        if self.last_ns is not None and stamp_ns < self.last_ns:
            return self.drop("out_of_order", f"stamp {stamp_ns * 1e-9:.6f} is older than the last "
                                             f"published frame's {self.last_ns * 1e-9:.6f}")
        if stamp_ns == self.last_ns:  # the same instant again (a lock-step simulator re-announcing it to late
            self.diag.count("repeated")  # joiners): passed on; consumers drop what they have (world_model does)
        try:
            rgb = decode()
        except im.ImageTooLarge as exc:
            return self.drop("too_large", str(exc))
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
        """Count a dropped frame; its warning is throttled per reason (counted in full in /diagnostics)."""
        self.diag.count(f"dropped.{reason}")
        self.warn.log(reason, "%s", why)
        return False

    def _update_status(self) -> None:
        self.warn.flush()
        self.notes.flush()
        out = self.diag.rates.get("output")
        if out is not None and out.age() < 1.0:
            self.diag.status(Diagnostics.OK, "ok")
        elif self.diag.rates.get("input") is None or self.diag.rates["input"].age() >= 1.0:
            self.diag.status(Diagnostics.WARN, "no input frames")
        else:
            worst = max(DROP_REASONS, key=lambda r: self.diag.counters.get(f"dropped.{r}", 0))
            self.diag.status(Diagnostics.WARN, f"input frames are all dropped (mostly {worst})")

    # ---- opencv source ------------------------------------------------------------------------
    def _read_failed(self, n: int) -> None:  # on the camera's reader thread
        self.notes.warning("read_failed", "opencv device %s: read failed (%d in a row)", self.cfg.device, n)

    def _poll_capture(self) -> None:
        frame = self.camera.read_latest()
        if frame is None:
            return
        if frame.skipped:
            self.diag.count("dropped.superseded", frame.skipped)
        header = self.node.msg("std_msgs/msg/Header", frame_id=self.cfg.frame_id or "camera",
                               stamp=self.node.msg("builtin_interfaces/msg/Time", **cv.time_fields(frame.stamp)))
        self.process(header, lambda: self._bgr_to_rgb(frame.image))

    @staticmethod
    def _bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        if bgr.ndim != 3 or bgr.shape[2] not in (3, 4) or bgr.dtype != np.uint8:
            raise ConversionError(f"opencv frame has shape {bgr.shape} {bgr.dtype}, expected 8-bit BGR")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB if bgr.shape[2] == 3 else cv2.COLOR_BGRA2RGB)

    def close(self) -> None:
        if self.camera is not None:
            self.camera.close()  # stops the reader; a reader stuck in a read leaves the device open (logged)
        self.warn.flush(force=True)
        self.notes.flush(force=True)

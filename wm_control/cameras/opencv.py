"""An OpenCV camera (``cv2.VideoCapture``) read on a background thread, the newest frame kept.

``device`` is a camera index (``"0"``), a ``/dev/videoN`` path or a video file. :meth:`OpenCVCamera.connect`
opens it and reads one frame, or raises a one-line :class:`CameraError` naming the device; then a thread
reads frames, stamps each with ``clock()`` when it is read and leaves the newest in a one-slot buffer:
:meth:`~OpenCVCamera.read_latest` takes it without waiting (a frame replaced before it was taken is counted
in the next one's ``skipped``), :meth:`~OpenCVCamera.read` waits up to a timeout for a new one. A video file
is replayed at ``fps`` on absolute deadlines and loops when ``loop``. A camera whose read fails is read
again every ``retry_period`` s (a USB camera that drops out for a moment comes back); it is not reopened.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

__all__ = ["CameraError", "Frame", "OpenCVCamera", "OpenCVCameraConfig"]


class CameraError(RuntimeError):
    """A camera cannot be opened or read; the message is one line and names the device."""


class Frame(NamedTuple):
    image: np.ndarray
    """As OpenCV reads it: BGR (BGRA or grey from some devices), uint8."""
    stamp: float
    """Capture time: the camera's ``clock()`` when the frame was read (seconds)."""
    skipped: int
    """Frames read since the previous one handed out that nobody took (replaced in the buffer)."""


@dataclass
class OpenCVCameraConfig:
    device: str
    """A camera index ("0"), a /dev/videoN path or a video file."""
    fps: float = 30.0
    """Frame rate asked of a camera; the replay rate of a video file."""
    width: int = 0
    """Frame width asked of a camera (0: its own); a camera that gives another width is refused at connect."""
    height: int = 0
    """Frame height asked of a camera (0: its own), as ``width``."""
    fourcc: str = ""
    """Pixel format asked of a camera, four characters ("MJPG", "YUYV"); empty: its own."""
    loop: bool = True
    """Video file: start again at the end (false: the reader stops after the last frame)."""
    retry_period: float = 0.05
    """Seconds between two reads of a camera whose read failed."""

    def __post_init__(self) -> None:
        self.device = str(self.device).strip()
        if not self.device:
            raise ValueError("an opencv camera needs a device: a camera index like \"0\", /dev/videoN or a video file")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"width and height must be >= 0 (0: the camera's own), got {self.width}x{self.height}")
        if len(self.fourcc) not in (0, 4):
            raise ValueError(f"fourcc must be four characters or empty, got {self.fourcc!r}")
        if not (self.retry_period > 0 and math.isfinite(self.retry_period)):
            raise ValueError(f"retry_period must be > 0 seconds, got {self.retry_period}")

    @property
    def is_file(self) -> bool:
        return not (self.device.isdigit() or self.device.startswith("/dev/"))


def _log_powers_of_two(logger: logging.Logger, device: str) -> Callable[[int], None]:
    def on_read_failure(n: int) -> None:
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th ... failure in a row
            logger.warning("opencv device %s: read failed (%d in a row)", device, n)
    return on_read_failure


class OpenCVCamera:
    """A ``cv2.VideoCapture`` on a reader thread; also a context manager (connects, closes).

    ``clock`` stamps the frames (a node passes its ROS clock). ``logger`` gets the one-off lines (end of a
    video file, looping, a reader that would not stop); ``on_read_failure(n)`` is called on the reader thread
    after each failed read of a camera, ``n`` in a row (default: a warning on the 1st, 2nd, 4th, 8th ...).
    ``capture`` opens the device (``cv2.VideoCapture``; tests pass a fake)."""

    def __init__(self, config: OpenCVCameraConfig, *, clock: Callable[[], float] = time.time,
                 logger: logging.Logger | None = None, on_read_failure: Callable[[int], None] | None = None,
                 capture: Callable[[int | str], Any] = cv2.VideoCapture, join_timeout: float = 2.0):
        self.config, self.clock, self.join_timeout = config, clock, join_timeout
        self.device = config.device
        self.logger = logger or logging.getLogger(__name__)
        self.on_read_failure = on_read_failure or _log_powers_of_two(self.logger, self.device)
        self._capture = capture
        self._cap: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._slot: tuple[np.ndarray, float] | None = None  # the newest frame not yet taken, its stamp
        self._skipped = 0

    def __repr__(self) -> str:
        return f"OpenCVCamera({self.device!r})"

    @property
    def is_connected(self) -> bool:
        return self._cap is not None

    @property
    def is_running(self) -> bool:
        """The reader thread is reading (false after close, at the end of a video file, or before connect)."""
        return self._thread is not None and self._thread.is_alive()

    # ---- open / close -------------------------------------------------------------------------
    def connect(self) -> OpenCVCamera:
        """Open the device, read one frame (raises :class:`CameraError` when either fails) and start reading."""
        if self.is_connected:
            raise CameraError(f"opencv device {self.device!r} is already connected")
        self._cap, first = self._open()
        self._stop.clear()
        self._slot, self._skipped = None, 0
        self._thread = threading.Thread(target=self._read_loop, args=(first,), name=f"opencv:{self.device}",
                                        daemon=True)
        self._thread.start()
        return self

    def _open(self) -> tuple[Any, np.ndarray]:
        cfg, dev = self.config, self.device
        if cfg.is_file and not os.path.isfile(dev):
            raise CameraError(f"opencv device {dev!r} is neither a camera index, a /dev/video path nor an "
                              "existing video file")
        cap = self._capture(int(dev) if dev.isdigit() else dev)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open opencv device {dev!r} (cv2.VideoCapture failed)")
        if not cfg.is_file:
            if cfg.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
            if cfg.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            if cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise CameraError(f"opened opencv device {dev!r} but could not read a frame from it")
        h, w = image.shape[:2]
        if (cfg.width and w != cfg.width) or (cfg.height and h != cfg.height):
            cap.release()
            raise CameraError(f"opencv device {dev!r} gives {w}x{h} frames, not the {cfg.width or w}x"
                              f"{cfg.height or h} asked")
        return cap, image

    def close(self) -> bool:
        """Stop the reader and release the device; False when the reader is stuck in a read (the device is then
        left open: releasing it under a blocking read can crash). Safe to call twice."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)
            if self._thread.is_alive():
                self.logger.warning("capture thread did not stop; device left open")
                return False
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        return True

    def __enter__(self) -> OpenCVCamera:
        return self if self.is_connected else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- frames -------------------------------------------------------------------------------
    def read_latest(self) -> Frame | None:
        """The newest frame not handed out yet, or None; never waits."""
        with self._cond:
            return self._take()

    def read(self, timeout: float = 1.0) -> Frame:
        """Wait up to ``timeout`` s for a frame not handed out yet (TimeoutError); CameraError when not reading."""
        if not self.is_connected:
            raise CameraError(f"opencv device {self.device!r} is not connected")
        with self._cond:
            if not self._cond.wait_for(lambda: self._slot is not None or not self.is_running, timeout):
                raise TimeoutError(f"opencv device {self.device!r}: no frame in {timeout} s")
            frame = self._take()
        if frame is None:
            raise CameraError(f"opencv device {self.device!r}: capture stopped")
        return frame

    def _take(self) -> Frame | None:  # under self._cond
        item, self._slot = self._slot, None
        skipped, self._skipped = self._skipped, 0
        return None if item is None else Frame(item[0], item[1], skipped)

    def _put(self, image: np.ndarray, stamp: float) -> None:
        with self._cond:
            if self._slot is not None:
                self._skipped += 1
            self._slot = (image, stamp)
            self._cond.notify_all()

    def _read_loop(self, first: np.ndarray | None) -> None:
        try:
            self._read_frames(first)
        finally:
            with self._cond:
                self._cond.notify_all()  # a read() waiting sees that the reader stopped

    def _read_frames(self, first: np.ndarray | None) -> None:
        cap, cfg, log, dev = self._cap, self.config, self.logger, self.device
        period = 1.0 / cfg.fps
        deadline = time.monotonic()
        frames, failures, loops, frames_at_rewind = 0, 0, 0, 0
        while not self._stop.is_set():
            if first is not None:
                ok, image, first = True, first, None
            else:
                ok, image = cap.read()
            if not ok or image is None:
                if cfg.is_file:
                    if frames == frames_at_rewind:  # nothing since the start (or since the last rewind)
                        log.error("video file %s gives no frames; capture stopped", dev)
                        return
                    if not cfg.loop:
                        log.info("end of video file %s after %d frames; no more frames", dev, frames)
                        return
                    loops += 1
                    if loops == 1:
                        log.info("end of video file %s after %d frames; looping", dev, frames)
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    frames_at_rewind = frames
                    continue
                failures += 1
                self.on_read_failure(failures)
                self._stop.wait(cfg.retry_period)
                continue
            failures = 0
            if cfg.is_file:  # replay at fps on absolute deadlines
                deadline += period
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                elif wait < -period:
                    deadline = time.monotonic()  # fell behind (slow machine): re-phase, do not burst
            frames += 1
            self._put(image, self.clock())

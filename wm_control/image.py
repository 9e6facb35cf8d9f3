"""Camera frames: ``sensor_msgs/Image`` / ``CompressedImage`` -> RGB, crop and resize to the model's size.

Pure functions (numpy + OpenCV), no ROS graph: :mod:`wm_control.nodes.camera_ingest` uses them on
every frame, tests and the simulator use :func:`encode_compressed` / :func:`make_compressed_image`.
Everything that cannot be decoded raises :class:`~wm_control.conversions.ConversionError` saying why.

Encodings (``sensor_msgs/image_encodings.hpp`` names):

* ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``: via :func:`conversions.image_to_rgb`;
* ``mono16``: the high byte (``v >> 8``, as OpenCV reduces 16-bit images to 8 bit), grey to RGB;
* ``yuv422`` (ROS's name for UYVY; also ``uyvy``) and ``yuv422_yuy2`` / ``yuyv`` (YUYV): 4:2:2,
  2 bytes per pixel, even width; BT.601 video range (Y 16..235), as ``cv2.COLOR_YUV2RGB_UYVY`` /
  ``_YUYV`` convert.

Compressed formats as ``image_transport``'s compressed plugin writes them: ``"jpeg"``, ``"png"``
(old style) or ``"<encoding>; jpeg compressed <enc>"`` / ``"<encoding>; png compressed <enc>"``.
The payload is an ordinary JPEG/PNG (colour stored as BGR by ``cv::imencode``), so it is decoded with
``cv2.imdecode`` to BGR and turned to RGB; a 16-bit PNG is reduced to 8 bit. ``compressedDepth``
(depth images with a float header) is not a camera frame and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from . import conversions as cv
from .conversions import ConversionError, Make

#: 4:2:2 encodings -> cv2 conversion code (BT.601, video range)
YUV422_ENCODINGS: dict[str, int] = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,  # ROS: "yuv422" is UYVY (U0 Y0 V0 Y1)
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,  # Y0 U0 Y1 V0
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
}
#: every ``sensor_msgs/Image`` encoding :func:`image_msg_to_rgb` accepts
SUPPORTED_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", *YUV422_ENCODINGS)
COMPRESSIONS = ("jpeg", "png")


def _bytes(data: Any) -> np.ndarray:
    """A message's ``uint8[]`` field (numpy array, bytes, array.array or list) as a 1-D uint8 array."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1) if data.dtype == np.uint8 else data.astype(np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


# ------------------------------------------------------------------------------------------
# sensor_msgs/Image
# ------------------------------------------------------------------------------------------
def yuv422_to_rgb(msg: Any) -> np.ndarray:
    """A 4:2:2 ``Image`` (``yuv422``/``uyvy`` or ``yuv422_yuy2``/``yuyv``) as (H, W, 3) uint8 RGB."""
    enc = msg.encoding
    code = YUV422_ENCODINGS.get(enc)
    if code is None:
        raise ConversionError(f"Image: {enc!r} is not a 4:2:2 YUV encoding")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError(f"Image: empty size {w}x{h}")
    if w % 2:
        raise ConversionError(f"Image: {enc} needs an even width (2 pixels share U and V), got {w}")
    if step < 2 * w:
        raise ConversionError(f"Image: step {step} < width*2 bytes = {2 * w} for {enc}")
    data = _bytes(msg.data)
    if data.size != h * step:
        raise ConversionError(f"Image: data has {data.size} bytes, expected height*step = {h}*{step} = {h * step}")
    packed = np.ascontiguousarray(data.reshape(h, step)[:, : 2 * w]).reshape(h, w, 2)
    return cv2.cvtColor(packed, code)


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` in any :data:`SUPPORTED_ENCODINGS` as contiguous (H, W, 3) uint8 RGB."""
    enc = msg.encoding
    if enc in YUV422_ENCODINGS:
        return yuv422_to_rgb(msg)
    if enc == "mono16":
        grey = (cv.image_to_array(msg)[..., 0] >> 8).astype(np.uint8)  # validates sizes and byte order
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if enc not in cv.IMAGE_ENCODINGS:
        raise ConversionError(f"Image: unsupported encoding {enc!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    return cv.image_to_rgb(msg)


# ------------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage
# ------------------------------------------------------------------------------------------
def compression_of(fmt: str) -> str:
    """``'jpeg'`` or ``'png'`` from an image_transport format string (``''``: unknown, sniff the bytes)."""
    f = fmt.strip().lower()
    if "compresseddepth" in f:
        raise ConversionError(f"CompressedImage: format {fmt!r} is a compressedDepth image, not a camera frame")
    if ";" in f:  # "<orig encoding>; <jpeg|png> compressed <encoding>"
        f = f.split(";", 1)[1].strip()
    word = f.split()[0] if f else ""
    word = {"jpg": "jpeg"}.get(word, word)
    if word and word not in COMPRESSIONS:
        raise ConversionError(f"CompressedImage: unsupported format {fmt!r}; expected jpeg or png "
                              "(e.g. 'jpeg' or 'rgb8; jpeg compressed bgr8')")
    return word


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as contiguous (H, W, 3) uint8 RGB."""
    kind = compression_of(msg.format)
    data = _bytes(msg.data)
    if data.size == 0:
        raise ConversionError("CompressedImage: no data")
    head = data[:8].tobytes()
    sniffed = "jpeg" if head[:2] == b"\xff\xd8" else "png" if head == b"\x89PNG\r\n\x1a\n" else ""
    if not sniffed:
        raise ConversionError(f"CompressedImage: data ({data.size} bytes, starting {head.hex()}) is neither "
                              f"JPEG nor PNG (format {msg.format!r})")
    if kind and sniffed != kind:
        raise ConversionError(f"CompressedImage: format says {kind} but the data is {sniffed}")
    # a truncated stream still decodes (the rest filled grey) without its end marker: refuse it
    raw = data.tobytes()
    if sniffed == "jpeg" and raw.rfind(b"\xff\xd9") < 2:
        raise ConversionError(f"CompressedImage: truncated JPEG ({data.size} bytes, no end-of-image marker)")
    if sniffed == "png" and raw.rfind(b"IEND") < 8:
        raise ConversionError(f"CompressedImage: truncated PNG ({data.size} bytes, no IEND chunk)")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ConversionError(f"CompressedImage: cannot decode {sniffed}: {exc}") from None
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
        raise ConversionError(f"CompressedImage: corrupt {sniffed} data ({data.size} bytes)")
    if bgr.dtype != np.uint8:  # not produced by IMREAD_COLOR today; keep the contract anyway
        bgr = (bgr >> 8).astype(np.uint8) if bgr.dtype == np.uint16 else bgr.astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def msg_to_rgb(msg: Any) -> np.ndarray:
    """An ``Image`` or a ``CompressedImage`` (told apart by their fields) as (H, W, 3) uint8 RGB."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_rgb(msg)
    return image_msg_to_rgb(msg)


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """(format string, bytes) of an RGB image compressed as image_transport's compressed plugin does.

    ``quality`` is the JPEG quality (1..100); for PNG it is ignored (lossless, fast level 3).
    """
    rgb = _check_rgb(rgb, "encode_compressed")
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        raise ValueError(f"format must be 'jpeg' or 'png', not {fmt!r}")
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ConversionError(f"encode_compressed: OpenCV could not encode {fmt}")
    return f"rgb8; {fmt} compressed bgr8", buf.tobytes()


def make_compressed_image(make: Make, t: float, rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90,
                          frame_id: str = "camera") -> Any:
    """A ``sensor_msgs/CompressedImage`` stamped ``t`` (``make`` is ``node.msg``)."""
    format_string, data = encode_compressed(rgb, fmt, quality)
    return make("sensor_msgs/msg/CompressedImage", header=cv.header(make, t, frame_id), format=format_string,
                data=np.frombuffer(data, dtype=np.uint8).copy())


# ------------------------------------------------------------------------------------------
# Model-resolution frames
# ------------------------------------------------------------------------------------------
@dataclass
class FrameSpec:
    """What the model wants: ``width`` x ``height``, from an optional ``crop`` of the source.

    ``crop`` is ``(x, y, w, h)`` in source pixels, applied before the resize. ``interpolation``
    ``None`` picks ``cv2.INTER_AREA`` when shrinking (in both directions) and ``cv2.INTER_LINEAR``
    otherwise. ``layout`` is the channel order of the result: ``'rgb'`` or ``'bgr'``.
    """

    width: int
    height: int
    crop: tuple[int, int, int, int] | None = None
    interpolation: int | None = None
    layout: str = "rgb"

    def __post_init__(self) -> None:
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"FrameSpec: width and height must be > 0, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)
        if self.crop is not None:
            if len(self.crop) == 0:
                self.crop = None
            elif len(self.crop) != 4:
                raise ValueError(f"FrameSpec: crop must be [x, y, w, h], got {list(self.crop)}")
            else:
                x, y, w, h = (int(v) for v in self.crop)
                if x < 0 or y < 0 or w <= 0 or h <= 0:
                    raise ValueError(f"FrameSpec: crop needs x, y >= 0 and w, h > 0, got {[x, y, w, h]}")
                self.crop = (x, y, w, h)
        if self.layout not in ("rgb", "bgr"):
            raise ValueError(f"FrameSpec: layout must be 'rgb' or 'bgr', not {self.layout!r}")

    @property
    def encoding(self) -> str:
        """The ``sensor_msgs/Image`` encoding of prepared frames."""
        return self.layout + "8"

    @classmethod
    def from_params(cls, width: int, height: int, crop: Sequence[int] = (), **kw: Any) -> FrameSpec:
        """From node parameters (``crop`` ``[]`` for none)."""
        return cls(int(width), int(height), tuple(int(v) for v in crop) if len(crop) else None, **kw)


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ConversionError(f"{what}: expected a non-empty (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return rgb


def prepare_frame(rgb: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """Crop, resize and order channels: a contiguous uint8 (spec.height, spec.width, 3) array."""
    rgb = _check_rgb(rgb, "prepare_frame")
    H, W = rgb.shape[:2]
    if spec.crop is not None:
        x, y, w, h = spec.crop
        if x + w > W or y + h > H:
            raise ConversionError(f"crop [x={x}, y={y}, w={w}, h={h}] lies outside the {W}x{H} image")
        rgb = rgb[y:y + h, x:x + w]
    h, w = rgb.shape[:2]
    if (w, h) != (spec.width, spec.height):
        interp = spec.interpolation
        if interp is None:
            interp = cv2.INTER_AREA if spec.width <= w and spec.height <= h else cv2.INTER_LINEAR
        rgb = cv2.resize(np.ascontiguousarray(rgb), (spec.width, spec.height), interpolation=interp)
    if spec.layout == "bgr":
        rgb = rgb[..., ::-1]
    return np.ascontiguousarray(rgb, dtype=np.uint8)


__all__ = ["COMPRESSIONS", "SUPPORTED_ENCODINGS", "YUV422_ENCODINGS", "FrameSpec", "compressed_to_rgb",
           "compression_of", "encode_compressed", "image_msg_to_rgb", "make_compressed_image", "msg_to_rgb",
           "prepare_frame", "yuv422_to_rgb"]

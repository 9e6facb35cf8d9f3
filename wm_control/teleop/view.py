"""The operator's view (:func:`compose_view`: camera | preview, labelled), JPEG, whether a window can open."""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

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
    bar = np.full((BAR_H, width, 3), BAR_COLOUR, np.uint8)
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
    gap = np.full((height, GAP, 3), GAP_COLOUR, np.uint8)
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

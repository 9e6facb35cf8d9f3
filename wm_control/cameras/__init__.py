"""Cameras as plain objects, no ROS and no messages: ``connect()``, ``read()``, ``read_latest()``, ``close()``.

:class:`OpenCVCamera` reads a ``cv2.VideoCapture`` (a camera index, a ``/dev/videoN`` path or a video file)
on a background thread; a node (``camera_ingest``) holds one and publishes what it reads.
"""

from wm_control.cameras.opencv import CameraError, Frame, OpenCVCamera, OpenCVCameraConfig

__all__ = ["CameraError", "Frame", "OpenCVCamera", "OpenCVCameraConfig"]

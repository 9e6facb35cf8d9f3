"""wm_control.cameras without a camera: OpenCVCamera on a fake cv2.VideoCapture (frames the test hands it)
and on a video file written here by cv2.VideoWriter."""

import itertools
import json
import logging
import queue
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from wm_control.cameras import CameraError, OpenCVCamera, OpenCVCameraConfig


def image(i: int, h: int = 6, w: int = 8) -> np.ndarray:
    return np.full((h, w, 3), i, np.uint8)


class FakeCapture:
    """A cv2.VideoCapture whose reads return the frames the test puts in ``frames`` (a failed read when none
    comes within 20 ms); ``first`` is what the read at open returns."""

    def __init__(self, first=None, opened=True):
        self.first, self.opened = first, opened
        self.frames: queue.Queue = queue.Queue()
        self.reads, self.sets, self.released, self.opened_with = 0, [], False, None
        self.served, self.served_at = 0, 0  # frames handed out; the read that handed out the last one

    def __call__(self, device):  # the factory: OpenCVCamera(..., capture=fake)
        self.opened_with = device
        return self

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.sets.append((prop, value))
        return True

    def read(self):
        self.reads += 1
        if self.reads == 1:
            return self.first is not None, self.first
        try:
            frame = self.frames.get(timeout=0.02)
        except queue.Empty:
            return False, None
        self.served, self.served_at = self.served + 1, self.reads
        return True, frame

    def release(self):
        self.released = True


class Clock:
    def __init__(self):
        self.t, self.lock = 100.0, threading.Lock()

    def __call__(self):
        with self.lock:
            self.t += 1.0
            return self.t


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def camera(fake, device="0", **kw):
    return OpenCVCamera(OpenCVCameraConfig(device, **kw), clock=Clock(), capture=fake, on_read_failure=lambda n: None)


def test_read_latest_returns_the_newest_frame_and_counts_the_ones_it_replaced():
    fake = FakeCapture(first=image(0))
    with camera(fake) as cam:
        assert fake.opened_with == 0  # a camera index opens as an int, as cv2.VideoCapture wants
        for i in (1, 2, 3):
            fake.frames.put(image(i))
        assert wait_for(lambda: fake.served == 3 and fake.reads > fake.served_at)  # 3 is in: the next read began
        frame = cam.read_latest()
        assert frame.image[0, 0, 0] == 3 and frame.skipped == 3  # 0, 1 and 2 were replaced before anyone took them
        assert frame.stamp == 104.0  # the clock when 3 was read: 0 at 101, 1 at 102, 2 at 103
        assert cam.read_latest() is None  # nothing new: no waiting, no old frame again
        fake.frames.put(image(4))
        frame = cam.read(timeout=5)
        assert frame.image[0, 0, 0] == 4 and frame.skipped == 0 and frame.stamp == 105.0
        with pytest.raises(TimeoutError, match="'0': no frame in 0.05 s"):
            cam.read(timeout=0.05)


def test_camera_settings_are_asked_of_a_camera_and_a_size_it_does_not_give_is_refused():
    fake = FakeCapture(first=image(0, 480, 640))
    with camera(fake, "/dev/video3", fps=15.0, width=640, height=480, fourcc="MJPG"):
        assert fake.opened_with == "/dev/video3"
        assert fake.sets == [(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG")), (cv2.CAP_PROP_FRAME_WIDTH, 640),
                             (cv2.CAP_PROP_FRAME_HEIGHT, 480), (cv2.CAP_PROP_FPS, 15.0)]
    fake = FakeCapture(first=image(0, 480, 640))
    with pytest.raises(CameraError, match=r"^opencv device '2' gives 640x480 frames, not the 1280x720 asked$"):
        camera(fake, "2", width=1280, height=720).connect()
    assert fake.released


@pytest.mark.parametrize("device,fake,why", [
    ("7", FakeCapture(first=image(0), opened=False), "cannot open opencv device '7' (cv2.VideoCapture failed)"),
    ("/dev/video9", FakeCapture(first=None), "opened opencv device '/dev/video9' but could not read a frame from it"),
    ("/nowhere/clip.avi", FakeCapture(first=image(0)), "opencv device '/nowhere/clip.avi' is neither a camera index"),
])
def test_a_failed_open_is_one_line_naming_the_device(device, fake, why):
    cam = camera(fake, device)
    with pytest.raises(CameraError) as e:
        cam.connect()
    assert why in str(e.value) and "\n" not in str(e.value)
    assert not cam.is_connected and not cam.is_running
    assert fake.released or fake.opened_with is None  # what was opened is released; a missing file is not opened
    with pytest.raises(CameraError, match="'.*' is not connected"):
        cam.read()


def test_close_stops_the_reader_and_releases_the_device():
    fake = FakeCapture(first=image(0))
    cam = camera(fake).connect()
    thread = cam._thread
    assert cam.is_running and thread.is_alive()
    assert cam.close() is True
    assert not thread.is_alive() and not cam.is_running and fake.released and not cam.is_connected
    assert cam.close() is True  # twice is fine
    with pytest.raises(RuntimeError, match="boom"):  # the context manager closes on an error too
        with camera(FakeCapture(first=image(0))) as cam2:
            thread = cam2._thread
            raise RuntimeError("boom")
    assert not thread.is_alive() and not cam2.is_connected


class StuckCapture(FakeCapture):
    """Every read after the one at open blocks until ``unblock`` is set (a camera hung in the driver)."""

    def __init__(self):
        super().__init__(first=image(0))
        self.unblock = threading.Event()

    def read(self):
        self.reads += 1
        if self.reads == 1:
            return True, self.first
        self.unblock.wait()
        return False, None


def test_a_reader_stuck_in_a_read_leaves_the_device_open(caplog):
    fake = StuckCapture()
    cam = OpenCVCamera(OpenCVCameraConfig("0"), capture=fake, join_timeout=0.05).connect()
    assert cam.read(timeout=5).image[0, 0, 0] == 0
    assert cam.close() is False and cam.is_connected and not fake.released  # releasing under the read could crash
    assert "capture thread did not stop; device left open" in caplog.text
    fake.unblock.set()
    assert wait_for(lambda: not cam.is_running) and cam.close() is True and fake.released


def test_a_camera_whose_reads_fail_is_read_again_until_frames_come_back():
    fake = FakeCapture(first=image(0))
    failures = []
    cam = OpenCVCamera(OpenCVCameraConfig("0", retry_period=0.01), capture=fake, on_read_failure=failures.append)
    with cam:
        assert cam.read(timeout=5).image[0, 0, 0] == 0
        assert wait_for(lambda: len(failures) >= 3)  # no frames: failed reads, counted in a row
        assert failures[:3] == [1, 2, 3]
        fake.frames.put(image(5))
        assert cam.read(timeout=5).image[0, 0, 0] == 5 and cam.is_running


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (32, 24))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi files here"
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_a_video_file_plays_in_order_once_then_the_reader_stops(clip, caplog):
    caplog.set_level(logging.INFO)
    cam = OpenCVCamera(OpenCVCameraConfig(str(clip), fps=60.0, loop=False))
    assert cam.config.is_file
    got = []
    with cam:
        while True:
            try:
                got.append(cam.read(timeout=5))
            except CameraError as exc:
                assert "capture stopped" in str(exc)
                break
        assert not cam.is_running
    levels = [int(round(f.image.mean() / 40)) for f in got]
    assert levels == sorted(levels) and levels[-1] == 5  # in order, to the last frame
    assert sum(1 + f.skipped for f in got) == 6  # each frame handed out or counted as skipped
    assert all(b.stamp > a.stamp for a, b in itertools.pairwise(got))
    assert "end of video file" in caplog.text and "after 6 frames; no more frames" in caplog.text


def test_a_video_file_loops(clip, caplog):
    caplog.set_level(logging.INFO)
    with OpenCVCamera(OpenCVCameraConfig(str(clip), fps=120.0)) as cam:
        levels = [int(round(cam.read(timeout=5).image.mean() / 40)) for _ in range(9)]  # more than the clip holds
    assert any(b < a for a, b in itertools.pairwise(levels))  # it started again
    assert "after 6 frames; looping" in caplog.text


def test_config_errors_and_no_ros_in_the_camera_layer():
    for bad, match in [({"device": " "}, "needs a device"), ({"device": "0", "fps": 0.0}, "fps must be > 0"),
                       ({"device": "0", "fourcc": "MJ"}, "four characters")]:
        with pytest.raises(ValueError, match=match):
            OpenCVCameraConfig(**bad)
    code = ("import json, sys; import wm_control.cameras\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('wm_control.ros', 'wm_control.messages', "
            "'rclpy', 'cyclonedds')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []

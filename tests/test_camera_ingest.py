"""camera_ingest as real processes over Cyclone DDS: raw, compressed and video-file sources in, model-size
frames out with the original capture stamps; stale, out-of-order and malformed frames are counted drops."""

import itertools
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests.helpers import start_in_parallel
from wm_control.messages import convert as cv
from wm_control.messages import registry
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode
from wm_control.world import frames as im

make = registry().new
NS = "/ingest_test"  # topics of this module only
BLOCK = 8
COLOURS = np.random.default_rng(11).integers(20, 236, (6, 8, 3), dtype=np.uint8)  # 6 x 8 blocks
SRC = np.repeat(np.repeat(COLOURS, BLOCK, axis=0), BLOCK, axis=1)  # 48 x 64 source image
RAW_CROP = (8, 8, 48, 36)  # block-aligned; shrunk by exactly 2 to 24 x 18: every output pixel is one block colour
RAW_SPEC = im.FrameSpec(24, 18, crop=RAW_CROP)
JPEG_SPEC = im.FrameSpec(32, 24)
VIDEO_COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 40], [40, 200, 200]], np.uint8)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("camera_ingest") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi files here"
    for c in VIDEO_COLOURS:
        for _ in range(2):
            writer.write(np.full((48, 64, 3), c[::-1], np.uint8))  # VideoWriter takes BGR
    writer.release()
    return path


@pytest.fixture(scope="module")
def procs(video):
    common = ("-p", "max_age:=0.5")
    args = {
        "raw": ("-r", "__node:=ingest_raw", "-p", f"input_topic:={NS}/image_raw", "-p",
                f"output_topic:={NS}/raw_frame", "-p", "width:=24", "-p", "height:=18", "-p",
                f"crop:=[{', '.join(map(str, RAW_CROP))}]"),
        "jpeg": ("-r", "__node:=ingest_jpeg", "-p", "source:=compressed", "-p",
                 f"input_topic:={NS}/image_raw/compressed", "-p", f"output_topic:={NS}/jpeg_frame",
                 "-p", "width:=32", "-p", "height:=24", "-p", "frame_id:=model_cam"),
        "video": ("-r", "__node:=ingest_video", "-p", "source:=opencv", "-p", f"device:={video}", "-p",
                  "opencv_fps:=30.0", "-p", f"output_topic:={NS}/video_frame", "-p", "width:=16", "-p", "height:=12"),
    }
    started = start_in_parallel("camera_ingest", args, *common)
    yield started
    for p in started.values():
        p.stop()


@pytest.fixture(scope="module")
def client(procs):
    node = DdsNode("ingest_test_client")
    state = {"raw": [], "jpeg": [], "video": [], "diag": {}}
    subs = [node.create_subscription("sensor_msgs/msg/Image", f"{NS}/{k}_frame",
                                     lambda m, k=k: state[k].append(m), qos.SENSOR_DATA)
            for k in ("raw", "jpeg", "video")]

    def on_diag(m):
        for s in m.status:
            state["diag"][s.name] = {"level": s.level, "message": s.message, **{kv.key: kv.value for kv in s.values}}

    node.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", on_diag, qos.DIAGNOSTICS)
    node.raw = node.create_publisher("sensor_msgs/msg/Image", f"{NS}/image_raw", qos.SENSOR_DATA)
    node.jpeg = node.create_publisher("sensor_msgs/msg/CompressedImage", f"{NS}/image_raw/compressed",
                                      qos.SENSOR_DATA)
    node.state = state
    assert node.spin(until=lambda: node.raw.matched() and node.jpeg.matched() and all(s.matched() for s in subs),
                     timeout=10), "camera_ingest endpoints not discovered"
    yield node
    node.destroy()


def stamp_of(msg):
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def header(ns: int, frame_id: str = "cam"):
    sec, nsec = divmod(ns, 1_000_000_000)
    return make("std_msgs/msg/Header", stamp=make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                frame_id=frame_id)


def raw_image(ns: int, rgb: np.ndarray, encoding: str):
    if encoding == "rgb8":
        payload = rgb
    elif encoding == "bgr8":
        payload = rgb[..., ::-1]
    elif encoding == "yuv422":
        payload = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)
    elif encoding == "yuv422_yuy2":
        payload = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUYV)
    else:
        raise AssertionError(encoding)
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(payload).reshape(-1)
    return make("sensor_msgs/msg/Image", header=header(ns), height=h, width=w, encoding=encoding,
                 is_bigendian=0, step=data.size // h, data=data)


def roundtrip(client, pub, build, key, tries=3):
    """Publish build(stamp_ns) until its frame comes back on ``key`` (best effort: retry a lost one)."""
    for _ in range(tries):
        ns = time.time_ns()
        msg = build(ns)
        want = divmod(ns, 1_000_000_000)
        pub.publish(msg)
        def back(want=want):
            return next((m for m in client.state[key] if stamp_of(m) == want), None)

        if client.spin(until=lambda: back() is not None, timeout=2.0):
            return back()
    raise AssertionError(f"no frame back on {key} after {tries} tries")


def frame_array(msg):
    assert msg.encoding == "rgb8" and msg.step == msg.width * 3
    return im.image_msg_to_rgb(msg)


@pytest.mark.parametrize("encoding,tol", [("rgb8", 0), ("bgr8", 0), ("yuv422", 3), ("yuv422_yuy2", 3)])
def test_raw_images_arrive_cropped_resized_with_original_stamps(client, encoding, tol):
    out = roundtrip(client, client.raw, lambda ns: raw_image(ns, SRC, encoding), "raw")
    assert (out.width, out.height) == (24, 18)
    assert out.header.frame_id == "cam"  # the input's, no override
    got = frame_array(out).astype(int)
    x, y, w, h = RAW_CROP
    expected = SRC[y:y + h:2, x:x + w:2]  # 2x2 cells lie inside single blocks: area shrink = block colour
    assert np.array_equal(im.prepare_frame(SRC, RAW_SPEC), expected)
    assert np.abs(got - expected).max() <= tol
    assert np.abs(got[0, 0] - COLOURS[1, 1]).max() <= tol and np.abs(got[-1, -1] - COLOURS[5, 6]).max() <= tol


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_images_arrive_with_original_stamps(client, fmt):
    fmt_string, data = im.encode_compressed(SRC, fmt, quality=95)

    def build(ns):
        return make("sensor_msgs/msg/CompressedImage", header=header(ns), format=fmt_string,
                    data=np.frombuffer(data, np.uint8).copy())

    out = roundtrip(client, client.jpeg, build, "jpeg")
    assert (out.width, out.height) == (32, 24)
    assert out.header.frame_id == "model_cam"  # frame_id parameter overrides the input's
    got = frame_array(out)
    assert np.array_equal(got, im.prepare_frame(im.compressed_to_rgb(build(0)), JPEG_SPEC))  # the same pipeline
    diff = np.abs(got.astype(int) - im.prepare_frame(SRC, JPEG_SPEC))
    if fmt == "png":
        assert diff.max() == 0
    else:  # JPEG: close on average (4:2:0 chroma blurs the edges between the random colour blocks)
        assert diff.mean() < 10


def test_stale_out_of_order_and_malformed_frames_are_counted_drops(procs, client):
    ok = roundtrip(client, client.raw, lambda ns: raw_image(ns, SRC, "rgb8"), "raw")
    last_ns = ok.header.stamp.sec * 1_000_000_000 + ok.header.stamp.nanosec
    now = time.time_ns()
    bad = [
        raw_image(now - 1_000_000_000, SRC, "rgb8"),  # 1 s old: stale (max_age 0.5)
        raw_image(last_ns - 50_000_000, SRC, "rgb8"),  # older than the last published: out of order
    ]
    short = raw_image(now, SRC, "rgb8")
    short.data = short.data[:-7]  # data shorter than height*step
    odd = raw_image(now, SRC[:, :63], "rgb8")
    odd.encoding = "yuv422"  # odd width, wrong step for 4:2:2
    weird = raw_image(now, SRC, "rgb8")
    weird.encoding = "rgb_but_not_really"
    n_before = len(client.state["raw"])
    for i, m in enumerate(bad + [short, odd, weird]):
        if i >= 2:  # malformed ones must be newer than the last published to reach the decoder
            m.header.stamp = header(time.time_ns()).stamp
        client.raw.publish(m)
        client.spin(timeout=0.05)
    after = roundtrip(client, client.raw, lambda ns: raw_image(ns, SRC, "bgr8"), "raw")  # still alive and working
    assert (after.width, after.height) == (24, 18)
    published = client.state["raw"][n_before:]
    assert all(stamp_of(m) != stamp_of(b) for m in published for b in bad)

    def counts():
        d = client.state["diag"].get("ingest_raw", {})
        return d.get("dropped.stale"), d.get("dropped.out_of_order"), d.get("dropped.malformed")

    client.spin(until=lambda: counts() == ("1", "1", "3"), timeout=5)
    assert counts() == ("1", "1", "3")
    d = client.state["diag"]["ingest_raw"]
    assert d["dropped.crop"] == "0"
    assert float(d["input.rate_hz"]) > 0 and float(d["output.rate_hz"]) > 0  # frames in, frames out
    assert 0 <= float(d["frame_age.p50_ms"]) < 500  # the ages of fresh frames, on the node's clock
    assert float(d["frame_age.p99_ms"]) > 500  # the 1 s old frame is in the age statistics, though dropped
    assert procs["raw"].p.poll() is None
    out = procs["raw"].output()
    assert "dropped frame (stale)" in out and "dropped frame (malformed)" in out and "dropped frame (out_of_order)" in out


def test_opencv_video_file_source(procs, client):
    client.state["video"].clear()
    # more frames than the 10-frame clip holds: it loops (counted, not timed: rates are for benchmarks)
    assert client.spin(until=lambda: len(client.state["video"]) >= 14, timeout=20), procs["video"].output()
    frames = client.state["video"]
    stamps = [cv.stamp_sec(m.header.stamp) for m in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert abs(stamps[-1] - time.time()) < 1.0  # stamped with the node's (wall) time at capture
    for m in frames:
        assert (m.width, m.height, m.header.frame_id) == (16, 12, "camera")
        mean = frame_array(m).reshape(-1, 3).mean(axis=0)
        assert np.abs(VIDEO_COLOURS - mean).max(axis=1).min() < 15  # one of the clip's colours
    assert procs["video"].p.poll() is None
    assert "looping" in procs["video"].output()


def test_opencv_source_that_cannot_open_fails_at_startup(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 10)
    cases = [(f"device:={tmp_path / 'missing.avi'}", "neither a camera index"),
             (f"device:={junk}", "opencv device"),
             ("device:=''", "needs a device")]
    ps = [subprocess.Popen([sys.executable, "-m", "wm_control", "run", "camera_ingest", "--ros-args",
                            "-p", "source:=opencv", "-p", dev], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True) for dev, _ in cases]
    for p, (_, why) in zip(ps, cases):
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 1, out
        assert "failed to start" in out and why in out, out

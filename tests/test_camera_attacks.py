"""camera_ingest under attack over the wire: a frame stamped an hour ahead, a PNG decompression bomb, a
truncated JPEG with its end marker appended, oversized messages and a flood of bad frames; each is
dropped and counted under its reason while real frames keep flowing, and the log says so in a few lines.
Also the in-process logic (fake node, fake clock) and :class:`wm_control.ros.throttle.ThrottledLog`."""

import logging
import re
import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from tests.helpers import start_in_parallel
from wm_control.messages import convert as cv
from wm_control.messages import registry
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode
from wm_control.ros.nodes.camera_ingest import CameraIngestConfig, CameraIngestNode
from wm_control.ros.throttle import ThrottledLog
from wm_control.world import frames as im

make = registry().new
NS = "/attack_test"  # topics of this module only
SRC = np.repeat(np.repeat(np.random.default_rng(5).integers(20, 236, (6, 8, 3), dtype=np.uint8), 8, 0), 8, 1)
HOUR_NS = 3600 * 1_000_000_000
BOMB_SIDE = 10000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def header(ns: int, frame_id: str = "cam"):
    sec, nsec = divmod(ns, 1_000_000_000)
    return make("std_msgs/msg/Header", stamp=make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                frame_id=frame_id)


def raw_image(ns: int, rgb: np.ndarray = SRC, encoding: str = "rgb8"):
    data = np.ascontiguousarray(rgb).reshape(-1)
    h, w = rgb.shape[:2]
    return make("sensor_msgs/msg/Image", header=header(ns), height=h, width=w, encoding=encoding,
                is_bigendian=0, step=data.size // h, data=data)


def compressed(ns: int, data: bytes, fmt: str = "jpeg"):
    return make("sensor_msgs/msg/CompressedImage", header=header(ns), format=fmt,
                data=np.frombuffer(data, np.uint8).copy())


def stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A valid all-black RGB PNG of width x height (``rows``: only that many rows of image data, the
    cheap form of the attack); the zlib stream is built row by row, never the whole image in memory."""
    z = zlib.compressobj(6)
    row = b"\0" * (3 * width + 1)  # filter byte + pixels
    n = height if rows is None else rows
    parts = [z.compress(row * 100) for _ in range(n // 100)] + [z.compress(row * (n % 100)), z.flush()]
    return (PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))


def vm_hwm_kb(pid: int) -> int:
    """Peak resident memory of a process (VmHWM in /proc/PID/status), kB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


# ------------------------------------------------------------------------------------------
# Over the wire: the node as a process, a client node publishing the attacks
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def procs():
    args = {
        "raw": ("-r", "__node:=attack_raw", "-p", f"input_topic:={NS}/image_raw", "-p",
                f"output_topic:={NS}/raw_frame", "-p", "width:=16", "-p", "height:=12", "-p", "max_age:=0.5"),
        "small": ("-r", "__node:=attack_small", "-p", f"input_topic:={NS}/small_raw", "-p",
                  f"output_topic:={NS}/small_frame", "-p", "width:=16", "-p", "height:=12", "-p", "max_age:=0.5",
                  "-p", "max_input_bytes:=100000"),
        "jpeg": ("-r", "__node:=attack_jpeg", "-p", "source:=compressed", "-p",
                 f"input_topic:={NS}/image_raw/compressed", "-p", f"output_topic:={NS}/jpeg_frame", "-p",
                 "width:=16", "-p", "height:=12", "-p", "max_age:=0.5"),
    }
    started = start_in_parallel("camera_ingest", args)
    yield started
    for p in started.values():
        p.stop()


@pytest.fixture(scope="module")
def client(procs):
    node = DdsNode("attack_test_client")
    state = {"raw": [], "small": [], "jpeg": [], "diag": {}}
    subs = [node.create_subscription("sensor_msgs/msg/Image", f"{NS}/{k}_frame",
                                     lambda m, k=k: state[k].append(m), qos.SENSOR_DATA)
            for k in ("raw", "small", "jpeg")]

    def on_diag(m):
        for s in m.status:
            state["diag"][s.name] = {kv.key: kv.value for kv in s.values}

    node.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", on_diag, qos.DIAGNOSTICS)
    node.pubs = {
        "raw": node.create_publisher("sensor_msgs/msg/Image", f"{NS}/image_raw", qos.SENSOR_DATA),
        "small": node.create_publisher("sensor_msgs/msg/Image", f"{NS}/small_raw", qos.SENSOR_DATA),
        "jpeg": node.create_publisher("sensor_msgs/msg/CompressedImage", f"{NS}/image_raw/compressed",
                                      qos.SENSOR_DATA),
    }
    node.state = state
    assert node.spin(until=lambda: all(p.matched() for p in node.pubs.values()) and all(s.matched() for s in subs),
                     timeout=15), "camera_ingest endpoints not discovered"
    yield node
    node.destroy()


def count(client, key: str, name: str) -> int:
    """A drop counter of node ``attack_<key>`` as its last /diagnostics said (-1: not reported)."""
    return int(client.state["diag"].get(f"attack_{key}", {}).get(name, -1))


def published(client, key: str, ns: int) -> bool:
    return any(stamp_ns(m) == ns for m in client.state[key])


def roundtrip(client, key: str, build, tries: int = 4):
    """Publish build(now) until its frame comes back (best effort QoS: a lost one is sent again)."""
    for _ in range(tries):
        ns = time.time_ns()
        client.pubs[key].publish(build(ns))
        if client.spin(until=lambda: published(client, key, ns), timeout=3.0):
            return ns
    raise AssertionError(f"no frame back on {key} after {tries} tries")


def send_until_counted(client, key: str, name: str, build, timeout: float = 20.0) -> list[int]:
    """Publish build(stamp) (a fresh stamp each time) until counter ``name`` of the node goes up; the
    stamps sent. /diagnostics comes once a second, so a message is sent again only every 2.5 s."""
    start = count(client, key, name)
    stamps: list[int] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ns = time.time_ns()
        stamps.append(ns)
        client.pubs[key].publish(build(ns))
        if client.spin(until=lambda: count(client, key, name) > max(start, 0), timeout=2.5):
            return stamps
    raise AssertionError(f"{name} of attack_{key} did not go up from {start} in {timeout} s")


def test_frame_stamped_an_hour_ahead_does_not_blind_the_node(procs, client):
    roundtrip(client, "raw", raw_image)
    future = send_until_counted(client, "raw", "dropped.future", lambda ns: raw_image(ns + HOUR_NS))
    for _ in range(5):  # real frames keep coming through: the future one never became the reference
        roundtrip(client, "raw", raw_image)
    assert not any(published(client, "raw", ns + HOUR_NS) for ns in future)
    assert procs["raw"].p.poll() is None
    assert "dropped frame (future)" in procs["raw"].output()


def test_flood_of_bad_frames_is_logged_as_counts_not_lines(procs, client):
    """2000 stale frames in under a second: every one that reaches the node is counted in /diagnostics
    (best effort, keep last 5: on a busy machine some never do), and the log has the first in full and
    then a count or two, which add up to it."""
    roundtrip(client, "raw", raw_image)
    msg = raw_image(0)
    pub = client.pubs["raw"]
    old = time.time_ns() - 5_000_000_000  # 5 s old: stale (max_age 0.5)
    for i in range(2000):
        msg.header.stamp = header(old + i * 1000).stamp
        pub.publish(msg)
        if i % 5 == 4:  # the node's reader keeps the newest 5 (SENSOR_DATA): let it take them
            time.sleep(0.0005)

    def lines():
        return [ln for ln in procs["raw"].output().splitlines() if "(stale)" in ln]

    def logged() -> int:  # drops the log accounts for: 1 per full line, N per summary
        n = 0
        for ln in lines():
            m = re.search(r"dropped (\d+) more frames \(stale\)", ln)
            n += int(m.group(1)) if m else int("dropped frame (stale)" in ln)
        return n

    # the summary comes once 5 s have passed since the first line (the node's 1 s timer flushes it)
    assert client.spin(until=lambda: count(client, "raw", "dropped.stale") >= 100
                       and logged() == count(client, "raw", "dropped.stale"), timeout=20), \
        (count(client, "raw", "dropped.stale"), lines())
    assert 2 <= len(lines()) <= 4, lines()
    roundtrip(client, "raw", raw_image)  # and the node is fine


def test_message_over_max_input_bytes_is_dropped_unread(procs, client):
    roundtrip(client, "small", raw_image)  # 64x48 rgb8: 9216 bytes, under the node's 100000
    big = np.zeros((200, 200, 3), np.uint8)  # 120000 bytes: a valid image, just too big a message
    sent = send_until_counted(client, "small", "dropped.too_large", lambda ns: raw_image(ns, big))
    roundtrip(client, "small", raw_image)
    assert not any(published(client, "small", ns) for ns in sent)
    assert "dropped frame (too_large): message of 120000 bytes > max_input_bytes 100000" in procs["small"].output()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A real 10000 x 10000 PNG (all black): 300 MB decoded, about 300 KB on the wire."""
    return png_bomb(BOMB_SIDE, BOMB_SIDE)


def test_png_decompression_bomb_is_refused_from_its_header(procs, client, bomb):
    assert len(bomb) < 400_000 and struct.unpack(">II", bomb[16:24]) == (BOMB_SIDE, BOMB_SIDE)
    _, good = im.encode_compressed(SRC, "png")
    roundtrip(client, "jpeg", lambda ns: compressed(ns, good, "png"))  # warmed up: decoders loaded
    pid = procs["jpeg"].p.pid
    before = vm_hwm_kb(pid)
    sent = send_until_counted(client, "jpeg", "dropped.too_large", lambda ns: compressed(ns, bomb, "png"))
    roundtrip(client, "jpeg", lambda ns: compressed(ns, good, "png"))  # not stalled: the next frame comes through
    grew_mb = (vm_hwm_kb(pid) - before) / 1024
    assert grew_mb < 200, f"peak memory of the node grew by {grew_mb:.0f} MB"  # decoding it takes 300+ MB
    assert not any(published(client, "jpeg", ns) for ns in sent)
    assert f"{BOMB_SIDE}x{BOMB_SIDE} = {BOMB_SIDE ** 2} pixels is over the limit" in procs["jpeg"].output()


@pytest.mark.parametrize("cut", ["50%", "90%", "random"])
def test_truncated_jpeg_with_end_marker_appended_is_refused(procs, client, cut):
    rgb = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8), (5, 5), 0)
    _, jpg = im.encode_compressed(rgb, "jpeg", quality=90)
    start = jpg.index(b"\xff\xda") + 14  # in the entropy-coded data
    at = {"50%": len(jpg) // 2, "90%": len(jpg) * 9 // 10,
          "random": int(np.random.default_rng(7).integers(start, len(jpg) - 2))}[cut]
    bad = jpg[:at] + b"\xff\xd9"
    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # what libjpeg does with it
    sent = send_until_counted(client, "jpeg", "dropped.malformed", lambda ns: compressed(ns, bad))
    roundtrip(client, "jpeg", lambda ns: compressed(ns, jpg))  # the complete one is published
    assert not any(published(client, "jpeg", ns) for ns in sent)
    assert "truncated or corrupt JPEG" in procs["jpeg"].output()


# ------------------------------------------------------------------------------------------
# In process: the node's checks on a fake node with a clock the test sets
# ------------------------------------------------------------------------------------------
class _Pub:
    def __init__(self):
        self.sent = []

    def publish(self, msg):
        self.sent.append(msg)


class _FakeNode:
    """Just enough of :class:`wm_control.ros.api.Node` for CameraIngestNode (timers never fire)."""

    name, namespace, backend = "fake_ingest", "/", "fake"

    def __init__(self, t: float, sim_time: bool = False):
        self.t, self.use_sim_time = t, sim_time
        self.logger = logging.getLogger("test_camera_attacks.fake_ingest")
        self.pubs: dict[str, _Pub] = {}
        self.msg = make

    def create_publisher(self, typename, topic, qos=None):
        return self.pubs.setdefault(topic, _Pub())

    def create_subscription(self, typename, topic, callback, qos=None):
        return None

    def create_timer(self, period, callback):
        return None

    def now(self) -> float:
        return self.t

    def now_msg(self):
        return make("builtin_interfaces/msg/Time", **cv.time_fields(self.t))

    def resolve(self, topic: str) -> str:
        return topic


def fake_ingest(t: float = 1000.0, sim_time: bool = False, **cfg):
    node = _FakeNode(t, sim_time)
    ingest = CameraIngestNode(node, CameraIngestConfig(width=16, height=12, max_age=0.5, **cfg))
    return node, ingest, node.pubs["/wm/frame"].sent


def at(t: float) -> int:
    return int(round(t * 1e9))


def test_future_frame_is_counted_and_never_the_reference():
    node, ingest, out = fake_ingest(1000.0)
    ingest.on_image(raw_image(at(999.99)))
    ingest.on_image(raw_image(at(1000.0 + 3600)))  # an hour ahead
    ingest.on_image(raw_image(at(1000.4)))  # within max_future_stamp (0.5 s): a skewed clock, accepted
    for t in (1000.5, 1000.6, 1000.7):
        node.t = t
        ingest.on_image(raw_image(at(t)))
    assert [stamp_ns(m) for m in out] == [at(t) for t in (999.99, 1000.4, 1000.5, 1000.6, 1000.7)]
    assert ingest.diag.counters["dropped.future"] == 1 and ingest.diag.counters["dropped.out_of_order"] == 0
    assert ingest.last_ns == at(1000.7)
    assert min(ingest.diag.latencies["frame_age"].values) > -0.5  # the future frame is not in the age statistics


def test_order_starts_again_when_the_clock_goes_back():
    node, ingest, out = fake_ingest(0.0, sim_time=True)
    ingest.on_image(raw_image(at(3600.0)))  # before the first /clock: nothing can be checked, published
    node.t = 5.0  # /clock starts: the frame above is an hour ahead of it
    ingest.on_image(raw_image(at(5.0)))
    node.t = 20.0
    ingest.on_image(raw_image(at(20.0)))
    node.t = 2.0  # the bag loops, sim time goes back
    ingest.on_image(raw_image(at(2.0)))
    ingest.on_image(raw_image(at(1.99)))  # but within one run, order still holds
    assert [stamp_ns(m) for m in out] == [at(t) for t in (3600.0, 5.0, 20.0, 2.0)]
    assert ingest.diag.counters["order_resets"] == 2 and ingest.diag.counters["dropped.out_of_order"] == 1


def test_size_limits_in_process():
    node, ingest, out = fake_ingest(1000.0, max_input_pixels=1000, max_input_bytes=50_000)
    ingest.on_image(raw_image(at(1000.0), np.zeros((40, 30, 3), np.uint8)))  # 1200 pixels
    assert ingest.diag.counters["dropped.too_large"] == 1
    _, png = im.encode_compressed(np.zeros((60, 60, 3), np.uint8), "png")
    ingest.on_compressed(compressed(at(1000.0), png, "png"))  # 3600 pixels, from the IHDR
    noisy = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    _, big = im.encode_compressed(noisy, "png")
    assert len(big) > 50_000
    ingest.on_compressed(compressed(at(1000.0), big, "png"))  # the message itself is too big
    assert ingest.diag.counters["dropped.too_large"] == 3 and not out
    ingest.on_image(raw_image(at(1000.0), np.zeros((30, 30, 3), np.uint8)))  # 900 pixels: fine
    assert len(out) == 1


def test_cheap_bombs_are_refused_before_decoding(monkeypatch):
    """The headers are read, nothing is inflated: a PNG saying 10000 x 10000 with 10 rows of data, a JPEG
    whose frame header says 65000 x 65000; the decoder is never called."""
    png = png_bomb(BOMB_SIDE, BOMB_SIDE, rows=10)
    _, jpg = im.encode_compressed(SRC, "jpeg")
    sof = jpg.index(b"\xff\xc0")
    jpg_bomb = jpg[:sof + 5] + struct.pack(">HH", 65000, 65000) + jpg[sof + 9:]

    def no_decoding(*_a, **_k):
        raise AssertionError("decoded")

    monkeypatch.setattr(im.cv2, "imdecode", no_decoding)
    for fmt, data in (("png", png), ("jpeg", jpg_bomb)):
        with pytest.raises(im.ImageTooLarge, match="is over the limit"):
            im.compressed_to_rgb(compressed(0, data, fmt))


# ------------------------------------------------------------------------------------------
# ThrottledLog
# ------------------------------------------------------------------------------------------
class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def captured():
    logger = logging.getLogger("test_camera_attacks.throttle")
    records: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record)

    h = H()
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, records
    logger.removeHandler(h)


def test_throttled_log_first_line_then_counts(captured):
    logger, records = captured
    clock = _Clock()
    log = ThrottledLog(logger, period=5.0, first="dropped frame ({key}): {message}",
                       summary="dropped {count} more frames ({key}) in the last {seconds:.1f} s; the latest: {message}",
                       clock=clock)
    assert log.log("future", "stamped %.1f s ahead", 3600.0)
    for i in range(522):
        clock.t += 0.001
        assert not log.log("future", "stamped %.1f s ahead", 3600.0 + i)
    assert log.log("stale", "%d ms old", 700)  # another key has its own first line
    assert log.pending("future") == 522 and log.flush() == 0  # the period has not passed
    clock.t = 105.0
    assert log.flush() == 1 and log.pending("future") == 0
    msgs = [r.getMessage() for r in records]
    assert msgs == ["dropped frame (future): stamped 3600.0 s ahead", "dropped frame (stale): 700 ms old",
                    "dropped 522 more frames (future) in the last 5.0 s; the latest: stamped 4121.0 s ahead"]
    assert all(r.levelno == logging.WARNING for r in records)
    # still going: the next summary comes with an event once the period has passed, without a flush
    clock.t = 107.0
    assert not log.log("future", "x")
    clock.t = 110.5
    assert log.log("future", "y")
    assert records[-1].getMessage() == "dropped 2 more frames (future) in the last 5.5 s; the latest: y"
    # quiet for a period: the next one is a first line again
    clock.t = 200.0
    assert log.log("future", "z") and records[-1].getMessage() == "dropped frame (future): z"
    assert log.lines == 5


def test_throttled_log_flush_force_levels_and_bad_formats(captured):
    logger, records = captured
    clock = _Clock()
    log = ThrottledLog(logger, period=5.0, clock=clock)
    log.info("clock", "went back %d s", 3)
    log.info("clock", "went back %d s", 4)
    log.warning("fmt", "%d frames", "not a number")  # a bad format is shown, never raised
    assert log.flush() == 0 and log.flush(force=True) == 1
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "went back 3 s"), (logging.WARNING, "%d frames ('not a number',)"),
        (logging.INFO, "clock: 1 more in the last 0.0 s; the latest: went back 4 s")]
    with pytest.raises(ValueError):
        ThrottledLog(logger, period=-1)


def test_a_re_announced_frame_is_passed_on_an_older_one_is_not():
    """A lock-step simulator re-announces its instant (the same stamp) until a controller answers: the frame
    goes on (counted ``repeated``) so that a consumer that joined late gets it; an older stamp is out of order."""
    node, ingest, out = fake_ingest(10.0, sim_time=True)
    ingest.on_image(raw_image(at(10.0)))
    ingest.on_image(raw_image(at(10.0)))
    ingest.on_image(raw_image(at(9.98)))
    assert [stamp_ns(m) for m in out] == [at(10.0), at(10.0)]
    assert ingest.diag.counters["repeated"] == 1 and ingest.diag.counters["dropped.out_of_order"] == 1

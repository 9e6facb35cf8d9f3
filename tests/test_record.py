"""`wm-control record` as a real process: a stop at any moment (even during start-up) leaves a valid bag
and exit code 0; topics that appear while recording are recorded; the QoS follows what the publishers
offer; a recording of nothing says so."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cyclonedds.util import duration
from rosbags.rosbag2 import Reader

from wm_control.messages import registry
from wm_control.ros import qos as qosmod
from wm_control.ros.dds import DdsNode

STRING = "std_msgs/msg/String"


class RecordProcess:
    """``python -m wm_control record ARGS -o OUT``, its stderr and stdout collected as they come.

    ``ignore_sigint``: start it with SIGINT ignored, as a non-interactive shell starts a background job.
    """

    def __init__(self, out: Path, *args: str, env: dict | None = None, ignore_sigint: bool = False):
        self.out = out
        self.err: list[str] = []
        self.stdout = ""
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([sys.executable, "-m", "wm_control", "record", *args, "-o", str(out)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                  env={**os.environ, **(env or {})},
                                  preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
                                  if ignore_sigint else None)
        self._pumps = [threading.Thread(target=self._pump_err, daemon=True),
                       threading.Thread(target=self._pump_out, daemon=True)]
        for t in self._pumps:
            t.start()

    def _pump_err(self):
        for line in self.p.stderr:
            self.err.append(line.rstrip())

    def _pump_out(self):
        self.stdout = self.p.stdout.read()

    def stderr(self) -> str:
        return "\n".join(self.err)

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        """Until a stderr line contains ``text``; fails if the process ends or the time runs out."""
        end = time.monotonic() + timeout
        while not any(text in line for line in self.err):
            if self.p.poll() is not None:
                time.sleep(0.1)  # let the pump catch up with the last lines
                if any(text in line for line in self.err):
                    return
                pytest.fail(f"record exited ({self.p.returncode}) before {text!r}:\n{self.stderr()}")
            if time.monotonic() > end:
                pytest.fail(f"no {text!r} from record within {timeout} s:\n{self.stderr()}")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 8.0) -> int:
        """Send ``sig`` and wait for the exit (a second signal must not be needed)."""
        assert self.p.poll() is None, f"record already exited ({self.p.returncode}):\n{self.stderr()}"
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"record did not exit within {timeout} s of {signal.Signals(sig).name}:\n{self.stderr()}")
        for t in self._pumps:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def read_bag(path: Path) -> dict[str, list]:
    """Topic -> decoded messages, with rosbags' own reader (so the bag was closed properly)."""
    reg = registry()
    out: dict[str, list] = {}
    with Reader(path) as r:
        for c in r.connections:
            out.setdefault(c.topic, [])
        for conn, _t, raw in r.messages():
            out[conn.topic].append(reg.deserialize(raw, conn.msgtype))
    return out


def wait_until(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def node():
    n = DdsNode("test_record_pub")
    yield n
    n.destroy()


@pytest.fixture
def recorders():
    procs: list[RecordProcess] = []
    yield procs
    for p in procs:
        p.kill()


def publish_strings(node, pub, texts):
    for text in texts:
        pub.publish(node.msg(STRING, data=text))


@pytest.fixture(scope="module")
def chatter(node):
    """A reliable /rec_chatter publisher at ~50 Hz for the whole module."""
    pub = node.create_publisher(STRING, "/rec_chatter", qosmod.DEFAULT)
    done = threading.Event()

    def loop():
        k = 0
        while not done.wait(0.02):
            pub.publish(node.msg(STRING, data=f"chatter {k}"))
            k += 1

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield pub
    done.set()
    t.join(5)


@pytest.mark.parametrize("delay,sig", [(0.3, signal.SIGINT), (1.0, signal.SIGINT), (0.5, signal.SIGTERM)])
def test_stop_during_start_up_closes_a_valid_bag(tmp_path, recorders, chatter, delay, sig):
    """Before the fix the handlers came only after a 1.5 s discovery: SIGINT there was a traceback or
    'interrupted' (exit 130) and no bag, SIGTERM killed it, and with SIGINT ignored by the shell (a
    background job) it was lost and the recording went on."""
    bag = tmp_path / "bag"
    rec = RecordProcess(bag)
    recorders.append(rec)
    time.sleep(max(0.0, rec.t0 + delay - time.monotonic()))  # the point: a stop this soon after start
    rc = rec.stop(sig)
    assert rc == 0, rec.stderr()
    assert json.loads(rec.stdout)["bag"] == str(bag)
    topics = read_bag(bag)  # opens: metadata.yaml and a finished MCAP
    assert all(m.data.startswith("chatter") for m in topics.get("/rec_chatter", []))


def test_stop_when_started_with_sigint_ignored(tmp_path, recorders):
    """``wm-control record ... &`` from a script starts with SIGINT ignored: ``kill -INT`` must still stop
    it at once (before the fix it was lost until discovery had ended, and the recording went on)."""
    bag = tmp_path / "bag"
    rec = RecordProcess(bag, ignore_sigint=True)
    recorders.append(rec)
    time.sleep(max(0.0, rec.t0 + 0.5 - time.monotonic()))
    assert rec.stop(signal.SIGINT) == 0, rec.stderr()
    read_bag(bag)


def test_publisher_that_appears_while_recording_is_recorded(tmp_path, recorders, node):
    """Recording everything (no topics given), a topic that appears late is subscribed and recorded;
    before the fix only what was there in the first 1.5 s was."""
    bag = tmp_path / "bag"
    rec = RecordProcess(bag)
    recorders.append(rec)
    rec.wait_for("]: recording ")
    time.sleep(2.0)  # the point: the publisher starts well after the recorder (and its old discovery window)
    pub = node.create_publisher(STRING, "/rec_late", qosmod.DEFAULT)
    wait_until(lambda: pub.matched() > 0, 10.0, "record to subscribe /rec_late")
    sent = [f"late {k}" for k in range(5)]
    publish_strings(node, pub, sent)
    assert pub._writer.wait_for_acks(duration(seconds=5)), "record did not acknowledge /rec_late"
    assert rec.stop() == 0, rec.stderr()
    topics = read_bag(bag)
    assert [m.data for m in topics["/rec_late"]] == sent
    assert "subscribed to /rec_late [std_msgs/msg/String]" in rec.stderr()
    assert json.loads(rec.stdout)["messages"]["/rec_late"] == len(sent)


def test_named_topic_without_publisher_is_awaited(tmp_path, recorders, node):
    """``record /topic`` with no publisher yet waits for one (and says so); before the fix it failed at once."""
    bag = tmp_path / "bag"
    rec = RecordProcess(bag, "/rec_awaited")
    recorders.append(rec)
    rec.wait_for("waiting for a publisher on /rec_awaited")
    pub = node.create_publisher(STRING, "/rec_awaited", qosmod.DEFAULT)
    wait_until(lambda: pub.matched() > 0, 10.0, "record to subscribe /rec_awaited")
    sent = [f"awaited {k}" for k in range(3)]
    publish_strings(node, pub, sent)
    assert pub._writer.wait_for_acks(duration(seconds=5))
    assert rec.stop() == 0, rec.stderr()
    assert [m.data for m in read_bag(bag)["/rec_awaited"]] == sent


def test_subscription_qos_follows_the_publishers(tmp_path, recorders, node):
    """A best-effort publisher on a topic the table calls reliable, and a latched one it calls volatile:
    before the fix the first never matched and the second's latched sample was missed."""
    be = node.create_publisher(STRING, "/rec_best_effort", qosmod.SENSOR_DATA)
    latched = node.create_publisher(STRING, "/rec_latched", qosmod.LATCHED)
    latched.publish(node.msg(STRING, data="sent before record started"))
    bag = tmp_path / "bag"
    rec = RecordProcess(bag, "/rec_best_effort", "/rec_latched")
    recorders.append(rec)
    k = 0
    end = time.monotonic() + 10.0
    while not (be.matched() and latched.matched()):  # publish all along: best effort has no retransmission
        assert time.monotonic() < end, f"record did not match both publishers:\n{rec.stderr()}"
        be.publish(node.msg(STRING, data=f"be {k}"))
        k += 1
        time.sleep(0.02)
    for _ in range(25):  # once matched, best effort on loopback delivers
        be.publish(node.msg(STRING, data=f"be {k}"))
        k += 1
        time.sleep(0.01)
    assert latched._writer.wait_for_acks(duration(seconds=5))
    assert rec.stop() == 0, rec.stderr()
    topics = read_bag(bag)
    assert [m.data for m in topics["/rec_latched"]] == ["sent before record started"]
    assert topics["/rec_best_effort"] and all(m.data.startswith("be ") for m in topics["/rec_best_effort"])
    assert "subscribed to /rec_best_effort [std_msgs/msg/String] (best_effort, volatile, as offered)" in rec.stderr()
    assert "subscribed to /rec_latched [std_msgs/msg/String] (reliable, transient_local, as offered)" in rec.stderr()


def test_recording_nothing_is_reported(tmp_path, recorders):
    """On a domain where nothing runs: a warning while nothing is found, and one at the end."""
    domain = str(201 + int(os.environ.get("ROS_DOMAIN_ID", "0")) % 32)  # conftest draws 100..200
    bag = tmp_path / "bag"
    rec = RecordProcess(bag, env={"ROS_DOMAIN_ID": domain})
    recorders.append(rec)
    rec.wait_for("nothing to record yet: no topics discovered", timeout=12.0)
    assert rec.stop() == 0, rec.stderr()
    assert "recorded no messages; no topics were found" in rec.stderr()
    assert read_bag(bag) == {}


def test_subscribed_but_silent_topic_is_named(tmp_path, recorders):
    """``TOPIC:TYPE`` subscribes at once; nothing published on it: the end warning names it."""
    bag = tmp_path / "bag"
    rec = RecordProcess(bag, f"/rec_silent:{STRING}")
    recorders.append(rec)
    rec.wait_for("]: recording ")  # the TOPIC:TYPE subscriptions come right after, a stop or not
    assert rec.stop() == 0, rec.stderr()
    assert "recorded no messages; subscribed to /rec_silent" in rec.stderr()
    assert read_bag(bag) == {"/rec_silent": []}

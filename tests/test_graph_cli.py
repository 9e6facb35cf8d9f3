"""``wm-control topic|node|param`` against a live graph over real Cyclone DDS.

The graph: a talker node process (tests.test_services, with real parameter services) and, in this
process, a rig node that publishes a latched greeting and a 20 Hz counter and subscribes to what the
CLI publishes. Every verb runs as the user runs it, ``python -m wm_control ...`` in a subprocess, and
what it prints (and its exit status) is checked against what the graph really holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT

NS = "/graph_cli"
RATE = 20.0


def cli(*argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wm_control", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=os.environ.copy())


@pytest.fixture(scope="module")
def talker():
    from tests.test_services import TalkerProcess

    p = TalkerProcess("--ros-args", "-r", f"__ns:={NS}", "-p", "count:=4")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def rig(talker):
    from wm_control.ros import qos
    from wm_control.ros.dds import DdsNode

    node = DdsNode("rig", NS)
    greeting = node.create_publisher("std_msgs/msg/String", f"{NS}/greeting", qos.LATCHED)
    greeting.publish(node.msg("std_msgs/msg/String", data="hello from the rig"))
    counter = node.create_publisher("std_msgs/msg/Float64", f"{NS}/counter")
    node.received = []
    node.create_subscription("geometry_msgs/msg/PointStamped", f"{NS}/target", node.received.append)
    stop = threading.Event()

    def publish():  # absolute deadlines: 20 Hz whatever the machine is doing
        n, start = 0, time.monotonic()
        while not stop.is_set():
            n += 1
            counter.publish(node.msg("std_msgs/msg/Float64", data=float(n)))
            stop.wait(max(0.0, start + n / RATE - time.monotonic()))

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    yield node
    stop.set()
    th.join(2)
    node.destroy()


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_topic_list_shows_the_published_topics_with_their_types(rig):
    r = cli("topic", "list", "-t")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"{NS}/counter [std_msgs/msg/Float64]" in lines
    assert f"{NS}/greeting [std_msgs/msg/String]" in lines
    assert f"{NS}/talker/config [std_msgs/msg/String]" in lines  # the other process's topic
    assert not any("_wm_control_cli" in ln for ln in lines)


def test_echo_once_prints_the_published_value(rig):
    r = cli("topic", "echo", f"{NS}/greeting", "--once")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["data: hello from the rig", "---"]
    r = cli("topic", "echo", f"{NS}/counter", "-n", "3", "--json")  # type found from the publisher
    assert r.returncode == 0, r.stderr
    values = [json.loads(ln)["data"] for ln in r.stdout.splitlines()]
    assert len(values) == 3 and values == sorted(values) and values[0] >= 1.0


def test_an_unknown_topic_is_one_line_after_the_discovery_wait(rig):
    t = time.monotonic()
    r = cli("topic", "echo", f"{NS}/nobody", "--once")
    assert 2.0 <= time.monotonic() - t < 15
    assert f"no publisher of {NS}/nobody seen in 2.0 s" in one_line_error(r)
    assert "field point.x" in one_line_error(cli("topic", "pub", f"{NS}/target", "geometry_msgs/msg/PointStamped",
                                              "{point: {x: one}}", "--once"))


def test_pub_reaches_a_subscriber(rig):
    p = subprocess.Popen([sys.executable, "-m", "wm_control", "topic", "pub", f"{NS}/target",
                          "geometry_msgs/msg/PointStamped", "{header: auto, point: {x: 0.25, y: -1.5, z: 2}}",
                          "--once"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert rig.spin(until=lambda: bool(rig.received), timeout=20), p.communicate(timeout=5)
        out, err = p.communicate(timeout=10)
    finally:
        p.kill()
    assert p.returncode == 0, err
    m = rig.received[0]
    assert (m.point.x, m.point.y, m.point.z) == (0.25, -1.5, 2.0)
    assert abs(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - time.time()) < 30  # 'auto': stamped now
    assert "publishing #1" in out


def test_hz_reports_the_publishing_rate(rig):
    r = cli("topic", "hz", f"{NS}/counter", "--duration", "3", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    assert abs(report["rate"] - RATE) < 0.3 * RATE, report
    assert report["window"] >= 30


def test_ctrl_c_ends_echo_cleanly(rig):
    p = subprocess.Popen([sys.executable, "-m", "wm_control", "topic", "echo", f"{NS}/counter"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = p.stdout.readline()  # messages are flowing
        assert first.startswith("data: "), p.stderr.read() if p.poll() is not None else first
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err


def test_node_list_shows_the_nodes(rig):
    r = cli("node", "list")
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()
    assert f"{NS}/talker" in names and f"{NS}/rig" in names
    assert not any("_wm_control_cli" in n for n in names)  # the tool's own node is hidden


def test_param_get_and_set(talker):
    node = f"{NS}/talker"
    r = cli("param", "list", node)
    assert r.returncode == 0, r.stderr
    assert {"count", "rate", "gains", "use_sim_time"} <= set(r.stdout.split())
    r = cli("param", "get", node, "count")
    assert (r.returncode, r.stdout.strip()) == (0, "Integer value is: 4"), r.stderr  # given at start
    r = cli("param", "set", node, "count", "7")
    assert (r.returncode, r.stdout.strip()) == (0, "Set parameter successful"), r.stderr
    err = one_line_error(cli("param", "set", node, "count", "7.5"))  # a double for an integer
    assert "Wrong parameter type" in err and "{count} is of type {integer}" in err
    r = cli("param", "get", node, "count", "--hide-type")
    assert (r.returncode, r.stdout.strip()) == (0, "7"), r.stderr  # the set took; the refused one did not
    assert "node /graph_cli/nobody not found" in one_line_error(cli("param", "get", f"{NS}/nobody", "count"))

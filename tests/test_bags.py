"""rosbag2 logging: `collect` bags read back with rosbags independently of our reader; the dataset
reader aligns episodes; a truncated bag yields its complete chunks with a warning (an error when strict);
`record` works live. More damage: tests/test_bag_damage.py."""

import json
import subprocess
import sys

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader

from tests.helpers import NodeProcess
from wm_control.data.bags import ROBOT_TOPICS, CollectConfig, collect
from wm_control.data.dataset import DatasetConfig, DatasetError, load_episodes
from wm_control.messages import registry

CFG = CollectConfig(episodes=2, episode_s=0.6, image_width=32, image_height=24, camera_rate=20.0, seed=3)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")
    summary = collect(CFG, out, progress=False)
    return out, summary


def test_collect_writes_one_mcap_bag_per_run_readable_by_rosbags(bags):
    out, summary = bags
    assert len(summary["episodes"]) == 2
    index = json.loads((out / "index.json").read_text())
    assert index["config"]["episodes"] == 2
    for ep in summary["episodes"]:
        with Reader(ep["bag"]) as r:  # rosbags' own reader, not ours
            assert r.message_count == 61 + 30 + 13 + 1
            topics = {c.topic: c.msgtype for c in r.connections}
            assert topics == ROBOT_TOPICS  # exactly what a real robot logs
            counts = {c.topic: c.msgcount for c in r.connections}
        assert counts["/joint_states"] == 61  # 0.6 s at 100 Hz, both ends included
        assert counts["/forward_position_controller/commands"] == 30  # 50 Hz
        assert counts["/camera/image_raw"] == 13  # 20 Hz
        assert counts["/goal"] == 1
        meta = (__import__("pathlib").Path(ep["bag"]) / "metadata.yaml").read_text()
        assert "storage_identifier: mcap" in meta
        with AnyReader([__import__("pathlib").Path(ep["bag"])], default_typestore=registry().store) as r:
            last = {}
            for conn, t, raw in r.messages():
                msg = r.deserialize(raw, conn.msgtype)
                if hasattr(msg, "header"):
                    stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                    assert abs(stamp - t) < 10**6  # header stamp = log time (capture time)
                assert t >= last.get(conn.topic, 0)  # stamps increase per topic
                last[conn.topic] = t
                if conn.topic == "/camera/image_raw":
                    assert (msg.height, msg.width, msg.encoding) == (24, 32, "rgb8")
                    assert msg.data.size == 24 * 32 * 3
                if conn.topic == "/joint_states":
                    assert list(msg.name) == ["joint0", "joint1"]



def test_collect_push_qualities_log_goal_image_and_ground_truth(tmp_path):
    """--quality mixed alternates the noisy expert and the low-quality behaviour; a robot with an object
    adds the goal image and the object's true position (labels only) to what a robot logs."""
    from wm_control.data.bags import OBJECT_TOPICS

    cfg = CollectConfig(robot="pusher", quality="mixed", episodes=2, episode_s=0.4, image_width=32,
                        image_height=32, camera_rate=10.0, seed=1)
    summary = collect(cfg, tmp_path, progress=False)
    assert [e["behaviour"] for e in summary["episodes"]] == ["expert", "low"]
    assert summary["success_radius_m"] == 0.05 and set(summary["by_behaviour"]) == {"expert", "low"}
    with Reader(summary["episodes"][0]["bag"]) as r:
        topics = {c.topic: c.msgtype for c in r.connections}
        counts = {c.topic: c.msgcount for c in r.connections}
    assert topics == {**ROBOT_TOPICS, **OBJECT_TOPICS}
    assert counts["/goal_image"] == 1 and counts["/sim/ground_truth/object"] == counts["/joint_states"] == 41
    with pytest.raises(ValueError, match="no data qualities are defined for robot 'reacher'"):
        CollectConfig(robot="reacher", quality="expert")
    with pytest.raises(ValueError, match="quality must be"):
        CollectConfig(robot="pusher", quality="great")

def test_dataset_reader_aligns_episodes(bags):
    out, summary = bags
    eps = load_episodes([out], DatasetConfig(rate=50.0))
    assert len(eps) == 2
    e = eps[0]
    T = len(e)
    assert e.joint_names == ["joint0", "joint1"]
    assert e.q.shape == e.qd.shape == e.action.shape == (T, 2)
    assert e.frames.shape == (T, 24, 32, 3) and e.frames.dtype == np.uint8
    assert e.goal.shape == (T, 3) and np.allclose(e.goal, e.goal[0])
    assert np.allclose(np.diff(e.t), 0.02, atol=1e-6)  # absolute ROS times: float64 keeps ~0.2 us
    assert T == 30  # 0.6 s at 50 Hz (both ends)
    assert np.all(e.frame_time <= e.t + 1e-9)  # causal: never a frame from the future
    # the action at step k is the command sent at step k (the expert moves toward the goal)
    with Reader(summary["episodes"][0]["bag"]) as r:
        conn = [c for c in r.connections if c.topic == "/forward_position_controller/commands"][0]
        sent = [registry().deserialize(raw, conn.msgtype).data for _, _, raw in r.messages(connections=[conn])]
    assert np.allclose(e.action[0], sent[0]) and np.allclose(e.action[5], sent[5])
    # and the next state moves toward that target
    err_now = np.abs(e.action[:-1] - e.q[:-1]).sum()
    assert err_now > 0


def test_truncated_bag_is_reported_not_a_crash(bags, tmp_path, caplog):
    """A bag cut in half (a crash, a full disk) yields the steps of its complete chunks, with a warning;
    ``strict`` makes it an error."""
    from wm_control.data.bags import BagWriter

    out, summary = bags
    src = summary["episodes"][0]["bag"]
    reg = registry()
    bag = tmp_path / "cut"
    with AnyReader([__import__("pathlib").Path(src)], default_typestore=reg.store) as r, \
            BagWriter(bag, reg, flush_s=None, chunk_bytes=4096) as w:  # several chunks, as a long recording
        for c in r.connections:
            w.add_topic(c.topic, c.msgtype)
        for c, t, raw in r.messages():
            w.write_raw(c.topic, t, raw)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    full = load_episodes([src], DatasetConfig())[0]
    with caplog.at_level("WARNING"):
        eps = load_episodes([bag], DatasetConfig())
    assert "truncated" in caplog.text and "recovered" in caplog.text
    assert len(eps) == 1 and 5 < len(eps[0]) < 30
    assert np.allclose(eps[0].q, full.q[: len(eps[0])])  # the same steps, up to the cut
    with pytest.raises(DatasetError, match="truncated"):
        load_episodes([bag], DatasetConfig(), strict=True)


def test_missing_topics_are_a_clear_error(bags):
    out, _ = bags
    with pytest.raises(DatasetError, match="no /arm/joint_states"):
        load_episodes([out], DatasetConfig(joint_states_topic="/arm/joint_states"))
    with pytest.raises(DatasetError, match="does not exist"):
        load_episodes([out / "nope"], DatasetConfig())


def test_record_live_topics_to_mcap(tmp_path):
    with NodeProcess("sim_robot", "-p", "episode_s:=0.0", "-p", "camera_rate:=10.0", "-p", "image_width:=32",
                     "-p", "image_height:=32"):
        r = subprocess.run([sys.executable, "-m", "wm_control", "record", "/joint_states", "/camera/image_raw",
                            "/goal", "-o", str(tmp_path / "rec"), "--duration", "2"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with Reader(tmp_path / "rec") as rd:
        counts = {c.topic: c.msgcount for c in rd.connections}
        types = {c.topic: c.msgtype for c in rd.connections}
        reg = registry()
        for conn, t, raw in rd.messages():
            reg.deserialize(raw, conn.msgtype)  # every recorded payload decodes
    assert types["/camera/image_raw"] == "sensor_msgs/msg/Image"
    assert 120 <= counts["/joint_states"] <= 260  # ~100 Hz for ~2 s
    assert 10 <= counts["/camera/image_raw"] <= 30
    assert counts["/goal"] == 1

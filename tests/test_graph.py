"""The simulated robot over real Cyclone DDS: it moves when commanded over the wire, and a subscriber
in another process gets its camera images intact."""

import time

import numpy as np
import pytest

from tests.helpers import NodeProcess
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode
from wm_control.world.frames import image_msg_to_rgb


@pytest.fixture(scope="module")
def sim():
    with NodeProcess("sim_robot", "-r", "__node:=sim_robot", "-p", "episode_s:=0.0", "-p", "camera_rate:=20.0",
                     "-p", "image_width:=64", "-p", "image_height:=48") as p:
        yield p


@pytest.fixture(scope="module")
def client(sim):
    node = DdsNode("test_client")
    state = {"js": [], "img": [], "goal": [], "diag": {}}
    node.create_subscription("sensor_msgs/msg/JointState", "/joint_states", lambda m: state["js"].append(m),
                             qos.SENSOR_DATA)
    node.create_subscription("sensor_msgs/msg/Image", "/camera/image_raw", lambda m: state["img"].append(m),
                             qos.SENSOR_DATA)
    node.create_subscription("geometry_msgs/msg/PointStamped", "/goal", lambda m: state["goal"].append(m), qos.LATCHED)

    def on_diag(m):
        for s in m.status:
            state["diag"][s.name] = {kv.key: kv.value for kv in s.values}

    node.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", on_diag, qos.DIAGNOSTICS)
    node.state = state
    node.cmd = node.create_publisher("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands")
    node.traj = node.create_publisher("trajectory_msgs/msg/JointTrajectory",
                                      "/joint_trajectory_controller/joint_trajectory")
    assert node.spin(until=lambda: len(state["js"]) > 5 and state["img"] and state["goal"], timeout=15)
    yield node
    node.destroy()


def latest_q(node):
    return cv.joint_state_to_arrays(node.state["js"][-1], ["joint0", "joint1"])[0]


def test_joint_states_are_named_and_stamped(client):
    js = client.state["js"][-1]
    assert list(js.name) == ["joint0", "joint1"]
    assert len(js.position) == len(js.velocity) == 2
    now = time.time()
    assert abs(cv.stamp_sec(js.header.stamp) - now) < 1.0  # real time: wall-clock stamps


def test_robot_moves_when_commanded_over_the_wire(client):
    target = np.array([0.6, -0.8])
    client.spin(timeout=0.3)
    start = latest_q(client)
    assert np.abs(start - target).max() > 0.2
    for _ in range(20):  # 0.4 s of commands at 50 Hz, then it must have arrived
        client.cmd.publish(cv.make_multiarray(client.msg, target))
        client.spin(timeout=0.02)
    client.spin(timeout=1.0)
    assert np.abs(latest_q(client) - target).max() < 0.05


def test_joint_trajectory_is_followed(client):
    target = np.array([-0.5, 0.7])
    client.traj.publish(cv.make_trajectory(client.msg, 0.0, ["joint1", "joint0"], [0.3, 0.6],
                                           np.array([[0.0, 0.0], target[::-1]])))
    client.spin(timeout=1.5)
    assert np.abs(latest_q(client) - target).max() < 0.05


def test_camera_images_arrive_intact(client):
    client.state["img"].clear()
    client.spin(until=lambda: len(client.state["img"]) >= 3, timeout=5)
    imgs = client.state["img"]
    assert len(imgs) >= 3
    for m in imgs:
        assert (m.height, m.width, m.encoding, m.step) == (48, 64, "rgb8", 64 * 3)
        assert isinstance(m.data, np.ndarray) and m.data.size == 48 * 64 * 3
    rgb = image_msg_to_rgb(imgs[-1])
    assert rgb.std() > 5  # a real rendering, not a blank frame
    stamps = [cv.stamp_sec(m.header.stamp) for m in imgs]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert np.diff(stamps).mean() == pytest.approx(1 / 20, rel=0.3)


def test_bad_commands_are_dropped_and_counted_not_fatal(sim, client):
    client.spin(timeout=0.3)
    before = latest_q(client)
    client.cmd.publish(cv.make_multiarray(client.msg, np.array([np.nan, 0.0])))
    client.cmd.publish(cv.make_multiarray(client.msg, np.array([1.0, 2.0, 3.0])))
    client.traj.publish(cv.make_trajectory(client.msg, 0.0, ["joint0", "elbow_of_another_robot"], [0.1],
                                           np.array([[0.0, 0.0]])))
    client.spin(until=lambda: client.state["diag"].get("sim_robot", {}).get("commands_dropped") == "2"
                and client.state["diag"]["sim_robot"].get("trajectories_dropped") == "1", timeout=5)
    d = client.state["diag"]["sim_robot"]
    assert d["commands_dropped"] == "2" and d["trajectories_dropped"] == "1"
    assert sim.p.poll() is None  # still running
    client.spin(timeout=0.3)
    assert np.all(np.isfinite(latest_q(client)))
    assert np.abs(latest_q(client) - before).max() < 0.05  # nothing bad was applied
    assert "dropped command" in sim.output()


def test_goal_is_latched_for_late_joiners(sim):
    node = DdsNode("late_joiner")
    got = []
    node.create_subscription("geometry_msgs/msg/PointStamped", "/goal", got.append, qos.LATCHED)
    assert node.spin(until=lambda: got, timeout=5)
    assert np.linalg.norm(cv.point_to_array(got[0])[:2]) <= 0.21
    node.destroy()


def test_node_is_visible_to_ros2_node_list(sim):
    """rmw_dds_common's ros_discovery_info announces the node with its readers and writers."""
    from cyclonedds._clayer import ddspy_take
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from wm_control.messages import registry
    from wm_control.ros.dds import _ANY, DdsContext, dds_qos

    ctx, reg = DdsContext.get(), registry()
    typ = "rmw_dds_common/msg/ParticipantEntitiesInfo"
    reader = DataReader(ctx.participant, Topic(ctx.participant, "ros_discovery_info", reg.dds_struct(typ)),
                        qos=dds_qos(qos.LATCHED))
    seen = {}
    end = time.monotonic() + 10
    while time.monotonic() < end and ("/", "sim_robot") not in seen:
        for data, _ in ddspy_take(reader._ref, _ANY, 16):
            for n in reg.deserialize(data, typ).node_entities_info_seq:
                seen[(n.node_namespace, n.node_name)] = (len(n.reader_gid_seq), len(n.writer_gid_seq))
        time.sleep(0.05)
    assert ("/", "sim_robot") in seen, seen
    readers, writers = seen[("/", "sim_robot")]
    assert readers == 8  # commands, trajectory + the 6 parameter services' request readers
    assert writers == 14  # joint_states, camera, goal, goal image, ground truth, episode results, diagnostics,
    #                      rosout + 6 reply writers


def test_a_destroyed_node_serves_no_latched_sample():
    """destroy() deletes the node's writers at once, as rclpy's destroy_node does: a latched /goal of a
    destroyed node must not reach a later subscriber while a reference (a callback cycle) keeps the
    publisher object alive. Before, a finished test's goal could steer the next graph's controller."""
    old = DdsNode("old_goal_source")
    pub = old.create_publisher("geometry_msgs/msg/PointStamped", "/wm_test/destroyed_goal", qos.LATCHED)
    pub.publish(cv.make_point(old.msg, 0.0, np.array([0.15, 0.15, 0.0])))
    live = DdsNode("live_goal_source")
    pub2 = live.create_publisher("geometry_msgs/msg/PointStamped", "/wm_test/destroyed_goal", qos.LATCHED)
    pub2.publish(cv.make_point(live.msg, 0.0, np.array([0.05, 0.0, 0.0])))
    old.destroy()
    pub.publish(cv.make_point(old.msg, 0.0, np.array([0.15, 0.15, 0.0])))  # after destroy: dropped, no error
    node = DdsNode("late_goal_listener")
    got = []
    node.create_subscription("geometry_msgs/msg/PointStamped", "/wm_test/destroyed_goal", got.append,
                             qos.QoSProfile("reliable", "transient_local", 10))  # deep enough to keep both writers'
    try:
        assert node.spin(until=lambda: got, timeout=5)
        node.spin(timeout=0.5)
        assert [tuple(cv.point_to_array(m)[:2]) for m in got] == [(0.05, 0.0)]
    finally:
        node.destroy()
        live.destroy()

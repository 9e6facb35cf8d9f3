"""Deterministic sample messages of every type we put on the wire (shared by the two test processes)."""

import numpy as np

from wm_control.messages import convert as cv

TYPES = [
    "std_msgs/msg/Bool", "std_msgs/msg/String", "std_msgs/msg/Float64MultiArray", "std_msgs/msg/Header",
    "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/Joy", "trajectory_msgs/msg/JointTrajectory", "geometry_msgs/msg/PointStamped",
    "diagnostic_msgs/msg/DiagnosticArray", "rosgraph_msgs/msg/Clock", "rcl_interfaces/msg/Log",
    "builtin_interfaces/msg/Time", "wm_control/msg/LatentState", "wm_control/msg/Plan",
]


def sample(make, typename: str, k: int = 0):
    rng = np.random.default_rng(k)
    t = 1700000000.123456789 + k
    if typename == "std_msgs/msg/Bool":
        return make(typename, data=bool(k % 2))
    if typename == "std_msgs/msg/String":
        return make(typename, data="héllo wörld " * (k + 1))
    if typename == "std_msgs/msg/Float64MultiArray":
        dim = make("std_msgs/msg/MultiArrayDimension", label="joints", size=3, stride=3)
        return make(typename, layout=make("std_msgs/msg/MultiArrayLayout", dim=[dim], data_offset=0),
                    data=rng.normal(size=3))
    if typename == "std_msgs/msg/Header":
        return cv.header(make, t, "frame_" * (k + 1))
    if typename == "sensor_msgs/msg/JointState":
        return cv.make_joint_state(make, t, ["joint0", "joint1", "j2"], rng.normal(size=3), rng.normal(size=3),
                                   rng.normal(size=3))
    if typename == "sensor_msgs/msg/Image":
        return cv.make_image(make, t, rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    if typename == "sensor_msgs/msg/CompressedImage":
        return make(typename, header=cv.header(make, t, "cam"), format="jpeg",
                    data=rng.integers(0, 256, 1001, dtype=np.uint8))
    if typename == "sensor_msgs/msg/Joy":
        return make(typename, header=cv.header(make, t), axes=rng.normal(size=4).astype(np.float32),
                    buttons=np.array([0, 1, 0, 1], dtype=np.int32))
    if typename == "trajectory_msgs/msg/JointTrajectory":
        return cv.make_trajectory(make, t, ["joint0", "joint1"], [0.1, 0.25], rng.normal(size=(2, 2)))
    if typename == "geometry_msgs/msg/PointStamped":
        return cv.make_point(make, t, rng.normal(size=3))
    if typename == "diagnostic_msgs/msg/DiagnosticArray":
        kv = [make("diagnostic_msgs/msg/KeyValue", key=f"k{i}", value=str(i)) for i in range(3)]
        st = make("diagnostic_msgs/msg/DiagnosticStatus", level=1, name="n", message="m", hardware_id="h",
                  values=kv)
        return make(typename, header=cv.header(make, t), status=[st, st])
    if typename == "rosgraph_msgs/msg/Clock":
        return make(typename, clock=make("builtin_interfaces/msg/Time", **cv.time_fields(t)))
    if typename == "rcl_interfaces/msg/Log":
        return make(typename, stamp=make("builtin_interfaces/msg/Time", **cv.time_fields(t)), level=20, name="x",
                    msg="a log line", file="f.py", function="fn", line=42)
    if typename == "builtin_interfaces/msg/Time":
        return make(typename, **cv.time_fields(t))
    if typename == "wm_control/msg/LatentState":
        return make(typename, header=cv.header(make, t), bundle_id="abc123",
                    latent=rng.normal(size=17).astype(np.float32), joint_names=["joint0", "joint1"],
                    position=rng.normal(size=2), velocity=rng.normal(size=2), uncertainty=0.5, reset=True)
    if typename == "wm_control/msg/Plan":
        return make(typename, header=cv.header(make, t), joint_names=["joint0", "joint1"], dt=0.02, horizon=3,
                    actions=rng.normal(size=6), uncertainty=rng.random(3).astype(np.float32),
                    expected_return=-1.5, status=1, message="uncertain")
    raise KeyError(typename)


def topic_of(typename: str) -> str:
    return "/wire/" + typename.replace("/msg/", "_").replace("/", "_").lower()


if __name__ == "__main__":
    # the publishing peer: publish every sample type a few times on reliable transient-local topics
    import sys

    from wm_control.ros import qos
    from wm_control.ros.dds import DdsNode

    node = DdsNode("wire_peer")
    pubs = {t: node.create_publisher(t, topic_of(t), qos.QoSProfile("reliable", "transient_local", 10)) for t in TYPES}
    for k in range(3):
        for t, p in pubs.items():
            p.publish(sample(node.msg, t, k))
    print("published", flush=True)
    node.spin(timeout=float(sys.argv[1]) if len(sys.argv) > 1 else 20)

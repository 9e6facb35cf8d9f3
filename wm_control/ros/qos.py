"""ROS 2 QoS profiles, backend-neutral (each backend maps them onto its own QoS objects)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QoSProfile:
    reliability: str = "reliable"  # 'reliable' | 'best_effort'
    durability: str = "volatile"  # 'volatile' | 'transient_local'
    depth: int = 10
    history: str = "keep_last"  # 'keep_last' | 'keep_all'

    def __post_init__(self) -> None:
        if self.reliability not in ("reliable", "best_effort"):
            raise ValueError(f"reliability must be reliable|best_effort, not {self.reliability!r}")
        if self.durability not in ("volatile", "transient_local"):
            raise ValueError(f"durability must be volatile|transient_local, not {self.durability!r}")
        if self.history not in ("keep_last", "keep_all"):
            raise ValueError(f"history must be keep_last|keep_all, not {self.history!r}")
        if self.history == "keep_last" and self.depth < 1:
            raise ValueError("keep_last history needs depth >= 1")


#: rclpy.qos.qos_profile_sensor_data: camera images, joint states
SENSOR_DATA = QoSProfile("best_effort", "volatile", 5)
#: the ROS default (reliable, keep last 10): commands, plans, goals
DEFAULT = QoSProfile("reliable", "volatile", 10)
#: "latched": a late joiner gets the last value (e-stop, goal, robot description)
LATCHED = QoSProfile("reliable", "transient_local", 1)
#: rclcpp ClockQoS (best effort, keep last 1)
CLOCK = QoSProfile("best_effort", "volatile", 1)
#: /diagnostics as diagnostic_updater publishes it
DIAGNOSTICS = QoSProfile("reliable", "volatile", 10)
#: /rosout (rcl's RMW_QOS_PROFILE_ROSOUT_DEFAULT: reliable, transient local, depth 1000)
ROSOUT = QoSProfile("reliable", "transient_local", 1000)

PROFILES = {
    "sensor_data": SENSOR_DATA, "default": DEFAULT, "latched": LATCHED,
    "clock": CLOCK, "diagnostics": DIAGNOSTICS, "rosout": ROSOUT,
}


#: The largest serialised message a subscription accepts, by type (bytes; others: DEFAULT_MAX_BYTES).
#: A bigger one is dropped before it is deserialised, counted and logged (throttled): a 2.4 MB
#: JointState must not stall a control loop, nor a 300 MB "image" fill its memory.
MAX_BYTES = {
    "sensor_msgs/msg/Image": 64 << 20,  # 4K rgb8 is 25 MB
    "sensor_msgs/msg/CompressedImage": 16 << 20,
    "wm_control/msg/Plan": 1 << 20,
    "sensor_msgs/msg/JointState": 64 << 10,  # a thousand joints fit
    "std_msgs/msg/Bool": 4 << 10, "std_msgs/msg/Empty": 4 << 10, "std_msgs/msg/String": 64 << 10,
    "geometry_msgs/msg/PointStamped": 4 << 10, "rosgraph_msgs/msg/Clock": 4 << 10,
    "trajectory_msgs/msg/JointTrajectory": 1 << 20, "std_msgs/msg/Float64MultiArray": 64 << 10,
}
DEFAULT_MAX_BYTES = 8 << 20


def max_bytes_for(typename: str) -> int:
    return MAX_BYTES.get(typename, DEFAULT_MAX_BYTES)


def profile(spec: QoSProfile | str | int) -> QoSProfile:
    """Accept a profile, a profile name, or a depth (reliable keep-last, as in rclpy)."""
    if isinstance(spec, QoSProfile):
        return spec
    if isinstance(spec, int):
        return QoSProfile(depth=spec)
    try:
        return PROFILES[spec]
    except KeyError:
        raise ValueError(f"unknown QoS profile {spec!r}; choose one of {sorted(PROFILES)}") from None


def offered_qos(qos: Any) -> tuple[str | None, str | None]:
    """(reliability, durability) an endpoint offers, from the Cyclone DDS QoS of its discovery sample
    (None where the policy was not sent): 'reliable' | 'best_effort', 'volatile' | 'transient_local'."""
    from cyclonedds.qos import Policy

    try:
        rel, dur = qos[Policy.Reliability], qos[Policy.Durability]
    except Exception:
        return None, None
    reliability = None if rel is None else (
        "reliable" if isinstance(rel, Policy.Reliability.Reliable) else "best_effort")
    durability = None if dur is None else ("volatile" if dur == Policy.Durability.Volatile else "transient_local")
    return reliability, durability

"""Every topic of the node graph, in one table: default name (all remappable), message type, QoS, who
publishes it and who reads it.

The nodes take their default names, types and QoS from here; ``docs/architecture.md``'s topic table is
this table, and ``tests/test_topics.py`` holds every node and the doc to it. ``qos`` is the profile the
publishers use; a subscription has its reliability and durability (its depth is its own buffer), except on
an ``any_qos`` topic, whose publishers may use any QoS: a node's readers there must hear every one.
Publisher and reader names are node types (``wm-control run NODE``) or, for what is not ours, a description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from wm_control.ros import qos
from wm_control.ros.api import Node, Publisher
from wm_control.ros.qos import QoSProfile

EVERY_NODE = "every node"


@dataclass(frozen=True)
class Topic:
    name: str
    """Default name; ``~/x`` is under the node's name."""
    type: str
    qos: QoSProfile
    publishers: tuple[str, ...]
    subscribers: tuple[str, ...]
    any_qos: bool = False
    """Publishers may use any reliability and durability (a reader must hear them all)."""

    def publisher(self, node: Node, name: str | None = None) -> Publisher:
        """A publisher on this topic, or on ``name`` (a configured name) with this type and QoS."""
        return node.create_publisher(self.type, self.name if name is None else name, self.qos)

    def subscribe(self, node: Node, callback: Callable[[Any], None], name: str | None = None, **kw: Any) -> Any:
        """A subscription to this topic, or to ``name`` (a configured name) with this type and QoS."""
        return node.create_subscription(self.type, self.name if name is None else name, callback, self.qos, **kw)


JOINT_STATES = Topic("/joint_states", "sensor_msgs/msg/JointState", qos.SENSOR_DATA, ("sim_robot", "robot driver"),
                     ("policy", "planner", "world_model", "scripted_controller", "teleop"))
CAMERA = Topic("/camera/image_raw", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("sim_robot", "camera driver"),
               ("camera_ingest",))
CAMERA_COMPRESSED = Topic("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", qos.SENSOR_DATA,
                          ("camera driver (image_transport)",), ("camera_ingest",))
FRAME = Topic("/wm/frame", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("camera_ingest",),
              ("world_model", "policy", "teleop"))
LATENT = Topic("/wm/latent", "wm_control/msg/LatentState", qos.DEFAULT, ("world_model",), ())
PREVIEW = Topic("/wm/preview", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("world_model",), ("teleop",))
GOAL = Topic("/goal", "geometry_msgs/msg/PointStamped", qos.LATCHED, ("sim_robot", "the task"),
             ("policy", "planner", "scripted_controller"))
PLAN = Topic("/wm/plan", "wm_control/msg/Plan", qos.DEFAULT, ("planner",), ("policy",))
TELEOP_COMMAND = Topic("/teleop/command", "sensor_msgs/msg/JointState", qos.DEFAULT, ("teleop",),
                       ("policy", "world_model"))
MODE = Topic("/wm/mode", "std_msgs/msg/String", qos.LATCHED, ("teleop",), ("policy", "world_model", "teleop"))
ESTOP = Topic("/wm/estop", "std_msgs/msg/Bool", qos.LATCHED, ("teleop", "any e-stop source"), ("policy", "teleop"),
              any_qos=True)
ESTOP_RESET = Topic("/wm/estop_reset", "std_msgs/msg/Empty", qos.DEFAULT, ("teleop",), ("policy",))
JOY = Topic("/joy", "sensor_msgs/msg/Joy", qos.SENSOR_DATA, ("joy_node",), ("teleop",))
TELEOP_VIEW = Topic("/wm/teleop_view", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("teleop",), ("an image viewer",))
POSITION_COMMANDS = Topic("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray", qos.DEFAULT,
                          ("policy", "scripted_controller"), ("sim_robot", "the robot's controller", "planner",
                                                              "world_model"))
TRAJECTORY = Topic("/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                   qos.DEFAULT, ("policy", "scripted_controller"), ("sim_robot", "the robot's controller"))
EPISODE = Topic("~/episode", "diagnostic_msgs/msg/DiagnosticStatus", QoSProfile("reliable", "volatile", 100),
                ("sim_robot",), ("wm-control eval",))
CLOCK = Topic("/clock", "rosgraph_msgs/msg/Clock", qos.CLOCK, ("sim_robot", "bag replay"),
              ("the backend of a node under use_sim_time",))
DIAGNOSTICS = Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", qos.DIAGNOSTICS, (EVERY_NODE,),
                    ("wm-control harness (demo, eval, benchmarks)",))

#: the table, in the order of the doc
TOPICS: tuple[Topic, ...] = (JOINT_STATES, CAMERA, CAMERA_COMPRESSED, FRAME, LATENT, PREVIEW, GOAL, PLAN,
                             TELEOP_COMMAND, MODE, ESTOP, ESTOP_RESET, JOY, TELEOP_VIEW, POSITION_COMMANDS,
                             TRAJECTORY, EPISODE, CLOCK, DIAGNOSTICS)
BY_NAME: dict[str, Topic] = {t.name: t for t in TOPICS}

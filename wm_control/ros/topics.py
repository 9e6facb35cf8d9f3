"""Every topic of the node graph, in one table: default name (all remappable), message type, QoS, who
publishes it and who reads it.

The nodes take their default names, types and QoS from here; ``docs/architecture.md``'s topic table is
this table, and ``tests/test_topics.py`` holds every node and the doc to it. ``qos`` is the profile the
publishers use; a subscription has its reliability and durability (its depth is its own buffer), except on
an ``any_qos`` topic, whose publishers may use any QoS: a node's readers there must hear every one.
Publisher and reader names are node types (``wm-control run NODE``) or, for what is not ours, a description.
``SERVICES`` is the same for the services our nodes offer (besides every node's parameter services, and a
managed node's lifecycle services and topic: ``LIFECYCLE_SERVICES``, ``TRANSITION_EVENT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from wm_control.ros import qos
from wm_control.ros.api import Node, Publisher
from wm_control.ros.qos import QoSProfile

EVERY_NODE = "every node"

#: the readers of an ``any_qos`` topic, all keep-all (every sample, in order): a transient-local one gets a
#: latched publisher's last value on joining; a reliable volatile one matches every reliable publisher (ROS 2's
#: default QoS); a best-effort volatile one matches any publisher at all. DDS cannot refuse a writer to this
#: set on reliability or durability, so no publisher goes unheard. A sample heard on more than one of them is
#: to be handled once: by its publisher and source timestamp (:func:`sample_source`).
ANY_QOS_READERS = (qos.QoSProfile("reliable", "transient_local", 1, "keep_all"),
                   qos.QoSProfile("reliable", "volatile", 1, "keep_all"),
                   qos.QoSProfile("best_effort", "volatile", 1, "keep_all"))


def sample_source(info: Any, default: str) -> tuple[str, int | None]:
    """(source, source timestamp in ns) of a sample from a ``with_info`` subscription: the source is its
    publisher (the DDS publication handle), or ``default`` on a backend that does not say (info None);
    the timestamp is None there too."""
    handle = getattr(info, "publication_handle", None)
    ts = getattr(info, "source_timestamp", None)
    return (f"publisher {handle:#x}" if isinstance(handle, int) else default), (ts if isinstance(ts, int) else None)


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

    def subscribe_any_qos(self, node: Node, callback: Callable[[Any, Any], None], name: str | None = None) -> list:
        """The :data:`ANY_QOS_READERS` of this topic, each calling ``callback(msg, info)`` (``with_info``)."""
        return [node.create_subscription(self.type, self.name if name is None else name, callback, profile,
                                         with_info=True) for profile in ANY_QOS_READERS]


@dataclass(frozen=True)
class Service:
    name: str
    """Default name (remappable). Services live in their own DDS namespace (``rq``/``rr``), beside topics."""
    type: str
    servers: tuple[str, ...]
    clients: tuple[str, ...]


JOINT_STATES = Topic("/joint_states", "sensor_msgs/msg/JointState", qos.SENSOR_DATA, ("sim_robot", "robot driver"),
                     ("policy", "planner", "world_model", "scripted_controller", "teleop"))
CAMERA = Topic("/camera/image_raw", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("sim_robot", "camera driver"),
               ("camera_ingest",))
CAMERA_COMPRESSED = Topic("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", qos.SENSOR_DATA,
                          ("camera driver (image_transport)",), ("camera_ingest",))
FRAME = Topic("/wm/frame", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("camera_ingest",),
              ("world_model", "policy", "teleop"))
LATENT = Topic("/wm/latent", "wm_control/msg/LatentState", qos.DEFAULT, ("world_model",), ("policy", "planner"))
PREVIEW = Topic("/wm/preview", "sensor_msgs/msg/Image", qos.SENSOR_DATA, ("world_model",), ("teleop",))
GOAL = Topic("/goal", "geometry_msgs/msg/PointStamped", qos.LATCHED, ("sim_robot", "the task"),
             ("policy", "planner", "scripted_controller"))
GOAL_IMAGE = Topic("/goal_image", "sensor_msgs/msg/Image", qos.LATCHED, ("sim_robot", "the task"),
                   ("world_model",))
#: the goal image's latent (the goal-image mode, V-JEPA 2-AC's setting): stamped with the goal image's stamp
GOAL_LATENT = Topic("/wm/goal_latent", "wm_control/msg/LatentState", qos.LATCHED, ("world_model",),
                    ("policy", "planner"))
#: the simulator's true object position: for evaluation, labelling and the scripted demonstrator, never
#: an input of the learned stack (a robot has no such topic)
GROUND_TRUTH_OBJECT = Topic("/sim/ground_truth/object", "geometry_msgs/msg/PointStamped", qos.DEFAULT, ("sim_robot",),
                            ("scripted_controller", "wm-control eval, dataset labels"))
PLAN = Topic("/wm/plan", "wm_control/msg/Plan", qos.DEFAULT, ("planner",), ("policy", "wm-control eval"))
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
#: the policy node's dry run (``dry_run: true``): every command as computed (same safety layer), on these
#: and never on the controller's topic; one topic per interface (a topic has one type)
DRY_RUN_COMMANDS = Topic("/wm/dry_run/commands", "std_msgs/msg/Float64MultiArray", qos.DEFAULT, ("policy",),
                         ("an operator (wm-control topic echo)",))
DRY_RUN_TRAJECTORY = Topic("/wm/dry_run/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", qos.DEFAULT,
                           ("policy",), ("an operator (wm-control topic echo)",))
#: command interface -> (the controller's default topic, the dry-run topic)
COMMAND_TOPICS: dict[str, tuple[Topic, Topic]] = {"position": (POSITION_COMMANDS, DRY_RUN_COMMANDS),
                                                  "trajectory": (TRAJECTORY, DRY_RUN_TRAJECTORY)}
EPISODE = Topic("~/episode", "diagnostic_msgs/msg/DiagnosticStatus", QoSProfile("reliable", "volatile", 100),
                ("sim_robot",), ("wm-control eval",))
CLOCK = Topic("/clock", "rosgraph_msgs/msg/Clock", qos.CLOCK, ("sim_robot", "bag replay"),
              ("the backend of a node under use_sim_time",))
DIAGNOSTICS = Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", qos.DIAGNOSTICS, (EVERY_NODE,),
                    ("wm-control harness (demo, eval, benchmarks)",))

#: the table, in the order of the doc
TOPICS: tuple[Topic, ...] = (JOINT_STATES, CAMERA, CAMERA_COMPRESSED, FRAME, LATENT, PREVIEW, GOAL, GOAL_IMAGE,
                             GOAL_LATENT,
                             GROUND_TRUTH_OBJECT, PLAN,
                             TELEOP_COMMAND, MODE, ESTOP, ESTOP_RESET, JOY, TELEOP_VIEW, POSITION_COMMANDS,
                             TRAJECTORY, DRY_RUN_COMMANDS, DRY_RUN_TRAJECTORY, EPISODE, CLOCK, DIAGNOSTICS)
BY_NAME: dict[str, Topic] = {t.name: t for t in TOPICS}

# ---- services (besides every node's parameter services) ------------------------------------------------
#: the e-stop reset as a call: the reply says whether the e-stop is clear now (success) or which sources
#: still hold it. Not named /wm/estop_reset (the std_msgs/Empty topic, kept): a remap of that name would
#: move both, and `ros2 topic pub` and `ros2 service call` on one name is a trap for the operator.
RESET_ESTOP = Service("/wm/reset_estop", "std_srvs/srv/Trigger", ("policy",),
                      ("teleop", "an operator (ros2 service call)"))
#: the policy node's mode as a call, one Trigger per mode (ROS 2 has no standard service that sets a string);
#: the reply says whether the node took it (autonomous is refused without a bundle)
SET_MODE = tuple(Service(f"/wm/set_mode/{m}", "std_srvs/srv/Trigger", ("policy",), ("an operator (ros2 service call)",))
                 for m in ("autonomous", "teleop", "hold"))
SERVICES: tuple[Service, ...] = (RESET_ESTOP, *SET_MODE)
SERVICES_BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}

# ---- a managed node's (lifecycle:=true), under its name, as rclcpp_lifecycle has them ----------------------
#: not in TOPICS / SERVICES (like the parameter services): a node has them only with ``lifecycle:=true``
#: (:mod:`wm_control.ros.lifecycle`), so ``ros2 lifecycle get|set|list`` and a lifecycle manager drive it
MANAGED_NODES = ("policy", "planner")
_LIFECYCLE_CLIENTS = ("a lifecycle manager", "ros2 lifecycle")
TRANSITION_EVENT = Topic("~/transition_event", "lifecycle_msgs/msg/TransitionEvent", qos.DEFAULT, MANAGED_NODES,
                         _LIFECYCLE_CLIENTS)
LIFECYCLE_SERVICES: tuple[Service, ...] = tuple(
    Service(f"~/{name}", f"lifecycle_msgs/srv/{typ}", MANAGED_NODES, _LIFECYCLE_CLIENTS)
    for name, typ in (("change_state", "ChangeState"), ("get_state", "GetState"),
                      ("get_available_states", "GetAvailableStates"),
                      ("get_available_transitions", "GetAvailableTransitions"),
                      ("get_transition_graph", "GetAvailableTransitions")))

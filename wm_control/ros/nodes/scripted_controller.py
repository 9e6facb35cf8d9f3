"""``scripted_controller``: the scripted expert as a ROS node (the stand-in until learned policies).

Reads ``/joint_states`` by name and ``/goal`` (and, for a robot whose expert pushes an object, the
simulator's ``/sim/ground_truth/object``: a demonstrator, never the learned stack); at ``rate`` Hz (absolute
deadlines, ROS time) it
publishes a joint position target on ``/forward_position_controller/commands`` (Float64MultiArray
in ``joint_order``) or a one-point JointTrajectory, chosen by ``command_interface``. It publishes
nothing while its inputs are missing or older than ``max_input_age`` (the robot holds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wm_control.messages import convert as cv
from wm_control.ros import topics
from wm_control.ros.api import ControlTick, Diagnostics, Node
from wm_control.ros.throttle import ThrottledLog
from wm_control.sim.robots import DEFAULT_ROBOT, EXPERT_NEEDS_OBJECT


@dataclass
class ScriptedControllerConfig:
    robot: str = DEFAULT_ROBOT
    rate: float = 50.0
    noise: float = 0.0
    """Expert noise level: 0 is the clean expert, 1 is very poor."""
    gain: float = 1.0
    """Expert: fraction of the way to the IK solution per tick (< 1: slow, as a low-quality expert)."""
    policy: str = "expert"
    """'expert' or 'random'."""
    command_interface: str = "position"
    """'position' (Float64MultiArray) or 'trajectory' (JointTrajectory)."""
    joint_order: list[str] = field(default_factory=list)
    max_input_age: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.command_interface not in ("position", "trajectory"):
            raise ValueError(f"command_interface must be position|trajectory, not {self.command_interface!r}")
        if not self.rate > 0 or not self.gain > 0:
            raise ValueError("rate and gain must be > 0")


class ScriptedControllerNode:
    NAME = "scripted_controller"
    Config = ScriptedControllerConfig

    def __init__(self, node: Node, cfg: ScriptedControllerConfig):
        from wm_control.sim import ArmConfig, Observation, SimArm, make_policy

        self.node, self.cfg = node, cfg
        self.kin = SimArm(ArmConfig(robot=cfg.robot, render=False, seed=cfg.seed))  # kinematics only
        self.kin.connect()
        self.names = list(self.kin.joint_names)
        self.order, _, self.to_order = cv.command_order(cfg.joint_order, self.names, "the robot's joints")
        kw = {"noise": cfg.noise, "gain": cfg.gain} if cfg.policy == "expert" else {}
        self.policy = make_policy(cfg.policy, seed=cfg.seed, **kw)
        self.rng = np.random.default_rng(cfg.seed)
        self.policy.reset(self.rng)
        self.Observation = Observation
        self.state: tuple[float, np.ndarray, np.ndarray] | None = None  # (rx time on the node's clock, q, qd)
        self.goal: np.ndarray | None = None
        self.goal_rx = 0.0
        self.needs_object = cfg.robot in EXPERT_NEEDS_OBJECT and cfg.policy == "expert"
        self.object: tuple[float, np.ndarray] | None = None  # (rx time on the node's clock, xyz)
        cmd = topics.POSITION_COMMANDS if cfg.command_interface == "position" else topics.TRAJECTORY
        self.pub_cmd = cmd.publisher(node)
        topics.JOINT_STATES.subscribe(node, self.on_joint_state)
        topics.GOAL.subscribe(node, self.on_goal)
        topics.GROUND_TRUTH_OBJECT.subscribe(node, self.on_object)
        self.diag = Diagnostics(node, hardware_id="scripted")
        self.warn = ThrottledLog(node.logger, period=5.0)  # bad input: once, then a count
        node.create_timer(1.0, self.warn.flush)
        self.ticker = ControlTick(node, cfg.rate, self.act)

    def on_joint_state(self, msg) -> None:
        try:
            q, qd, _ = cv.joint_state_to_arrays(msg, self.names)
        except cv.ConversionError as exc:
            self.diag.count("joint_states_dropped")
            self.warn.log("joint_state", "dropped joint state: %s", exc)
            return
        # the node's clock (ROS time): under sim time a loaded machine's wall-clock delays age no state
        self.state = (self.node.now(), q, np.nan_to_num(qd))
        self.diag.tick("joint_states")
        self.ticker.on_state(cv.stamp_sec(msg.header.stamp))

    def _point(self, msg, what: str) -> np.ndarray | None:
        """The point of a PointStamped, or None (counted as ``{what}s_dropped`` and logged) when it is bad."""
        try:
            return cv.point_to_array(msg)
        except cv.ConversionError as exc:
            self.diag.count(f"{what}s_dropped")
            self.warn.log(what, "dropped %s: %s", what, exc)
            return None

    def on_goal(self, msg) -> None:
        new = self._point(msg, "goal")
        if new is None:
            return
        if self.goal is None or not np.allclose(new, self.goal):
            self.policy.reset(self.rng)
        self.goal = new

    def on_object(self, msg) -> None:
        xyz = self._point(msg, "object")
        if xyz is not None:
            self.object = (self.node.now(), xyz)

    def act(self) -> None:
        if self.state is None or self.goal is None or (self.needs_object and self.object is None):
            self.diag.status(Diagnostics.WARN, "waiting for joint_states, goal" +
                             (" and /sim/ground_truth/object" if self.needs_object else ""))
            return
        rx, q, qd = self.state
        now = self.node.now()
        if now - rx > self.cfg.max_input_age or (self.needs_object and now - self.object[0] > self.cfg.max_input_age):
            self.diag.count("stale_holds")
            self.diag.status(Diagnostics.WARN, "inputs stale: not commanding (robot holds)")
            return
        tip, _ = self.kin.fingertip_jacobian(q)
        obs = self.Observation(time=now, q=q, qd=qd, effort=np.zeros_like(q), goal=self.goal,
                               fingertip=tip, object=self.object[1] if self.needs_object else None)
        target = np.asarray(self.policy(obs, self.kin), dtype=np.float64)
        if not np.all(np.isfinite(target)):
            self.diag.count("nonfinite_targets")
            return
        if self.cfg.command_interface == "position":
            ordered = target[self.to_order]
            self.pub_cmd.publish(cv.make_multiarray(self.node.msg, ordered))
        else:
            # stamp 0: "start now", as joint_trajectory_controller reads it
            self.pub_cmd.publish(cv.make_trajectory(self.node.msg, 0.0, self.names,
                                                    [1.0 / self.cfg.rate], target[None]))
        self.diag.tick("commands")
        self.diag.status(Diagnostics.OK, "commanding")

    def close(self) -> None:
        self.kin.disconnect()

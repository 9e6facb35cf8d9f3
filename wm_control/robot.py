"""A robot is data: one YAML (``config/robots/NAME.yaml``) holds all that is particular to a robot.

Fields (see ``config/robots/two_joint.yaml``): ``name``, ``joint_names`` (the order of every array),
``command_interface`` (position | trajectory) and ``command_topic``, ``joint_states_topic``,
``control_rate`` (Hz), ``camera_topic`` and ``camera_kind`` (raw | compressed | none), ``goal_topic``
('' for none), ``hindsight_goal``, ``limits`` (``lower``, ``upper``, ``max_velocity``: one value or one
per joint) and ``urdf`` (limits read with :mod:`wm_control.control.urdf`, our own reader, which already
gives position and velocity limits; no new dependency), and for the reach reward ``tip_link``,
``tip_offset`` and ``goal_dims`` (the chain from the URDF's root to that point).

``hindsight_goal: true`` (for bags without a goal topic): the reaching goal of an episode is where it
ended. Without a kinematic model we use the final joint positions as a joint-space goal, padded with
zeros to the 3 goal slots of the observation (so at most 3 joints); with more joints the config must
give a goal topic or leave hindsight off (then the policy is goal-free: a constant zero goal).

Every problem is one line naming the field to fix (:class:`RobotConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

ROBOTS_DIR = Path(__file__).resolve().parents[1] / "config" / "robots"
COMMAND_INTERFACES = ("position", "trajectory")
CAMERA_KINDS = ("raw", "compressed", "none")


class RobotConfigError(ValueError):
    """A robot config that cannot be used; the message names the field."""


@dataclass
class RobotConfig:
    name: str
    """The robot's name (recorded in every bundle trained for it)."""
    joint_names: list[str]
    """Joints in the order of every array and of position commands."""
    command_interface: str = "position"
    """position (std_msgs/Float64MultiArray) or trajectory (trajectory_msgs/JointTrajectory)."""
    command_topic: str = "/forward_position_controller/commands"
    joint_states_topic: str = "/joint_states"
    control_rate: float = 50.0
    """Hz."""
    camera_topic: str = "/camera/image_raw"
    camera_kind: str = "raw"
    """raw (sensor_msgs/Image), compressed (sensor_msgs/CompressedImage) or none."""
    goal_topic: str = "/goal"
    """geometry_msgs/PointStamped goal topic; '' for none."""
    hindsight_goal: bool = False
    """Without a goal topic: the goal of an episode is where it ended (see the module doc)."""
    limits: dict[str, Any] = field(default_factory=dict)
    """lower, upper (rad), max_velocity (rad/s): one number or one per joint; a URDF's win where absent."""
    urdf: str | None = None
    """A URDF for limits and kinematics (relative paths: to the YAML's folder)."""
    tip_link: str = ""
    """The URDF link whose point ``tip_offset`` the reach task brings to the goal ('' : no kinematics;
    the planner then has only its learned reward)."""
    tip_offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """That point in ``tip_link``'s frame (m)."""
    goal_dims: int = 3
    """The reach reward measures the goal's first 2 (xy, a planar task) or 3 (xyz) coordinates."""

    def __post_init__(self) -> None:
        def bad(f: str, why: str) -> RobotConfigError:
            return RobotConfigError(f"robot config {self.name or '?'}: field '{f}': {why}")

        if not isinstance(self.name, str) or not self.name:
            raise bad("name", "must be a non-empty string")
        if not isinstance(self.joint_names, list) or not self.joint_names or \
                not all(isinstance(j, str) and j for j in self.joint_names):
            raise bad("joint_names", "must be a non-empty list of joint names")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise bad("joint_names", f"repeats a name: {self.joint_names}")
        if self.command_interface not in COMMAND_INTERFACES:
            raise bad("command_interface", f"{self.command_interface!r}; choose one of {list(COMMAND_INTERFACES)}")
        if self.camera_kind not in CAMERA_KINDS:
            raise bad("camera_kind", f"{self.camera_kind!r}; choose one of {list(CAMERA_KINDS)}")
        try:
            self.control_rate = float(self.control_rate)
        except (TypeError, ValueError):
            raise bad("control_rate", f"{self.control_rate!r} is not a number") from None
        if not self.control_rate > 0:
            raise bad("control_rate", "must be > 0")
        for f in ("command_topic", "joint_states_topic"):
            v = getattr(self, f)
            if not isinstance(v, str) or not v.startswith("/"):
                raise bad(f, f"{v!r} is not a topic name (starts with /)")
        self.goal_topic = self.goal_topic or ""
        if self.camera_kind == "none":
            self.camera_topic = ""
        if self.hindsight_goal and not self.goal_topic and len(self.joint_names) > 3:
            raise bad("hindsight_goal", f"a joint-space hindsight goal fits at most 3 joints (has "
                      f"{len(self.joint_names)}); give goal_topic or set hindsight_goal: false")
        if self.goal_dims not in (2, 3):
            raise bad("goal_dims", f"{self.goal_dims!r}; must be 2 (xy) or 3 (xyz)")
        if self.tip_link and not self.urdf:
            raise bad("tip_link", "needs a urdf to find the link in")
        if not isinstance(self.tip_offset, list) or len(self.tip_offset) != 3:
            raise bad("tip_offset", f"{self.tip_offset!r}; must be [x, y, z] in m")
        n = len(self.joint_names)
        if not isinstance(self.limits, dict):
            raise bad("limits", "must be a mapping with lower, upper, max_velocity")
        unknown = set(self.limits) - {"lower", "upper", "max_velocity"}
        if unknown:
            raise bad("limits", f"unknown keys {sorted(unknown)}; known: lower, upper, max_velocity")
        for k, v in list(self.limits.items()):
            vals = v if isinstance(v, list) else [v] * n
            if len(vals) != n:
                raise bad(f"limits.{k}", f"has {len(vals)} values for {n} joints")
            try:
                self.limits[k] = [float(x) for x in vals]
            except (TypeError, ValueError):
                raise bad(f"limits.{k}", f"{v!r} is not numbers") from None
        if "lower" in self.limits and "upper" in self.limits and \
                any(lo >= hi for lo, hi in zip(self.limits["lower"], self.limits["upper"])):
            raise bad("limits", "lower must be below upper for every joint")

    @property
    def goal_kind(self) -> str:
        """'topic', 'hindsight' or 'none'."""
        return "topic" if self.goal_topic else ("hindsight" if self.hindsight_goal else "none")

    def position_limits(self) -> tuple[list[float], list[float], list[float]] | None:
        """(lower, upper, max_velocity) per joint: the config's, else the URDF's; None if neither gives them."""
        lim = dict(self.limits)
        if self.urdf and not {"lower", "upper", "max_velocity"} <= set(lim):
            from wm_control.control.urdf import joint_limits_from_urdf

            try:
                u = joint_limits_from_urdf(self.urdf, self.joint_names)
            except ValueError as exc:
                raise RobotConfigError(f"robot config {self.name}: field 'urdf': {exc}") from None
            lim.setdefault("lower", [u[j].lower for j in self.joint_names])
            lim.setdefault("upper", [u[j].upper for j in self.joint_names])
            lim.setdefault("max_velocity", [u[j].velocity for j in self.joint_names])
        if "lower" not in lim or "upper" not in lim:
            return None
        return lim["lower"], lim["upper"], lim.get("max_velocity", [float("inf")] * len(self.joint_names))

    def kinematics(self):
        """The reach task's :class:`~wm_control.control.kinematics.Chain` from ``urdf`` to ``tip_link``,
        or None without a ``tip_link``."""
        if not self.tip_link:
            return None
        from wm_control.control.urdf import chain_from_urdf

        try:
            return chain_from_urdf(self.urdf, self.joint_names, self.tip_link, self.tip_offset, self.goal_dims)
        except ValueError as exc:
            raise RobotConfigError(f"robot config {self.name}: field 'tip_link': {exc}") from None

    def dataset_config(self, **overrides: Any):
        """The :class:`~wm_control.data.dataset.DatasetConfig` that reads this robot's bags."""
        from wm_control.data.dataset import DatasetConfig

        kw: dict[str, Any] = dict(joint_names=list(self.joint_names), joint_states_topic=self.joint_states_topic,
                                  command_topic=self.command_topic, image_topic=self.camera_topic,
                                  goal_topic=self.goal_topic, rate=self.control_rate)
        kw.update(overrides)
        return DatasetConfig(**kw)

    def manifest(self) -> dict[str, Any]:
        """What a bundle records of the robot."""
        return {"name": self.name, "joint_names": list(self.joint_names), "control_rate": self.control_rate,
                "command_interface": self.command_interface, "camera_kind": self.camera_kind,
                "goal": self.goal_kind}


def check_bundle_for_robot(bundle: Any, robot: RobotConfig) -> dict[str, Any]:
    """Whether a verified :class:`~wm_control.world.bundle.Bundle` may drive ``robot``: the same joint
    names (any order: states are read by name), the same control rate, every position limit of the
    bundle inside the robot's (a bundle trained wider than the robot is a bundle for another robot), a
    camera where the bundle needs one, the same command interface where the bundle records one. Raises
    :class:`RobotConfigError` naming the first mismatch; returns the limits the safety layer would enforce."""
    from wm_control.world.bundle import effective_limits

    def bad(what: str) -> RobotConfigError:
        return RobotConfigError(f"bundle {bundle.path} on robot {robot.name}: {what}")

    names = bundle.joint_names
    if sorted(names) != sorted(robot.joint_names):
        raise bad(f"joints {names} are not the robot's {robot.joint_names}")
    rb = bundle.manifest.get("robot") or {}
    if abs(bundle.control_rate - robot.control_rate) > 1e-9:
        raise bad(f"trained at {bundle.control_rate:g} Hz, the robot config runs at {robot.control_rate:g} Hz")
    if rb.get("command_interface") and rb["command_interface"] != robot.command_interface:
        raise bad(f"trained for {rb['command_interface']} commands, the robot takes {robot.command_interface}")
    if bundle.manifest.get("camera") and robot.camera_kind == "none":
        raise bad("the bundle reads a camera; the robot config has camera_kind: none")
    lim = robot.position_limits()
    if lim is None:
        raise bad("the robot config gives no position limits (limits.lower/upper, or a urdf)")
    lower, upper, vel = (dict(zip(robot.joint_names, v)) for v in lim)
    for j, pl in zip(names, rb.get("position_limits") or [[None, None]] * len(names)):
        lo, hi = pl if pl is not None else (None, None)
        if lo is not None and lo < lower[j] - 1e-9 or hi is not None and hi > upper[j] + 1e-9:
            raise bad(f"joint {j}: the bundle's limits [{lo}, {hi}] reach outside the robot's "
                      f"[{lower[j]}, {upper[j]}]")
    eff = effective_limits(bundle, {"joint_names": list(robot.joint_names), "lower": lim[0], "upper": lim[1],
                                    "velocity": lim[2], "control_rate": robot.control_rate})
    return {"joint_names": eff.joint_names, "lower": eff.lower, "upper": eff.upper, "max_step": eff.max_step,
            "control_rate": eff.control_rate}


def resolve_robot_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    cand = ROBOTS_DIR / f"{name_or_path}.yaml"
    if cand.exists():
        return cand
    raise RobotConfigError(f"robot config {name_or_path!r} not found (a YAML path, or a name in {ROBOTS_DIR})")


def load_robot_config(name_or_path: str | Path) -> RobotConfig:
    """A :class:`RobotConfig` from a YAML path or a name in ``config/robots/``."""
    path = resolve_robot_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RobotConfigError(f"robot config {path}: not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise RobotConfigError(f"robot config {path}: must be a mapping of fields")
    known = {f.name for f in fields(RobotConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RobotConfigError(f"robot config {path}: unknown field '{unknown[0]}'; known: {sorted(known)}")
    for f in ("name", "joint_names"):
        if f not in data:
            raise RobotConfigError(f"robot config {path}: field '{f}' is missing")
    if data.get("urdf") and not Path(data["urdf"]).is_absolute():
        data["urdf"] = str(path.parent / data["urdf"])
    if data.get("goal_topic") is None:
        data["goal_topic"] = ""
    return RobotConfig(**data)


__all__ = ["RobotConfig", "RobotConfigError", "check_bundle_for_robot", "load_robot_config", "resolve_robot_path"]

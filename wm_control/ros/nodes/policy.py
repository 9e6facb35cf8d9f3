"""``policy``: the control loop. A learned policy (or the planner's plan, or teleop) proposes; the
safety layer disposes; the robot gets a position target every tick.

Inputs: ``/joint_states`` (by name), ``/goal``, ``/wm/plan`` (when ``use_plan``: the plan's action for the
current time is followed when the plan is fresh, OK, for these joints and certain enough at that step; else
the policy, the reason counted as ``plan_fallback.<reason>``; under sim time each tick waits up to
``plan_wait`` s of wall time for the plan made from its instant's state), ``/teleop/command``
(JointState with named position targets, in TELEOP), ``/wm/mode`` (std_msgs/String: autonomous |
teleop | hold), ``/wm/estop`` (std_msgs/Bool from any number of sources: every True latches the
e-stop; read with a keep-all reader per reliability/durability, so a publisher with any ROS 2 QoS is
heard and a True immediately followed by False is never lost), ``/wm/estop_reset`` (std_msgs/Empty;
clears the latch only when no source's last value is True), ``/wm/latent`` (a policy that sees the camera,
from ``train bc --visual``: the world_model node's LatentState of the visual bundle its manifest names; the
tick uses the newest captured at or before it, and holds the arm where it is, counted
``latent_fallback.missing`` / ``.stale``, when there is none or it is older than ``max_latent_age``; another
bundle's latents, wrong-sized or non-finite ones are dropped and counted; under sim time the tick waits up to
``latent_wait`` for the latent of its instant's frame) and ``/wm/frame`` to measure camera-to-command latency
(for a camera policy: on the frame whose latent the command used). Numbers from the wire are checked before any arithmetic: joint states and
plans stamped too far in the future (``max_future_stamp``) are dropped and counted, and never become
the reference that later good ones are ordered against. Output: Float64MultiArray on ``/forward_position_controller/commands``
(in ``joint_order``) or a one-point JointTrajectory on ``/joint_trajectory_controller/joint_trajectory``;
with ``robot_config``, the config's ``command_interface`` on its ``command_topic`` (a ``command_interface``
parameter that differs refuses the start). ``dry_run``: every command computed as usual, published on
``/wm/dry_run/commands`` (position) or ``/wm/dry_run/joint_trajectory`` (trajectory) and never on the
controller's topic (no publisher there at all); ``/diagnostics`` says ``dry_run`` and ``command_topic``.

Services (``std_srvs/srv/Trigger``, :data:`wm_control.ros.topics.SERVICES`): ``/wm/reset_estop`` is the
reset as a call: success when the e-stop is clear afterwards, else a message naming the sources that still
hold it (the ``/wm/estop_reset`` topic stays, with the same rule); ``/wm/set_mode/autonomous``,
``/wm/set_mode/teleop`` and ``/wm/set_mode/hold`` set the mode as ``/wm/mode`` does (a later ``/wm/mode``
message wins again), success when the node took it.

Without a bundle (``bundle`` empty, ``robot_config`` given: a name in ``config/robots/`` or a YAML path)
the node serves teleop and hold only: the joints, control rate and limits (position, velocity -> rate
limit) are the robot config's (intersected with ``urdf`` / ``position_lower/upper`` / ``max_step`` /
``rate`` where given); the e-stop and the watchdog are as ever. Autonomous (by parameter, ``/wm/mode`` or
service) is refused with one log line and the node holds. A robot config without limits (and no
``urdf`` / ``position_lower/upper``) refuses the start.

Lifecycle (``lifecycle:=true``): a ROS 2 managed node (:mod:`wm_control.ros.lifecycle`; ``ros2 lifecycle set
/policy configure``). It starts unconfigured: nothing loaded, no commands, but the e-stop is heard and latched
(and kept through every transition). ``configure`` loads, verifies and warms up the bundle (or the robot
config's limits; one that does not verify: the transition fails, one log line says why, the node stays
unconfigured); ``activate`` starts commanding (the first command rate-limited from where the arm is measured);
``deactivate`` ends with one hold tick (the arm frozen where it is measured, as the hold mode does) and
publishes nothing more; ``cleanup`` unloads; ``shutdown`` finalizes. Without it (the default) the node
configures and activates itself at start.

The decisions are :mod:`wm_control.control.arbitration`'s (which source; whether the plan may be
followed, and why not) and :class:`wm_control.control.policy.BundlePolicy`'s (the policy's target); this
node feeds them and times the inference. Every tick goes through
:class:`wm_control.control.safety.SafetyLayer`: position limits (URDF, parameters or the bundle), rate
limit, NaN guard, input watchdog, latched e-stop. Every hold has a reason on ``/diagnostics``.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from wm_control.control.arbitration import PlanView, choose_source, follow_plan
from wm_control.control.latents import LatentStream, predates_goal
from wm_control.control.policy import BundlePolicy
from wm_control.control.safety import SafetyConfig, SafetyLayer
from wm_control.messages import convert as cv
from wm_control.robot import RobotConfig, load_robot_config
from wm_control.ros import lifecycle, qos, topics
from wm_control.ros.api import ControlTick, Diagnostics, Node, Window
from wm_control.ros.bringup import policy_command
from wm_control.ros.throttle import ThrottledLog
from wm_control.world.bundle import Bundle, EffectiveLimits, effective_limits, load_bundle, urdf_limits

MODES = ("autonomous", "teleop", "hold")
#: sim time, a camera policy: wall seconds the first tick waits for the first latent (the world model starting)
FIRST_LATENT_WAIT = 60.0
JOINT_STATES_QOS = qos.QoSProfile("best_effort", "volatile", 200)
#: /wm/estop readers (:data:`wm_control.ros.topics.ANY_QOS_READERS`): together they match a publisher of any
#: reliability and durability; a sample heard on more than one is handled once (publisher, source timestamp)
ESTOP_READERS = topics.ANY_QOS_READERS


@dataclass
class PolicyConfig:
    bundle: str = ""
    """Model bundle folder (policy.onnx + manifest.yaml); verified at start."""
    robot_config: str = ""
    """Robot config (a name in config/robots/ or a YAML path). Without a bundle: its joints, control rate and
    limits, teleop and hold only (autonomous refused). With a bundle: its limits join the robot's own."""
    device: str = "auto"
    """auto | tensorrt | cuda | cpu (ONNX Runtime execution provider)."""
    bundle_id: str = ""
    """Pin: refuse a bundle whose id (64 hex digits, printed by `wm-control export`) differs; empty: no pin."""
    trusted_keys: list[str] = field(default_factory=list)
    """ed25519 public key files; a bundle.sig that none of them verifies is refused."""
    require_signature: bool = False
    """Refuse a bundle that is not signed by one of trusted_keys."""
    max_control_rate: float = 100.0
    """Hz; a control rate above this (the bundle's, or `rate`) is refused. 0: no ceiling."""
    rate: float = 0.0
    """Control rate in Hz; 0 takes the bundle's."""
    mode: str = "autonomous"
    command_interface: str = ""
    """position (Float64MultiArray) | trajectory (JointTrajectory); empty: the robot config's (with its
    command_topic), else position. Given and differing from the robot config's: the start is refused."""
    dry_run: bool = False
    """Compute every command as usual (same safety layer, same diagnostics) but publish it on
    /wm/dry_run/commands (position) or /wm/dry_run/joint_trajectory (trajectory), never on the controller's."""
    joint_order: list[str] = field(default_factory=list)
    """Order of Float64MultiArray values (the controller's joints YAML); default: the bundle's."""
    urdf: str = ""
    """URDF file with the joint limits; otherwise position_lower/upper, otherwise the bundle's."""
    position_lower: list[float] = field(default_factory=list)
    position_upper: list[float] = field(default_factory=list)
    max_step: float = 0.0
    """Largest change of the commanded position per tick, rad; 0 takes the bundle's."""
    max_joint_state_age: float = 0.1
    stamp_tolerance: float = 0.0
    """> 0: also judge joint states by their header stamp under wall-clock time (the robot's clock agrees
    with ours within this many seconds: chrony/PTP); under sim time the stamps are always judged (the clock
    is shared). A state older than max_joint_state_age (+ tolerance) or from the future is dropped."""
    max_future_stamp: float = 5.0
    """Plans, and under sim time joint states, stamped more than this many seconds after the node's clock are
    dropped (counted). Generous on purpose: under sim time the clock may trail its own states by a bag's gap
    or a lock-step simulator's next instant; an hour-off stamp is what it stops."""
    max_plan_age: float = 0.5
    """A plan whose stamp (the state it was made from) is older than this is not followed."""
    max_teleop_age: float = 0.5
    use_plan: bool = False
    """autonomous: follow the planner's /wm/plan (the action for the current time) when it is fresh, OK, for
    these joints and certain enough at that step; otherwise the policy (each fallback counted by reason)."""
    plan_uncertainty_threshold: float = 0.0
    """Plans with per-step uncertainty above this are not followed; 0 takes the bundle's p99."""
    plan_wait: float = 0.5
    """Sim time with use_plan: wall seconds to wait for the plan made from the current instant's state
    before falling back to the policy (so lock-step results do not depend on the planner's speed)."""
    max_latent_age: float = 0.15
    """Seconds. A policy that sees the visual latent (a bundle from `train bc --visual`) uses the newest
    /wm/latent of its visual bundle captured at or before the tick; none yet, or one captured longer ago
    than this: the tick holds where the arm is (``latent_fallback.missing`` / ``.stale``)."""
    latent_period: float = 0.0
    """Sim time, latent policy: the camera's frame period in seconds (0: the visual model's frame rate's).
    The tick at T waits up to latent_wait wall seconds for the latent of a frame captured after T - period
    (the frame of its instant), so lock-step results do not depend on the world model's speed."""
    latent_wait: float = 0.5
    """Sim time, latent policy: wall seconds a tick waits for the latent of its instant (the first tick waits
    up to a minute for the first latent: nothing moves before the camera chain is up)."""
    track_frames: bool = True
    """Subscribe /wm/frame and report camera-to-command latency (a latent policy: measured on the frame
    whose latent the command used)."""
    realtime_priority: int = 0
    """> 0: run the control loop thread SCHED_FIFO at this priority (needs CAP_SYS_NICE or an rtprio
    limit, as for ros2_control); refused -> a warning and normal scheduling."""
    lifecycle: bool = False
    """A ROS 2 managed node: start unconfigured (nothing loaded, no commands) and wait for `configure` and
    `activate` (~/change_state, as `ros2 lifecycle set`). false: configure and activate at start."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.command_interface not in ("", "position", "trajectory"):
            raise ValueError(f"command_interface must be position|trajectory, not {self.command_interface!r}")
        if self.rate < 0 or self.max_step < 0:
            raise ValueError("rate and max_step must be >= 0")
        if self.plan_wait < 0 or not self.max_plan_age > 0:
            raise ValueError("plan_wait must be >= 0 and max_plan_age > 0")
        if not self.max_latent_age > 0 or self.latent_period < 0 or self.latent_wait < 0:
            raise ValueError("max_latent_age must be > 0, latent_period and latent_wait >= 0")
        if not (self.stamp_tolerance >= 0 and self.max_future_stamp > 0):
            raise ValueError("stamp_tolerance must be >= 0 and max_future_stamp > 0")
        if len(self.position_lower) != len(self.position_upper):
            raise ValueError("position_lower and position_upper must have the same length")


def _carry_estop(old: SafetyLayer | None, new: SafetyLayer) -> SafetyLayer:
    """``new`` with the e-stop state of ``old`` (the latch, every source's last value): no lifecycle
    transition clears an e-stop; only a reset does."""
    if old is not None:
        new.estop_latched, new.estop_sources = old.estop_latched, dict(old.estop_sources)
    return new


def _estop_only(old: SafetyLayer | None = None) -> SafetyLayer:
    """Unconfigured (lifecycle): no limits yet and no commands, but e-stops are heard, latched and reset as
    ever. A safety layer that is never stepped, for its e-stop state (``old``'s, if given)."""
    return _carry_estop(old, SafetyLayer(SafetyConfig(["unconfigured"], [-1.0], [1.0], 1.0)))


def _robot_config_source(rc: RobotConfig) -> list[dict]:
    """A robot config's limits as a ``robot_limits`` source of :func:`effective_limits` ([] without any)."""
    lim = rc.position_limits()
    if lim is None:
        return []
    lower, upper, velocity = lim
    return [{"joint_names": list(rc.joint_names), "lower": list(lower), "upper": list(upper),
             "velocity": list(velocity)}]


def _effective(cfg: PolicyConfig, names: list[str], against: Bundle | dict, extra: list[dict]) -> EffectiveLimits:
    """The node's own limit sources (joint_order, max_step, rate, urdf, position_lower/upper) and ``extra``,
    intersected with ``against`` (a bundle, or the manifest-like robot section of a robot config)."""
    robot = [{"joint_names": cfg.joint_order or None, "max_step": cfg.max_step or None,
              "control_rate": cfg.rate or None}]
    if cfg.urdf:
        robot.append(urdf_limits(cfg.urdf, names))
    if cfg.position_lower:
        if len(cfg.position_lower) != len(names):
            raise ValueError(f"position_lower/upper need {len(names)} values (joints {names})")
        robot.append({"lower": list(cfg.position_lower), "upper": list(cfg.position_upper)})
    return effective_limits(against, robot + extra, max_control_rate=cfg.max_control_rate or None)


class PolicyNode:
    NAME = "policy"
    Config = PolicyConfig

    def __init__(self, node: Node, cfg: PolicyConfig):
        if not cfg.bundle and not cfg.robot_config:
            raise ValueError("parameter 'bundle' is required (a folder made by `wm-control export`), or "
                             "'robot_config' to run teleop/hold without a policy")
        self.node, self.cfg = node, cfg
        self.robot: RobotConfig | None = load_robot_config(cfg.robot_config) if cfg.robot_config else None
        self.bundle: Bundle | None = None
        self.policy: BundlePolicy | None = None
        self.session = None
        self.names: list[str] | None = None  # None: not configured (lifecycle)
        self.ticker: ControlTick | None = None
        # lifecycle: no limits before configure, but the e-stop is heard and latched all the same
        self.safety: SafetyLayer | None = _estop_only() if cfg.lifecycle else None
        self.mode = cfg.mode
        self.commanding = not cfg.lifecycle  # commands are published (lifecycle: only while active)
        if not cfg.lifecycle:
            self._load()  # the bundle verified, the limits, the policy warmed up, the safety layer
        self.q = self.qd = None
        self.goal: np.ndarray | None = None
        self.plan: PlanView | None = None
        self.plan_stamp = -np.inf
        self.fallback: str | None = None  # why this tick did not follow the plan
        self.teleop: np.ndarray | None = None
        self.rx: dict[str, float] = {}  # optional inputs' receive times (node clock)
        self.frame_stamp: float | None = None
        self.infer_ms = Window()
        self.frame_used: float | None = None
        self.last_act: float | None = None
        self.latents: LatentStream | None = None  # this policy's visual bundle's latents, in capture order
        self.latent_fallback: str | None = None  # why this tick had no latent
        self.latent_used: float | None = None  # capture stamp of the latent this tick's command used
        self.latent_measured: float | None = None
        self._latent_sub = None
        self.goal_latent: tuple[float, np.ndarray] | None = None  # (stamp, latent) of the goal image (goal-image mode)
        self.goal_stamp = -np.inf  # the /goal point's stamp (under sim time, a goal image's latent must be as new)

        m = node.msg
        self.make = m
        # the robot config's interface and topic (a differing parameter refused); dry run: the dry-run topic,
        # and no publisher on the controller's topic at all
        self.interface, self.command_topic = policy_command(cfg.command_interface, self.robot, cfg.dry_run)
        self.pub = topics.COMMAND_TOPICS[self.interface][0].publisher(node, self.command_topic)
        if cfg.dry_run:
            node.logger.warning("DRY RUN: commands go to %s only, never to the controller (%s)", self.command_topic,
                                policy_command(cfg.command_interface, self.robot)[1])
        # sensor-data QoS, but a deep history: a flood of bad states between two takes must not push the
        # good ones out of the reader (each is cheap to refuse: counted, logged throttled)
        node.create_subscription("sensor_msgs/msg/JointState", "/joint_states", self.on_joint_state, JOINT_STATES_QOS)
        node.create_subscription("geometry_msgs/msg/PointStamped", "/goal", self.on_goal, qos.LATCHED)
        node.create_subscription("sensor_msgs/msg/JointState", "/teleop/command", self.on_teleop, qos.DEFAULT)
        node.create_subscription("std_msgs/msg/String", "/wm/mode", self.on_mode, qos.LATCHED)
        self._estop_seen: dict[str, int] = {}  # source -> newest source timestamp handled (ns)
        self._estop_done: dict[str, deque] = {}  # source -> source timestamps handled (recent ones)
        topics.ESTOP.subscribe_any_qos(node, self.on_estop)  # a publisher of any reliability/durability is heard
        node.create_subscription("std_msgs/msg/Empty", "/wm/estop_reset", self.on_estop_reset, qos.DEFAULT)
        serve = getattr(node, "create_service", None)  # (a stand-in node of a test may have none)
        if serve is not None:
            serve(topics.RESET_ESTOP.type, topics.RESET_ESTOP.name, self.on_reset_estop_service)
            for srv in topics.SET_MODE:
                mode = srv.name.rsplit("/", 1)[1]
                serve(srv.type, srv.name,
                      lambda _rq, rs, m=mode, via=srv.name: self._answer(rs, *self.set_mode(m, via)))
        if cfg.use_plan:
            node.create_subscription("wm_control/msg/Plan", "/wm/plan", self.on_plan, qos.DEFAULT)
        if cfg.track_frames:
            node.create_subscription("sensor_msgs/msg/Image", "/wm/frame", self.on_frame, qos.SENSOR_DATA)
        self.diag = Diagnostics(node, hardware_id=self._hardware_id())
        # a flood of bad input is counted in /diagnostics, and logged once, then as a count every 5 s
        self.warn = ThrottledLog(node.logger, period=5.0, summary="{count} more like this ({key}) in the last "
                                                                  "{seconds:.1f} s; the latest: {message}")
        node.create_timer(1.0, self.warn.flush)  # a burst that stopped still gets its count
        self.diag.set("providers", ",".join(self.session.providers) if self.session else "none (no bundle)")
        self.diag.set("mode", self.mode)
        self.diag.set("dry_run", "true" if cfg.dry_run else "false")
        self.diag.set("command_topic", self.command_topic)
        self._subscribe_latent()
        if not cfg.lifecycle:
            self._start_ticker()
        if cfg.realtime_priority > 0:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(cfg.realtime_priority))
                self.diag.set("scheduling", f"SCHED_FIFO {cfg.realtime_priority}")
            except (PermissionError, OSError) as exc:
                node.logger.warning("cannot use SCHED_FIFO %d (%s): normal scheduling", cfg.realtime_priority, exc)
        if not cfg.lifecycle:
            self._log_up()
            return
        self.lifecycle = lifecycle.StateMachine({
            "configure": self.on_configure, "activate": self.on_activate, "deactivate": self.on_deactivate,
            "cleanup": self.on_cleanup, "shutdown": self.on_shutdown, "error": self.on_cleanup})
        self.lifecycle.listeners.append(lambda *_: self.diag.set("lifecycle", self.lifecycle.label))
        lifecycle.serve(node, self.lifecycle)
        self.diag.set("lifecycle", self.lifecycle.label)
        self.diag.status(Diagnostics.WARN, "unconfigured (lifecycle): waiting for configure; no commands")
        node.logger.info("policy up, unconfigured (lifecycle): %s is loaded on configure; no commands until "
                         "activate", f"bundle {cfg.bundle}" if cfg.bundle else f"robot config {cfg.robot_config}")

    def _log_up(self) -> None:
        cfg = self.cfg
        what = f"bundle {cfg.bundle} ({self.bundle.id}), {self.session.providers[0]}" if self.bundle else \
            f"no bundle: robot {self.robot.name} (teleop and hold only)"
        self.node.logger.info("policy up: %s, %.0f Hz, mode %s, limits %s..%s, max step %.3f rad", what, self.rate,
                              self.mode, np.round(self.safety.lo, 3).tolist(), np.round(self.safety.hi, 3).tolist(),
                              float(np.max(self.safety.max_step)))

    # ---- configuration ----------------------------------------------------------------------
    def _load(self) -> None:
        """The configuration (at start, or on the lifecycle's configure): the bundle verified (or the robot
        config's joints and limits), the effective limits, the policy warmed up (not in the loop) and the
        safety layer, which keeps any e-stop heard before (no transition clears an e-stop)."""
        cfg = self.cfg
        if cfg.bundle:
            self.bundle = load_bundle(cfg.bundle, expect_id=cfg.bundle_id or None,
                                      trusted_keys=cfg.trusted_keys or None, require_signature=cfg.require_signature)
            self.names = self.bundle.joint_names
            self.limits = self._limits()  # robot's and bundle's joints checked, the tighter limits, before any command
        else:
            self.names = list(self.robot.joint_names)
            self.limits = self._robot_limits()
        self.order, _, self.out_index = cv.command_order(cfg.joint_order, self.names)
        if self.bundle is not None:
            self.policy = BundlePolicy(self.bundle, cfg.device)  # warmed up here, not in the loop
            self.session = self.policy.session
        self.rate = self.limits.control_rate
        self.safety = _carry_estop(self.safety, SafetyLayer(self.limits.safety_config(
            {"joint_states": cfg.max_joint_state_age})))
        thr = self.bundle.manifest.get("thresholds", {}).get("uncertainty_p99") if self.bundle else None
        self.plan_threshold = cfg.plan_uncertainty_threshold or (float(thr) if thr else np.inf)
        if self.mode == "autonomous" and self.policy is None:
            self.node.logger.warning("mode autonomous refused: no bundle (teleop and hold only); holding (%s)",
                                     "at configure" if cfg.lifecycle else "parameter mode")
            self.mode = "hold"

    def _hardware_id(self) -> str:
        if self.names is None:
            return ""
        return f"bundle:{self.bundle.id}" if self.bundle else f"robot:{self.robot.name}"

    def _subscribe_latent(self) -> None:
        """/wm/latent, once, when the policy sees the visual latent; the stream of its visual bundle's latents."""
        if self.policy is not None and self.policy.needs_latent:
            self.latents = LatentStream(self.policy.latent)
        if self._latent_sub is None and self.policy is not None and self.policy.needs_latent:
            self._latent_sub = topics.LATENT.subscribe(self.node, self.on_latent)
            if self.policy.needs_goal_image:
                topics.GOAL_LATENT.subscribe(self.node, self.on_goal_latent)
            li = self.policy.latent
            self.diag.set("latent.bundle_id", li.bundle_id)
            self.node.logger.info("the policy sees the camera: /wm/latent of visual bundle %s (%d values); a latent "
                                  "older than %.3f s holds the arm", li.bundle_id[:12], li.dim, self.cfg.max_latent_age)

    def _start_ticker(self) -> None:
        cfg = self.cfg
        latent = self.policy is not None and self.policy.needs_latent
        gated = cfg.use_plan or latent
        wait = max(cfg.plan_wait if cfg.use_plan else 0.0, cfg.latent_wait if latent else 0.0)
        # sim time, a camera policy: nothing moves before the camera chain is up; the first tick waits for the first
        # latent (a lock-step simulator waits with it) up to FIRST_LATENT_WAIT, then each tick at most latent_wait
        self.ticker = ControlTick(self.node, self.rate, self.act, ready=self.ready if gated else None, wait=wait,
                                  first_wait=max(wait, FIRST_LATENT_WAIT) if latent else None)

    def _unload(self) -> None:
        """Back to unconfigured: no bundle, no loop, no inputs of the old joints; the e-stop state kept."""
        self.commanding = False
        if self.ticker is not None:
            for timer in (self.ticker.timer, getattr(self.ticker, "grace_timer", None)):
                if timer is not None:
                    timer.cancel()
        self.ticker = None
        self.bundle = self.policy = self.session = self.names = None
        self.safety = _estop_only(self.safety)
        self.q = self.qd = self.teleop = self.plan = None
        self.plan_stamp = -np.inf
        self.latents = None
        self.goal_latent = None
        self.rx.clear()

    def _hold_once(self) -> None:
        """One last tick in hold, through the safety layer (the arm frozen where it is measured), as the
        hold mode's first tick; the mode itself is kept."""
        mode, self.mode = self.mode, "hold"
        try:
            self.act()
        finally:
            self.mode = mode

    # ---- the lifecycle's callbacks (lifecycle:=true; wm_control.ros.lifecycle decides the states) ----------
    def on_configure(self, _state: int) -> None:
        try:
            self._load()
        except Exception as exc:  # a bundle that does not verify, limits that do not fit: stay unconfigured
            self._unload()
            raise lifecycle.Failure(" ".join(str(exc).split()) or type(exc).__name__) from None
        self.diag.hardware_id = self._hardware_id()
        self.diag.set("providers", ",".join(self.session.providers) if self.session else "none (no bundle)")
        self.diag.set("mode", self.mode)
        self._subscribe_latent()
        self._start_ticker()
        self.diag.status(Diagnostics.WARN, "inactive (lifecycle): no commands until activate")
        self._log_up()

    def on_activate(self, _state: int) -> None:
        self.safety.reset()  # the first command is rate-limited from where the arm is measured now
        self.commanding = True

    def on_deactivate(self, _state: int) -> None:
        self._hold_once()
        self.commanding = False
        self.diag.status(Diagnostics.WARN, "inactive (lifecycle): holding, no commands until activate")

    def on_cleanup(self, _state: int) -> None:
        self._unload()
        self.diag.status(Diagnostics.WARN, "unconfigured (lifecycle): waiting for configure; no commands")

    def on_shutdown(self, state: int) -> None:
        if state == lifecycle.ACTIVE:
            self._hold_once()
        self._unload()
        self.diag.status(Diagnostics.WARN, "finalized (lifecycle): no commands")

    def _limits(self) -> EffectiveLimits:
        """The robot's own limits (URDF, position_lower/upper, max_step, rate, joint_order, the robot config's)
        intersected with the bundle's: never looser than either (:func:`wm_control.world.bundle.effective_limits`)."""
        rc = getattr(self, "robot", None)
        return _effective(self.cfg, self.names, self.bundle, _robot_config_source(rc) if rc is not None else [])

    def _robot_limits(self) -> EffectiveLimits:
        """No bundle: the robot config's joints, control rate and limits, intersected with the node's own
        (urdf, position_lower/upper, max_step, rate); refused without position limits."""
        rc, cfg = self.robot, self.cfg
        source = _robot_config_source(rc)
        if not (source or cfg.urdf or cfg.position_lower):
            raise ValueError(f"robot config {rc.name!r} gives no joint limits (limits.lower/upper or urdf): "
                             "refusing to command the robot without them")
        return _effective(cfg, self.names, {"joint_names": list(rc.joint_names), "control_rate": rc.control_rate},
                          source)

    # ---- inputs -------------------------------------------------------------------------------
    def on_joint_state(self, msg) -> None:
        if self.names is None:  # unconfigured (lifecycle): no joints to read yet
            return
        try:
            q, qd, _ = cv.joint_state_to_arrays(msg, self.names)
        except cv.ConversionError as exc:
            self.diag.count("dropped.joint_states")
            self.warn.log("joint_state", "dropped joint state: %s", exc)
            return
        now = self.node.now()
        stamp = cv.stamp_sec(msg.header.stamp)
        why = self._bad_stamp(stamp, now)
        if why:
            self.diag.count(f"dropped.joint_states_{why}")
            return
        self.q, self.qd = q, qd
        self.safety.update_input("joint_states", now)
        self.diag.tick("joint_states")
        self.ticker.on_state(cv.stamp_sec(msg.header.stamp))

    def _bad_stamp(self, stamp: float, now: float) -> str | None:
        """Why a joint state's header stamp cannot be trusted (None: it can), judged where the clock is
        shared: under sim time (once a /clock has come), or with ``stamp_tolerance`` > 0."""
        if not math.isfinite(stamp):
            return "bad_stamp"
        shared = self.ticker.sim_time and now > 0
        tol = self.cfg.stamp_tolerance
        if not (shared or tol > 0):
            return None
        if stamp - now > (self.cfg.max_future_stamp if shared else tol):
            return "future_stamp"
        if now - stamp > self.cfg.max_joint_state_age + tol:
            return "stale_stamp"
        return None

    def on_goal(self, msg) -> None:
        try:
            self.goal = cv.point_to_array(msg)
            self.goal_stamp = cv.stamp_sec(msg.header.stamp)
        except cv.ConversionError as exc:
            self.diag.count("dropped.goal")
            self.warn.log("goal", "dropped goal: %s", exc)

    def on_teleop(self, msg) -> None:
        if self.names is None:  # unconfigured (lifecycle)
            return
        try:
            self.teleop = cv.joint_state_to_arrays(msg, self.names)[0]
        except cv.ConversionError as exc:
            self.diag.count("dropped.teleop")
            self.warn.log("teleop", "dropped teleop command: %s", exc)
            return
        self.rx["teleop"] = self.node.now()

    def on_plan(self, msg) -> None:
        if self.names is None:  # unconfigured (lifecycle)
            return
        stamp = cv.stamp_sec(msg.header.stamp)
        if not math.isfinite(stamp) or stamp - self.node.now() > self.cfg.max_future_stamp:
            self.diag.count("dropped.plan_future")  # never the reference later plans are ordered against
            return
        if stamp < self.plan_stamp:
            self.diag.count("dropped.plan_out_of_order")
            return
        self.plan = PlanView.of(stamp, msg.dt, msg.horizon, msg.status, msg.joint_names, msg.actions, msg.uncertainty)
        self.plan_stamp = stamp
        self.rx["plan"] = self.node.now()
        self.diag.tick("plans")
        self.ticker.poke()  # sim time: the tick of this instant may be waiting for it

    def ready(self, t: float) -> bool:
        """Sim time: may the tick at ``t`` act? In autonomous, only with the plan made from the state at ``t``
        (use_plan) and the latent of the frame of its instant (a latent policy): one captured after
        ``t - latent_period``."""
        if self.mode != "autonomous":
            return True
        if self.cfg.use_plan and self.plan_stamp < t - 1e-6:
            return False
        if self.policy is not None and self.policy.needs_latent:
            if self.policy.needs_goal_image and math.isfinite(self.goal_stamp) and (
                    self.goal_latent is None or predates_goal(self.goal_latent[0], self.goal_stamp, t)):
                return False  # a new goal was posed (its point came): wait for its image's latent
            period = self.cfg.latent_period or 1.0 / self.policy.latent.frame_rate
            return self.latents is not None and self.latents.covers(t, period)
        return True

    def _latent_of(self, msg, what: str) -> tuple[float, np.ndarray] | None:
        """(capture stamp, latent) of a LatentState when it is this policy's visual bundle's, of its size, finite
        and not stamped in the future; else None, counted ``dropped.<what>_model`` / ``_malformed`` / ``_future``."""
        if self.latents is None:  # unconfigured (lifecycle), or a policy without the latent
            return None
        got = self.latents.check(msg.bundle_id, msg.latent, cv.stamp_sec(msg.header.stamp), self.node.now(),
                                 self.cfg.max_future_stamp)
        if isinstance(got, str):
            self.diag.count(f"dropped.{what}_{got}")
            li = self.latents.spec
            if got == "model":
                self.warn.log(f"{what}_model", "dropped %s of visual bundle %s: this policy reads bundle %s's latents "
                              "(run world_model with that bundle)", what, str(msg.bundle_id)[:12], li.bundle_id[:12])
            elif got == "malformed":
                self.warn.log(f"{what}_malformed", "dropped %s: %d values (want %d) or not finite", what,
                              np.size(msg.latent), li.dim)
            return None
        return got

    def on_latent(self, msg) -> None:
        """A /wm/latent (wm_control/msg/LatentState): kept when :meth:`_latent_of` takes it and it is not stamped
        before the newest one kept (a stamp a second or more back: the stream restarted, start anew)."""
        got = self._latent_of(msg, "latent")
        if got is None:
            return
        if self.latents.add(*got) is not None:  # stamped before the newest (a stream that restarted starts anew)
            self.diag.count("dropped.latent_out_of_order")
            return
        self.diag.tick("latents")
        self.ticker.poke()  # sim time: the tick of this instant may be waiting for it

    def on_goal_latent(self, msg) -> None:
        """A /wm/goal_latent (the goal image's latent, the goal-image mode): the newest is the goal."""
        got = self._latent_of(msg, "goal_latent")
        if got is not None:
            self.goal_latent = got
            self.diag.count("goal_latents")
            self.ticker.poke()

    def latent_for(self, t: float) -> tuple[np.ndarray | None, float | None, str | None]:
        """The latent for the tick at ``t``: the newest captured at or before ``t``, with its capture stamp; or
        None and why not ('missing': none yet; 'stale': older than max_latent_age)."""
        if self.latents is None:
            return None, None, "missing"
        return self.latents.for_tick(t, self.cfg.max_latent_age)

    def on_frame(self, msg) -> None:
        self.frame_stamp = cv.stamp_sec(msg.header.stamp)

    def on_mode(self, msg) -> None:
        mode = str(msg.data).strip().lower()
        if mode not in MODES:
            self.diag.count("dropped.mode")
            self.warn.log("mode", "ignored unknown mode %r (use %s)", msg.data, "|".join(MODES))
            return
        self.set_mode(mode, "/wm/mode")

    def set_mode(self, mode: str, via: str) -> tuple[bool, str]:
        """Take ``mode`` (one of MODES); (taken, what now). Without a bundle, autonomous is refused and the
        node holds."""
        if mode == "autonomous" and self.policy is None and self.names is not None:  # one line (throttled)
            self.mode = "hold"
            self.diag.set("mode", self.mode)
            self.diag.count("refused.autonomous")
            why = "mode autonomous refused: no bundle (teleop and hold only); holding"
            self.warn.log("no_autonomous", "%s (%s)", why, via)
            return False, why
        if mode != self.mode:
            self.node.logger.info("mode %s -> %s (%s)", self.mode, mode, via)
        self.mode = mode
        self.diag.set("mode", mode)
        return True, f"mode {mode}"

    @staticmethod
    def _answer(response, success: bool, message: str):
        response.success, response.message = bool(success), message
        return response

    def on_estop(self, msg, info=None) -> None:
        """One e-stop sample from one of the readers. Its source is the publisher (the DDS publication
        handle; one source on backends that do not say). A sample heard on several readers is handled
        once (publisher + source timestamp). A True that arrives late (after a newer False of its
        source: a retransmission) still latches; only the newest sample sets the source's state."""
        active = bool(msg.data)
        source, ts = topics.sample_source(info, "/wm/estop")
        newest = True
        if isinstance(ts, int):
            done = self._estop_done.setdefault(source, deque(maxlen=1024))
            if ts in done:
                return  # the same sample, heard on another reader
            done.append(ts)
            newest = ts > self._estop_seen.get(source, -1)
            if newest:
                self._estop_seen[source] = ts
        if active and not self.safety.estop_latched:
            self.node.logger.error("E-STOP from %s: holding where the arm is until every source is false "
                                   "and a reset (/wm/estop_reset or /wm/reset_estop)", source)
        self.diag.count("estop.true" if active else "estop.false")
        if newest:
            self.safety.estop(active, source)
        elif active:
            self.safety.latch_estop()

    def on_estop_reset(self, _msg) -> None:
        self.reset_estop("/wm/estop_reset")

    def on_reset_estop_service(self, _request, response):
        """``/wm/reset_estop`` (std_srvs/Trigger): the reset, and whether it cleared. On the executor's thread,
        as every e-stop sample is: no sample is handled between the decision and the reply."""
        return self._answer(response, *self.reset_estop(topics.RESET_ESTOP.name))

    def reset_estop(self, via: str) -> tuple[bool, str]:
        """Clear the latched e-stop when no source holds it; (clear now, why not / what happened)."""
        was = self.safety.estop_latched
        if not self.safety.reset_estop():
            holding = ", ".join(self.safety.active_estop_sources())
            self.diag.count("estop.reset_refused")
            self.warn.log("reset_refused", "e-stop reset refused (%s): still held by %s", via, holding)
            return False, f"e-stop still held by {holding}"
        if was:
            self.node.logger.info("e-stop reset (%s)", via)
            return True, "e-stop cleared"
        return True, "no e-stop latched"

    # ---- the loop -----------------------------------------------------------------------------
    def propose(self, now: float) -> tuple[np.ndarray | None, str]:
        """What the current mode wants, before safety (None: nothing to propose):
        :func:`~wm_control.control.arbitration.choose_source`, then the policy where it is the source."""
        follow = self.cfg.use_plan and self.mode == "autonomous" and self.q is not None
        choice = choose_source(self.mode, self.q is not None, self.teleop, now - self.rx.get("teleop", -np.inf),
                               self.cfg.max_teleop_age, self.plan_action(now) if follow else None)
        if choice.fallback is not None:
            self.fallback = choice.fallback
            self.diag.count("plan_fallbacks")
            self.diag.count(f"plan_fallback.{choice.fallback}")
        goal_image = self.policy is not None and self.policy.needs_goal_image
        if choice.source != "policy" or self.policy is None or (self.goal is None and not goal_image):
            return choice.action, choice.source
        latent = goal_latent = None
        if goal_image:  # the goal is a picture's latent (the goal-image mode)
            if self.goal_latent is None:
                self.latent_fallback = "goal_image_missing"
                self.diag.count("latent_fallback.goal_image_missing")
                return None, "policy"
            goal_latent = self.goal_latent[1]
        if self.policy.needs_latent:  # the camera's latent of this instant, or hold
            t = self.ticker.acted_at if self.ticker.sim_time else now
            latent, stamp, why = self.latent_for(t)
            if latent is None:
                self.latent_fallback = why
                self.diag.count(f"latent_fallback.{why}")
                return None, "policy"
            self.latent_used = stamp
        t0 = time.perf_counter()
        target = self.policy.select_action(self.q, self.qd, self.goal, latent, goal_latent)
        self.infer_ms.add(time.perf_counter() - t0)
        return target, "policy"

    def plan_action(self, now: float) -> tuple[np.ndarray | None, str]:
        """The plan's action for ``now``, or None and why it cannot be followed
        (:func:`~wm_control.control.arbitration.follow_plan`)."""
        return follow_plan(self.plan, self.names, now, self.ticker.acted_at, self.cfg.max_plan_age,
                           self.plan_threshold, self.ticker.timed_out)

    def act(self) -> None:
        if not self.commanding:  # lifecycle: not active (deactivate ended with one hold tick)
            return
        now = self.node.now()
        self.fallback = self.latent_fallback = None
        self.latent_used = None
        proposal, source = self.propose(now)
        self.diag.count(f"ticks.{source}")
        res = self.safety.step(now, self.q, proposal, source)
        if res.held:
            self.diag.count("held_ticks")  # ticks that did not follow a proposal (replay reports them)
        self.node.logger.debug("act at %.3f: %s %s %s", now, source, res.reasons, res.command)
        for r in res.reasons:
            self.diag.count(f"reason.{r.split(':')[0]}")
        if res.command is None:
            self.diag.status(Diagnostics.ERROR, "no safe command: " + ", ".join(res.reasons))
            return
        cmd = res.command
        if self.interface == "position":  # with dry_run, self.pub is the dry-run topic's
            self.pub.publish(cv.make_multiarray(self.make, cmd[self.out_index]))
        else:
            self.pub.publish(cv.make_trajectory(self.make, 0.0, self.names, [1.0 / self.rate], cmd[None]))
        self.diag.tick("commands")
        t_pub = time.monotonic()
        if self.last_act is not None:
            self.diag.latency("period_error", abs(t_pub - self.last_act - 1.0 / self.rate))
        self.last_act = t_pub
        if self.latent_used is not None and not self.ticker.sim_time:
            # the frame whose latent this command used: capture -> command, on its first command
            self.diag.latency("latent_age_at_command", time.time() - self.latent_used)
            if self.latent_used != self.latent_measured:
                self.diag.latency("camera_to_command", time.time() - self.latent_used)
                self.latent_measured = self.latent_used
        if self.frame_stamp is not None and not self.ticker.sim_time:
            age = time.time() - self.frame_stamp
            self.diag.latency("frame_age_at_command", age)
            if self.frame_stamp != self.frame_used and not (self.policy is not None and self.policy.needs_latent):
                self.diag.latency("camera_to_command", age)  # a policy blind to the camera: the next command
                self.frame_used = self.frame_stamp
        if res.held:
            self.diag.status(Diagnostics.WARN, f"holding ({source}): " + ", ".join(res.reasons)
                             + (f" (plan not followed: {self.fallback})" if self.fallback else "")
                             + (f" (camera latent {self.latent_fallback})" if self.latent_fallback else ""))
        else:
            self.diag.status(Diagnostics.OK, f"{self.mode} via {source}"
                             + (f" ({', '.join(res.reasons)})" if res.reasons else "")
                             + (f" (plan not followed: {self.fallback})" if self.fallback else ""))
        if self.infer_ms.values and self.diag.rates["commands"].count % 50 == 0:
            self.diag.set("inference_p50_ms", 1e3 * self.infer_ms.pct(50))
            self.diag.set("inference_p99_ms", 1e3 * self.infer_ms.pct(99))

"""``planner``: the uncertainty-aware planner (RWM-U) as a node; the core is :mod:`wm_control.control.planner`.

Inputs: ``/joint_states`` (by name, sensor-data QoS), ``/goal`` (PointStamped, latched) and the
executed commands ``/forward_position_controller/commands`` (Float64MultiArray in ``joint_order``).
From them it keeps the robot's history on the bundle's control grid with the aligner the training data
were made with (:class:`wm_control.control.history.ControlHistory` over
:func:`~wm_control.control.history.align_grid`, as :mod:`wm_control.data.dataset`): the last ``H`` states
(linearly interpolated between joint states, late ones included in stamp order; the earliest one repeated
while the history is shorter) and the command in force over each step (the latest one received before
the step's end; before any command, the measured position). Missing joint velocities count as 0 after
the alignment, as in training. A joint state older than the newest is counted (``late.joint_states``)
and joins the history, but is not planned from.

An ensemble over the visual latent (``train ensemble --visual``; its bundle's ``graphs.ensemble.latent``)
also reads ``/wm/latent`` (:class:`wm_control.control.latents.LatentStream`: the world_model node's latents of
that visual bundle; others, wrong-sized, non-finite or out-of-order ones are dropped and counted): each grid
step of the window gets the latent of the latest frame captured at or before it, as the training data paired
them. None, or the newest older than ``max_latent_age``, gives a NO_INPUT plan (``latent_fallback.missing`` /
``.stale``), which the policy node answers with its named plan fallback. Under sim time a state is planned from
once the latent of its instant's frame (captured after T - ``latent_period``) is here; a state whose frame never
gave one gets NO_INPUT when the next state comes.

A bundle whose policy reads the goal as an image (``--observation joint_trig_goal_image_latent``, the ensemble over
the same visual latent) plans to ``/wm/goal_latent`` (the world_model node's latent of ``/goal_image``) with the
energy of :mod:`wm_control.control.planner`, never to the ``/goal`` point: the point's stamp only says a new goal
was posed, and until the latent of its image comes (a newer stamp) the plan is NO_INPUT (sim time: it waits).

Output: ``wm_control/msg/Plan`` on ``/wm/plan``: ``header.stamp`` = the stamp of the state planned
from, the bundle's joint names, ``dt`` (the control period), ``horizon``, the position targets
row-major ``[step][joint]`` (the first for the state at the stamp), the per-step uncertainty of the
plan, its expected return, a status (OK, UNCERTAIN, FAILED, NO_INPUT: no goal, no or stale joint
states) and a message.

Timing: in real time it plans at ``rate`` Hz (absolute deadlines) from the newest joint state (a
state already planned from is not planned again). Under sim time (lock-step simulation, bag replay)
it plans once for every new joint state instant, as soon as the state arrives, so the plans do not
depend on the CPU's speed; the policy node (``use_plan``) waits for the plan of its instant.

``/diagnostics``: plan latency (``plan.p50_ms`` / ``plan.p99_ms``), the plan rate, a counter per
status (``status.OK`` ...), the last expected return and first-step uncertainty.

Lifecycle (``lifecycle:=true``): a ROS 2 managed node (:mod:`wm_control.ros.lifecycle`; ``ros2 lifecycle set
/planner configure``). It starts unconfigured, loads nothing and publishes no plans; ``configure`` loads,
verifies and warms up the bundle (a bundle that does not verify: the transition fails, one log line says why,
the node stays unconfigured); in inactive it keeps the history but publishes no plans; ``activate`` starts
planning, ``deactivate`` stops it, ``cleanup`` unloads (the goal is kept: it is latched), ``shutdown``
finalizes. Without it (the default) the node configures and activates itself at start.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from wm_control.control.history import ControlHistory
from wm_control.control.latents import LatentStream, predates_goal
from wm_control.control.planner import (
    STATUS_FAILED,
    STATUS_NAMES,
    STATUS_NO_INPUT,
    STATUS_OK,
    Plan,
    Planner,
    PlannerConfig,
)
from wm_control.messages import convert as cv
from wm_control.ros import lifecycle, topics
from wm_control.ros.api import Diagnostics, Node
from wm_control.ros.throttle import ThrottledLog
from wm_control.world.bundle import load_bundle

MAX_FUTURE_STAMP = 5.0  # s: as the policy node's default (a sim's clock may trail its states by a bag's gap)


@dataclass
class PlannerNodeConfig(PlannerConfig):
    """The planner's parameters (horizon, samples, lam, ... see :class:`wm_control.control.planner.PlannerConfig`)
    and the node's own."""

    bundle: str = ""
    """Bundle folder with an ``ensemble`` and a ``policy`` graph (``wm-control train ensemble --policy-bundle``)."""
    bundle_id: str = ""
    """Pin: refuse a bundle whose id (64 hex digits, printed by `wm-control export`) differs; empty: no pin."""
    rate: float = 25.0
    """Plans per second in real time (under sim time: one per joint state instant)."""
    joint_order: list[str] = field(default_factory=list)
    """Order of the command topic's Float64MultiArray values; default: the bundle's joint names."""
    max_joint_state_age: float = 0.1
    """Real time: a newest joint state older than this gives a NO_INPUT plan."""
    max_latent_age: float = 0.15
    """An ensemble over the visual latent: the newest /wm/latent of its visual bundle captured at or before the
    state planned from; none, or one captured longer ago than this: a NO_INPUT plan (``latent_fallback.missing``
    / ``.stale``)."""
    latent_period: float = 0.0
    """Sim time, an ensemble over the visual latent: the camera's frame period (0: the visual model's frame
    rate's). The state at T is planned from once the latent of a frame captured after T - period is here."""
    lifecycle: bool = False
    """A ROS 2 managed node: start unconfigured (no bundle loaded, no plans) and wait for `configure` and
    `activate` (~/change_state, as `ros2 lifecycle set`). false: configure and activate at start."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.rate > 0 or not self.max_joint_state_age > 0 or not self.max_latent_age > 0:
            raise ValueError("rate, max_joint_state_age and max_latent_age must be > 0")
        if self.latent_period < 0:
            raise ValueError("latent_period must be >= 0")


class PlannerNode:
    NAME = "planner"
    Config = PlannerNodeConfig

    def __init__(self, node: Node, cfg: PlannerNodeConfig):
        if not cfg.bundle:
            raise ValueError("parameter 'bundle' is required (a bundle with an ensemble and a policy graph, made by "
                             "`wm-control train ensemble --bundle OUT --policy-bundle POLICY_BUNDLE`)")
        self.node, self.cfg = node, cfg
        self.bundle = self.planner = self.history = self.names = None
        self.latents: LatentStream | None = None  # an ensemble over the visual latent: its bundle's latents
        self._latent_sub = None
        self.pending: float | None = None  # sim time: a state instant waiting for its frame's latent
        self.active = False  # plans are published (lifecycle: only while active)
        if not cfg.lifecycle:
            self._load()
            self.active = True
        self.goal: np.ndarray | None = None
        self.goal_stamp = -math.inf  # the newest /goal point's stamp (goal-image mode: a new goal was posed)
        self.goal_latent: tuple[float, np.ndarray] | None = None  # goal-image mode: (stamp, the goal image's latent)
        self.sim_time = bool(getattr(node, "use_sim_time", False))

        self.pub = topics.PLAN.publisher(node)
        # created in this order on purpose: data taken in one executor pass is handled commands -> goal -> state,
        # so the command answering the previous state is in the history before the next state is planned from
        topics.POSITION_COMMANDS.subscribe(node, self.on_command)
        topics.GOAL.subscribe(node, self.on_goal)
        topics.GOAL_LATENT.subscribe(node, self.on_goal_latent)  # used by a bundle that plans to a goal image
        topics.JOINT_STATES.subscribe(node, self.on_joint_state)
        self.diag = Diagnostics(node)
        self.warn = ThrottledLog(node.logger, period=5.0)
        node.create_timer(1.0, self.warn.flush)
        if not self.sim_time:
            node.create_timer(1.0 / cfg.rate, self.tick)
        if cfg.lifecycle:
            self.lifecycle = lifecycle.StateMachine({
                "configure": self.on_configure, "activate": self.on_activate, "deactivate": self.on_deactivate,
                "cleanup": self.on_cleanup, "shutdown": self.on_shutdown, "error": self.on_cleanup})
            self.lifecycle.listeners.append(lambda *_: self.diag.set("lifecycle", self.lifecycle.label))
            lifecycle.serve(node, self.lifecycle)
            self.diag.set("lifecycle", self.lifecycle.label)
            self.diag.status(Diagnostics.WARN, "unconfigured (lifecycle): waiting for configure")
            node.logger.info("planner up, unconfigured (lifecycle): bundle %s is loaded on configure", cfg.bundle)
        else:
            self._up()

    # ---- configuration (at start, or on the lifecycle's transitions) -------------------------------
    def _load(self) -> None:
        """Load and verify the bundle, build and warm up the planner's sessions (not in the loop)."""
        cfg = self.cfg
        self.bundle = load_bundle(cfg.bundle, expect_id=cfg.bundle_id or None)
        self.planner = Planner(self.bundle, cfg)  # sessions built and warmed up here, not in the loop
        p = self.planner
        self.latents = LatentStream(p.latent, maxlen=32) if p.latent is not None else None
        self.pending = None
        self.names = p.names
        self.order, self.from_order, _ = cv.command_order(cfg.joint_order, self.names)
        self.dt, self.H = p.dt, p.history
        self.history = ControlHistory(self.dt, self.H, p.n)
        self.planned_stamp = -math.inf
        self.last_msg = None

    def _up(self) -> None:
        """After :meth:`_load`: diagnostics and the start line."""
        cfg, p = self.cfg, self.planner
        if self.latents is not None and self._latent_sub is None:
            self._latent_sub = topics.LATENT.subscribe(self.node, self.on_latent)
        if self.latents is not None:
            self.diag.set("latent.bundle_id", p.latent.bundle_id)
            self.node.logger.info("the ensemble's state has the camera's latent: /wm/latent of visual bundle %s "
                                  "(%d values); none newer than %.3f s: NO_INPUT", p.latent.bundle_id[:12],
                                  p.latent.dim, cfg.max_latent_age)
        self.diag.hardware_id = f"bundle:{self.bundle.id}"
        self.diag.set("providers", ",".join(p.providers))
        self.diag.set("threads", cfg.threads)
        self.diag.set("samples", cfg.samples)
        self.diag.set("horizon", cfg.horizon)
        self.diag.status(Diagnostics.WARN, "waiting for joint states and a goal")
        self.node.logger.info("planner up: bundle %s (%s), %s x%d threads, %d members x %d samples x horizon %d, "
                              "lam %.3g, %s", cfg.bundle, self.bundle.id, p.providers[0], cfg.threads, p.members,
                              cfg.samples, cfg.horizon, cfg.lam, "once per state instant (sim time)" if self.sim_time
                              else f"{cfg.rate:.0f} Hz")

    def _unload(self) -> None:
        self.active = False
        self.bundle = self.planner = self.history = self.names = None  # the sessions go with the planner
        self.latents = self.pending = self.goal_latent = None

    def on_configure(self, _state: int) -> None:
        try:
            self._load()
        except Exception as exc:  # a bundle that does not verify, a graph that does not load: stay unconfigured
            self._unload()
            raise lifecycle.Failure(" ".join(str(exc).split()) or type(exc).__name__) from None
        self._up()

    def on_activate(self, _state: int) -> None:
        self.active = True
        self.diag.status(Diagnostics.WARN, "active: waiting for joint states and a goal")

    def on_deactivate(self, _state: int) -> None:
        self.active = False
        self.diag.status(Diagnostics.WARN, "inactive (lifecycle): no plans")

    def on_cleanup(self, _state: int) -> None:
        self._unload()
        self.diag.status(Diagnostics.WARN, "unconfigured (lifecycle): waiting for configure")

    def on_shutdown(self, _state: int) -> None:
        self._unload()
        self.diag.status(Diagnostics.WARN, "finalized (lifecycle)")

    # ---- inputs -------------------------------------------------------------------------------
    def on_command(self, msg) -> None:
        if self.history is None:  # unconfigured (lifecycle)
            return
        try:
            values = cv.multiarray_to_command(msg, len(self.names))[self.from_order]
        except cv.ConversionError as exc:
            self.diag.count("dropped.commands")
            self.warn.log("command", "dropped command: %s", exc)
            return
        # the time from which the command is in force: its receive time; under sim time the instant it
        # answers (the newest state's), which does not depend on whether /clock was delivered first
        newest = self.history.newest_state
        self.history.add_command(newest if self.sim_time and newest is not None else self.node.now(), values)

    def on_goal(self, msg) -> None:
        try:
            self.goal = cv.point_to_array(msg)
        except cv.ConversionError as exc:
            self.diag.count("dropped.goal")
            self.warn.log("goal", "dropped goal: %s", exc)
            return
        self.goal_stamp = cv.stamp_sec(msg.header.stamp)

    def on_goal_latent(self, msg) -> None:
        """A /wm/goal_latent (the goal image's latent): the goal of a bundle that plans to a goal image, when it is
        its visual bundle's, well formed and not from the future (else counted ``dropped.goal_latent_<why>``)."""
        if self.latents is None or not self.planner.goal_image:
            return
        got = self.latents.check(msg.bundle_id, msg.latent, cv.stamp_sec(msg.header.stamp), self.node.now(),
                                 MAX_FUTURE_STAMP)
        if isinstance(got, str):
            self.diag.count(f"dropped.goal_latent_{got}")
            self.warn.log(f"goal_latent_{got}", "dropped /wm/goal_latent (%s): the plan's goal is visual bundle %s's "
                          "latent of the goal image, %d values", got, self.latents.spec.bundle_id[:12],
                          self.latents.spec.dim)
            return
        self.goal_latent = got
        self.diag.count("goal_latents")
        if self.sim_time and self.active:
            self._plan_pending()

    def goal_for(self, t: float) -> tuple[np.ndarray | None, str | None]:
        """The plan's goal for a state at ``t``: the /goal point, or (a bundle that plans to a goal image) the goal
        image's latent; None and why when there is none yet, or (goal-image mode) the newest latent predates the
        newest goal point (a new goal was posed: its image's latent is on its way)."""
        if not self.planner.goal_image:
            return (self.goal, None) if self.goal is not None else (None, "no goal yet")
        if self.goal_latent is None:
            return None, "no goal image's latent yet"
        if predates_goal(self.goal_latent[0], self.goal_stamp, t):
            return None, "the goal image's latent predates the newest goal"
        return self.goal_latent[1], None

    def on_joint_state(self, msg) -> None:
        if self.history is None:  # unconfigured (lifecycle)
            return
        try:
            q, qd, _ = cv.joint_state_to_arrays(msg, self.names)
        except cv.ConversionError as exc:
            self.diag.count("dropped.joint_states")
            self.warn.log("joint_state", "dropped joint state: %s", exc)
            return
        stamp = cv.stamp_sec(msg.header.stamp)
        now = self.node.now()
        # a stamp far ahead of the clock would become "newest" and make every real state late: dropped
        if not math.isfinite(stamp) or (now > 0 and stamp - now > MAX_FUTURE_STAMP):
            self.diag.count("dropped.joint_states_future_stamp")
            self.warn.log("future", "dropped joint state stamped %.3f s ahead of the clock", stamp - now)
            return
        newest = self.history.newest_state
        self.history.add_state(stamp, q, qd)  # a late one too: the recording (and training) has it
        if newest is not None and stamp <= newest:
            if stamp == newest:  # a re-announced state (lock-step start): repeat its plan
                if self.active and self.sim_time and self.last_msg is not None and stamp == self.planned_stamp:
                    self.pub.publish(self.last_msg)
                return
            self.diag.count("late.joint_states")  # in the history, never planned from
            return
        self.diag.tick("joint_states")
        if self.sim_time and self.active:
            if self.latents is not None:
                if self.pending is not None:  # the previous instant's frame never gave a latent
                    self.publish_no_input(self.pending, "no camera latent of its instant")
                    self.diag.count("latent_fallback.missing")
                self.pending = stamp
                self._plan_pending()
                return
            self.plan_at(stamp)

    def on_latent(self, msg) -> None:
        """A /wm/latent: kept when it is the ensemble's visual bundle's, well formed and in order (else counted
        ``dropped.latent_<why>``); under sim time it may complete the pending instant."""
        if self.latents is None:  # unconfigured (lifecycle)
            return
        got = self.latents.check(msg.bundle_id, msg.latent, cv.stamp_sec(msg.header.stamp), self.node.now(),
                                 MAX_FUTURE_STAMP)
        why = got if isinstance(got, str) else self.latents.add(*got)
        if why is not None:
            self.diag.count(f"dropped.latent_{why}")
            self.warn.log(f"latent_{why}", "dropped /wm/latent (%s): the ensemble reads visual bundle %s's, %d "
                          "values, in capture order", why, self.latents.spec.bundle_id[:12], self.latents.spec.dim)
            return
        self.diag.tick("latents")
        if self.sim_time and self.active:
            self._plan_pending()

    def _plan_pending(self) -> None:
        """Sim time: plan the pending instant once the latent of its frame (and, planning to a goal image, the
        latent of the newest goal's image) is here."""
        period = self.cfg.latent_period or 1.0 / self.latents.spec.frame_rate
        if self.pending is not None and self.latents.covers(self.pending, period) and (
                not self.planner.goal_image or self.goal_for(self.pending)[1] is None):
            stamp, self.pending = self.pending, None
            self.plan_at(stamp)

    # ---- planning -----------------------------------------------------------------------------
    def tick(self) -> None:
        if not self.active:  # lifecycle: not active, no plans
            return
        stamp = self.history.newest_state
        if stamp is None:
            self.publish_no_input(self.node.now(), "no joint states yet")
            return
        if stamp <= self.planned_stamp:
            self.diag.count("skipped.no_new_state")
            return
        age = self.node.now() - stamp
        if age > self.cfg.max_joint_state_age:
            self.publish_no_input(stamp, f"joint states stale ({age:.3f} s old)")
            return
        self.plan_at(stamp)

    def window(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The history ending at ``t`` on the control grid (:meth:`ControlHistory.window`, before any
        command the measured position within the limits): states (H, 2n), commands (H-1, n) in force over
        the steps between them, and the command in force at ``t``. Missing velocities are 0 (as training's)."""
        states, acts, prev = self.history.window(t, self.planner.lo, self.planner.hi)
        states = np.nan_to_num(states)
        if self.latents is not None:  # each grid step's latent: its latest frame's, as training paired them
            times = t - self.dt * np.arange(self.H - 1, -1, -1)
            states = np.concatenate([states, self.latents.window(times)], axis=1)
        return states, acts, prev

    def plan_at(self, stamp: float) -> None:
        goal, why = self.goal_for(stamp)
        if goal is None:
            self.publish_no_input(stamp, why)
            return
        if self.latents is not None:
            _, _, why = self.latents.for_tick(stamp, self.cfg.max_latent_age)
            if why is not None:
                self.diag.count(f"latent_fallback.{why}")
                self.publish_no_input(stamp, f"camera latent {why} (none of visual bundle "
                                             f"{self.latents.spec.bundle_id[:12]} within {self.cfg.max_latent_age} s)")
                return
        t0 = time.perf_counter()
        states, acts, prev = self.window(stamp)
        plan = self.planner.plan(states, acts, goal, stamp=stamp, prev_command=prev)
        dt = time.perf_counter() - t0
        self.planned_stamp = stamp
        self.publish(plan, stamp)
        self.diag.latency("plan", dt)
        self.diag.tick("plans")
        self.diag.count(f"status.{plan.status_name}")
        if plan.status == STATUS_FAILED:
            self.diag.status(Diagnostics.ERROR, f"plan failed: {plan.message}")
            self.warn.log("plan_failed", "plan at %.3f failed: %s", stamp, plan.message)
            return
        self.diag.set("expected_return", plan.expected_return)
        self.diag.set("first_step_uncertainty", float(plan.uncertainty[0]))
        self.diag.set("nominal_return", plan.nominal_return)
        self.diag.set("plan.cost_spread", plan.cost_spread)  # the candidates' cost std: what temperature is against
        level = Diagnostics.OK if plan.status == STATUS_OK else Diagnostics.WARN
        self.diag.status(level, f"{plan.status_name}: {plan.message}")

    def publish(self, plan: Plan, stamp: float) -> None:
        m = self.node.msg
        msg = m("wm_control/msg/Plan", header=cv.header(m, stamp), joint_names=list(self.names), dt=float(self.dt),
                horizon=int(plan.actions.shape[0]),
                actions=np.ascontiguousarray(plan.actions, dtype=np.float64).ravel(),
                uncertainty=np.ascontiguousarray(np.nan_to_num(plan.uncertainty, nan=np.inf), dtype=np.float32),
                expected_return=float(plan.expected_return) if math.isfinite(plan.expected_return) else 0.0,
                status=int(plan.status), message=plan.message)
        self.pub.publish(msg)
        self.last_msg = msg

    def publish_no_input(self, stamp: float, why: str) -> None:
        """A plan with no actions and status NO_INPUT (so a waiting policy node knows at once)."""
        if self.sim_time:
            self.planned_stamp = stamp  # once per instant; a re-announced state gets this message again
        m = self.node.msg
        msg = m("wm_control/msg/Plan", header=cv.header(m, stamp), joint_names=list(self.names), dt=float(self.dt),
                horizon=0, actions=np.zeros(0), uncertainty=np.zeros(0, np.float32), expected_return=0.0,
                status=STATUS_NO_INPUT, message=why)
        self.pub.publish(msg)
        self.last_msg = msg
        self.diag.count(f"status.{STATUS_NAMES[STATUS_NO_INPUT]}")
        self.diag.status(Diagnostics.WARN, f"NO_INPUT: {why}")


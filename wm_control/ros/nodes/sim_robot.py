"""``sim_robot``: a MuJoCo arm that looks like a ros2_control robot on the ROS graph.

Publishes ``/joint_states`` (names from the model), ``/camera/image_raw`` (rgb8, stamped with the
capture time), ``/goal`` (PointStamped, latched) and, under ``mode: lockstep``, ``/clock``. A robot with
an object also publishes ``/goal_image`` (latched: the scene with the object at the goal) and
the object's true position on ``/sim/ground_truth/object`` with each joint state, for evaluation and
labelling only. Accepts
position targets on ``/forward_position_controller/commands`` (Float64MultiArray in ``joint_order``)
and ``/joint_trajectory_controller/joint_trajectory``; both are tracked by the arm's joint PD servo.

``mode: realtime`` steps physics on an absolute-deadline timer at ``joint_state_rate``.
``mode: lockstep`` owns sim time: each control period it publishes /clock and the state, waits for
one command (or ``lockstep_timeout`` s of wall time), then advances by 1/``control_rate``, so a slow
CPU changes no result.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from wm_control.messages import convert as cv
from wm_control.ros import topics
from wm_control.ros.api import Diagnostics, Node
from wm_control.ros.throttle import ThrottledLog
from wm_control.sim.robots import DEFAULT_ROBOT, success_radius


@dataclass
class SimRobotConfig:
    robot: str = DEFAULT_ROBOT
    """One of the simulated robots (:data:`wm_control.sim.robots.ROBOTS`)."""
    mode: str = "realtime"
    """'realtime' (wall clock) or 'lockstep' (publishes /clock, advances once per command)."""
    joint_state_rate: float = 100.0
    """Hz; physics is advanced in steps of 1/joint_state_rate in realtime mode."""
    control_rate: float = 50.0
    """Hz; lockstep advances 1/control_rate of sim time per command."""
    lockstep_timeout: float = 1.0
    """Seconds of wall time lockstep waits for a command before advancing anyway (counted)."""
    camera_rate: float = 30.0
    image_width: int = 96
    image_height: int = 96
    render: bool = True
    camera_frame_id: str = "camera"
    joint_order: list[str] = field(default_factory=list)
    """Order of Float64MultiArray command values (the controller YAML's joints); default: model order."""
    episode_s: float = 4.0
    """A new episode every episode_s seconds of sim time; 0 disables episodes."""
    episode_reset: str = "goal"
    """'goal': only a new goal, the arm stays (like a real robot); 'full': the simulator reset, episode k
    from the seed ``seed + k`` (a teleport: the policy node's safety layer holds one tick on the jump and
    starts again from where the arm now is)."""
    success_radius: float = 0.0
    """Metres from the goal (the tip's, or the object's where the task is to push one) that count as success; 0: the
    robot's (:data:`wm_control.sim.robots.SUCCESS_RADIUS`)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("realtime", "lockstep"):
            raise ValueError(f"mode must be 'realtime' or 'lockstep', not {self.mode!r}")
        for name in ("joint_state_rate", "control_rate", "camera_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.episode_reset not in ("goal", "full"):
            raise ValueError(f"episode_reset must be 'goal' or 'full', not {self.episode_reset!r}")
        if self.image_width <= 0 or self.image_height <= 0:
            raise ValueError("image_width and image_height must be > 0")
        if self.success_radius < 0:
            raise ValueError("success_radius must be >= 0 (0: the robot's)")
        if self.success_radius == 0:
            self.success_radius = success_radius(self.robot)


class SimRobotNode:
    NAME = "sim_robot"
    Config = SimRobotConfig

    def __init__(self, node: Node, cfg: SimRobotConfig):
        from wm_control.sim import ArmConfig, SimArm

        os.environ.setdefault("MUJOCO_GL", "egl")
        self.node, self.cfg = node, cfg
        self.arm = SimArm(ArmConfig(robot=cfg.robot, image_width=cfg.image_width, image_height=cfg.image_height,
                                    render=cfg.render, seed=cfg.seed))
        self.arm.connect()
        self.names = list(self.arm.joint_names)
        _, self.cmd_index, _ = cv.command_order(cfg.joint_order, self.names, "the robot's joints")  # model <- command
        self.obs = self.arm.reset(seed=cfg.seed)
        self._last_image = None  # the last camera frame published (lock-step re-announces it before the first command)
        self.episode = 0
        self.episode_start = self.arm.total_time
        self.results: list[dict] = []
        self.episode_return = 0.0
        self.commands_since_step = 0
        self.lockstep = cfg.mode == "lockstep"
        self.started = False  # lockstep: sim time starts with the first command

        make = node.msg
        self.make = make
        self.pub_js = topics.JOINT_STATES.publisher(node)
        self.pub_img = topics.CAMERA.publisher(node)
        self.pub_goal = topics.GOAL.publisher(node)
        self.pub_goal_image = topics.GOAL_IMAGE.publisher(node)
        self.pub_object = topics.GROUND_TRUTH_OBJECT.publisher(node)
        self.pub_episode = topics.EPISODE.publisher(node)  # one DiagnosticStatus per episode (`wm-control eval`)
        self.pub_clock = topics.CLOCK.publisher(node) if self.lockstep else None
        topics.POSITION_COMMANDS.subscribe(node, self.on_command)
        topics.TRAJECTORY.subscribe(node, self.on_trajectory)
        self.diag = Diagnostics(node, hardware_id=f"mujoco:{cfg.robot}")
        self.warn = ThrottledLog(node.logger, period=5.0)  # bad input: once, then a count
        node.create_timer(1.0, self.warn.flush)
        self.diag.set("joints", ",".join(self.names))
        self.next_camera = self.stamp()
        self.publish_goal()
        if getattr(node, "use_sim_time", False):
            raise ValueError("sim_robot is the clock source: set use_sim_time: false for it")
        self.publish_state()
        if self.lockstep:
            self.publish_clock()
            self._last_step_wall = time.monotonic()
            node.create_timer(1e-3, self.lockstep_tick)
        else:
            node.create_timer(1.0 / cfg.joint_state_rate, self.realtime_tick)
        node.logger.info("sim_robot %s up: joints %s, camera %dx%d @ %.0f Hz, mode %s", cfg.robot, self.names,
                         cfg.image_width, cfg.image_height, cfg.camera_rate, cfg.mode)

    # ---- time -----------------------------------------------------------------------------
    def stamp(self) -> float:
        """ROS time of the current sim state: sim time in lockstep, wall clock in realtime."""
        if self.lockstep:
            return self.arm.total_time
        return self.node.now()

    # ---- commands ---------------------------------------------------------------------------
    def on_command(self, msg) -> None:
        try:
            values = cv.multiarray_to_command(msg, len(self.names))
        except cv.ConversionError as exc:
            self.diag.count("commands_dropped")
            self.warn.log("command", "dropped command: %s", exc)
            return
        self.arm.set_position_target(values[self.cmd_index])
        self.diag.tick("commands")
        self.commands_since_step += 1

    def on_trajectory(self, msg) -> None:
        try:
            times, positions = cv.trajectory_to_arrays(msg, self.names)
        except cv.ConversionError as exc:
            self.diag.count("trajectories_dropped")
            self.warn.log("trajectory", "dropped trajectory: %s", exc)
            return
        self.arm.set_trajectory(times, positions)
        self.diag.tick("trajectories")
        self.commands_since_step += 1

    # ---- stepping ---------------------------------------------------------------------------
    def advance(self, dt: float) -> None:
        self.arm.step(dt)
        self.obs = self.arm.get_observation()
        self.episode_return += float(self.arm.reward()) * dt * self.cfg.control_rate  # per control step
        if self.cfg.episode_s > 0 and self.arm.total_time - self.episode_start >= self.cfg.episode_s - 1e-9:
            self.end_episode()

    def end_episode(self) -> None:
        d = float(self.arm.distance_to_goal())
        ok = d < self.cfg.success_radius
        result = {"episode": self.episode, "final_distance": d, "success": ok, "return": self.episode_return,
                  "duration": self.arm.total_time - self.episode_start}
        self.results.append(result)
        self.pub_episode.publish(self.make(
            "diagnostic_msgs/msg/DiagnosticStatus", level=0, name=f"{self.node.name}/episode",
            message="success" if ok else "miss", hardware_id=f"mujoco:{self.cfg.robot}",
            values=[self.make("diagnostic_msgs/msg/KeyValue", key=k, value=repr(v)) for k, v in result.items()]))
        n_ok = sum(r["success"] for r in self.results)
        self.node.logger.info("episode %d: final distance %.4f m (%s); %d/%d successful", self.episode, d,
                              "success" if ok else "miss", n_ok, len(self.results))
        self.diag.set("episodes", len(self.results))
        self.diag.set("successes", n_ok)
        self.diag.set("last_final_distance", d)
        self.episode += 1
        # full: episode k starts from the reset seeded seed + k (the starts of `eval push` with that seed)
        self.obs = self.arm.reset(seed=self.cfg.seed + self.episode) if self.cfg.episode_reset == "full" \
            else self.arm.new_goal()
        self.episode_start = self.arm.total_time
        self.episode_return = 0.0
        self.publish_goal()

    def publish_state(self) -> None:
        t = self.stamp()
        o = self.obs
        self.pub_js.publish(cv.make_joint_state(self.make, t, self.names, o.q, o.qd, o.effort))
        self.diag.tick("joint_states")
        if o.object is not None:
            self.pub_object.publish(cv.make_point(self.make, t, o.object))
        if self.cfg.render and t + 1e-9 >= self.next_camera:
            img = self.arm.render()  # captured now: the stamp is the capture time
            self._last_image = cv.make_image(self.make, self.stamp(), img, self.cfg.camera_frame_id)
            self.pub_img.publish(self._last_image)
            self.diag.tick("camera")
            period = 1.0 / self.cfg.camera_rate
            self.next_camera = max(self.next_camera + period, t - period)

    def publish_goal(self) -> None:
        t = self.stamp()
        self.pub_goal.publish(cv.make_point(self.make, t, self.obs.goal))
        if self.cfg.render and self.obs.object is not None:
            self.pub_goal_image.publish(cv.make_image(self.make, t, self.arm.goal_image(), self.cfg.camera_frame_id))

    def realtime_tick(self) -> None:
        self.advance(1.0 / self.cfg.joint_state_rate)
        self.publish_state()
        self.diag.set("sim_time", self.arm.total_time)

    def lockstep_tick(self) -> None:
        waited = time.monotonic() - self._last_step_wall
        if not self.started:
            # no controller yet: do not advance; re-announce the state so a late joiner can act on it
            if self.commands_since_step == 0:
                if waited > 0.5:
                    shown = self._last_image
                    self.publish_state()
                    if shown is not None and shown is self._last_image:
                        self.pub_img.publish(shown)  # the instant's frame too (a camera policy waits for it)
                    self.publish_clock()
                    self._last_step_wall = time.monotonic()
                return
            self.started = True
            self.node.logger.info("lockstep: first command received, sim time runs")
        if self.commands_since_step == 0 and waited < self.cfg.lockstep_timeout:
            return
        if self.commands_since_step == 0:
            self.diag.count("lockstep_timeouts")
        self.commands_since_step = 0
        self.advance(1.0 / self.cfg.control_rate)
        self.publish_state()
        self.publish_clock()
        self._last_step_wall = time.monotonic()

    def publish_clock(self) -> None:
        self.pub_clock.publish(self.make("rosgraph_msgs/msg/Clock",
                                         clock=self.make("builtin_interfaces/msg/Time",
                                                         **cv.time_fields(self.arm.total_time))))

    def close(self) -> None:
        self.arm.disconnect()


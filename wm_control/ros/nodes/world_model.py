"""``world_model``: the visual world model (distilled causal student with a KV cache) as a node; the
core is :class:`wm_control.world.stream.StreamingWorldModel`.

Inputs: ``/wm/frame`` (rgb8 at the bundle's camera size, from camera_ingest, stamped with the capture
time), ``/goal_image`` (latched: the goal as a picture; resized to the model's frame, encoded, and its latent
published on ``/wm/goal_latent``, latched, with the goal image's stamp: the goal-image mode), the executed commands ``/forward_position_controller/commands`` (Float64MultiArray in
``joint_order``), ``/joint_states`` (by name), and, for the preview, ``/teleop/command`` (JointState
targets by name) and ``/wm/mode`` (std_msgs/String, latched).

For every frame: the JEPA latent is published on ``/wm/latent`` (``wm_control/msg/LatentState``:
stamp = the frame's capture stamp, the bundle id, the latent, the latest joint positions and
velocities by name, ``reset`` true when the cache was empty), and the student takes one step with the
command in force (the latest executed command; before any, the measured position), which writes the
frame into its KV cache. Every ``preview_every`` frames ``/wm/preview`` (sensor_msgs/Image, rgb8) shows
the decoded predictions of the next ``preview_steps`` frames side by side, left to right, under the
current command held: the teleop target in teleop mode, else the executed command.

The cache is emptied on a gap in the stream: a frame more than ``max_gap`` frame periods after the
previous one (``resets.gap``), or a stamp that jumps back (``resets.time_jump``: a bag loop, a sim
reset). A frame with the previous one's stamp is not encoded again: its latent is published again
(``repeated``: a lock-step simulator re-announces its instant until a controller answers, and a controller
that subscribed after the first latent needs it); a frame of the wrong
size or encoding is dropped (``dropped.malformed``) with a rate-limited warning.

``/diagnostics``: ``latency.p50_ms``/``p99_ms`` (frame arrival -> latent published, i.e. encode + step),
``preview.p50_ms``, ``frame_age.p50_ms`` (capture -> latent published), frame and preview rates,
``surprise.p50`` (RMS, in normalised latent units, between the student's prediction of a frame and
the frame's latent: where the model is out of its depth, the preview is not to be trusted), resets
and drops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from wm_control.messages import convert as cv
from wm_control.ros import topics
from wm_control.ros.api import Diagnostics, Node, Window
from wm_control.ros.throttle import ThrottledLog
from wm_control.world.bundle import load_bundle
from wm_control.world.frames import FrameSpec, image_msg_to_rgb, prepare_frame
from wm_control.world.stream import StreamingWorldModel, strip

WARN_PERIOD = 5.0


@dataclass
class WorldModelConfig:
    bundle: str = ""
    """Bundle with the visual world model (``wm-control train visual --bundle OUT``)."""
    bundle_id: str = ""
    """Pin: refuse a bundle whose id (64 hex digits, printed by `wm-control export`) differs; empty: no pin."""
    device: str = "auto"
    """auto | tensorrt | cuda | cpu"""
    preview_steps: int = 8
    """Predicted frames in each preview (0: no preview)."""
    preview_every: int = 1
    """A preview every this many frames."""
    max_gap: float = 2.5
    """Frame periods; a longer gap between two frames' stamps empties the KV cache."""
    joint_order: list[str] = field(default_factory=list)
    """Order of the command topic's Float64MultiArray values; default: the bundle's joint names."""
    frame_topic: str = topics.FRAME.name
    command_topic: str = topics.POSITION_COMMANDS.name
    max_command_age: float = 0.5
    """Seconds; an older executed command is not used for the preview (the measured position is held)."""

    def __post_init__(self) -> None:
        if self.preview_steps < 0 or self.preview_steps > 64:
            raise ValueError("preview_steps must be in 0..64")
        if self.preview_every < 1:
            raise ValueError("preview_every must be >= 1")
        if not self.max_gap > 1:
            raise ValueError("max_gap must be > 1 frame period")


class WorldModelNode:
    NAME = "world_model"
    Config = WorldModelConfig

    def __init__(self, node: Node, cfg: WorldModelConfig):
        if not cfg.bundle:
            raise ValueError("parameter 'bundle' is required (a visual world model bundle, made by "
                             "`wm-control train visual --bundle OUT`)")
        self.node, self.cfg = node, cfg
        self.bundle = load_bundle(cfg.bundle, expect_id=cfg.bundle_id or None)
        self.wm = StreamingWorldModel(self.bundle, cfg.device)  # sessions built and warmed up here
        self.names = self.bundle.joint_names
        self.order, self.from_order, _ = cv.command_order(cfg.joint_order, self.names)
        self.period = 1.0 / self.wm.frame_rate
        self.q: np.ndarray | None = None
        self.qd: np.ndarray | None = None
        self.command: np.ndarray | None = None
        self.command_t = -np.inf
        self.teleop: np.ndarray | None = None
        self.teleop_t = -np.inf
        self.mode = "autonomous"
        self.last_stamp: float | None = None
        self.last_latent_msg = None  # the latest /wm/latent (published again for a repeated frame)
        self.pending_pred: np.ndarray | None = None
        self.frames = 0
        self.lat_pub = topics.LATENT.publisher(node)
        self.prev_pub = topics.PREVIEW.publisher(node)
        topics.POSITION_COMMANDS.subscribe(node, self.on_command, cfg.command_topic)
        topics.JOINT_STATES.subscribe(node, self.on_joint_state)
        topics.TELEOP_COMMAND.subscribe(node, self.on_teleop)
        topics.MODE.subscribe(node, self.on_mode)
        topics.FRAME.subscribe(node, self.on_frame, cfg.frame_topic)
        self.goal_pub = topics.GOAL_LATENT.publisher(node)
        topics.GOAL_IMAGE.subscribe(node, self.on_goal_image)
        self.diag = Diagnostics(node, hardware_id=f"bundle:{self.bundle.id}")
        self.warn = ThrottledLog(node.logger, period=WARN_PERIOD)
        node.create_timer(1.0, self.warn.flush)
        self.surprise = Window(300)
        self.diag.set("providers", ",".join(self.wm.providers))
        self.diag.set("window", self.wm.window)
        self.diag.status(Diagnostics.WARN, "waiting for frames")
        node.logger.info("world_model up: bundle %s (%s), %s, %dx%d frames at %.0f Hz, KV window %d, preview %d steps",
                         cfg.bundle, self.bundle.id, self.wm.providers[0], self.wm.size[1], self.wm.size[0],
                         self.wm.frame_rate, self.wm.window, cfg.preview_steps)

    # ---- inputs -------------------------------------------------------------------------------
    def _warn(self, key: str, text: str, *args) -> None:
        self.warn.log(key, text, *args)  # once, then a count every few seconds

    def on_command(self, msg) -> None:
        try:
            self.command = cv.multiarray_to_command(msg, len(self.names))[self.from_order]
            self.command_t = self.node.now()
        except cv.ConversionError as exc:
            self.diag.count("dropped.commands")
            self._warn("command", "dropped command: %s", exc)

    def on_joint_state(self, msg) -> None:
        try:
            self.q, self.qd, _ = cv.joint_state_to_arrays(msg, self.names)
        except (cv.ConversionError, ValueError) as exc:
            self.diag.count("dropped.joint_states")
            self._warn("js", "dropped joint state: %s", exc)

    def on_teleop(self, msg) -> None:
        try:
            self.teleop = cv.joint_state_to_arrays(msg, self.names)[0]
            self.teleop_t = self.node.now()
        except (cv.ConversionError, ValueError) as exc:
            self.diag.count("dropped.teleop")
            self._warn("teleop", "dropped teleop command: %s", exc)

    def on_mode(self, msg) -> None:
        self.mode = str(msg.data).strip().lower()

    def current_command(self) -> np.ndarray | None:
        """The command the robot is under: the latest executed one while fresh, else the measured position."""
        if self.command is not None and self.node.now() - self.command_t <= self.cfg.max_command_age:
            return self.command
        return None if self.q is None else self.q

    def preview_command(self) -> np.ndarray | None:
        if self.mode == "teleop" and self.teleop is not None \
                and self.node.now() - self.teleop_t <= self.cfg.max_command_age:
            return self.teleop
        return self.current_command()

    def on_goal_image(self, msg) -> None:
        """A goal image (the scene as it should end): resized to the model's frame (as camera_ingest resizes the
        camera), encoded, and its latent published on /wm/goal_latent (latched, with the image's stamp)."""
        try:
            rgb = prepare_frame(image_msg_to_rgb(msg), FrameSpec(self.wm.size[1], self.wm.size[0]))
            z = self.wm.encode(rgb)
        except (cv.ConversionError, ValueError) as exc:
            self.diag.count("dropped.goal_image")
            self._warn("goal_image", "dropped goal image: %s", exc)
            return
        self.goal_pub.publish(self._latent_msg(msg.header, z, False))
        self.diag.count("goal_images")

    # ---- frames -------------------------------------------------------------------------------
    def on_frame(self, msg) -> None:
        t_in = time.perf_counter()
        stamp = cv.stamp_sec(msg.header.stamp)
        try:
            rgb = image_msg_to_rgb(msg)
            if rgb.shape[:2] != self.wm.size:
                raise cv.ConversionError(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, the bundle wants "
                                         f"{self.wm.size[1]}x{self.wm.size[0]} (set camera_ingest width/height)")
        except (cv.ConversionError, ValueError) as exc:
            self.diag.count("dropped.malformed")
            self._warn("malformed", "dropped frame: %s", exc)
            return
        cmd = self.current_command()
        if cmd is None:
            self.diag.count("dropped.no_joint_state")
            self._warn("nojs", "frame dropped: no joint state or command yet (needed to condition the model)")
            return
        if self.last_stamp is not None:
            if stamp == self.last_stamp:
                self.diag.count("repeated")
                if self.last_latent_msg is not None:
                    self.lat_pub.publish(self.last_latent_msg)
                return
            if stamp < self.last_stamp:
                self.diag.count("resets.time_jump")
                self.node.logger.info("frame stamps jumped back %.3f s: KV cache reset", self.last_stamp - stamp)
                self._reset()
            elif stamp - self.last_stamp > self.cfg.max_gap * self.period:
                self.diag.count("resets.gap")
                self.node.logger.info("%.3f s gap in the frames: KV cache reset", stamp - self.last_stamp)
                self._reset()
        z_seen = self.wm.encode(rgb)
        if self.pending_pred is not None:
            self.surprise.add(float(np.sqrt(np.mean((self.pending_pred - z_seen) ** 2))))
            if len(self.surprise.values) % 10 == 1:
                self.diag.set("surprise.p50", round(self.surprise.pct(50), 4))
        pred = self.wm.observe(None, cmd, latent=z_seen)
        self.pending_pred = pred.next_latent
        self.last_stamp = stamp
        self.frames += 1
        self._publish_latent(msg, pred)
        self.diag.latency("latency", time.perf_counter() - t_in)
        self.diag.latency("frame_age", self.node.now() - stamp)
        self.diag.tick("frame")
        self.diag.set("frames", self.frames)
        if self.frames == 1:
            self.diag.status(Diagnostics.OK, "streaming")
        if self.cfg.preview_steps and self.frames % self.cfg.preview_every == 0:
            t0 = time.perf_counter()
            pcmd = self.preview_command()
            lat = self.wm.preview(cmd if pcmd is None else pcmd, self.cfg.preview_steps)
            img = strip(self.wm.decode(lat))
            self.prev_pub.publish(cv.make_image(self.node.msg, stamp, img, frame_id=msg.header.frame_id or "camera"))
            self.diag.latency("preview", time.perf_counter() - t0)
            self.diag.tick("preview")

    def _reset(self) -> None:
        self.wm.reset()
        self.pending_pred = None

    def _latent_msg(self, header, latent: np.ndarray, reset: bool):
        q = self.q if self.q is not None else np.zeros(len(self.names))
        qd = self.qd if self.qd is not None else np.zeros(len(self.names))
        return self.node.msg("wm_control/msg/LatentState", header=header, bundle_id=self.bundle.id,
                             latent=np.asarray(latent, np.float32), joint_names=list(self.names),
                             position=np.asarray(q, np.float64), velocity=np.asarray(qd, np.float64),
                             uncertainty=0.0, reset=bool(reset))

    def _publish_latent(self, frame_msg, pred) -> None:
        self.last_latent_msg = self._latent_msg(frame_msg.header, pred.latent, pred.reset)
        self.lat_pub.publish(self.last_latent_msg)

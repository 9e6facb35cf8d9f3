"""Simulated position-servoed robot arm built on the Gymnasium MuJoCo assets.

The :class:`SimArm` driver mimics a ros2_control robot whose joints expose a
position command interface: a PD servo loop (``kp*(q_target - q) - kd*qd``)
runs at every physics substep and its torque is mapped onto the model's motor
actuators, saturating at their ``ctrlrange`` like real hardware would.
Pure MuJoCo + numpy: no ROS, no Gymnasium ``Env`` classes.

Robots: ``reacher`` and ``pusher`` (Gymnasium's planar tasks, 2-D goals on the table) and ``panda`` (the
Franka Panda from ``gymnasium-robotics`` in a scene of our own, :mod:`wm_control.sim.panda`: a 3-D
reach goal for its ``tcp``, gravity compensated like the real arm's controller does).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wm_control.sim import panda
from wm_control.sim.robots import GOAL_DIMS as _GOAL_DIMS
from wm_control.sim.robots import ROBOTS

_GL_HINT = ("For headless use set MUJOCO_GL=egl and install Mesa EGL "
            "(e.g. apt install libegl1 libgl1-mesa-dri)")
try:  # mujoco picks its GL backend from MUJOCO_GL at import time
    import mujoco
except (AttributeError, ImportError, RuntimeError) as _e:  # pragma: no cover - environment specific
    raise RuntimeError(
        f"could not import mujoco with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: {_e}. {_GL_HINT}."
    ) from _e


# Per-robot constants. Pusher uses Gymnasium's Pusher-v5 model when present, else
# the original asset.
_XML = {"reacher": ("reacher.xml",), "pusher": ("pusher_v5.xml", "pusher.xml")}
_TIP_BODY = {"reacher": "fingertip", "pusher": "tips_arm", "panda": panda.TIP_BODY}
_GOAL_BODY = {"reacher": "target", "pusher": "goal", "panda": panda.GOAL_BODY}
# planar robots move their goal body on two slide joints; the panda's goal is a mocap body
_GOAL_JOINTS = {"reacher": ("target_x", "target_y"), "pusher": ("goal_slidex", "goal_slidey"), "panda": None}
_OBJECT_BODY = {"reacher": None, "pusher": "object", "panda": None}
_OBJECT_JOINTS = ("obj_slidex", "obj_slidey")
# Goal region. Planar robots: (centre_x, centre_y, radius) in world xy, uniform over the disc
# (reacher: Gymnasium samples |goal| < 0.2 uniformly; pusher: goal is fixed). Panda: a box
# (x0, y0, z0, x1, y1, z1) in world m, uniform over it.
_GOAL_REGION = {"reacher": (0.0, 0.0, 0.2), "pusher": (0.4, -0.05, 0.12), "panda": panda.GOAL_BOX}
# Pusher: the object starts uniformly in this box (x0, y0, x1, y1; world m, on the table) at least
# _PUSH_DIST[0] and at most _PUSH_DIST[1] from the goal; the goals lie beyond it (away from the shoulder at y = -0.6), so every
# push runs roughly away from the robot, across the whole workspace the camera sees.
_OBJECT_REGION = {"pusher": (0.3, -0.4, 0.6, -0.2)}
_PUSH_DIST = (0.15, 0.3)  # object-goal distance at the start (m)
# PD gains (N m / rad, N m s / rad). Reacher joints: inertia ~1 (armature).
_KP = {"reacher": (200.0, 200.0), "pusher": (40.0, 40.0, 10.0, 20.0, 10.0, 10.0, 10.0), "panda": panda.KP}
_KD = {"reacher": (27.0, 27.0), "pusher": (11.0, 9.0, 1.2, 2.5, 1.2, 1.2, 1.2), "panda": panda.KD}


def gym_asset_dir() -> str:
    """Directory of Gymnasium's MuJoCo XML assets."""
    import gymnasium.envs.mujoco as gym_mujoco

    return os.path.join(os.path.dirname(gym_mujoco.__file__), "assets")


def _xml_path(robot: str) -> str:
    d = gym_asset_dir()
    for name in _XML[robot]:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"no Gymnasium asset for robot {robot!r} in {d}")


@dataclass
class ArmConfig:
    """Configuration of a :class:`SimArm`.

    ``kp``/``kd`` may be scalars or per-joint sequences; ``None`` picks the
    robot's defaults. ``goal_region`` is ``(cx, cy, radius)`` in world xy
    (goal sampled uniformly in that disc) for the planar robots and a box
    ``(x0, y0, z0, x1, y1, z1)`` (uniform in it) for the panda; ``None`` uses
    the robot's region (Gymnasium's for the planar ones).
    ``object_mass`` (kg, pusher only) replaces the asset's ~8e-6 kg object,
    whose contacts MuJoCo makes so soft that the arm passes through it;
    ``None`` keeps the asset value.
    """

    robot: str = "reacher"
    physics_dt: float = 0.002
    kp: float | Sequence[float] | None = None
    kd: float | Sequence[float] | None = None
    image_width: int = 96
    image_height: int = 96
    seed: int = 0
    goal_region: tuple[float, ...] | None = None
    render: bool = True
    object_mass: float | None = 0.02
    object_region: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"unknown robot {self.robot!r}; expected one of {ROBOTS}")
        if not (np.isfinite(self.physics_dt) and self.physics_dt > 0):
            raise ValueError(f"physics_dt must be a positive number, got {self.physics_dt}")
        if self.image_width <= 0 or self.image_height <= 0:
            raise ValueError("image_width and image_height must be positive")
        n = len(_KP[self.robot])
        self.kp = self._gains(self.kp, _KP[self.robot], n, "kp")
        self.kd = self._gains(self.kd, _KD[self.robot], n, "kd")
        if self.object_mass is not None and not self.object_mass > 0:
            raise ValueError("object_mass must be positive or None")
        if self.object_region is None:
            self.object_region = _OBJECT_REGION.get(self.robot, (0.0, 0.0, 0.0, 0.0))
        o = tuple(float(v) for v in self.object_region)
        if len(o) != 4 or not (o[0] <= o[2] and o[1] <= o[3]) or not all(np.isfinite(o)):
            raise ValueError("object_region must be a box (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1")
        self.object_region = o
        if self.goal_region is None:
            self.goal_region = _GOAL_REGION[self.robot]
        g = tuple(float(v) for v in self.goal_region)
        if _GOAL_DIMS[self.robot] == 2 and (len(g) != 3 or g[2] < 0):
            raise ValueError("goal_region must be (cx, cy, radius>=0)")
        if _GOAL_DIMS[self.robot] == 3 and (len(g) != 6 or not all(a <= b for a, b in zip(g[:3], g[3:]))):
            raise ValueError("goal_region must be a box (x0, y0, z0, x1, y1, z1) with x0 <= x1 etc.")
        if not all(np.isfinite(g)):
            raise ValueError("goal_region must be finite")
        self.goal_region = g

    @staticmethod
    def _gains(value, default, n: int, name: str) -> np.ndarray:
        g = np.broadcast_to(np.asarray(default if value is None else value, float), (n,)).copy()
        if not np.all(np.isfinite(g)) or np.any(g < 0):
            raise ValueError(f"{name} must be finite and non-negative")
        return g


@dataclass
class Observation:
    """Robot state snapshot (joint arrays are in ``SimArm.joint_names`` order)."""

    time: float
    q: np.ndarray
    qd: np.ndarray
    effort: np.ndarray
    goal: np.ndarray
    fingertip: np.ndarray
    object: np.ndarray | None = None


class SimArm:
    """Position-servoed MuJoCo arm with a LeRobot-style driver interface."""

    def __init__(self, config: ArmConfig | None = None) -> None:
        self.config = config or ArmConfig()
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._renderer: mujoco.Renderer | None = None
        self.total_time = 0.0
        self.joint_names: list[str] = []
        self.position_limits = np.zeros((0, 2))
        self.continuous = np.zeros(0, bool)
        self._rng = np.random.default_rng(self.config.seed)

    # ------------------------------------------------------------------ setup
    @property
    def is_connected(self) -> bool:
        return self.model is not None

    def connect(self) -> None:
        """Load the model, build indices and (optionally) the offscreen renderer."""
        cfg = self.config
        m = panda.panda_model() if cfg.robot == "panda" else mujoco.MjModel.from_xml_path(_xml_path(cfg.robot))
        m.opt.timestep = cfg.physics_dt
        obj = _OBJECT_BODY[cfg.robot]
        if obj is not None and cfg.object_mass is not None:
            b = m.body(obj).id
            m.body_inertia[b] *= cfg.object_mass / m.body_mass[b]
            m.body_mass[b] = cfg.object_mass
            mujoco.mj_setConst(m, mujoco.MjData(m))  # refresh invweight0 (contact softness)
        self.model, self.data = m, mujoco.MjData(m)
        self._kin = mujoco.MjData(m)

        hinge = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        self._jnt = np.array(hinge, int)
        self.joint_names = [m.joint(j).name for j in hinge]
        self._qadr = m.jnt_qposadr[self._jnt].copy()
        self._dadr = m.jnt_dofadr[self._jnt].copy()
        n = len(hinge)
        self.continuous = ~m.jnt_limited[self._jnt].astype(bool)
        lim = m.jnt_range[self._jnt].copy()
        lim[self.continuous] = (-np.pi, np.pi)
        self.position_limits = lim
        # actuator for each arm joint (motors with gear)
        self._act = np.full(n, -1, int)
        for a in range(m.nu):
            if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
                k = np.flatnonzero(self._jnt == m.actuator_trnid[a, 0])
                if k.size:
                    self._act[k[0]] = a
        if np.any(self._act < 0):
            raise RuntimeError("every arm joint needs a joint-transmission actuator")
        self._gear = m.actuator_gear[self._act, 0].copy()
        limited, crange = m.actuator_ctrllimited[self._act].astype(bool), m.actuator_ctrlrange[self._act]
        self._ctrl_lo = np.where(limited, crange[:, 0], -np.inf)
        self._ctrl_hi = np.where(limited, crange[:, 1], np.inf)
        self._tip = m.body(_TIP_BODY[cfg.robot]).id
        self._goal = m.body(_GOAL_BODY[cfg.robot]).id
        def qadr(names: Sequence[str]) -> np.ndarray:
            return np.array([m.jnt_qposadr[m.joint(j).id] for j in names])

        self.goal_dims = _GOAL_DIMS[cfg.robot]
        goal_joints = _GOAL_JOINTS[cfg.robot]
        self._goal_q = None if goal_joints is None else qadr(goal_joints)
        self._goal_mocap = int(m.body_mocapid[self._goal])  # -1 unless a mocap body (panda)
        # joint-transmission actuators that are not the arm's (the panda's finger servos, held)
        self._held_act = np.array([a for a in range(m.nu) if a not in set(self._act)], int)
        self._obj = None if obj is None else m.body(obj).id
        self._obj_q = None if obj is None else qadr(_OBJECT_JOINTS)
        # world xy of the goal/object bodies at qpos0 (slide offsets are relative to these)
        mujoco.mj_kinematics(m, self._kin)
        self._goal_xy0 = self._kin.xpos[self._goal, :2].copy()
        self._obj_xy0 = None if obj is None else self._kin.xpos[self._obj, :2].copy()

        self._kp, self._kd = np.asarray(cfg.kp, float), np.asarray(cfg.kd, float)
        if self._kp.shape != (n,) or self._kd.shape != (n,):
            raise ValueError(f"kp/kd must have {n} entries for {cfg.robot}")
        self._q_target = np.zeros(n)
        self._traj: tuple[np.ndarray, np.ndarray] | None = None
        self._effort = np.zeros(n)

        if cfg.render:
            vis = m.vis.global_  # the offscreen buffer must hold the image
            vis.offwidth = max(vis.offwidth, cfg.image_width)
            vis.offheight = max(vis.offheight, cfg.image_height)
            try:
                self._renderer = mujoco.Renderer(m, cfg.image_height, cfg.image_width)
            except Exception as e:  # GL backends raise various exception types
                self.model = self.data = None
                raise RuntimeError(
                    "could not initialise MuJoCo offscreen rendering "
                    f"(MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {e}. {_GL_HINT}, "
                    "or use ArmConfig(render=False)."
                ) from e
            # shadows cost ~15x the render time under software (Mesa) GL
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            if cfg.robot == "panda":  # reflections cost as much again (the scene has none anyway)
                self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            self._camera = self._make_camera()
        self.reset()

    def disconnect(self) -> None:
        """Free the renderer and drop the model."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.model = self.data = None

    def _require(self) -> None:
        if self.model is None:
            raise RuntimeError("SimArm is not connected; call connect() first")

    def _make_camera(self) -> mujoco.MjvCamera | str:
        if self.config.robot == "panda":
            return "workspace"  # the scene's fixed camera
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        # top-down, x to the right and y up in the image
        if self.config.robot == "reacher":  # arm reach 0.21 m; view +-0.26 m
            cam.lookat[:], cam.distance = (0.0, 0.0, 0.0), 0.62
        else:  # the pushing workspace: object and goal regions with a margin, the arm reaching in
            cam.lookat[:], cam.distance = (0.45, -0.2, -0.3), 0.9
        cam.elevation, cam.azimuth = -90.0, 90.0
        return cam

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        """Simulation time since the last reset (s)."""
        self._require()
        return float(self.data.time)

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    @property
    def q_target(self) -> np.ndarray:
        """The current servo target."""
        return self._q_target.copy()

    def reset(self, seed: int | None = None) -> Observation:
        """Randomise the state like Gymnasium does and sample a new goal."""
        self._require()
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        m, d, rng = self.model, self.data, self._rng
        mujoco.mj_resetData(m, d)
        goal = self._sample_goal()
        qpos, qvel = m.qpos0.copy(), rng.uniform(-0.005, 0.005, m.nv)
        if self.config.robot == "panda":  # near the ready pose, fingers open and still
            qa = np.asarray(panda.HOME) + rng.uniform(-0.1, 0.1, self.n_joints)
            qpos[self._qadr] = self._clip(qa)
            qvel[:] = 0.0
            qvel[self._dadr] = rng.uniform(-0.005, 0.005, self.n_joints)
            for a in self._held_act:
                qpos[m.jnt_qposadr[m.actuator_trnid[a, 0]]] = panda.FINGER_OPENING
        elif self.config.robot == "reacher":
            qpos += rng.uniform(-0.1, 0.1, m.nq)
        else:  # pusher: arm at zero, object in its region, far enough from the goal
            qpos[self._obj_q] = m.qpos0[self._obj_q] + (self._sample_object(goal) - self._obj_xy0)
            qvel[self._obj_q] = 0.0
        d.qpos[:], d.qvel[:] = qpos, qvel
        d.ctrl[:] = 0.0
        if self._held_act.size:
            d.ctrl[self._held_act] = panda.FINGER_OPENING
        self._place_goal(goal)
        mujoco.mj_forward(m, d)
        self._q_target = self.q
        self._traj = None
        self._effort[:] = 0.0
        return self.get_observation()

    def new_goal(self) -> Observation:
        """Sample a new goal and leave the arm where it is, as on a real robot: an episode boundary without
        teleporting anything the controller is holding. The pusher's object is set down anew in its region
        (as a person resets the scene), clear of the gripper."""
        self._require()
        m, d = self.model, self.data
        goal = self._sample_goal()
        if self._obj is not None:
            tip = d.xpos[self._tip, :2]
            obj = self._sample_object(goal, avoid=tip)
            d.qpos[self._obj_q] = m.qpos0[self._obj_q] + (obj - self._obj_xy0)
            d.qvel[self._obj_q] = 0.0
        self._place_goal(goal)
        mujoco.mj_forward(m, d)
        return self.get_observation()

    def _sample_object(self, goal: np.ndarray, avoid: np.ndarray | None = None) -> np.ndarray:
        """An object position in ``object_region`` between _PUSH_DIST from ``goal`` (and 0.12 m from ``avoid``)."""
        lo, hi = np.split(np.asarray(self.config.object_region, float), 2)
        obj = (lo + hi) / 2
        for _ in range(1000):
            obj = self._rng.uniform(lo, hi)
            if _PUSH_DIST[0] <= np.linalg.norm(obj - goal) <= _PUSH_DIST[1] and \
                    (avoid is None or np.linalg.norm(obj - avoid) > 0.12):
                break
        return obj

    def _sample_goal(self) -> np.ndarray:
        """A goal from ``goal_region``: xy in the disc (planar robots) or xyz in the box (panda)."""
        rng, g = self._rng, self.config.goal_region
        if self.goal_dims == 3:
            return rng.uniform(g[:3], g[3:])
        cx, cy, r = g
        rho, phi = r * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        return np.array([cx + rho * np.cos(phi), cy + rho * np.sin(phi)])

    def _place_goal(self, goal: np.ndarray) -> None:
        m, d = self.model, self.data
        if self._goal_mocap >= 0:
            d.mocap_pos[self._goal_mocap] = goal
            return
        d.qpos[self._goal_q] = m.qpos0[self._goal_q] + (goal - self._goal_xy0)
        d.qvel[self._goal_q] = 0.0

    # --------------------------------------------------------------- commands
    def _clip(self, q: np.ndarray) -> np.ndarray:
        lo, hi = self.position_limits[:, 0], self.position_limits[:, 1]
        return np.where(self.continuous, q, np.clip(q, lo, hi))

    def _check(self, q: np.ndarray, name: str) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape[-1:] != (self.n_joints,):
            raise ValueError(f"{name} must have {self.n_joints} joint values, got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{name} contains non-finite values: {q}")
        return q

    def set_position_target(self, q_target: np.ndarray) -> np.ndarray:
        """Set the servo target (``joint_names`` order); returns the clipped target applied."""
        self._require()
        q = self._clip(self._check(q_target, "q_target").copy())
        self._q_target, self._traj = q, None
        return q.copy()

    def set_trajectory(self, times: np.ndarray, positions: np.ndarray) -> None:
        """Follow a trajectory; ``times`` are seconds from now (time_from_start).

        The target is linearly interpolated (from the current target if
        ``times[0] > 0``) and holds the last point afterwards.
        """
        self._require()
        t = np.asarray(times, dtype=float).reshape(-1)
        p = self._check(positions, "positions")
        if p.ndim != 2 or p.shape[0] != t.size or t.size == 0:
            raise ValueError(f"positions must be (k, {self.n_joints}) with k = len(times) >= 1")
        if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) <= 0):
            raise ValueError("times must be finite, non-negative and strictly increasing")
        p = self._clip(p.copy())
        if t[0] > 0:
            t, p = np.concatenate([[0.0], t]), np.vstack([self._q_target, p])
        self._traj = (t + self.data.time, p)
        self._update_target()

    def _update_target(self) -> None:
        if self._traj is None:
            return
        t, p = self._traj
        now = self.data.time
        if now >= t[-1]:
            self._q_target = p[-1].copy()
        else:
            self._q_target = np.array([np.interp(now, t, p[:, i]) for i in range(self.n_joints)])

    def step(self, duration: float) -> Observation:
        """Advance physics by ``duration`` s (rounded to whole substeps, at least one)."""
        self._require()
        if not np.isfinite(duration) or duration < 0:
            raise ValueError(f"duration must be finite and >= 0, got {duration}")
        m, d = self.model, self.data
        n_sub = max(1, round(float(duration) / m.opt.timestep))
        qa, da, act = self._qadr, self._dadr, self._act
        for _ in range(n_sub):
            if self._traj is not None:
                self._update_target()
            tau = self._kp * (self._q_target - d.qpos[qa]) - self._kd * d.qvel[da]
            ctrl = np.clip(tau / self._gear, self._ctrl_lo, self._ctrl_hi)
            d.ctrl[act] = ctrl
            mujoco.mj_step(m, d)
            # joint torque: the PD command; on the panda plus the gravity compensation, both limited
            self._effort = d.qfrc_actuator[da].copy() if self._held_act.size else ctrl * self._gear
        self._update_target()  # q_target reflects the trajectory at the current time
        self.total_time += n_sub * m.opt.timestep
        return self.get_observation()

    # ------------------------------------------------------------ observation
    def _tip_pos(self) -> np.ndarray:
        return self.data.xpos[self._tip].copy()

    def get_observation(self) -> Observation:
        """Current state: joints, applied torques, goal/fingertip/object positions."""
        self._require()
        d = self.data
        return Observation(
            time=float(d.time),
            q=d.qpos[self._qadr].copy(),
            qd=d.qvel[self._dadr].copy(),
            effort=self._effort.copy(),
            goal=d.xpos[self._goal].copy(),
            fingertip=self._tip_pos(),
            object=None if self._obj is None else d.xpos[self._obj].copy(),
        )

    def render(self) -> np.ndarray:
        """RGB image (H, W, 3) uint8 from the fixed workspace camera."""
        self._require()
        if self._renderer is None:
            raise RuntimeError("rendering disabled (ArmConfig.render=False)")
        self._renderer.update_scene(self.data, camera=self._camera)
        return np.ascontiguousarray(self._renderer.render())

    def goal_image(self) -> np.ndarray:
        """The goal as a picture (V-JEPA 2-AC's goal image): the scene rendered with the object at the goal
        and the arm at its rest pose. Pusher only; the simulation state is left as it was."""
        self._require()
        if self._obj is None:
            raise ValueError(f"{self.config.robot} has no object: its goal is a point, not an image")
        m, d = self.model, self.data
        qpos, qvel = d.qpos.copy(), d.qvel.copy()
        try:
            d.qpos[self._qadr] = 0.0
            d.qpos[self._obj_q] = m.qpos0[self._obj_q] + (d.xpos[self._goal, :2] - self._obj_xy0)
            mujoco.mj_kinematics(m, d)
            return self.render()
        finally:
            d.qpos[:], d.qvel[:] = qpos, qvel
            mujoco.mj_forward(m, d)

    def distance_to_goal(self) -> float:
        """Reacher: fingertip-target distance; pusher: object-goal distance (both in xy;
        the pusher goal disc lies 4.8 cm below the object centre); panda: tcp-goal distance in xyz."""
        self._require()
        d, k = self.data, self.goal_dims
        body = self._tip if self._obj is None else self._obj
        return float(np.linalg.norm(d.xpos[body, :k] - d.xpos[self._goal, :k]))

    def reward(self) -> float:
        """Gymnasium-like reward using the last (normalised) actuator controls (the panda's torques
        as fractions of their limits)."""
        self._require()
        d = self.data
        u = d.ctrl[self._act] / self._ctrl_hi if self.config.robot == "panda" else d.ctrl[self._act]
        ctrl = -0.1 * float(np.sum(np.square(u)))
        if self._obj is None:
            return -float(np.linalg.norm(d.xpos[self._tip] - d.xpos[self._goal])) + ctrl
        near = np.linalg.norm(d.xpos[self._obj] - d.xpos[self._tip])
        dist = np.linalg.norm(d.xpos[self._obj] - d.xpos[self._goal])
        return float(-dist - 0.5 * near + ctrl)

    # ------------------------------------------------------------- kinematics
    def fingertip_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fingertip position (3,) and translational Jacobian (3, n) at joint positions ``q``.

        Pure kinematics on a private MjData; the simulation state is untouched.
        """
        pos, _, jacp, _ = self.fingertip_pose_jacobian(q)
        return pos, jacp

    def fingertip_pose_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fingertip position (3,), rotation matrix (3, 3) and translational / rotational
        Jacobians (3, n each, world frame) at joint positions ``q`` (pure kinematics)."""
        self._require()
        m, k = self.model, self._kin
        k.qpos[:] = self.data.qpos
        k.qpos[self._qadr] = self._check(q, "q")
        mujoco.mj_kinematics(m, k)
        mujoco.mj_comPos(m, k)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jacBody(m, k, jacp, jacr, self._tip)
        return (k.xpos[self._tip].copy(), k.xmat[self._tip].reshape(3, 3).copy(),
                jacp[:, self._dadr].copy(), jacr[:, self._dadr].copy())

"""Behaviour policies for data collection on a :class:`~wm_control.sim.arm.SimArm`.

A policy is called as ``policy(obs, arm) -> q_target`` (joint position target
in ``arm.joint_names`` order) and has ``reset(rng)`` to start a new episode.
"""

from __future__ import annotations

import numpy as np

from wm_control.sim import panda
from wm_control.sim.arm import Observation, SimArm

# Rest postures the redundant arms' IK is pulled toward in its null space.
_POSTURE = {"panda": np.asarray(panda.HOME)}
# Per-robot default for ExpertPolicy.max_step (rad per call).
_MAX_STEP = {"panda": 0.12}


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class RandomPolicy:
    """Smooth random walk of position targets around the current joint position.

    The target velocity is an AR(1) process (``step_std`` rad per call of
    innovation); targets stay within ``max_dev`` of the measured position and
    within the position limits (the walk bounces off them).
    """

    def __init__(self, step_std: float = 0.05, seed: int | None = 0, smoothing: float = 0.8,
                 max_dev: float = 0.5) -> None:
        self.step_std, self.smoothing, self.max_dev = float(step_std), float(smoothing), float(max_dev)
        self.reset(seed)

    def reset(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = _as_rng(rng)
        self._v: np.ndarray | None = None
        self._target: np.ndarray | None = None

    def __call__(self, obs: Observation, arm: SimArm) -> np.ndarray:
        q = obs.q
        if self._target is None or self._target.shape != q.shape:
            self._target, self._v = q.copy(), np.zeros_like(q)
        self._v = self.smoothing * self._v + self.step_std * self.rng.standard_normal(q.shape)
        t = np.clip(self._target + self._v, q - self.max_dev, q + self.max_dev)
        lo, hi = arm.position_limits.T
        out = (t < lo) | (t > hi)
        self._v[out] *= -1.0
        self._target = np.clip(t, lo, hi)
        return self._target.copy()


class ExpertPolicy:
    """Scripted expert using damped-least-squares differential IK.

    Reacher: drive the fingertip to the goal (in xy). Panda: drive the tcp to the 3-D goal by DLS on
    the 7 arm joints (the fingers are held by the sim), with a null-space pull toward the ready
    pose that keeps the redundant arm's elbow up and its hand down. Pusher: place the gripper's
    cross-bar (held horizontal, perpendicular to the push direction) behind
    the object opposite the goal at hover height, descend, then push toward
    the goal, re-approaching if the object slips off. Each call solves IK for
    the desired tip pose (a few DLS iterations on the arm's fingertip
    Jacobian, no stepping) and moves the target at most ``max_step`` rad from
    the measured ``q`` (``gain`` scales the step toward the IK solution; ``max_step=None`` is 0.3 rad,
    0.12 rad on the panda).
    ``noise`` adds Gaussian noise of std ``noise * noise_std`` rad to that
    step (0 = clean expert, 1 = very poor).
    """

    # pusher geometry (m): object radius 0.05 + cross-bar capsule radius 0.02
    CONTACT = 0.07
    HOVER_Z = -0.16
    PUSH_Z = -0.275
    PUSH_AHEAD = 0.06
    DONE_TOL = 0.02
    SLOW_DOWN = 0.5  # push-ahead distance per metre left to the goal
    ROT_WEIGHT = 0.1  # m per rad of orientation error in the pusher IK
    POSTURE_GAIN = 0.2  # fraction of the posture error the panda IK removes per iteration (null space)

    def __init__(self, noise: float = 0.0, gain: float = 1.0, max_step: float | None = None,
                 seed: int | None = 0, damping: float = 0.01, ik_iters: int = 15,
                 noise_std: float = 1.0) -> None:
        if noise < 0 or (max_step is not None and max_step <= 0) or gain <= 0:
            raise ValueError("noise must be >= 0, max_step and gain > 0")
        self.noise, self.gain = float(noise), float(gain)
        self.max_step = None if max_step is None else float(max_step)
        self.damping, self.ik_iters, self.noise_std = float(damping), int(ik_iters), float(noise_std)
        self.reset(seed)

    def reset(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = _as_rng(rng)
        self.stage = "approach"
        self._hold: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ IK
    def ik(self, arm: SimArm, q: np.ndarray, x_des: np.ndarray, dims: slice = slice(0, 3),
           bar_dir: np.ndarray | None = None) -> np.ndarray:
        """DLS IK towards tip position ``x_des``; with ``bar_dir`` (3,) the gripper's
        y axis (the pusher cross-bar) is also aligned with +-``bar_dir`` while the
        fingers (x axis) are kept from pointing down into the table.

        Pure kinematics, no stepping. Starts from ``q``; to escape singularities
        (e.g. the stretched reacher arm) it also tries two offset seeds and keeps
        the most accurate solution, preferring the one nearest ``q``.
        """
        best, best_cost = q, np.inf
        for offset in (0.0, 0.8, -0.8):
            qi = self._ik_from(arm, q + offset, x_des, dims, bar_dir)
            # continuous joints: take the equivalent angle nearest the current one
            qi = np.where(arm.continuous, q + (qi - q + np.pi) % (2 * np.pi) - np.pi, qi)
            cost = max(np.linalg.norm(self._error(arm, qi, x_des, dims, bar_dir)[0]), 2e-3) * 1e3
            cost += np.abs(qi - q).sum()  # accuracy first, then nearness
            if cost < best_cost:
                best, best_cost = qi, cost
        return best

    def ik_posture(self, arm: SimArm, q: np.ndarray, x_des: np.ndarray, posture: np.ndarray) -> np.ndarray:
        """DLS IK of a redundant arm toward tip position ``x_des`` (3,), starting from ``q``; each
        iteration also moves toward ``posture`` in the Jacobian's (damped) null space. Pure kinematics."""
        lo, hi = arm.position_limits.T
        qi = np.clip(q, lo, hi).astype(float)
        lam2, eye = self.damping**2, np.eye(len(qi))
        for _ in range(self.ik_iters):
            x, jac = arm.fingertip_jacobian(qi)
            e = x_des - x
            inv = jac.T @ np.linalg.inv(jac @ jac.T + lam2 * np.eye(3))  # damped pseudo-inverse
            dq = inv @ e + (eye - inv @ jac) @ (self.POSTURE_GAIN * (posture - qi))
            dq *= min(1.0, 0.5 / (np.abs(dq).max() + 1e-12))
            qi = np.clip(qi + dq, lo, hi)
        return qi

    def _error(self, arm: SimArm, q: np.ndarray, x_des: np.ndarray, dims: slice,
               bar_dir: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if bar_dir is None:
            x, jac = arm.fingertip_jacobian(q)
            return (x_des - x)[dims], jac[dims]
        x, rot, jp, jr = arm.fingertip_pose_jacobian(q)
        y_axis, f_axis = rot[:, 1], rot[:, 0]
        e_rot = np.cross(y_axis, np.sign(y_axis @ bar_dir + 1e-9) * bar_dir)
        if f_axis[2] < -0.25:  # fingers pointing down: rotate them back up to -0.25
            f_des = np.array([f_axis[0], f_axis[1], 0.0])
            f_des = f_des / (np.linalg.norm(f_des) + 1e-9) * np.sqrt(1 - 0.25**2)
            e_rot = e_rot + np.cross(f_axis, f_des + [0.0, 0.0, -0.25])
        w = self.ROT_WEIGHT
        return np.concatenate([x_des - x, w * e_rot]), np.vstack([jp, w * jr])

    def _ik_from(self, arm: SimArm, q: np.ndarray, x_des: np.ndarray, dims: slice,
                 bar_dir: np.ndarray | None) -> np.ndarray:
        lo, hi = arm.position_limits.T
        cont = arm.continuous
        qi = np.where(cont, q, np.clip(q, lo, hi)).astype(float)
        lam2 = self.damping**2
        for _ in range(self.ik_iters):
            e, jac = self._error(arm, qi, x_des, dims, bar_dir)
            if np.linalg.norm(e) < 1e-4:
                break
            dq = jac.T @ np.linalg.solve(jac @ jac.T + lam2 * np.eye(len(e)), e)
            dq *= min(1.0, 0.5 / (np.abs(dq).max() + 1e-12))
            qi = np.where(cont, qi + dq, np.clip(qi + dq, lo, hi))
        return qi

    def _limit(self, arm: SimArm, q: np.ndarray, q_des: np.ndarray) -> np.ndarray:
        dq = self.gain * (q_des - q)
        if self.noise > 0:
            dq = dq + self.noise * self.noise_std * self.rng.standard_normal(q.shape)
        step = self.max_step if self.max_step is not None else _MAX_STEP.get(arm.config.robot, 0.3)
        dq = np.clip(dq, -step, step)
        lo, hi = arm.position_limits.T
        return np.where(arm.continuous, q + dq, np.clip(q + dq, lo, hi))

    # -------------------------------------------------------------- policy
    def __call__(self, obs: Observation, arm: SimArm) -> np.ndarray:
        q = obs.q
        if arm.config.robot in _POSTURE:
            q_des = self.ik_posture(arm, q, obs.goal, _POSTURE[arm.config.robot])
        elif obs.object is None:
            q_des = self.ik(arm, q, obs.goal, dims=slice(0, 2))
        else:
            q_des = self._push(obs, arm)
        return self._limit(arm, q, q_des)

    def _push(self, obs: Observation, arm: SimArm) -> np.ndarray:
        o, g, tip, q = obs.object[:2], obs.goal[:2], obs.fingertip, obs.q
        dist = np.linalg.norm(g - o)
        u = (g - o) / max(dist, 1e-6)
        bar = np.array([-u[1], u[0], 0.0])  # horizontal, across the push direction
        behind = o - (self.CONTACT + 0.03) * u
        rel = o - tip[:2]
        along, lateral = rel @ u, abs(rel[0] * u[1] - rel[1] * u[0])
        if dist < self.DONE_TOL:
            self.stage = "done"
        elif self.stage == "done" and dist > 2 * self.DONE_TOL:
            self.stage = "approach"
        if self.stage == "push" and (lateral > 0.07 or not 0.03 < along < 0.2):
            self.stage = "approach"  # lost the object: re-approach from above
        if self.stage == "approach" and np.linalg.norm(tip[:2] - behind) < 0.02 \
                and tip[2] < self.HOVER_Z + 0.03:
            self.stage = "descend"
        if self.stage == "descend" and tip[2] < self.PUSH_Z + 0.015:
            self.stage = "push"
        if self.stage == "done":  # object at the goal: back off upwards and hold there
            if self._hold is None:
                self._hold = (np.array([*(tip[:2] - 0.03 * u), self.HOVER_Z]), bar)
            return self.ik(arm, q, self._hold[0], bar_dir=self._hold[1])
        self._hold = None
        if self.stage == "approach":
            if tip[2] < self.HOVER_Z - 0.03 and np.linalg.norm(tip[:2] - behind) > 0.03:
                x_des = np.array([*(tip[:2] - 0.03 * u), self.HOVER_Z])  # lift clear first
            else:
                x_des = np.array([*behind, self.HOVER_Z])
        elif self.stage == "descend":
            x_des = np.array([*behind, self.PUSH_Z])
        else:  # push: aim the bar past the current contact point, along the goal line
            ahead = min(self.PUSH_AHEAD, self.SLOW_DOWN * dist)
            x_des = np.array([*(o - (self.CONTACT - ahead) * u), self.PUSH_Z])
        return self.ik(arm, q, x_des, bar_dir=bar)


def make_policy(name: str, **kw) -> RandomPolicy | ExpertPolicy:
    """Create a policy by name: ``'random'`` or ``'expert'``."""
    factories = {"random": RandomPolicy, "expert": ExpertPolicy}
    if name not in factories:
        raise ValueError(f"unknown policy {name!r}; expected one of {sorted(factories)}")
    return factories[name](**kw)

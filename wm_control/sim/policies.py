"""Behaviour policies for data collection on a :class:`~wm_control.sim.arm.SimArm`.

A policy is called as ``policy(obs, arm) -> q_target`` (joint position target
in ``arm.joint_names`` order) and has ``reset(rng)`` to start a new episode.
"""

from __future__ import annotations

import numpy as np

from .arm import Observation, SimArm


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

    Reacher: drive the fingertip to the goal. Pusher: move the tip behind the
    object (opposite the goal direction), descend, then push toward the goal.
    Each call solves IK for the desired tip position (a few DLS iterations on
    ``arm.fingertip_jacobian``, no stepping) and moves the target at most
    ``max_step`` rad from the measured ``q``. ``noise`` scales Gaussian target
    noise of std ``noise * noise_std`` rad (0 = clean expert, 1 = very poor).
    """

    def __init__(self, noise: float = 0.0, gain: float = 1.0, max_step: float = 0.3,
                 seed: int | None = 0, damping: float = 0.01, ik_iters: int = 15,
                 noise_std: float = 1.0) -> None:
        if noise < 0 or max_step <= 0 or gain <= 0:
            raise ValueError("noise must be >= 0, max_step and gain > 0")
        self.noise, self.gain, self.max_step = float(noise), float(gain), float(max_step)
        self.damping, self.ik_iters, self.noise_std = float(damping), int(ik_iters), float(noise_std)
        self.reset(seed)

    def reset(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = _as_rng(rng)
        self.stage = "approach"

    # -------------------------------------------------------------- helpers
    def ik(self, arm: SimArm, q: np.ndarray, x_des: np.ndarray, dims: slice = slice(0, 3),
           active: np.ndarray | None = None,
           joint_task: tuple[np.ndarray, float, float] | None = None) -> np.ndarray:
        """DLS IK towards tip position ``x_des`` (pure kinematics, no stepping).

        ``active`` masks the joints IK may move; ``joint_task = (a, b, w)`` adds
        the soft linear task ``a @ q = b`` with weight ``w`` (m per rad).
        Starts from ``q``; if that gets stuck (e.g. at the stretched-arm
        singularity) it also tries two offset seeds and keeps the best.
        """
        active = np.ones(len(q), bool) if active is None else np.asarray(active, bool)
        best, best_cost = q, np.inf
        for offset in (0.0, 0.8, -0.8):
            qi = self._ik_from(arm, q + offset * active, x_des, dims, active, joint_task)
            # continuous joints: take the equivalent angle nearest the current one
            qi = np.where(arm.continuous, q + (qi - q + np.pi) % (2 * np.pi) - np.pi, qi)
            err = np.linalg.norm((arm.fingertip_jacobian(qi)[0] - x_des)[dims])
            cost = max(err, 2e-3) * 1e3 + np.abs(qi - q).sum()  # accuracy first, then nearness
            if cost < best_cost:
                best, best_cost = qi, cost
        return best

    def _ik_from(self, arm: SimArm, q: np.ndarray, x_des: np.ndarray, dims: slice,
                 active: np.ndarray, joint_task: tuple[np.ndarray, float, float] | None) -> np.ndarray:
        lo, hi = arm.position_limits.T
        cont = arm.continuous
        qi = np.where(cont, q, np.clip(q, lo, hi)).astype(float)
        lam2 = self.damping**2
        for _ in range(self.ik_iters):
            x, jac = arm.fingertip_jacobian(qi)
            e, jac = (x_des - x)[dims], jac[dims] * active
            if joint_task is not None:
                a, b, w = joint_task
                e = np.append(e, w * (b - a @ qi))
                jac = np.vstack([jac, w * a * active])
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
        dq = np.clip(dq, -self.max_step, self.max_step)
        lo, hi = arm.position_limits.T
        return np.where(arm.continuous, q + dq, np.clip(q + dq, lo, hi))

    # --------------------------------------------------------------- policy
    def __call__(self, obs: Observation, arm: SimArm) -> np.ndarray:
        q = obs.q
        if obs.object is None:
            q_des = self.ik(arm, q, obs.goal, dims=slice(0, 2))
        else:
            # keep the roll joints at 0 so the gripper cross-bar stays horizontal, and keep
            # the fingers about level (pitch = lift + elbow + wrist flex) so they clear the table
            names = arm.joint_names
            roll = np.array(["roll" in n for n in names])
            pitch = np.array([any(k in n for k in ("lift", "elbow_flex", "wrist_flex")) for n in names], float)
            q_des = self.ik(arm, np.where(roll, 0.0, q), self._push_tip_target(obs), active=~roll,
                            joint_task=(pitch, 0.0, self.PITCH_WEIGHT))
        return self._limit(arm, q, q_des)

    # pushing geometry (m): object radius 0.05 + gripper capsule radius 0.02
    CONTACT = 0.07
    HOVER_Z = -0.17
    PUSH_Z = -0.27
    PITCH_WEIGHT = 0.05

    def _push_tip_target(self, obs: Observation) -> np.ndarray:
        o, g, tip = obs.object[:2], obs.goal[:2], obs.fingertip
        to_goal = g - o
        dist = np.linalg.norm(to_goal)
        u = to_goal / max(dist, 1e-6)
        behind = o - (self.CONTACT + 0.03) * u
        rel = tip[:2] - o
        along, lateral = rel @ u, abs(rel[0] * u[1] - rel[1] * u[0])
        if self.stage == "push" and (along > -0.03 or lateral > 0.05):
            self.stage = "approach"  # lost the object: re-approach
        if self.stage == "approach":
            if np.linalg.norm(tip[:2] - behind) < 0.03:
                self.stage = "descend"
            return np.array([*behind, self.HOVER_Z])
        if self.stage == "descend":
            if tip[2] < self.PUSH_Z + 0.02:
                self.stage = "push"
            return np.array([*behind, self.PUSH_Z])
        # push: aim the contact point slightly past the object along the goal line
        push = o - (self.CONTACT - min(0.05, dist)) * u
        return np.array([*push, self.PUSH_Z])


def make_policy(name: str, **kw) -> RandomPolicy | ExpertPolicy:
    """Create a policy by name: ``'random'`` or ``'expert'``."""
    factories = {"random": RandomPolicy, "expert": ExpertPolicy}
    if name not in factories:
        raise ValueError(f"unknown policy {name!r}; expected one of {sorted(factories)}")
    return factories[name](**kw)

"""Forward kinematics of a serial chain of revolute joints, and the task reward computed from it.

RWM-U learns the *dynamics*; the task reward is a known function of the state (here: minus the
fingertip's distance to the goal, in the table plane or in space), computed from the predicted joint positions
with the robot's kinematic model. A learned reward head only knows the reward where the behaviour
policy went, and a policy optimised in the model finds its errors (measured: PPO folding the elbow where
the head said "at the goal", 0% success in the simulator); the kinematics are right everywhere.

A :class:`Chain` is plain numbers (per link: the fixed transform from the parent frame, then a rotation
about the joint axis; and the tip point in the last frame), so it goes into a bundle's manifest and
needs no MuJoCo or URDF parser at run time. :func:`chain_from_sim` reads it from our simulated robots,
:func:`wm_control.control.urdf.chain_from_urdf` from a robot's URDF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@dataclass
class Chain:
    """``links[i]``: ``pos`` (3,), ``rot`` (3x3 row-major, 9) of the link frame in its parent's, then the
    joint's rotation about ``axis`` (3,) by ``q[i]``; ``tip`` (3,) the point of interest in the last frame;
    ``base`` (pos, rot) of the first link's parent in the world."""

    links: list[dict[str, list[float]]]
    tip: list[float]
    base_pos: list[float]
    base_rot: list[float]
    goal_dims: int = 2
    """The reach reward measures the first ``goal_dims`` coordinates: 2 (the table's xy) or 3 (xyz)."""

    def __post_init__(self) -> None:
        if self.goal_dims not in (2, 3):
            raise ValueError(f"goal_dims must be 2 or 3, not {self.goal_dims!r}")

    @property
    def n(self) -> int:
        return len(self.links)

    def to_dict(self) -> dict[str, Any]:
        return {"links": self.links, "tip": self.tip, "base_pos": self.base_pos, "base_rot": self.base_rot,
                "goal_dims": self.goal_dims}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chain:
        return cls([{k: list(map(float, v)) for k, v in link.items()} for link in d["links"]],
                   list(map(float, d["tip"])), list(map(float, d["base_pos"])), list(map(float, d["base_rot"])),
                   int(d.get("goal_dims", 2)))  # bundles from before goal_dims: the planar (xy) reward

    def _arrays(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per link (unit axis, pos, rot.T), computed once."""
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = []
            for link in self.links:
                a = np.asarray(link["axis"], dtype=np.float64)
                cached.append((a / np.linalg.norm(a), np.asarray(link["pos"], dtype=np.float64),
                               np.ascontiguousarray(np.reshape(link["rot"], (3, 3)).T)))
            cached.append((np.asarray(self.tip, dtype=np.float64), np.asarray(self.base_pos, dtype=np.float64),
                           np.ascontiguousarray(np.reshape(self.base_rot, (3, 3)).T)))
            self.__dict__["_cache"] = cached
        return cached

    def tip_position(self, q: Any) -> Any:
        """(..., n) joint positions -> (..., 3) tip position in the world; numpy or torch in, same out
        (numpy in float64)."""
        torch = None
        if not isinstance(q, np.ndarray):
            try:
                import torch
            except ImportError:  # pragma: no cover
                torch = None
            if torch is not None and not isinstance(q, torch.Tensor):
                torch = None
        if torch is not None:
            def const(v: np.ndarray) -> Any:
                return torch.as_tensor(v, dtype=q.dtype, device=q.device)
            cos, sin, stack = torch.cos, torch.sin, torch.stack
        else:
            q = np.asarray(q, dtype=np.float64)

            def const(v: np.ndarray) -> Any:
                return v
            cos, sin, stack = np.cos, np.sin, np.stack
        *links, (tip, base_pos, base_rot_t) = self._arrays()
        lead = tuple(q.shape[:-1])
        q = q.reshape(-1, q.shape[-1])  # 2-D: the matrix products below are then single BLAS calls
        # walk from the tip back to the base: p <- pos_i + R_i (Rot(axis_i, q_i) p); row vectors: p R^T
        p = const(tip) + 0 * q[..., :1]
        for i in reversed(range(self.n)):
            a, pos, rot_t = links[i]
            c, s = cos(q[..., i])[..., None], sin(q[..., i])[..., None]
            # Rodrigues: R v = v c + (a x v) s + a (a.v)(1 - c)
            axv = stack([a[1] * p[..., 2] - a[2] * p[..., 1], a[2] * p[..., 0] - a[0] * p[..., 2],
                         a[0] * p[..., 1] - a[1] * p[..., 0]], -1)
            adv = (a[0] * p[..., 0] + a[1] * p[..., 1] + a[2] * p[..., 2])[..., None]
            p = p * c + axv * s + const(a) * (adv * (1 - c))
            p = const(pos) + p @ const(rot_t)
        return (const(base_pos) + p @ const(base_rot_t)).reshape(*lead, 3)

    def reach_reward(self, q: Any, goal: Any) -> Any:
        """Minus the tip's distance to ``goal`` over the first ``goal_dims`` coordinates (xy: a planar
        task on the table; xyz: a reach in space)."""
        k = self.goal_dims
        d = self.tip_position(q)[..., :k] - goal[..., :k]
        return -((d ** 2).sum(-1) + 1e-12) ** 0.5


def chain_from_sim(robot: str) -> Chain | None:
    """The chain from the base to the fingertip of one of our simulated robots (None if not one, or not
    a serial chain of hinge joints)."""
    try:
        from wm_control.sim import ArmConfig, SimArm

        arm = SimArm(ArmConfig(robot=robot, render=False))
        arm.connect()
    except (ValueError, RuntimeError, ImportError):
        return None
    try:
        m = arm.model
        tip = arm._tip
        jnt_of_body = {int(m.jnt_bodyid[j]): int(j) for j in arm._jnt}
        bodies = []
        b = tip
        while b != 0:
            bodies.append(b)
            b = int(m.body_parentid[b])
        bodies.reverse()  # base-most first
        links: list[dict[str, list[float]]] = []
        order: list[int] = []
        acc_pos, acc_rot = np.zeros(3), np.eye(3)  # fixed transforms of joint-less bodies, folded forward
        for b in bodies:
            pos, rot = np.asarray(m.body_pos[b], float), _quat_to_mat(m.body_quat[b])
            acc_pos, acc_rot = acc_pos + acc_rot @ pos, acc_rot @ rot
            if b in jnt_of_body:
                j = jnt_of_body[b]
                if np.linalg.norm(m.jnt_pos[j]) > 1e-9:
                    return None  # joint away from its body origin: not handled here
                order.append(j)
                links.append({"pos": acc_pos.tolist(), "rot": acc_rot.reshape(-1).tolist(),
                              "axis": np.asarray(m.jnt_axis[j], float).tolist()})
                acc_pos, acc_rot = np.zeros(3), np.eye(3)
        if order != [int(j) for j in arm._jnt]:
            return None  # the chain's joints are not the robot's joints in its order
        return Chain(links, acc_pos.tolist(), [0.0, 0.0, 0.0], np.eye(3).reshape(-1).tolist(), goal_dims=arm.goal_dims)
    finally:
        arm.disconnect()

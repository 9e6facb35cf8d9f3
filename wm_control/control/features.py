"""What a policy sees: one definition of the observation vector, used by training and by the node.

The bundle manifest names the observation kind; :func:`policy_observation` builds it from the
same arrays the dataset reader and the policy node have (joint positions and velocities read by
name, the goal point). Angles enter as (cos, sin) so continuous joints have no seam.
"""

from __future__ import annotations

import numpy as np

#: joint_trig_goal: (cos q, sin q, goal). joint_trig_vel_goal adds joint velocities, which lets a
#: cloned policy copy its own motion (the BC "copycat" failure: it learns to keep spinning).
#: kind -> values per joint (the goal's 3 values follow)
OBSERVATION_KINDS = {"joint_trig_goal": 2, "joint_trig_vel_goal": 3}
#: Kinds that also see the visual latent of the latest camera frame (``/wm/latent``, the world_model node's):
#: (cos q, sin q, the goal, latent) and (cos q, sin q, the goal's x, y, latent). A bundle's policy of one
#: of these records which visual bundle's latents it reads (its graph spec's ``latent``). kind -> goal values
LATENT_KINDS = {"joint_trig_goal_latent": 3, "joint_trig_goal_xy_latent": 2, "joint_trig_goal_image_latent": 0}
#: The goal-image mode: (cos q, sin q, latent, the goal image's latent); no goal point (V-JEPA 2-AC's setting).
GOAL_IMAGE_KINDS = ("joint_trig_goal_image_latent",)
#: Offline kinds that no bundle serves, for comparisons such as ``eval visual-state`` and ``eval push``:
#: (cos q, sin q) alone (joint_trig), with the goal's x, y (joint_trig_goal_xy), with the visual latent and
#: the goal withheld (joint_trig_latent), with the goal's x, y and the object's true x, y
#: (joint_trig_goal_xy_object: privileged, a simulator's label; no robot has it). Only :func:`policy_observation`.
OFFLINE_OBSERVATION_KINDS = ("joint_trig", "joint_trig_goal_xy", "joint_trig_latent", "joint_trig_goal_xy_object")


def _check(kind: str, offline: bool = False) -> None:
    known = [*OBSERVATION_KINDS, *LATENT_KINDS, *(OFFLINE_OBSERVATION_KINDS if offline else ())]
    if kind not in known:
        raise ValueError(f"unknown observation kind {kind!r}; known: {sorted(known)}")


def needs_latent(kind: str) -> bool:
    """Whether the kind sees the visual latent."""
    return kind.endswith("_latent")


def needs_goal_image(kind: str) -> bool:
    """Whether the kind's goal is a goal image's latent (no goal point)."""
    return kind in GOAL_IMAGE_KINDS


def observation_dim(kind: str, n_joints: int, latent_dim: int = 0) -> int:
    """The length of a deployable kind's vector for ``n_joints`` joints (and a ``latent_dim`` latent)."""
    _check(kind)
    if kind in LATENT_KINDS:
        if latent_dim < 1:
            raise ValueError(f"observation {kind!r} needs the latent's dimension")
        return 2 * n_joints + LATENT_KINDS[kind] + latent_dim * (2 if needs_goal_image(kind) else 1)
    return OBSERVATION_KINDS[kind] * n_joints + 3


def policy_observation(kind: str, q: np.ndarray, qd: np.ndarray | None, goal: np.ndarray | None,
                       latent: np.ndarray | None = None, obj: np.ndarray | None = None,
                       goal_latent: np.ndarray | None = None) -> np.ndarray:
    """(..., obs_dim) float32 from q (..., n), qd (..., n), goal (..., 3) and, for the latent kinds, the
    visual latent (..., Dz), for joint_trig_goal_xy_object the object's position (..., 2 or 3), for the
    goal-image kind the goal image's latent (..., Dz) instead of the goal; a kind ignores the inputs it does
    not show (they may be None)."""
    _check(kind, offline=True)
    q = np.asarray(q, dtype=np.float64)
    parts = [np.cos(q), np.sin(q)]
    if kind == "joint_trig_vel_goal":
        parts.append(np.nan_to_num(np.asarray(qd, dtype=np.float64)))  # a robot may not report velocity
    if kind not in ("joint_trig", "joint_trig_latent", *GOAL_IMAGE_KINDS):
        if goal is None:
            raise ValueError(f"observation {kind!r} needs the goal")
        goal = np.asarray(goal, dtype=np.float64)
        parts.append(goal if kind in OBSERVATION_KINDS or LATENT_KINDS.get(kind) == 3 else goal[..., :2])
    if needs_latent(kind):
        if latent is None:
            raise ValueError(f"observation {kind!r} needs the visual latent")
        parts.append(np.asarray(latent, dtype=np.float64))
    if needs_goal_image(kind):
        if goal_latent is None:
            raise ValueError(f"observation {kind!r} needs the goal image's latent")
        parts.append(np.asarray(goal_latent, dtype=np.float64))
    if kind.endswith("_object"):
        if obj is None:
            raise ValueError(f"observation {kind!r} needs the object's position (a simulator's label)")
        parts.append(np.asarray(obj, dtype=np.float64)[..., :2])
    return np.concatenate(parts, axis=-1).astype(np.float32)


def policy_observation_torch(kind: str, q, qd, goal):
    """The same vector as :func:`policy_observation` from torch tensors (for imagined rollouts)."""
    import torch

    _check(kind)
    if needs_latent(kind):
        raise ValueError(f"observation {kind!r} sees the visual latent; imagined rollouts have no latent input")
    parts = [torch.cos(q), torch.sin(q)]
    if kind == "joint_trig_vel_goal":
        parts.append(torch.nan_to_num(qd))
    return torch.cat([*parts, goal], dim=-1).float()

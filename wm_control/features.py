"""What a policy sees: one definition of the observation vector, used by training and by the node.

The bundle manifest names the observation kind; :func:`policy_observation` builds it from the
same arrays the dataset reader and the policy node have (joint positions and velocities read by
name, the goal point). Angles enter as (cos, sin) so continuous joints have no seam.
"""

from __future__ import annotations

import numpy as np

OBSERVATION_KINDS = {"joint_trig_vel_goal"}


def observation_dim(kind: str, n_joints: int) -> int:
    if kind == "joint_trig_vel_goal":
        return 3 * n_joints + 3
    raise ValueError(f"unknown observation kind {kind!r}; known: {sorted(OBSERVATION_KINDS)}")


def policy_observation(kind: str, q: np.ndarray, qd: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(..., obs_dim) float32 from q (..., n), qd (..., n), goal (..., 3)."""
    if kind != "joint_trig_vel_goal":
        raise ValueError(f"unknown observation kind {kind!r}; known: {sorted(OBSERVATION_KINDS)}")
    q = np.asarray(q, dtype=np.float64)
    qd = np.nan_to_num(np.asarray(qd, dtype=np.float64))  # a robot may not report velocity
    goal = np.asarray(goal, dtype=np.float64)
    return np.concatenate([np.cos(q), np.sin(q), qd, goal], axis=-1).astype(np.float32)

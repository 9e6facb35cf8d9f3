"""RWM-U: an ensemble of dynamics models over the robot state, with uncertainty from disagreement.

State ``s`` = joint positions and velocities (and, later, a visual latent slot); context ``c`` = the
goal (constant within an episode; it does not move with the arm). Action ``a`` = the position
target. Each of the ``M`` members predicts the *change* of the state from a window of the last
``H`` (state, action) pairs; members share nothing but the architecture: their own initialisation,
their own bootstrap of the data.

All members are evaluated in one batched call (weights stacked along a member axis), which is what
the planner queries and what goes into ONNX: inputs ``state_window (M, B, H, ds)``,
``action_window (M, B, H, da)``, output ``next_state (M, B, ds)`` (and ``reward (M, B)``): member m
reads its own trajectory, so rollouts can follow each member separately.

Uncertainty (RWM-U): at a step, the std over members of their predictions in normalised units (the
model's output units: the spread of one-step changes), summed over state dimensions. Along a rollout
every member follows its own predictions from the same start, and the per-step uncertainty is the
spread of those trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn


@dataclass
class StateSpec:
    joint_names: list[str]
    history: int = 4
    """H: how many past (state, action) pairs a prediction sees."""
    latent_dim: int = 0
    """Visual latent slot (0 until the world model fills it)."""
    latent_to_joints: bool = False
    """With a latent: False (default) predicts the joints' change from the joint features alone (own
    layers per member) and the latent's from everything; a servoed arm's joints do not depend on the
    image, and latents drifting along a rollout otherwise leak into the joints (measured: 100x the
    50-step joint error). True: one network for all (for robots whose joints feel what only the camera sees)."""

    @property
    def split(self) -> bool:
        return self.latent_dim > 0 and not self.latent_to_joints

    @property
    def n(self) -> int:
        return len(self.joint_names)

    @property
    def state_dim(self) -> int:
        return 2 * self.n + self.latent_dim

    @property
    def feature_dim(self) -> int:
        """Per-step input features: cos q, sin q, qd, latent, (a - q)."""
        return 3 * self.n + self.latent_dim + self.n


def step_features(state: torch.Tensor, action: torch.Tensor, n: int) -> torch.Tensor:
    """(..., ds), (..., n) -> (..., feature_dim): angles as cos/sin, the action relative to q."""
    q = state[..., :n]
    return torch.cat([torch.cos(q), torch.sin(q), state[..., n:], action - q], dim=-1)


class MemberLinear(nn.Module):
    """M independent linear layers applied in one batched matmul: (M, B, i) -> (M, B, o)."""

    def __init__(self, members: int, i: int, o: int):
        super().__init__()
        bound = 1.0 / np.sqrt(i)
        self.weight = nn.Parameter(torch.empty(members, i, o).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, o).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleDynamics(nn.Module):
    """M members; ``arch`` 'mlp' (over the flattened window) or 'gru' (over the window's steps).

    Normalisers are buffers (saved with the weights, folded into the ONNX graph).
    """

    def __init__(self, spec: StateSpec, members: int = 5, hidden: int = 128, layers: int = 2, arch: str = "mlp",
                 prior_scale: float = 0.0, reward_hidden: int = 32):
        super().__init__()
        if arch not in ("mlp", "gru"):
            raise ValueError(f"arch must be 'mlp' or 'gru', not {arch!r}")
        self.spec, self.members, self.arch = spec, members, arch
        f, ds = spec.feature_dim, spec.state_dim
        if arch == "mlp":
            dims = [spec.history * f] + [hidden] * layers
            self.body = nn.ModuleList(MemberLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        else:
            # one GRU per member: weights stacked and run step by step over the (short) window
            self.gru_in = MemberLinear(members, f, 3 * hidden)
            self.gru_h = MemberLinear(members, hidden, 3 * hidden)
            self.body = nn.ModuleList(MemberLinear(members, hidden, hidden) for _ in range(layers - 1))
        self.hidden = hidden
        self.head = MemberLinear(members, hidden, ds)
        if spec.split:
            if arch != "mlp":
                raise ValueError("a latent with latent_to_joints=False needs arch 'mlp'")
            n = spec.n
            jcols = list(range(3 * n)) + list(range(3 * n + spec.latent_dim, f))  # cos, sin, qd, a - q
            self.register_buffer("joint_cols", torch.tensor(jcols, dtype=torch.long))
            jd = [spec.history * len(jcols)] + [hidden] * layers
            self.joint_body = nn.ModuleList(MemberLinear(members, a, b) for a, b in zip(jd[:-1], jd[1:]))
            self.joint_head = MemberLinear(members, hidden, 2 * n)
        # randomised prior: a fixed random network per member, added to its (normalised) output
        self.prior_scale = float(prior_scale)
        self.prior = nn.ModuleList()
        if self.prior_scale > 0:
            pd = [spec.history * f, hidden, ds]
            self.prior = nn.ModuleList(MemberLinear(members, a, b) for a, b in zip(pd[:-1], pd[1:]))
            self.prior.requires_grad_(False)
        # reward of arriving at a state: a function of the configuration (cos q, sin q, latent) and the
        # goal only. Not of the dynamics features or the velocities: in expert data the arm is still
        # only at the goal, and a head that sees velocity learns "still = reward" (measured: a model
        # that predicted a positive reward for holding still anywhere).
        rin = 2 * spec.n + spec.latent_dim + 3
        rh = reward_hidden
        self.reward_body = nn.ModuleList([MemberLinear(members, rin, rh), MemberLinear(members, rh, rh)])
        self.reward_head = MemberLinear(members, rh, 1)
        for name, size in (("feat_mean", f), ("feat_std", f), ("delta_mean", ds), ("delta_std", ds),
                           ("state_mean", ds), ("state_std", ds)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))
        self.register_buffer("reward_mean", torch.zeros(1))
        self.register_buffer("reward_std", torch.ones(1))
        # predicted rewards stay within what the data showed: a policy optimised in the model cannot
        # harvest rewards the task never pays (a head extrapolating above the best logged reward)
        self.register_buffer("reward_range", torch.tensor([-1e9, 1e9]))

    # ---- the model ------------------------------------------------------------------------
    def _joint_delta(self, sw: torch.Tensor, aw: torch.Tensor) -> torch.Tensor:
        """The joints' normalised change from the joint features only: (M, B, 2n)."""
        M, B, H, _ = sw.shape
        x = (step_features(sw, aw, self.spec.n) - self.feat_mean) / self.feat_std
        h = x.index_select(-1, self.joint_cols).reshape(M, B, -1)
        for layer in self.joint_body:
            h = torch.nn.functional.silu(layer(h))
        return self.joint_head(h)

    def _encode(self, sw: torch.Tensor, aw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, B, H, ds), (M, B, H, da) -> hidden (M, B, hidden), prior output (M, B, ds) or 0."""
        M, B, H, _ = sw.shape
        x = (step_features(sw, aw, self.spec.n) - self.feat_mean) / self.feat_std
        prior = torch.zeros(())
        if self.prior_scale > 0:
            p = x.reshape(M, B, H * x.shape[-1])
            p = self.prior[1](torch.tanh(self.prior[0](p)))
            prior = self.prior_scale * p
        if self.arch == "mlp":
            h = x.reshape(M, B, H * x.shape[-1])
            for layer in self.body:
                h = torch.nn.functional.silu(layer(h))
            return h, prior
        h = torch.zeros(M, B, self.hidden, dtype=x.dtype)
        for t in range(H):
            gi, gh = self.gru_in(x[:, :, t]), self.gru_h(h)
            r = torch.sigmoid(gi[..., : self.hidden] + gh[..., : self.hidden])
            z = torch.sigmoid(gi[..., self.hidden: 2 * self.hidden] + gh[..., self.hidden: 2 * self.hidden])
            nh = torch.tanh(gi[..., 2 * self.hidden:] + r * gh[..., 2 * self.hidden:])
            h = (1 - z) * nh + z * h
        for layer in self.body:
            h = torch.nn.functional.silu(layer(h))
        return h, prior

    def forward(self, sw: torch.Tensor, aw: torch.Tensor, goal: torch.Tensor | None = None,
                with_reward: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next state (M, B, ds) and reward (M, B) from windows; ``goal`` (M, B, 3) feeds the reward head
        (``with_reward=False``: states only, reward None)."""
        h, prior = self._encode(sw, aw)
        out = self.head(h)
        if self.spec.split:
            out = torch.cat([self._joint_delta(sw, aw), out[..., 2 * self.spec.n:]], dim=-1)
        delta = (out + prior) * self.delta_std + self.delta_mean
        nxt = sw[:, :, -1] + delta
        return nxt, (self.reward(nxt, goal) if with_reward else None)

    def reward(self, state: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        """Each member's reward of arriving at ``state (M, B, ds)`` with ``goal (M, B, 3)`` -> (M, B)."""
        n, lat = self.spec.n, self.spec.latent_dim
        q = state[..., :n]
        g = goal if goal is not None else torch.zeros(*state.shape[:-1], 3, dtype=state.dtype)
        x = torch.cat([torch.cos(q), torch.sin(q), state[..., 2 * n: 2 * n + lat], g], dim=-1)
        for layer in self.reward_body:
            x = torch.nn.functional.silu(layer(x))
        r = self.reward_head(x)[..., 0] * self.reward_std + self.reward_mean
        return torch.minimum(torch.maximum(r, self.reward_range[0]), self.reward_range[1])

    # ---- rollouts ---------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, sw: torch.Tensor, aw: torch.Tensor, future_actions: torch.Tensor,
                goal: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member follows its own predictions from the same start.

        ``sw (B, H, ds)``, ``aw (B, H, da)`` (the window ending at the start; ``aw[:, -1]`` is the first
        action taken), ``future_actions (B, K-1, da)`` the actions after it. Returns states (M, B, K, ds)
        and rewards (M, B, K).
        """
        M = self.members
        s = sw.unsqueeze(0).expand(M, *sw.shape).clone()
        a = aw.unsqueeze(0).expand(M, *aw.shape).clone()
        g = None if goal is None else goal.unsqueeze(0).expand(M, *goal.shape)
        K = future_actions.shape[1] + 1
        states, rewards = [], []
        for k in range(K):
            nxt, r = self(s, a, g)
            states.append(nxt)
            rewards.append(r)
            if k + 1 < K:
                s = torch.cat([s[:, :, 1:], nxt.unsqueeze(2)], dim=2)
                na = future_actions[:, k].unsqueeze(0).expand(M, -1, -1)
                a = torch.cat([a[:, :, 1:], na.unsqueeze(2)], dim=2)
        return torch.stack(states, 2), torch.stack(rewards, 2)

    @property
    def uncertainty_scale(self) -> torch.Tensor:
        """The unit of uncertainty per state dimension: the model's own output normalisation (the
        spread of one-step changes). Not the spread of the states: an unbounded joint that winds
        round many turns would inflate that and hide its disagreement (measured: Spearman of
        uncertainty vs error 0.28 in state units, 0.54 in these)."""
        return self.delta_std

    def uncertainty(self, states: torch.Tensor) -> torch.Tensor:
        """(M, ..., ds) member predictions -> (...) disagreement: std over members in normalised units
        (``uncertainty_scale``), summed over state dimensions."""
        return (states / self.uncertainty_scale).std(0).sum(-1)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        _, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=r)
        return (sums / counts)[inv]

    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    rx -= rx.mean()
    ry -= ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx ** 2).sum() * (ry ** 2).sum()))


class ExportedEnsemble(nn.Module):
    """The ONNX graph: (M, B, H, ds), (M, B, H, da), (M, B, 3) -> next_state (M, B, ds), reward (M, B)."""

    def __init__(self, model: EnsembleDynamics):
        super().__init__()
        self.model = model

    def forward(self, state_window: torch.Tensor, action_window: torch.Tensor, goal: torch.Tensor) -> Any:
        return self.model(state_window, action_window, goal)

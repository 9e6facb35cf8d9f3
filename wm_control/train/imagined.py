"""Imagined environments: many rollouts in parallel inside the RWM-U ensemble, for policy learning
with no simulator and no robot (the policy issue trains PPO on these).

* Each environment starts from a (state window, action window, goal) drawn from the logs and follows
  one member, chosen at reset; all members are evaluated on every environment's window so the
  per-step uncertainty is their one-step disagreement (the ensemble's own units, as in calibration).
* Actions are what the policy node's graph outputs: a change of the position target relative to the
  measured position. They pass the same clamps as the safety layer (position limits, at most
  ``max_step`` from the previous command), so the imagined robot moves as the real one will.
* Reward ``task_reward - lam * uncertainty``: the member's reward head (-fingertip distance), less the
  penalty. An episode ends after ``max_steps`` (truncation) or when the uncertainty passes
  ``terminate_scale`` x the calibrated one-step p99 (termination: the model is lost there).
* Done environments reset themselves; the observation they ended on is in ``info['final_obs']`` so
  a value function can bootstrap truncated episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..features import OBSERVATION_KINDS, policy_observation_torch
from ..world.ensemble import EnsembleDynamics


@dataclass
class ImaginedConfig:
    num_envs: int = 1024
    max_steps: int = 100
    """Episode length in control steps (2 s at 50 Hz, as the logged episodes)."""
    lam: float = 1.0
    """Weight of the uncertainty penalty (lambda)."""
    terminate_scale: float = 2.0
    """End an episode when the disagreement exceeds this x the calibrated one-step p99 (inf: never)."""
    observation: str = "joint_trig_goal"
    max_step: float = 0.15
    """Largest change of the position target per step (the safety layer's rate limit)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_envs < 1 or self.max_steps < 1:
            raise ValueError("num_envs and max_steps must be >= 1")
        if self.lam < 0 or not self.terminate_scale > 0:
            raise ValueError("lam must be >= 0 and terminate_scale > 0")
        if self.observation not in OBSERVATION_KINDS:
            raise ValueError(f"unknown observation kind {self.observation!r}")


class ImaginedEnvs:
    """``num_envs`` environments stepped together (torch, no gradients)."""

    def __init__(self, model: EnsembleDynamics, starts: dict[str, np.ndarray], cfg: ImaginedConfig,
                 threshold: float, position_limits: Any = None):
        if model.spec.latent_dim:
            raise ValueError("imagined environments over a visual latent need the world model (not yet)")
        self.model, self.cfg = model.eval(), cfg
        self.n = model.spec.n
        self.sw_all = torch.as_tensor(starts["sw"], dtype=torch.float32)  # (N, H, ds)
        self.aw_all = torch.as_tensor(starts["aw"], dtype=torch.float32)  # (N, H, da)
        self.goal_all = torch.as_tensor(starts["goal"], dtype=torch.float32)  # (N, 3)
        if len(self.sw_all) == 0:
            raise ValueError("no start states")
        self.limit = float(threshold) * cfg.terminate_scale if math.isfinite(cfg.terminate_scale) else math.inf
        lo = torch.full((self.n,), -math.inf)
        hi = torch.full((self.n,), math.inf)
        for j, lim in enumerate(position_limits or []):
            if lim is not None:
                lo[j] = -math.inf if lim[0] is None else float(lim[0])
                hi[j] = math.inf if lim[1] is None else float(lim[1])
        self.lo, self.hi = lo, hi
        self.gen = torch.Generator().manual_seed(cfg.seed)
        B = cfg.num_envs
        self.sw = torch.empty(B, *self.sw_all.shape[1:])
        self.aw = torch.empty(B, *self.aw_all.shape[1:])
        self.goal = torch.empty(B, 3)
        self.member = torch.empty(B, dtype=torch.long)
        self.t = torch.zeros(B, dtype=torch.long)

    @classmethod
    def from_logs(cls, model: EnsembleDynamics, thresholds: dict[str, float], episodes: list, robot: str,
                  cfg: ImaginedConfig, position_limits: Any = None) -> ImaginedEnvs:
        """Start states: every valid window of the logged episodes."""
        from .ensemble import batch, make_transitions

        H = model.spec.history
        tr = make_transitions(episodes, H, 1, robot, rewards=False)  # the reward head supplies rewards
        b = batch(tr, tr.starts[None], H, 1)
        starts = {"sw": b["sw"][0].numpy(), "aw": b["aw"][0].numpy(), "goal": b["goal"][0].numpy()}
        return cls(model, starts, cfg, thresholds["first_step_p99"], position_limits)

    # ------------------------------------------------------------------------------------------
    @property
    def observation_dim(self) -> int:
        return OBSERVATION_KINDS[self.cfg.observation] * self.n + 3

    def _obs(self) -> torch.Tensor:
        s = self.sw[:, -1]
        return policy_observation_torch(self.cfg.observation, s[:, : self.n], s[:, self.n: 2 * self.n], self.goal)

    def _reset(self, mask: torch.Tensor) -> None:
        k = int(mask.sum())
        if k == 0:
            return
        idx = torch.randint(0, len(self.sw_all), (k,), generator=self.gen)
        self.sw[mask] = self.sw_all[idx]
        self.aw[mask] = self.aw_all[idx]
        self.goal[mask] = self.goal_all[idx]
        self.member[mask] = torch.randint(0, self.model.members, (k,), generator=self.gen)
        self.t[mask] = 0

    def reset(self) -> torch.Tensor:
        self._reset(torch.ones(self.cfg.num_envs, dtype=torch.bool))
        return self._obs()

    def command(self, delta: torch.Tensor) -> torch.Tensor:
        """The policy's output -> the command the safety layer would let through."""
        q = self.sw[:, -1, : self.n]
        prev = self.aw[:, -1]
        raw = q + delta
        target = torch.where(torch.isfinite(raw), raw, prev)  # a NaN/inf action holds the last command
        target = torch.clamp(target, prev - self.cfg.max_step, prev + self.cfg.max_step)
        return torch.maximum(torch.minimum(target, self.hi), self.lo)

    @torch.no_grad()
    def step(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``delta (B, n)`` -> obs (B, d), reward (B,), done (B,), info (task_reward, uncertainty,
        terminated (uncertainty over the limit), truncated (time), final_obs)."""
        M, B = self.model.members, self.cfg.num_envs
        a = self.command(torch.as_tensor(delta, dtype=torch.float32))
        aw = torch.cat([self.aw[:, 1:], a[:, None]], dim=1)
        nxt, rew = self.model(self.sw.expand(M, *self.sw.shape), aw.expand(M, *aw.shape),
                              self.goal.expand(M, *self.goal.shape))
        unc = self.model.uncertainty(nxt)  # (B,)
        ar = torch.arange(B)
        own = nxt[self.member, ar]
        task = rew[self.member, ar]
        self.sw = torch.cat([self.sw[:, 1:], own[:, None]], dim=1)
        self.aw = aw
        self.t += 1
        terminated = unc > self.limit
        truncated = (self.t >= self.cfg.max_steps) & ~terminated
        done = terminated | truncated
        final = self._obs()
        info = {"task_reward": task, "uncertainty": unc, "terminated": terminated, "truncated": truncated,
                "final_obs": final}
        if done.any():
            self._reset(done)
            final = self._obs()
        return final, task - self.cfg.lam * unc, done, info

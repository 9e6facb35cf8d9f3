"""Imagined environments: many rollouts in parallel inside the RWM-U ensemble, for policy learning
with no simulator and no robot (the policy issue trains PPO on these).

* Each environment starts from a (state window, action window, goal) drawn from the logs and follows
  one member, chosen at reset; all members are evaluated on every environment's window so the
  per-step uncertainty is their one-step disagreement (the ensemble's own units, as in calibration).
* Actions are what the policy node's graph outputs: a change of the position target relative to the
  measured position. They pass the same clamps as the safety layer (position limits, at most
  ``max_step`` from the previous command), so the imagined robot moves as the real one will.
* Reward ``task_reward - lam * uncertainty``: the task reward of the followed member's predicted state
  (``reward_fn``: e.g. minus the fingertip distance from the robot's kinematics, see
  :mod:`wm_control.control.kinematics`; otherwise the member's reward head), less the penalty. An episode ends
  after ``max_steps`` (truncation) or when the uncertainty passes
  ``terminate_scale`` x a calibrated percentile (termination: the model is lost there).
* Done environments reset themselves; the observation they ended on is in ``info['final_obs']`` so
  a value function can bootstrap truncated episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wm_control.control.features import OBSERVATION_KINDS, policy_observation_torch
from wm_control.control.limits import clamp_command_torch
from wm_control.world.ensemble import EnsembleDynamics


@dataclass
class ImaginedConfig:
    num_envs: int = 1024
    max_steps: int = 100
    """Episode length in control steps (2 s at 50 Hz, as the logged episodes)."""
    lam: float = 1.0
    """Weight of the uncertainty penalty (lambda)."""
    terminate_scale: float = 2.0
    """End an episode when the disagreement exceeds this x the calibrated threshold (inf: never)."""
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
                 threshold: float, position_limits: Any = None, device: str | torch.device = "cpu",
                 reward_fn: Any = None):
        if model.spec.latent_dim:
            raise ValueError("imagined environments over a visual latent need the world model (not yet)")
        dev = self.device = torch.device(device)
        self.reward_fn = reward_fn  # (state (B, ds), goal (B, 3)) -> (B,); None: the members' reward head
        self.model, self.cfg = model.to(dev).eval(), cfg
        self.n = model.spec.n
        self.sw_all = torch.as_tensor(starts["sw"], dtype=torch.float32, device=dev)  # (N, H, ds)
        self.aw_all = torch.as_tensor(starts["aw"], dtype=torch.float32, device=dev)  # (N, H, da)
        self.goal_all = torch.as_tensor(starts["goal"], dtype=torch.float32, device=dev)  # (N, 3)
        if len(self.sw_all) == 0:
            raise ValueError("no start states")
        self.limit = float(threshold) * cfg.terminate_scale if math.isfinite(cfg.terminate_scale) else math.inf
        lo = torch.full((self.n,), -math.inf)
        hi = torch.full((self.n,), math.inf)
        for j, lim in enumerate(position_limits or []):
            if lim is not None:
                lo[j] = -math.inf if lim[0] is None else float(lim[0])
                hi[j] = math.inf if lim[1] is None else float(lim[1])
        self.lo, self.hi = lo.to(dev), hi.to(dev)
        self.gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        B = cfg.num_envs
        self.sw = torch.empty(B, *self.sw_all.shape[1:], device=dev)
        self.aw = torch.empty(B, *self.aw_all.shape[1:], device=dev)
        self.goal = torch.empty(B, 3, device=dev)
        self.member = torch.empty(B, dtype=torch.long, device=dev)
        self.t = torch.zeros(B, dtype=torch.long, device=dev)
        self.ar = torch.arange(B, device=dev)

    @classmethod
    def from_logs(cls, model: EnsembleDynamics, thresholds: dict[str, float], episodes: list, robot: str,
                  cfg: ImaginedConfig, position_limits: Any = None, device: str = "cpu",
                  threshold: str = "first_step_p99", reward_fn: Any = None) -> ImaginedEnvs:
        """Start states: every window of the logged episodes with one more logged action before it.

        A start at logged step t holds the states ``s[t-H+1..t]`` and the commands *executed before*
        them, ``a[t-H..t-1]``: the policy chooses the action at ``s[t]``, which completes the window the
        model was trained on (``aw[-1]`` pairs with ``sw[-1]``), and ``a[t-1]`` is the command in force,
        from which the rate limit counts. ``threshold`` names the calibrated percentile the
        termination limit scales: the per-step uncertainty here is a one-step disagreement (from the
        followed member's window), so the default is the one-step p99 of calibration, not the p99 of
        trajectory spread over a calibration rollout (``uncertainty_p99``)."""
        from wm_control.train.ensemble import make_transitions

        H = model.spec.history
        tr = make_transitions(episodes, H, 1, robot, rewards=False)  # the reward head supplies rewards
        t = tr.starts[tr.starts >= H]
        t = t[tr.episode_of[t - H] == tr.episode_of[t]]
        w = t[:, None] + np.arange(-H + 1, 1)
        starts = {"sw": tr.S[w], "aw": tr.A[w - 1], "goal": tr.G[t]}
        return cls(model, starts, cfg, thresholds[threshold], position_limits, device, reward_fn)

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
        idx = torch.randint(0, len(self.sw_all), (k,), generator=self.gen, device=self.device)
        self.sw[mask] = self.sw_all[idx]
        self.aw[mask] = self.aw_all[idx]
        self.goal[mask] = self.goal_all[idx]
        self.member[mask] = torch.randint(0, self.model.members, (k,), generator=self.gen, device=self.device)
        self.t[mask] = 0

    def reset(self) -> torch.Tensor:
        self._reset(torch.ones(self.cfg.num_envs, dtype=torch.bool, device=self.device))
        return self._obs()

    def command(self, delta: torch.Tensor) -> torch.Tensor:
        """The policy's output -> the command the safety layer would let through."""
        q = self.sw[:, -1, : self.n]
        prev = self.aw[:, -1]
        # the safety layer's own kernel (control/limits.py): a NaN/inf action holds the last command
        return clamp_command_torch(q + delta, prev, self.cfg.max_step, self.lo, self.hi)

    @torch.no_grad()
    def step(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``delta (B, n)`` -> obs (B, d), reward (B,), done (B,), info (task_reward, uncertainty,
        terminated (uncertainty over the limit), truncated (time), final_obs)."""
        M = self.model.members
        a = self.command(torch.as_tensor(delta, dtype=torch.float32, device=self.device))
        aw = torch.cat([self.aw[:, 1:], a[:, None]], dim=1)
        nxt, rew = self.model(self.sw.expand(M, *self.sw.shape), aw.expand(M, *aw.shape),
                              self.goal.expand(M, *self.goal.shape), with_reward=self.reward_fn is None)
        unc = self.model.uncertainty(nxt)  # (B,)
        ar = self.ar
        own = nxt[self.member, ar]
        task = self.reward_fn(own, self.goal) if self.reward_fn is not None else rew[self.member, ar]
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

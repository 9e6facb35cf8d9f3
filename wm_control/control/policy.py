"""The one policy contract: ``reset()``, then ``select_action(q, qd, goal[, latent]) -> position target``.

:class:`BundlePolicy` runs a bundle's ``policy`` graph: the observation of the kind its manifest names
(:func:`wm_control.control.features.policy_observation`, as in training) in, a joint position change
out; the target is ``q + change``, before any clamp (the safety layer, or the planner's clamps, follow).
A policy of a latent kind also sees the visual latent of the latest camera frame; its graph spec's
``latent`` (:class:`LatentInput`) says whose latents those are (the visual bundle's id), so that the
caller can refuse another model's. Used by the policy node and by the planner's proposal row. Timing
is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_control.control.features import needs_goal_image, needs_latent, observation_dim, policy_observation
from wm_control.world.bundle import Bundle, BundleError


@dataclass(frozen=True)
class LatentInput:
    """The visual latent a policy was trained on: the visual bundle's id, the latent's size, the camera rate
    of its frames, and the visual bundle's folder as training saw it (a hint for launching; the id decides)."""

    bundle_id: str
    dim: int
    frame_rate: float
    bundle: str = ""

    @classmethod
    def of(cls, spec: dict) -> "LatentInput":
        return cls(str(spec["bundle_id"]), int(spec["dim"]), float(spec["frame_rate"]), str(spec.get("bundle", "")))



class BundlePolicy:
    """A bundle's ``policy`` graph as a policy (the session verified, built and warmed up here)."""

    def __init__(self, bundle: Bundle, device: str = "auto"):
        spec = bundle.graph("policy")
        self.observation = spec["observation"]
        self.latent: LatentInput | None = None
        if needs_latent(self.observation):
            if not isinstance(spec.get("latent"), dict):
                raise BundleError(f"bundle {bundle.path}: its policy sees the visual latent ({self.observation}) "
                                  "but the manifest does not say whose (graphs.policy.latent); "
                                  "re-make it with `wm-control train bc --visual VISUAL_BUNDLE`")
            self.latent = LatentInput.of(spec["latent"])
        self.obs_dim = observation_dim(self.observation, len(bundle.joint_names),
                                       self.latent.dim if self.latent else 0)
        self.session = bundle.session("policy", device)
        names, outs = self.session.input_names, self.session.output_names
        self._input = "obs" if "obs" in names else names[0]
        self._output = ["action" if "action" in outs else outs[0]]

    @property
    def providers(self) -> list[str]:
        return self.session.providers

    @property
    def needs_latent(self) -> bool:
        return self.latent is not None

    @property
    def needs_goal_image(self) -> bool:
        """The goal is a goal image's latent (``/wm/goal_latent``), not a point."""
        return needs_goal_image(self.observation)

    def reset(self) -> None:
        """Start of an episode. The bundle's policies are memoryless (an MLP): nothing to forget."""

    def select_action(self, q: np.ndarray, qd: np.ndarray, goal: np.ndarray | None,
                      latent: np.ndarray | None = None, goal_latent: np.ndarray | None = None) -> np.ndarray:
        """The position target (n,) float64 for joint positions ``q (n,)``, velocities ``qd (n,)`` (NaN:
        not reported), the goal point ``goal (3,)`` and, for a latent kind, the visual latent ``(Dz,)`` (the
        goal-image kind: the goal image's latent ``(Dz,)`` in place of the goal point)."""
        wanted = [("visual latent", latent)] + ([("goal image's latent", goal_latent)] if self.needs_goal_image else [])
        for name, z in wanted if self.latent is not None else ():
            if z is None or np.shape(z) != (self.latent.dim,):
                raise ValueError(f"this policy needs the {name} ({self.latent.dim} values) of visual bundle "
                                 f"{self.latent.bundle_id[:12]}")
        obs = policy_observation(self.observation, q, qd, goal, latent, goal_latent=goal_latent)[None]
        delta = self.session.sess.run(self._output, {self._input: obs})[0][0]
        return np.asarray(q, np.float64) + delta.astype(np.float64)

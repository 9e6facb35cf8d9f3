"""The one policy contract: ``reset()``, then ``select_action(q, qd, goal) -> position target``.

:class:`BundlePolicy` runs a bundle's ``policy`` graph: the observation of the kind its manifest names
(:func:`wm_control.control.features.policy_observation`, as in training) in, a joint position change
out; the target is ``q + change``, before any clamp (the safety layer, or the planner's clamps, follow).
Used by the policy node and by the planner's proposal row. Timing is the caller's.
"""

from __future__ import annotations

import numpy as np

from wm_control.control.features import policy_observation
from wm_control.world.bundle import Bundle


class BundlePolicy:
    """A bundle's ``policy`` graph as a policy (the session verified, built and warmed up here)."""

    def __init__(self, bundle: Bundle, device: str = "auto"):
        self.observation = bundle.graph("policy")["observation"]
        self.session = bundle.session("policy", device)
        names, outs = self.session.input_names, self.session.output_names
        self._input = "obs" if "obs" in names else names[0]
        self._output = ["action" if "action" in outs else outs[0]]

    @property
    def providers(self) -> list[str]:
        return self.session.providers

    def reset(self) -> None:
        """Start of an episode. The bundle's policies are memoryless (an MLP): nothing to forget."""

    def select_action(self, q: np.ndarray, qd: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The position target (n,) float64 for joint positions ``q (n,)``, velocities ``qd (n,)`` (NaN:
        not reported) and the goal point ``goal (3,)``."""
        obs = policy_observation(self.observation, q, qd, goal)[None]
        delta = self.session.sess.run(self._output, {self._input: obs})[0][0]
        return np.asarray(q, np.float64) + delta.astype(np.float64)

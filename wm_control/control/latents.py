"""The camera's visual latents as a controller receives them: checked, in capture order, looked up by instant.

No ROS here: the policy and planner nodes feed it ``/wm/latent`` (``wm_control/msg/LatentState``) and ask it
for the latent of a control instant, as training paired them (:func:`wm_control.train.bc.attach_latents`:
each control step sees the latest frame captured at or before it).

* :meth:`LatentStream.check`: a latent is this model's (its visual bundle id), of its size, finite and not
  stamped in the future; else the reason it is dropped (``model``, ``malformed``, ``future``), which the
  nodes count as ``dropped.latent_<reason>``.
* :meth:`LatentStream.add`: kept in capture order; one stamped before the newest is ``out_of_order``, unless
  it is a second or more back: the stream restarted (a bag loop, a simulator reset) and starts anew; one with
  the newest one's stamp is the same frame's, published again (a re-announced instant).
* :meth:`LatentStream.at` / :meth:`LatentStream.for_tick`: the newest latent captured at or before an
  instant; for a tick, None and why when there is none (``missing``) or it is older than ``max_age``
  (``stale``): the named fallbacks.
* :meth:`LatentStream.covers`: sim time: has the latent of the frame of this instant arrived (one captured
  after ``t - period``)?
* :meth:`LatentStream.window`: for a model over a history on the control grid, the latent of each grid time.
* :func:`predates_goal`: the goal-image mode: is the goal image's latent older than the newest goal posed?
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from wm_control.control.policy import LatentInput

#: a latent stamped this far before the newest one kept means the stream restarted (seconds)
RESTART_JUMP = 1.0
EPS = 1e-6


class LatentStream:
    def __init__(self, spec: LatentInput, maxlen: int = 16):
        self.spec = spec
        self.items: deque[tuple[float, np.ndarray]] = deque(maxlen=maxlen)  # (capture stamp, latent), in order

    def clear(self) -> None:
        self.items.clear()

    def check(self, bundle_id: str, values, stamp: float, now: float, max_future: float
              ) -> tuple[float, np.ndarray] | str:
        """(stamp, latent float32) when it may be used; else why not: 'model', 'malformed' or 'future'."""
        if bundle_id != self.spec.bundle_id:
            return "model"
        z = np.asarray(values, np.float32)
        if z.shape != (self.spec.dim,) or not np.all(np.isfinite(z)):
            return "malformed"
        if not math.isfinite(stamp) or stamp - now > max_future:
            return "future"
        return stamp, z

    def add(self, stamp: float, z: np.ndarray) -> str | None:
        """Keep it; 'out_of_order' (not kept) when stamped before the newest, unless the stream restarted. One
        with the newest one's stamp is that frame's latent again (a re-announced instant): nothing to keep."""
        if self.items and stamp == self.items[-1][0]:
            return None
        if self.items and stamp < self.items[-1][0]:
            if stamp >= self.items[-1][0] - RESTART_JUMP:
                return "out_of_order"
            self.items.clear()
        self.items.append((stamp, z))
        return None

    def at(self, t: float) -> tuple[float, np.ndarray] | None:
        """(capture stamp, latent) of the newest latent captured at or before ``t``."""
        return next(((st, z) for st, z in reversed(self.items) if st <= t + EPS), None)

    def for_tick(self, t: float, max_age: float) -> tuple[np.ndarray | None, float | None, str | None]:
        """The latent for a tick at ``t`` with its capture stamp; or None and why not ('missing': none captured
        by ``t``; 'stale': the newest is older than ``max_age``)."""
        best = self.at(t)
        if best is None:
            return None, None, "missing"
        if t - best[0] > max_age:
            return None, best[0], "stale"
        return best[1], best[0], None

    def covers(self, t: float, period: float) -> bool:
        """Whether the latent of the frame of instant ``t`` is here: one captured after ``t - period``."""
        best = self.at(t)
        return best is not None and best[0] > t - period + EPS

    def window(self, times: np.ndarray) -> np.ndarray:
        """(len(times), dim): the newest latent captured at or before each time; before the first one kept,
        the first (as a history repeats its earliest state). Call with at least one latent kept."""
        first = self.items[0][1]
        return np.stack([(self.at(float(t)) or (None, first))[1] for t in times])


def predates_goal(latent_stamp: float, goal_stamp: float, t: float) -> bool:
    """The goal-image mode: a goal image's latent stamped before the newest goal posed by ``t`` (the /goal point's
    stamp says a new goal came; the latent of its image is on its way)."""
    return latent_stamp < min(goal_stamp, t) - EPS


__all__ = ["LatentStream", "RESTART_JUMP", "predates_goal"]

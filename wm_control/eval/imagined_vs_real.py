"""What a planner expected against what happened, over the live graph (``eval closed-loop`` / ``eval suite``).

Each plan on ``/wm/plan`` carries ``expected_return``: the sum over its ``horizon`` steps of the ensemble's
mean predicted reward. On a task whose reward is the object's distance to the goal (the push task: the reward
head's target, :func:`wm_control.train.ensemble.object_reward`), ``-expected_return / horizon`` is the
distance the model expects over the plan's window; the simulator's ground truth
(``/sim/ground_truth/object``, evaluation only) gives the distance that followed over the same instants.
Exploitation shows as optimism: the model expects the object nearer the goal than it comes. Per episode, the
last plan whose window lies inside it gives the imagined final distance, hence an imagined success to set
against the real one (RWM-U's "imagined vs real").
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from wm_control.messages import convert as cv


class ImaginedVsReal:
    """Collects goals, ground-truth object positions and plans; :meth:`summary` pairs them up."""

    def __init__(self, success_radius: float):
        self.radius = float(success_radius)
        self.goal_t: list[float] = []
        self.goal_xy: list[np.ndarray] = []
        self.obj: dict[int, np.ndarray] = {}  # stamp (ns) -> object xy
        self.plans: list[tuple[float, float, int, float]] = []  # (stamp, dt, horizon, expected_return)

    def on_goal(self, msg: Any) -> None:
        t = cv.stamp_sec(msg.header.stamp)
        if self.goal_t and abs(t - self.goal_t[-1]) < 1e-9:
            return  # the latched goal again
        i = bisect.bisect(self.goal_t, t)
        self.goal_t.insert(i, t)
        self.goal_xy.insert(i, cv.point_to_array(msg)[:2])

    def on_object(self, msg: Any) -> None:
        self.obj[cv.stamp_ns(msg.header.stamp)] = cv.point_to_array(msg)[:2]

    def on_plan(self, msg: Any) -> None:
        r = float(msg.expected_return)
        if int(msg.horizon) > 0 and math.isfinite(r) and msg.dt > 0:
            self.plans.append((cv.stamp_sec(msg.header.stamp), float(msg.dt), int(msg.horizon), r))

    def _real(self, ts: np.ndarray, xy: np.ndarray, t: float, dt: float, k: int, e: int, end: float
              ) -> float | None:
        """The mean distance of the object to episode ``e``'s goal over t + dt .. t + k dt from the ground truth
        (``ts`` sorted, s; ``xy`` with it); None when the window leaves the episode (``end``) or a sample is
        missing."""
        if t + k * dt >= end - 1e-6:
            return None
        want = t + dt * np.arange(1, k + 1)
        i = np.clip(np.searchsorted(ts, want), 1, len(ts) - 1)
        i = np.where(np.abs(ts[i - 1] - want) < np.abs(ts[i] - want), i - 1, i)  # the nearest sample
        if np.any(np.abs(ts[i] - want) > 0.5 * dt):
            return None
        return float(np.linalg.norm(xy[i] - self.goal_xy[e], axis=-1).mean())

    def summary(self, episodes: int) -> dict[str, Any] | None:
        """None when there were no plans or no ground truth (a task without an object)."""
        if not self.plans or not self.obj or not self.goal_t:
            return None
        from wm_control.world.ensemble import spearman

        ends = self.goal_t[1:] + [math.inf]
        order = sorted(self.obj)
        ts, xy = np.array(order, float) * 1e-9, np.array([self.obj[s] for s in order])
        imagined, real, last = [], [], {}
        for t, dt, k, ret in sorted(self.plans):
            e = bisect.bisect(self.goal_t, t + 1e-9) - 1
            if e < 0 or e >= episodes:
                continue
            r = self._real(ts, xy, t, dt, k, e, ends[e])
            if r is None:
                continue
            imagined.append(-ret / k)
            real.append(r)
            last[e] = (-ret / k, r)
        if not imagined:
            return None
        im, re = np.array(imagined), np.array(real)
        per = [{"episode": e, "imagined_distance": last[e][0], "real_distance": last[e][1]} for e in sorted(last)]
        return {
            "plans": len(im),
            "imagined_mean_distance_m": float(im.mean()), "real_mean_distance_m": float(re.mean()),
            # > 0: the model expected the object nearer the goal than it came (exploitation shows here)
            "optimism_m": float(np.mean(re - im)), "optimism_median_m": float(np.median(re - im)),
            "abs_error_median_m": float(np.median(np.abs(re - im))),
            "spearman": spearman(im, re) if len(im) > 2 and np.ptp(im) > 0 and np.ptp(re) > 0 else None,
            "episodes": len(per),
            "imagined_success_rate": float(np.mean([p["imagined_distance"] < self.radius for p in per])),
            "real_success_rate_last_window": float(np.mean([p["real_distance"] < self.radius for p in per])),
            "per_episode": per,
        }



def summary_text(run: dict[str, Any]) -> str:
    """``"; imagined success 60% (real 40%), optimism 1.2 cm over 900 plans"`` for a run that has the pairing,
    else ``""``."""
    iv = run.get("imagined_vs_real")
    if not iv:
        return ""
    return (f"; imagined success {100 * iv['imagined_success_rate']:.0f}% (real "
            f"{100 * run['success_rate']:.0f}%), optimism {100 * iv['optimism_m']:+.1f} cm over {iv['plans']} plans")

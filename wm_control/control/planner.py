"""The uncertainty-aware planner (RWM-U): model-predictive control over the ensemble's ONNX graph.

No ROS here (the ``planner`` node in :mod:`wm_control.ros.nodes.planner` wraps it). Given the robot's
recent history on the control grid (the last ``H`` states and the ``H - 1`` commands executed over
them, aligned as in training: ``a[j]`` is the target in force from ``s[j]`` to ``s[j+1]``) and the
goal, :meth:`Planner.plan` returns position targets for the next ``horizon`` control steps.

MPPI (model-predictive path integral), warm-started:

* **the policy's proposal**: the bundle's policy (:class:`wm_control.control.policy.BundlePolicy`, as in
  the policy node) rolled forward through the model in closed loop (its action at every step from the
  members' mean predicted state), through the same clamps as below.
* **candidates**: row 0 is the policy's proposal (in later iterations: the best candidate so far),
  row 1 the sampling mean, the others Gaussian noise (``noise_std`` rad, independent per step and
  joint) around the sampling mean or, for a fraction ``policy_samples``, around the policy's
  proposal. The sampling mean is the last plan shifted by the control steps elapsed since it (tail:
  its last action repeated), or on a cold start (first plan, goal moved, last plan older than the
  horizon or failed) the policy's proposal.
* **clamps**: every candidate is an absolute position target sequence passed through the clamps of
  the safety layer, in order: a non-finite target holds the previous one, at most ``max_step`` from
  the previous target (the command in force at the start), then the position limits
  (:func:`wm_control.control.limits.clamp_sequence`: the safety layer's own kernel, also in
  :meth:`wm_control.train.imagined.ImaginedEnvs.command`).
* **rollouts**: every candidate through all members at once (one ONNX call per step, members x
  candidates); each member follows its own trajectory from the same start.
* **cost**: ``-(sum over steps of the members' mean reward) + lam * (sum over steps of the
  uncertainty)``, the uncertainty at a step being the members' disagreement exactly as
  :meth:`wm_control.world.ensemble.EnsembleDynamics.uncertainty`: the std over members (unbiased,
  as torch) of the predicted state divided by ``normalizers.ensemble_uncertainty_scale``, summed
  over state dimensions.
* **the goal as an image** (a bundle whose policy reads the goal image's latent, ``--observation
  joint_trig_goal_image_latent``; the ensemble over the same visual latent): the step's reward is V-JEPA
  2-AC's energy, minus the mean absolute difference between the members' predicted latent and the goal
  image's, each value in units of its spread in the ensemble's data (``normalizers.ensemble_state.std``); no
  goal point, no reward head.
* **update**: weights ``exp(-(cost - min cost) / temperature)``; the new mean is the weighted mean of
  the (clamped, hence feasible: the constraints are convex) candidates. The plan is the final mean,
  rolled out once more for its uncertainty and expected return. Not the best single candidate:
  where the model's reward is flat (near the goal, within its error) the best of 256 noisy
  candidates is noise, and warm-starting from it random-walks (measured on the simulated arm: 0/4
  episodes reached the goal that way, 4/4 with the mean).

Status: ``FAILED`` when the inputs or every candidate's cost are non-finite (the plan then holds the
command in force), ``UNCERTAIN`` when the plan's first-step uncertainty exceeds the threshold
(default: the bundle's calibrated ``thresholds.first_step_p99``), else ``OK``.

Speed (5 members x 256 candidates x horizon 16 on the 2-core CPU): the ensemble calls are ~80% of
the time (one call ~0.84 ms on one core); an unrolled 16-step ONNX graph measured no faster than 16
calls of the one-step graph (20.8 vs 20.2 ms: the per-call overhead is ~30 us), so planning uses the
bundle's ``ensemble`` graph, with ``threads`` intra-op threads (``wm-control bench planner``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wm_control.control.kinematics import Chain
from wm_control.control.limits import clamp_command, clamp_sequence
from wm_control.control.policy import BundlePolicy, LatentInput
from wm_control.world.bundle import Bundle, BundleError, load_bundle

STATUS_OK, STATUS_UNCERTAIN, STATUS_FAILED, STATUS_NO_INPUT = 0, 1, 2, 3
STATUS_NAMES = {STATUS_OK: "OK", STATUS_UNCERTAIN: "UNCERTAIN", STATUS_FAILED: "FAILED", STATUS_NO_INPUT: "NO_INPUT"}


@dataclass
class PlannerConfig:
    horizon: int = 16
    """Control steps planned (at the bundle's control rate)."""
    samples: int = 256
    """Candidates per iteration, including the policy's proposal and the noise-free mean."""
    iterations: int = 1
    """MPPI updates per plan (the warm start carries the optimisation over from plan to plan)."""
    lam: float = 0.5
    """Weight of the summed per-step uncertainty in the cost (RWM-U's lambda)."""
    temperature: float = 0.02
    """MPPI temperature, in cost units (return is -fingertip distance in m per step)."""
    noise_std: float = 0.05
    """Std of the sampling noise on each step's position target, rad."""
    warm_start: bool = True
    """Start from the last plan shifted by the elapsed control steps (else: from the policy's proposal)."""
    policy_samples: float = 0.5
    """With a warm start: the fraction of the noisy candidates drawn around the policy's proposal (the rest
    around the warm start). It keeps the search near what the policy (and the data) would do."""
    max_step: float = 0.0
    """Largest change of the target per step, rad; 0 takes the bundle's robot.max_step."""
    position_lower: list[float] = field(default_factory=list)
    position_upper: list[float] = field(default_factory=list)
    """Position limits; empty takes the bundle's robot.position_limits."""
    uncertainty_threshold: float = 0.0
    """First-step uncertainty above this gives status UNCERTAIN; 0 takes the bundle's calibrated
    thresholds.first_step_p99 (then uncertainty_p99)."""
    reward: str = "auto"
    """kinematic: minus the fingertip distance from the bundle's kinematic chain (robot.kinematics, see
    :mod:`wm_control.control.kinematics`); head: the ensemble's learned reward (mean over members); auto: kinematic
    when the bundle has the chain."""
    device: str = "auto"
    """auto | tensorrt | cuda | cpu (ONNX Runtime execution provider)."""
    threads: int = 1
    """ONNX Runtime intra-op threads for the ensemble (measured on the shared 2-core CPU: 1 thread 18.1 ms per
    plan, 2 threads 20.1 ms; 2 pay off only with a core to spare: ``wm-control bench planner``)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.samples < 2 or self.iterations < 1:
            raise ValueError("horizon and iterations must be >= 1 and samples >= 2")
        if not 0.0 <= self.policy_samples <= 1.0:
            raise ValueError("policy_samples must be within [0, 1]")
        if self.lam < 0 or not self.temperature > 0 or self.noise_std < 0 or self.max_step < 0:
            raise ValueError("lam, noise_std and max_step must be >= 0 and temperature > 0")
        if len(self.position_lower) != len(self.position_upper):
            raise ValueError("position_lower and position_upper must have the same length")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.reward not in ("auto", "kinematic", "head"):
            raise ValueError("reward must be auto, kinematic or head")


@dataclass
class Plan:
    """One plan: ``actions (horizon, n)`` absolute position targets in the bundle's joint order, the
    first for the state the plan starts from; ``uncertainty (horizon,)`` of those actions."""

    actions: np.ndarray
    uncertainty: np.ndarray
    expected_return: float
    cost: float
    status: int
    message: str
    nominal_return: float = math.nan
    """The policy's proposal rolled through the model: its predicted return (for comparison)."""
    nominal_cost: float = math.nan
    warm: bool = False
    """Whether the sampling started from the previous plan."""
    cost_spread: float = math.nan
    """The std of the candidates' costs in the last MPPI iteration: the scale the temperature is set against
    (far below it the weights are flat, far above it MPPI takes the single best)."""
    stamp: float | None = None

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status))


def bundle_limits(bundle: Bundle, lower: list[float] | None = None, upper: list[float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) arrays: the given ones, else the manifest's robot.position_limits (None: unbounded)."""
    n = len(bundle.joint_names)
    if lower:
        if len(lower) != n or len(upper or []) != n:
            raise ValueError(f"position_lower/upper need {n} values (joints {bundle.joint_names})")
        return np.asarray(lower, float), np.asarray(upper, float)
    limits = bundle.manifest["robot"].get("position_limits")
    if not limits:
        raise ValueError("no joint limits: give position_lower/position_upper, or use a bundle whose manifest "
                         "has robot.position_limits")
    lo = np.array([-np.inf if a is None else float(a) for a, _ in limits])
    hi = np.array([np.inf if b is None else float(b) for _, b in limits])
    return lo, hi


class Planner:
    """MPPI over a bundle's ``ensemble`` graph around its ``policy`` graph's proposal (see the module)."""

    def __init__(self, bundle: Bundle | str, cfg: PlannerConfig | None = None):
        self.cfg = cfg = cfg or PlannerConfig()
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        b = self.bundle
        graphs = b.manifest.get("graphs", {})
        for name, how in (("ensemble", "`wm-control train ensemble --bundle OUT`"),
                          ("policy", "`wm-control train ensemble --bundle OUT --policy-bundle POLICY_BUNDLE`")):
            if name not in graphs:
                raise BundleError(f"the planner needs a bundle with an {name!r} graph; {b.path} has "
                                  f"{sorted(graphs)} (make one with {how})")
        spec = b.graph("ensemble")
        self.members = int(spec["members"])
        self.history = int(spec["history"])
        self.state_dim = int(spec["inputs"]["state_window"]["shape"][-1])
        self.names = b.joint_names
        self.n = len(self.names)
        if int(spec["inputs"]["action_window"]["shape"][-1]) != self.n:
            raise BundleError(f"ensemble graph actions have {spec['inputs']['action_window']['shape'][-1]} values, "
                              f"the bundle has {self.n} joints")
        scale = (b.manifest.get("normalizers", {}).get("ensemble_uncertainty_scale") or {}).get("std")
        if scale is None or len(scale) != self.state_dim:
            raise BundleError(f"bundle {b.path}: normalizers.ensemble_uncertainty_scale.std with {self.state_dim} "
                              f"values is missing (export the ensemble with `wm-control train ensemble`)")
        self.scale = np.asarray(scale, np.float32)
        self.dt = 1.0 / b.control_rate
        self.lo, self.hi = bundle_limits(b, cfg.position_lower, cfg.position_upper)
        self.max_step = np.full(self.n, cfg.max_step or float(b.manifest["robot"].get("max_step", 0.1)))
        thr = b.manifest.get("thresholds", {}) or {}
        self.threshold = float(cfg.uncertainty_threshold or thr.get("first_step_p99") or thr.get("uncertainty_p99")
                               or math.inf)
        kin = b.manifest["robot"].get("kinematics")
        if cfg.reward == "kinematic" and not kin:
            raise BundleError(f"reward 'kinematic' needs robot.kinematics in {b.path}'s manifest (export with a "
                              f"simulated robot's ensemble) or use reward 'head'")
        self.chain = Chain.from_dict(kin) if kin and cfg.reward != "head" else None
        self.latent = LatentInput.of(spec["latent"]) if isinstance(spec.get("latent"), dict) else None
        if self.state_dim != 2 * self.n + (self.latent.dim if self.latent else 0):
            raise BundleError(f"bundle {b.path}: the ensemble's state has {self.state_dim} values, not (q, qd) = "
                              f"{2 * self.n} + a visual latent it names (graphs.ensemble.latent); re-export it with "
                              f"`wm-control train ensemble --bundle OUT`")
        self.ensemble = b.session("ensemble", cfg.device, warmup=20, threads=cfg.threads)  # verified, id-keyed cache
        self.policy = BundlePolicy(b, cfg.device)
        self.goal_image = self.policy.needs_goal_image  # the goal is a goal image's latent (V-JEPA 2-AC's energy)
        if self.goal_image and self.latent is None:
            raise BundleError(f"{b.path}: its policy takes the goal as an image ({self.policy.observation}) but the "
                              f"ensemble predicts (q, qd) only: the energy to the goal image needs an ensemble over "
                              f"the visual latent (`train ensemble --visual`)")
        self.goal_dim = self.latent.dim if self.goal_image else 3
        if self.goal_image:  # the energy's units: each latent value over its spread in the ensemble's data
            std = (b.manifest.get("normalizers", {}).get("ensemble_state") or {}).get("std")
            if std is None or len(std) != self.state_dim:
                raise BundleError(f"bundle {b.path}: normalizers.ensemble_state.std with {self.state_dim} values is "
                                  f"missing (export the ensemble with `wm-control train ensemble`)")
            self.latent_std = np.maximum(np.asarray(std, np.float32)[2 * self.n:], 1e-6)
            self.chain = None  # neither the fingertip nor the reward head: the goal is a picture
        pl = self.policy.latent
        if pl is not None and (self.latent is None or pl.bundle_id != self.latent.bundle_id):
            raise BundleError(f"{b.path}: its policy sees visual bundle {pl.bundle_id[:12]}'s latent but the ensemble "
                              + ("predicts (q, qd) only" if self.latent is None else
                                 f"predicts visual bundle {self.latent.bundle_id[:12]}'s")
                              + ": train both on the same visual bundle (`--visual`)")
        self.providers = self.ensemble.providers
        self.rng = np.random.default_rng(cfg.seed)
        self.last: Plan | None = None
        self._last_goal: np.ndarray | None = None
        self._warmup()

    # ---- public ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the warm start (the next plan starts from the policy's proposal)."""
        self.last = None
        self._last_goal = None

    def warm_start_for(self, stamp: float | None, goal: np.ndarray) -> np.ndarray | None:
        """The sampling mean a plan at ``stamp`` would start from: the last plan shifted by the control
        steps elapsed (its last action repeated at the end), or None (cold start: no plan, another
        goal, a plan older than the horizon, or one from the future)."""
        p = self.last
        if (not self.cfg.warm_start or p is None or p.status == STATUS_FAILED or self._last_goal is None
                or not np.allclose(self._last_goal, goal, atol=1e-6)):
            return None
        if stamp is None or p.stamp is None:
            shift = 1
        else:
            shift = int(round((stamp - p.stamp) / self.dt))
        K = self.cfg.horizon
        if shift < 0 or shift >= K or p.actions.shape[0] != K:
            return None
        a = p.actions
        return np.concatenate([a[shift:], np.repeat(a[-1:], shift, axis=0)], axis=0)

    def plan(self, states: np.ndarray, actions: np.ndarray, goal: np.ndarray, stamp: float | None = None,
             prev_command: np.ndarray | None = None) -> Plan:
        """Plan from ``states (H, ds)`` (oldest first; the last is now: q, qd and, for an ensemble over the
        visual latent, the latent of the latest frame at each step) and ``actions (H-1, n)``, the
        commands in force over the steps between them (``actions[-1]`` is the command in force now,
        from which the rate limit counts, unless ``prev_command`` is given; it must be when H == 1).
        ``stamp``: the time of the last state (for the warm start's shift)."""
        H, K, n = self.history, self.cfg.horizon, self.n
        states = np.asarray(states, np.float64)
        actions = np.asarray(actions, np.float64).reshape(-1, n)
        goal = np.asarray(goal, np.float64).ravel()
        if goal.shape != (self.goal_dim,):
            what = "the goal image's latent" if self.goal_image else "a point"
            raise ValueError(f"plan() needs the goal as {what} ({self.goal_dim} values), got {goal.shape[0]}")
        if states.shape != (H, self.state_dim) or actions.shape != (H - 1, n):
            raise ValueError(f"plan() needs states ({H}, {self.state_dim}) and actions ({H - 1}, {n}), got "
                             f"{states.shape} and {actions.shape}")
        if prev_command is None:
            if H == 1:
                raise ValueError("prev_command is required when the model's history is 1")
            prev_command = actions[-1]
        prev = np.asarray(prev_command, np.float64).reshape(n)
        hold = np.repeat(np.clip(np.where(np.isfinite(prev), prev, states[-1, :n]), self.lo, self.hi)[None], K, 0)
        bad = [what for what, v in (("state", states), ("actions", actions), ("previous command", prev), ("goal", goal))
               if not np.all(np.isfinite(v))]
        if bad:
            return self._failed(hold, f"non-finite input: {', '.join(bad)}", stamp)
        warm = self.warm_start_for(stamp, goal)
        sw, past = states.astype(np.float32), actions.astype(np.float32)
        nom = self._rollout(sw, past, goal, np.zeros((1, K, n)), prev, policy_row=True)  # the policy's proposal
        nominal = nom["actions"][0]
        if not np.isfinite(nom["cost"][0]):
            nom["cost"][0] = np.inf
        best = (float(nom["cost"][0]), nominal, nom["uncertainty"][0], nom["rewards"][0])
        mean = warm if warm is not None else nominal
        N = self.cfg.samples
        n_pol = (N - 2) if warm is None else int(round(self.cfg.policy_samples * (N - 2)))
        for _ in range(self.cfg.iterations):
            u = np.empty((N, K, n))
            u[0] = best[1]  # the policy's proposal, then the best so far (already clamped)
            u[1] = mean
            noise = self.cfg.noise_std * self.rng.standard_normal((N - 2, K, n))
            u[2: 2 + n_pol] = nominal + noise[:n_pol]
            u[2 + n_pol:] = mean + noise[n_pol:]
            u[1:] = clamp_sequence(u[1:], prev, self.max_step, self.lo, self.hi)
            r = self._rollout(sw, past, goal, u, prev, policy_row=False)
            c = np.where(np.isfinite(r["cost"]), r["cost"], np.inf)
            i = int(np.argmin(c))
            if not np.isfinite(c[i]):
                return self._failed(hold, "every candidate's cost is non-finite", stamp)
            if c[i] < best[0]:
                best = (float(c[i]), r["actions"][i], r["uncertainty"][i], r["rewards"][i])
            finite = c[np.isfinite(c)]
            spread = float(finite.std()) if len(finite) > 1 else math.nan
            w = np.exp(-(c - c[i]) / self.cfg.temperature)
            mean = np.tensordot(w / w.sum(), r["actions"], axes=1)
        m = self._rollout(sw, past, goal, mean[None], prev, policy_row=False)  # the plan: the MPPI mean
        if np.isfinite(m["cost"][0]):
            best = (float(m["cost"][0]), mean, m["uncertainty"][0], m["rewards"][0])
        cost, chosen, unc, rew = best
        ret = float(rew.sum())
        if not (np.all(np.isfinite(chosen)) and np.all(np.isfinite(unc)) and math.isfinite(ret)):
            return self._failed(hold, "non-finite plan", stamp)
        if unc[0] > self.threshold:
            status, msg = STATUS_UNCERTAIN, f"first-step uncertainty {unc[0]:.4g} > threshold {self.threshold:.4g}"
        else:
            status, msg = STATUS_OK, f"return {ret:.4g}, first-step uncertainty {unc[0]:.4g}"
        plan = Plan(actions=np.asarray(chosen, np.float64), uncertainty=np.asarray(unc, np.float32),
                    expected_return=ret, cost=cost, status=status, message=msg,
                    nominal_return=float(nom["rewards"][0].sum()), nominal_cost=float(nom["cost"][0]),
                    warm=warm is not None, stamp=stamp, cost_spread=spread)
        self.last, self._last_goal = plan, goal.copy()
        return plan

    # ---- internals ------------------------------------------------------------------------------
    def _failed(self, hold: np.ndarray, why: str, stamp: float | None) -> Plan:
        self.reset()
        return Plan(actions=hold, uncertainty=np.full(len(hold), np.nan, np.float32), expected_return=math.nan,
                    cost=math.nan, status=STATUS_FAILED, message=why, stamp=stamp)

    def _goal(self, goal: np.ndarray, N: int) -> np.ndarray:
        """The ensemble graph's goal input (its reward head's; unused against a goal image: zeros)."""
        if self.goal_image:
            return np.zeros((self.members, N, 3), np.float32)
        return np.ascontiguousarray(np.broadcast_to(goal.astype(np.float32), (self.members, N, 3)))

    def _rollout(self, sw: np.ndarray, past: np.ndarray, goal: np.ndarray, u: np.ndarray, prev: np.ndarray,
                 policy_row: bool) -> dict[str, np.ndarray]:
        """Roll candidates ``u (N, K, n)`` (already clamped) through every member. With ``policy_row``,
        row 0's actions are the policy's, computed step by step from the members' mean predicted state
        and clamped like the rest. Returns the (possibly filled) actions, per-step uncertainty (N, K),
        per-step mean reward (N, K) and cost (N,)."""
        M, H, K, n, ds = self.members, self.history, u.shape[1], self.n, self.state_dim
        N = u.shape[0]
        acts = u.astype(np.float32)  # (N, K, n)
        seq_a = np.empty((N, H - 1 + K, n), np.float32)
        seq_a[:, : H - 1] = past
        seq_a[:, H - 1:] = acts
        seq_s = np.empty((M, N, H + K, ds), np.float32)
        seq_s[:, :, :H] = sw
        rewards = np.empty((M, N, K), np.float32)
        g = self._goal(goal, N)
        p_prev = prev.astype(np.float64)
        if policy_row:
            self.policy.reset()
        for k in range(K):
            if policy_row:  # the policy's target from the members' mean state, through the same clamps
                s = seq_s[:, 0, H - 1 + k].mean(0, dtype=np.float64)
                t = self.policy.select_action(s[:n], s[n: 2 * n], None if self.goal_image else goal,
                                              s[2 * n:].astype(np.float32) if self.policy.needs_latent else None,
                                              goal_latent=goal.astype(np.float32) if self.goal_image else None)
                p_prev = clamp_command(t, p_prev, self.max_step, self.lo, self.hi)
                seq_a[0, H - 1 + k] = p_prev
            state_window = seq_s[:, :, k: k + H]
            action_window = np.broadcast_to(seq_a[None, :, k: k + H], (M, N, H, n))
            out = self.ensemble.sess.run(None, {"state_window": np.ascontiguousarray(state_window),
                                                "action_window": np.ascontiguousarray(action_window), "goal": g})
            seq_s[:, :, H + k] = out[0]
            rewards[:, :, k] = out[1]
        states = seq_s[:, :, H:]  # (M, N, K, ds)
        unc = (states / self.scale).std(0, ddof=1).sum(-1)  # (N, K): EnsembleDynamics.uncertainty
        if self.goal_image:  # the energy: minus the mean |predicted latent - the goal image's| in data spreads
            rewards = -(np.abs(states[..., 2 * n:] - goal.astype(np.float32)) / self.latent_std).mean(-1)
        elif self.chain is not None:  # the task reward of every member's predicted configuration
            rewards = self.chain.reach_reward(states[..., :n], goal[None, None, None]).astype(np.float32)
        ret_steps = rewards.mean(0)  # (N, K)
        with np.errstate(invalid="ignore", over="ignore"):
            cost = -ret_steps.sum(-1, dtype=np.float64) + self.cfg.lam * unc.sum(-1, dtype=np.float64)
        return {"actions": seq_a[:, H - 1:].astype(np.float64), "uncertainty": unc, "rewards": ret_steps,
                "cost": cost}

    def _warmup(self, plans: int = 3) -> None:
        """A few plans on a plausible input (at rest at the middle of the limits), then forget them."""
        bounded = np.isfinite(self.lo) & np.isfinite(self.hi)
        mid = np.where(bounded, 0.5 * (np.where(bounded, self.lo, 0.0) + np.where(bounded, self.hi, 0.0)), 0.0)
        s = np.zeros((self.history, self.state_dim))
        s[:, : self.n] = mid
        a = np.repeat(mid[None], self.history - 1, 0)
        for _ in range(plans):
            self.plan(s, a, np.zeros(self.goal_dim) if self.goal_image else np.array([0.1, 0.1, 0.0]), prev_command=mid)
        self.reset()
        self.rng = np.random.default_rng(self.cfg.seed)


def time_plan(planner: Planner, states: np.ndarray, actions: np.ndarray, goal: np.ndarray, n: int = 50
              ) -> np.ndarray:
    """Wall time of ``n`` consecutive plans (warm-started, as in the node), seconds."""
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        planner.plan(states, actions, goal, stamp=i * planner.dt)
        out[i] = time.perf_counter() - t0
    return out


__all__: list[Any] = ["Planner", "PlannerConfig", "Plan", "bundle_limits", "STATUS_OK",
                      "STATUS_UNCERTAIN", "STATUS_FAILED", "STATUS_NO_INPUT", "STATUS_NAMES", "time_plan"]

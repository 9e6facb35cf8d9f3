"""Training the RWM-U ensemble from bags: teacher forcing or self-forcing, one CPU or DDP.

* ``teacher``: one-step loss on true inputs.
* ``self``: the model rolls out ``horizon`` steps on its own predictions with the loss against the
  true state at every step and gradients through the whole rollout; a schedule moves the inputs from
  the true states to its own predictions (scheduled sampling made systematic: the probability of
  feeding back its own prediction ramps 0 -> 1 over the first ``schedule_frac`` of training).

Both regimes see the same data with the same number of gradient steps and batch size. Every member
draws its batches from its own bootstrap of the training windows. Under ``torchrun`` the gradient
is averaged across processes with DDP (gloo on CPU, nccl on GPU); only rank 0 writes.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import yaml

from wm_control.data.dataset import DatasetConfig, Episode, load_episodes
from wm_control.report import JsonLines
from wm_control.report import progress as progress_bar
from wm_control.sim.robots import DEFAULT_ROBOT
from wm_control.train import read_checkpoint
from wm_control.train.onnx import export_onnx
from wm_control.train.presets import preset
from wm_control.world.ensemble import EnsembleDynamics, StateSpec, step_features

if TYPE_CHECKING:
    from wm_control.control.kinematics import Chain


@dataclass
class EnsembleConfig:
    robot: str = DEFAULT_ROBOT
    """The simulated robot (its logs collected when the data folder is empty; its kinematics)."""
    robot_config: str = ""
    """A robot config YAML (or a name in config/robots/): the bags' topics, joints and rate, the limits
    and the reach kinematics (urdf + tip_link) of the robot; '' for the simulated ROBOT."""
    regime: Literal["self", "teacher"] = "self"
    """'self' (self-forcing rollouts) or 'teacher' (one-step, true inputs)."""
    members: int = 5
    arch: Literal["mlp", "gru"] = "mlp"
    """'mlp' over the flattened window or 'gru' over its steps."""
    hidden: int = 96
    """96 wide: the planner's query (5 members x 256 candidates) in < 1 ms on one CPU core; 128 measured
    no better (50-step error 0.0017 vs 0.0019) and 1.08 ms."""
    layers: int = 2
    history: int = 4
    horizon: int = 16
    """Self-forcing rollout length (teacher forcing always uses 1)."""
    schedule_frac: float = 0.5
    iterations: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    reward_weight: float = 0.1
    reward_hidden: int = 32
    """Width of the reward head's two layers (a function of the configuration and the goal)."""
    reward_samples: int = 20000
    """Configurations drawn uniformly over the joint ranges (goals from the logs), labelled with the task
    reward by the robot's kinematic model, added to the reward head's training (0: logs only). The
    task reward is known on the whole configuration space; the logs only show it where the behaviour
    policy went, and a policy optimised in the model finds the head's extrapolation errors (measured:
    PPO folding the elbow where the head said "at the goal", 0% success in the simulator)."""
    episodes: int = 400
    """Episodes to collect when the data folder is empty (noisy expert)."""
    collect_noise: float = 0.3
    val_fraction: float = 0.1
    calibration_horizon: int = 16
    control_rate: float = 50.0
    bootstrap: Literal["episode", "window"] = "episode"
    """'episode': each member trains on its own resample of whole episodes (windows inside one episode
    are strongly correlated, so resampling windows barely changes what a member sees); 'window'."""
    prior_scale: float = 0.0
    """Randomised prior functions (Osband et al. 2018): each member adds a fixed, untrained random
    network scaled by this to its output, so members disagree wherever the data do not pin them."""
    visual: str = ""
    """A visual world model bundle (`train visual`): the state gains the latent of each step's latest camera
    frame, encoded as the world_model node does (the bags need the camera topic); '' for joints only."""
    reward: Literal["reach", "object"] = "reach"
    """What the reward head learns: 'reach' (-tip distance to the goal, from the robot's kinematics) or
    'object' (a push task: -xy distance of the object to the goal, from the labelling topic of at most
    ``label_fraction`` of the training episodes; the head reads the latent, so it needs ``visual``)."""
    label_fraction: float = 0.1
    """With reward 'object': the share of training episodes whose object labels teach the reward head (the
    rest teach the dynamics only; a robot's operator labels a few episodes, not all)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reward not in ("reach", "object"):
            raise ValueError(f"reward must be 'reach' or 'object', not {self.reward!r}")
        if self.reward == "object" and not self.visual:
            raise ValueError("reward 'object' reads the object from the camera: give --visual VISUAL_BUNDLE")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction must be in (0, 1], not {self.label_fraction}")
        if self.regime not in ("self", "teacher"):
            raise ValueError(f"regime must be 'self' or 'teacher', not {self.regime!r}")
        if self.arch not in ("mlp", "gru"):
            raise ValueError(f"arch must be 'mlp' or 'gru', not {self.arch!r}")
        if self.members < 2:
            raise ValueError("an ensemble needs at least 2 members")
        if self.horizon < 1 or self.history < 1 or self.iterations < 1:
            raise ValueError("horizon, history and iterations must be >= 1")
        if self.bootstrap not in ("episode", "window"):
            raise ValueError(f"bootstrap must be 'episode' or 'window', not {self.bootstrap!r}")


def ensemble_preset(name: str, **overrides: Any) -> EnsembleConfig:
    return preset(EnsembleConfig, name, **overrides)


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
@dataclass
class Transitions:
    """Episodes flattened, with the start indices valid for windows of (history, horizon)."""

    S: np.ndarray  # (N, ds) states
    A: np.ndarray  # (N, da) actions (position targets)
    G: np.ndarray  # (N, 3) goals
    R: np.ndarray  # (N,) reward of arriving at this state (-fingertip distance)
    starts: np.ndarray  # indices t: window S[t-H+1..t], targets S[t+1..t+K]
    episode_of: np.ndarray  # (N,)
    W: np.ndarray | None = None
    """(N,) 1 where R is known (labelled episodes of an object reward), 0 elsewhere; None: known everywhere."""


@dataclass
class Task:
    """What the reward head is taught and where its extra samples come from: the robot's name, the
    reach chain (None: the head learns from the logs alone and the bundle records no kinematics) and
    its joint ranges ([lower, upper] per joint, None for a continuous one)."""

    name: str
    joint_names: list[str]
    chain: Chain | None
    limits: list[list[float | None]] | None

    @classmethod
    def of(cls, robot: str, joint_names: list[str], robot_config: str = "") -> Task:
        """From a robot config (its urdf + tip_link; its limits), else from the simulated ``robot``."""
        names = list(joint_names)
        if robot_config:
            from wm_control.robot import load_robot_config

            rc = load_robot_config(robot_config)
            lim = rc.position_limits()
            order = [rc.joint_names.index(j) for j in names] if sorted(names) == sorted(rc.joint_names) else None
            chain = rc.kinematics() if names == list(rc.joint_names) else None
            limits = None if lim is None or order is None else [[lim[0][i], lim[1][i]] for i in order]
            return cls(rc.name, names, chain, limits)
        from wm_control.control.kinematics import chain_from_sim
        from wm_control.train.bc import sim_position_limits

        limits = sim_position_limits(robot, names)
        chain = chain_from_sim(robot) if limits is not None else None  # limits None: not these joints
        return cls(robot, names, chain if chain is not None and chain.n == len(names) else None, limits)

    def reward(self, q: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The reach reward (-tip distance to the goal) per row; zeros without a chain."""
        if self.chain is None:
            return np.zeros(len(q))
        return self.chain.reach_reward(np.asarray(q, dtype=np.float64), np.asarray(goal, dtype=np.float64))


def fingertip_distance(robot: str | Task, q: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """-|fingertip - goal| per row (over the task's goal dimensions), from the robot's kinematic chain."""
    task = robot if isinstance(robot, Task) else Task.of(robot, _sim_joint_names(robot))
    return task.reward(q, goal)


def _sim_joint_names(robot: str) -> list[str]:
    from wm_control.sim import ArmConfig, SimArm

    arm = SimArm(ArmConfig(robot=robot, render=False))
    arm.connect()
    try:
        return list(arm.joint_names)
    finally:
        arm.disconnect()


def object_reward(e: Episode) -> np.ndarray:
    """(T,) -xy distance of the labelled object to the goal (a push task's reward; the success test's metric)."""
    if e.object is None or e.goal is None:
        raise ValueError(f"{e.source}: no object labels or no goal (reward 'object' needs the labelling topic)")
    return -np.linalg.norm(e.object[:, :2] - e.goal[:, :2], axis=1)


def make_transitions(episodes: list[Episode], history: int, horizon: int, robot: str | Task,
                     rewards: bool = True, labelled: set[int] | None = None) -> Transitions:
    """Flatten episodes; ``rewards=False`` skips the (kinematics-based) reward when nobody reads it.
    ``robot``: a :class:`Task`, or a simulated robot's name. ``labelled``: the reward is the object reward
    (:func:`object_reward`), known on these episodes only (``Transitions.W``)."""
    if labelled is not None:
        rewards = False
    S, A, G, E, starts = [], [], [], [], []
    off = 0
    for i, e in enumerate(episodes):
        T = len(e)
        parts = [e.q, np.nan_to_num(e.qd)] + ([e.latent] if e.latent is not None else [])
        S.append(np.concatenate(parts, axis=1))
        A.append(e.action)
        G.append(e.goal if e.goal is not None else np.zeros((T, 3)))
        E.append(np.full(T, i))
        starts.extend(off + t for t in range(history - 1, T - horizon))
        off += T
    S_, A_, G_ = np.concatenate(S), np.concatenate(A), np.concatenate(G)
    if rewards:
        task = robot if isinstance(robot, Task) else Task.of(robot, list(episodes[0].joint_names))
        R = task.reward(S_[:, : A_.shape[1]], G_)
    else:
        R = np.zeros(len(S_))
    W = None
    if labelled is not None:
        R = np.concatenate([object_reward(e) if i in labelled else np.zeros(len(e)) for i, e in enumerate(episodes)])
        W = np.concatenate([np.full(len(e), float(i in labelled)) for i, e in enumerate(episodes)]).astype(np.float32)
    return Transitions(S_.astype(np.float32), A_.astype(np.float32), G_.astype(np.float32), R.astype(np.float32),
                       np.asarray(starts, dtype=np.int64), np.concatenate(E), W)


def reward_samples(robot: str | Task, tr: Transitions, n: int, joint_names: list[str], rng: np.random.Generator
                   ) -> dict[str, torch.Tensor] | None:
    """``n`` (state, goal, reward) rows with q uniform over the joint ranges (continuous joints over one
    turn), zero velocity, goals drawn from the logs, and the kinematic task reward; None when the
    robot's kinematics are not ours (then the head learns from the logs alone)."""
    if n <= 0 or tr.S.shape[1] != 2 * len(joint_names):
        return None  # with a visual latent in the state there is no latent to pair with a drawn configuration
    n_joints = len(joint_names)
    task = robot if isinstance(robot, Task) else Task.of(robot, joint_names)
    limits = task.limits
    if limits is None or task.chain is None:
        return None
    lo = np.array([-np.pi if lim[0] is None else lim[0] for lim in limits])
    hi = np.array([np.pi if lim[1] is None else lim[1] for lim in limits])
    q = rng.uniform(lo, hi, size=(n, n_joints))
    goal = tr.G[rng.integers(0, len(tr.G), n)]
    S = np.zeros((n, tr.S.shape[1]), dtype=np.float32)
    S[:, :n_joints] = q
    t = torch.as_tensor
    return {"S": t(S), "G": t(goal.astype(np.float32)),
            "R": t(task.reward(q, goal).astype(np.float32))}


def batch(tr: Transitions, idx: np.ndarray, history: int, horizon: int) -> dict[str, torch.Tensor]:
    """idx (M, B) start indices -> windows and targets shaped (M, B, ...)."""
    h = np.arange(-history + 1, 1)
    k = np.arange(1, horizon + 1)
    w = idx[..., None] + h  # (M, B, H)
    f = idx[..., None] + k  # (M, B, K)
    t = torch.as_tensor
    out = {"sw": t(tr.S[w]), "aw": t(tr.A[w]), "target": t(tr.S[f]), "future_a": t(tr.A[f[..., :-1]]),
           "reward": t(tr.R[f]), "goal": t(tr.G[idx])}
    if tr.W is not None:
        out["reward_w"] = t(tr.W[f])
    return out


def bootstrap_indices(tr: Transitions, members: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(members, N) indices into ``tr.starts``: each member's bootstrap resample of the windows,
    drawn by whole episodes (``episode``) or by single windows (``window``)."""
    n = len(tr.starts)
    if kind == "window":
        return rng.integers(0, n, size=(members, n))
    ep = tr.episode_of[tr.starts]
    n_eps = int(tr.episode_of.max()) + 1
    out = np.empty((members, n), dtype=np.int64)
    for m in range(members):
        counts = np.bincount(rng.integers(0, n_eps, size=n_eps), minlength=n_eps)
        w = counts[ep].astype(float)
        out[m] = rng.choice(n, size=n, p=w / w.sum())
    return out


def set_normalizers(model: EnsembleDynamics, tr: Transitions) -> None:
    n = model.spec.n
    S, A = torch.as_tensor(tr.S), torch.as_tensor(tr.A)
    feats = step_features(S, A, n)
    nxt = np.clip(tr.starts + 1, 0, len(tr.S) - 1)
    delta = tr.S[nxt] - tr.S[tr.starts]

    def std(x: torch.Tensor) -> torch.Tensor:
        s = x.std(0)
        return torch.where(s < 1e-4, torch.ones_like(s), s)

    with torch.no_grad():
        model.feat_mean.copy_(feats.mean(0))
        model.feat_std.copy_(std(feats))
        d = torch.as_tensor(delta)
        model.delta_mean.copy_(d.mean(0))
        model.delta_std.copy_(std(d))
        model.state_mean.copy_(S.mean(0))
        model.state_std.copy_(std(S))
        r = torch.as_tensor(tr.R if tr.W is None else tr.R[tr.W > 0])
        model.reward_mean.copy_(r.mean().reshape(1))
        model.reward_std.copy_(r.std().clamp_min(1e-4).reshape(1))
        model.reward_range.copy_(torch.stack([r.min(), r.max()]))


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------
def rollout_loss(model: Any, b: dict[str, torch.Tensor], horizon: int, p_own: float,
                 reward_weight: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over steps of the normalised state error (and reward error) along a rollout in which each
    step's input is the model's own previous prediction with probability ``p_own``."""
    inner = model.module if hasattr(model, "module") else model
    sw, aw = b["sw"], b["aw"]
    state_loss = torch.zeros(())
    reward_loss = torch.zeros(())
    for k in range(horizon):
        nxt, _ = model(sw, aw, b["goal"], with_reward=False)
        true = b["target"][:, :, k]
        err = ((nxt - true) / inner.delta_std) ** 2
        if inner.spec.latent_dim:  # joints and latent weigh the same, however many latent dimensions there are
            j = 2 * inner.spec.n
            state_loss = state_loss + 0.5 * (err[..., :j].mean() + err[..., j:].mean())
        else:
            state_loss = state_loss + err.mean()
        # the reward head learns r(s', goal) on the true next state: a function of states, trained on data
        r_true = inner.reward(true, b["goal"])
        r_err = ((r_true - b["reward"][:, :, k]) / inner.reward_std) ** 2
        if "reward_w" in b:  # the reward is known on the labelled episodes only
            w = b["reward_w"][:, :, k]
            reward_loss = reward_loss + (r_err * w).sum() / w.sum().clamp_min(1.0)
        else:
            reward_loss = reward_loss + r_err.mean()
        if k + 1 < horizon:
            own = (torch.rand(nxt.shape[:2], generator=gen) < p_own).unsqueeze(-1)
            fed = torch.where(own, nxt, true)
            sw = torch.cat([sw[:, :, 1:], fed.unsqueeze(2)], dim=2)
            aw = torch.cat([aw[:, :, 1:], b["future_a"][:, :, k].unsqueeze(2)], dim=2)
    return state_loss / horizon, reward_weight * reward_loss / horizon


def _dist() -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group: then the caller ends it)."""
    started = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        started = True
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), started
    return 0, 1, False


def train_ensemble(cfg: EnsembleConfig, data_dir: str | Path, out_dir: str | Path, progress: bool = True,
                   episodes: list[Episode] | None = None) -> Path:
    """``episodes`` (already loaded, e.g. with visual latents attached: the state becomes (q, qd, latent))
    replace reading ``data_dir``."""
    from safetensors.torch import save_file

    rank, world, started = _dist()
    data_dir, out = Path(data_dir), Path(out_dir)
    dcfg = DatasetConfig(rate=cfg.control_rate, load_images=False)
    robot_manifest = None
    if cfg.robot_config:
        from wm_control.robot import load_robot_config

        rc = load_robot_config(cfg.robot_config)
        cfg = replace(cfg, robot=rc.name, control_rate=rc.control_rate)
        robot_manifest = rc.manifest()
        dcfg = rc.dataset_config(load_images=False, hindsight_goal=rc.goal_kind == "hindsight")
        if episodes is None and not data_dir.exists():
            raise ValueError(f"no bags at {data_dir} (a robot config's bags are never collected; give --data)")
    elif rank == 0 and episodes is None:
        from wm_control.train.bc import ensure_data
        from wm_control.train.presets import BCConfig

        ensure_data(BCConfig(robot=cfg.robot, episodes=cfg.episodes, collect_noise=cfg.collect_noise,
                             control_rate=cfg.control_rate, seed=cfg.seed), data_dir)
    if world > 1:
        torch.distributed.barrier()
    latent_input = None
    if episodes is None:
        episodes = load_episodes([data_dir], replace(dcfg, load_images=bool(cfg.visual)))
        if cfg.visual and episodes:
            from wm_control.train.bc import attach_latents

            latent_input = attach_latents(episodes, cfg.visual)
    if not episodes:
        raise ValueError(f"no usable episodes under {data_dir}")
    latent_dim = 0 if episodes[0].latent is None else int(episodes[0].latent.shape[1])
    if any((e.latent is None) != (latent_dim == 0) for e in episodes):
        raise ValueError("either every episode carries a visual latent or none does")
    rng = np.random.default_rng(cfg.seed)  # same split and bootstraps on every rank
    order = rng.permutation(len(episodes))
    n_val = max(1, int(round(cfg.val_fraction * len(episodes))))
    val_eps = [episodes[i] for i in order[:n_val]]
    train_eps = [episodes[i] for i in order[n_val:]] or val_eps
    K = 1 if cfg.regime == "teacher" else cfg.horizon
    task = Task.of(cfg.robot, list(episodes[0].joint_names), cfg.robot_config)
    labelled = None
    if cfg.reward == "object":
        with_labels = [i for i, e in enumerate(train_eps) if e.object is not None and e.goal is not None]
        if not with_labels:
            raise ValueError(f"{data_dir}: no episode has object labels ({dcfg.label_topic}) and a goal; reward "
                             f"'object' needs a few labelled episodes")
        n_lab = max(1, int(cfg.label_fraction * len(train_eps)))
        labelled = set(np.random.default_rng(cfg.seed + 3).permutation(with_labels)[:n_lab].tolist())
    tr = make_transitions(train_eps, cfg.history, max(K, 1), task, labelled=labelled)
    spec = StateSpec(joint_names=list(episodes[0].joint_names), history=cfg.history, latent_dim=latent_dim)
    torch.manual_seed(cfg.seed)
    model = EnsembleDynamics(spec, cfg.members, cfg.hidden, cfg.layers, cfg.arch, prior_scale=cfg.prior_scale,
                             reward_hidden=cfg.reward_hidden)
    set_normalizers(model, tr)
    aug = None if labelled is not None else reward_samples(task, tr, cfg.reward_samples, spec.joint_names,
                                                           np.random.default_rng(cfg.seed + 7))
    if aug is not None:
        lo_hi = torch.stack([torch.minimum(model.reward_range[0], aug["R"].min()),
                             torch.maximum(model.reward_range[1], aug["R"].max())])
        model.reward_range.copy_(lo_hi)
    boot = bootstrap_indices(tr, cfg.members, cfg.bootstrap, rng)  # each member's bootstrap
    net: Any = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iterations)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    brng = np.random.default_rng(cfg.seed + 1 + rank)
    bar = progress_bar(cfg.iterations, f"train ensemble ({cfg.regime}-forcing, {cfg.arch})",
                       enabled=progress and rank == 0)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log = JsonLines(out / "metrics.jsonl") if rank == 0 else None
    t0 = time.monotonic()
    for it in range(1, cfg.iterations + 1):
        cols = brng.integers(0, boot.shape[1], size=(cfg.members, cfg.batch_size))
        idx = tr.starts[np.take_along_axis(boot, cols, axis=1)]
        b = batch(tr, idx, cfg.history, K)
        p_own = 0.0 if K == 1 else min(1.0, it / max(1.0, cfg.schedule_frac * cfg.iterations))
        ls, lr_ = rollout_loss(net, b, K, p_own, cfg.reward_weight, gen)
        if aug is not None:  # the task reward over the whole configuration space
            j = torch.randint(0, len(aug["R"]), (cfg.members, cfg.batch_size), generator=gen)
            r = model.reward(aug["S"][j], aug["G"][j])
            lr_ = lr_ + cfg.reward_weight * (((r - aug["R"][j]) / model.reward_std) ** 2).mean()
        loss = ls + lr_
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        if log is not None and (it % max(1, cfg.iterations // 25) == 0 or it == cfg.iterations):
            log.write(iteration=it, state_loss=ls.item(), reward_loss=lr_.item(), p_own=p_own,
                      seconds=round(time.monotonic() - t0, 1))
        bar.update(1)
        if it % 50 == 0:
            bar.set_postfix(state=f"{ls.item():.4f}", reward=f"{lr_.item():.4f}", p_own=f"{p_own:.2f}")
    bar.close()
    if started:  # every rank past its last collective: end the group, or its threads may abort the process at exit
        del net
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if rank != 0:
        return out
    log.close()
    model.eval()
    thresholds = calibrate(model, val_eps, cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    robot = {**(robot_manifest or {}), "name": task.name, "position_limits": task.limits}
    if task.chain is not None and cfg.reward == "reach":
        robot["kinematics"] = task.chain.to_dict()  # base-to-tip chain: the task reward for planners
    meta = {"kind": "ensemble", "config": asdict(cfg), "spec": asdict(spec), "thresholds": thresholds,
            "robot": robot,
            "data": {"dir": str(data_dir), "train_episodes": len(train_eps), "val_episodes": len(val_eps),
                     "windows": int(len(tr.starts)), "reward": cfg.reward,
                     **({"labelled_episodes": len(labelled)} if labelled is not None else {})},
            **({"latent": asdict(latent_input)} if latent_input is not None else {}),
            "train_seconds": round(time.monotonic() - t0, 1), "world_size": world}
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return out


def load_ensemble(ckpt_dir: str | Path) -> tuple[EnsembleDynamics, dict]:
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    meta = read_checkpoint(ckpt_dir, "ensemble")
    cfg = EnsembleConfig(**meta["config"])
    model = EnsembleDynamics(StateSpec(**meta["spec"]), cfg.members, cfg.hidden, cfg.layers, cfg.arch,
                             prior_scale=cfg.prior_scale, reward_hidden=cfg.reward_hidden)
    model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors")))
    return model.eval(), meta


# ------------------------------------------------------------------------------------------
# Rollouts on held-out episodes: what calibration and evaluation measure
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def heldout_rollouts(model: EnsembleDynamics, episodes: list[Episode], horizon: int, robot: str,
                     max_starts: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Open-loop rollouts with the logged actions from many starts: member trajectories, the truth,
    the start state. Returns arrays shaped (B, K, ds) / (M, B, K, ds)."""
    H = model.spec.history
    tr = make_transitions(episodes, H, horizon, robot, rewards=False)  # rollouts compare states only
    if len(tr.starts) == 0:
        raise ValueError(f"held-out episodes are too short for history {H} + horizon {horizon}")
    rng = np.random.default_rng(seed)
    idx = rng.choice(tr.starts, size=min(max_starts, len(tr.starts)), replace=False)
    b = batch(tr, idx[None], H, horizon)
    states, _ = model.rollout(b["sw"][0], b["aw"][0], b["future_a"][0], b["goal"][0])
    return {"members": states.numpy(), "truth": b["target"][0].numpy(), "start": b["sw"][0, :, -1].numpy(),
            "index": idx}


def calibrate(model: EnsembleDynamics, episodes: list[Episode], cfg: EnsembleConfig) -> dict[str, float]:
    """Uncertainty thresholds seen in-distribution (held-out episodes), per step over the horizon."""
    r = heldout_rollouts(model, episodes, cfg.calibration_horizon, cfg.robot, seed=cfg.seed)
    u = model.uncertainty(torch.as_tensor(r["members"])).numpy()  # (B, K)
    return {"uncertainty_p50": float(np.percentile(u, 50)), "uncertainty_p95": float(np.percentile(u, 95)),
            "uncertainty_p99": float(np.percentile(u, 99)), "horizon": cfg.calibration_horizon,
            "first_step_p99": float(np.percentile(u[:, 0], 99))}


# ------------------------------------------------------------------------------------------
# Export: the whole ensemble as one ONNX graph in a bundle
# ------------------------------------------------------------------------------------------
def export_ensemble_onnx(model: EnsembleDynamics, path: str | Path) -> dict[str, Any]:
    """Write the graph; returns its io spec for the manifest (member axis fixed, batch dynamic)."""
    from wm_control.world.ensemble import ExportedEnsemble

    M, H, ds, da = model.members, model.spec.history, model.spec.state_dim, model.spec.n
    args = (torch.zeros(M, 2, H, ds), torch.zeros(M, 2, H, da), torch.zeros(M, 2, 3))
    names = ["state_window", "action_window", "goal", "next_state", "reward"]
    io = export_onnx(ExportedEnsemble(model), args, path, names[:3], names[3:], {k: {1: "batch"} for k in names})
    return {
        **io,
        "members": M, "history": H,
        "state": {"layout": ["q", "qd"] + (["latent"] if model.spec.latent_dim else []),
                  "latent_dim": model.spec.latent_dim},
        "action": "position_target",
        "description": "member m reads its own window: follow each member's own trajectory in rollouts",
    }


def export_ensemble(ckpt_dir: str | Path, bundle_dir: str | Path, policy_bundle: str | Path | None = None) -> Path:
    """A bundle with ``ensemble.onnx`` (and, when given, the policy graph of another bundle) whose
    manifest carries the calibrated uncertainty thresholds."""
    import tempfile

    from wm_control.world.bundle import load_bundle, write_bundle

    model, meta = load_ensemble(ckpt_dir)
    cfg = meta["config"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ensemble.onnx"
        graphs = {"ensemble": (path, {**export_ensemble_onnx(model, path),
                                      **({"latent": meta["latent"]} if meta.get("latent") else {})})}
        robot = {"name": cfg["robot"], "joint_names": meta["spec"]["joint_names"], "control_rate": cfg["control_rate"],
                 "max_step": 0.15}
        if "robot" in meta:  # the robot as trained: name, limits, kinematics (and a robot config's manifest)
            robot.update(meta["robot"])
        else:  # a checkpoint from before: the simulated robot's
            task = Task.of(cfg["robot"], meta["spec"]["joint_names"])
            robot["position_limits"] = task.limits
            if task.chain is not None:
                robot["kinematics"] = task.chain.to_dict()
        normalizers = {"ensemble_state": {"mean": model.state_mean.tolist(), "std": model.state_std.tolist()},
                       "ensemble_uncertainty_scale": {"std": model.uncertainty_scale.tolist()}}
        training = {"ensemble": {"stage": "ensemble", "config": cfg, "data": meta["data"]}}
        metrics: dict[str, Any] = {"ensemble_train_seconds": meta["train_seconds"]}
        if policy_bundle is not None:
            pb = load_bundle(policy_bundle)
            if pb.joint_names != robot["joint_names"]:
                raise ValueError(f"policy bundle joints {pb.joint_names} differ from the ensemble's")
            graphs["policy"] = (pb.path / pb.graph("policy")["file"],
                                {k: v for k, v in pb.graph("policy").items() if k != "file"})
            robot = {**pb.manifest["robot"], **{k: v for k, v in robot.items() if k != "max_step"}}
            normalizers.update(pb.manifest.get("normalizers", {}))
            training["policy"] = pb.manifest.get("training", {})
            metrics.update(pb.manifest.get("metrics", {}))
        return write_bundle(bundle_dir, graphs, robot=robot, normalizers=normalizers,
                            thresholds=meta["thresholds"], training=training, metrics=metrics)

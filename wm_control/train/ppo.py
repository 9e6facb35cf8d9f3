"""PPO inside the RWM-U ensemble: a policy learned from logged data only, with no simulator and no robot.

The environment is :class:`~wm_control.train.imagined.ImaginedEnvs` (thousands of rollouts in the
ensemble, started from logged states, one member followed per rollout, reward
``task - lam * uncertainty``, termination where the members disagree beyond the calibrated limit).
PPO as usual: a Gaussian policy over the position change (the policy node's action), clipped
surrogate objective, GAE, a separate value network, a running observation normaliser, an entropy
bonus, and an early stop of the epoch loop when the approximate KL passes ``1.5 * target_kl``.

Two details that matter for a model-based setting:

* **Termination is not an escape.** Task rewards are negative distances, so ending an episode early
  would look attractive. An uncertainty termination therefore pays a terminal value: what staying at a
  poor reward (``reward_mean - 3 reward_std`` of the model's reward head) for ever would be worth. A
  time-out (truncation) bootstraps from the value of the state it ended in.
* **Exported as the node runs it.** The graph maps raw observations (normaliser inside) to the mean
  position change, exactly the BC policy's interface, so the policy node, the planner and ``wm-control
  eval`` run it unchanged. The bundle also carries the ensemble and its thresholds.

A lambda sweep is ``--lam 0,0.3,1,3``: one policy per value, a summary JSON with in-model metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import yaml

from wm_control.control.features import OBSERVATION_KINDS
from wm_control.data.dataset import DatasetConfig, load_episodes
from wm_control.report import JsonLines, summary_line, write_json
from wm_control.report import progress as progress_bar
from wm_control.train import read_checkpoint
from wm_control.train.bc import ExportedPolicy, export_policy_onnx, make_mlp, sim_position_limits
from wm_control.train.imagined import ImaginedConfig, ImaginedEnvs
from wm_control.train.presets import preset

log = logging.getLogger("wm_control.train.ppo")


@dataclass
class PPOConfig:
    lam: float = 1.0
    """Uncertainty penalty weight (lambda): reward = task - lam * uncertainty."""
    num_envs: int = 512
    rollout_steps: int = 32
    """Steps per environment per iteration (num_envs x rollout_steps samples per update)."""
    iterations: int = 300
    epochs: int = 5
    minibatch: int = 4096
    lr: float = 3e-4
    gamma: float = 0.97
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    target_kl: float = 0.02
    max_grad_norm: float = 0.5
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    action_scale: float = 0.3
    """rad: the network's unit output is this position change (before the safety clamps)."""
    init_log_std: float = -1.2
    """Initial exploration std in units of ``action_scale`` (exp(-1.2) x 0.3 = 0.09 rad; measured on the
    expert logs, 300 iterations: 75% success in the simulator vs 50% from 0.15 rad)."""
    max_steps: int = 100
    """Imagined episode length (2 s at 50 Hz, as the logged episodes and the evaluation)."""
    terminate_scale: float = 2.0
    max_step: float = 0.15
    observation: str = "joint_trig_goal"
    reward: str = "kinematic"
    """kinematic: minus the fingertip distance from the robot's kinematic chain (the task reward, right
    everywhere); head: the ensemble's learned reward head (only right where the logs went)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when there is one) | cpu | cuda."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError("lam must be >= 0")
        if min(self.num_envs, self.rollout_steps, self.iterations, self.epochs, self.minibatch) < 1:
            raise ValueError("num_envs, rollout_steps, iterations, epochs and minibatch must be >= 1")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.clip > 0 and self.action_scale > 0):
            raise ValueError("need 0 < gamma <= 1, 0 <= gae_lambda <= 1, clip > 0, action_scale > 0")
        if self.observation not in OBSERVATION_KINDS:
            raise ValueError(f"unknown observation kind {self.observation!r}")
        if self.reward not in ("kinematic", "head"):
            raise ValueError("reward must be 'kinematic' or 'head'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu or cuda")


def ppo_preset(name: str, **overrides: Any) -> PPOConfig:
    return preset(PPOConfig, name, **overrides)


class RunningNorm:
    """Per-dimension running mean / variance (parallel Welford), frozen into the exported graph."""

    def __init__(self, dim: int, device: torch.device):
        self.mean = torch.zeros(dim, device=device, dtype=torch.float64)
        self.var = torch.ones(dim, device=device, dtype=torch.float64)
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).double()
        m, v, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        if self.count == 0:
            self.mean, self.var, self.count = m, v, n
            return
        delta, tot = m - self.mean, self.count + n
        self.mean = self.mean + delta * n / tot
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / tot) / tot
        self.count = tot

    @property
    def std(self) -> torch.Tensor:
        s = self.var.sqrt()
        return torch.where(s < 1e-3, torch.ones_like(s), s)  # a constant dimension stays unscaled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean.float()) / self.std.float()).clamp(-10, 10)


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], init_log_std: float):
        super().__init__()
        self.actor = make_mlp(obs_dim, hidden, act_dim)
        self.critic = make_mlp(obs_dim, hidden, 1)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        with torch.no_grad():  # small initial actions: start near "hold", as a servoed arm should
            self.actor[-1].weight.mul_(0.01)
            self.actor[-1].bias.zero_()

    def dist(self, x: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor(x), self.log_std.exp().expand(x.shape[0], -1))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)[..., 0]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but torch sees no CUDA device")
    return torch.device(name)


@dataclass
class World:
    """An ensemble checkpoint with the logged episodes its imagined rollouts start from."""

    model: Any
    meta: dict[str, Any]
    episodes: list
    data_dirs: list[str]
    position_limits: Any
    chain: Any = None
    """The robot's kinematic chain (:class:`wm_control.control.kinematics.Chain`), for the kinematic reward."""

    @classmethod
    def load(cls, ensemble_dir: str | Path, data_dirs: list[str | Path] | None = None) -> World:
        from wm_control.train.ensemble import load_ensemble

        model, meta = load_ensemble(ensemble_dir)
        meta["path"] = str(ensemble_dir)
        dirs = [str(d) for d in (data_dirs or [meta["data"]["dir"]])]
        episodes = load_episodes(dirs, DatasetConfig(rate=meta["config"]["control_rate"], load_images=False))
        episodes = [e for e in episodes if e.goal is not None and len(e) > model.spec.history + 1]
        if not episodes:
            raise ValueError(f"no usable episodes (with a goal) under {dirs}")
        from wm_control.control.kinematics import chain_from_sim

        limits = sim_position_limits(meta["config"]["robot"], model.spec.joint_names)
        return cls(model, meta, episodes, dirs, limits, chain_from_sim(meta["config"]["robot"]))

    def reward_fn(self, cfg: PPOConfig) -> Any:
        if cfg.reward == "head":
            return None
        if self.chain is None:
            raise ValueError(f"reward 'kinematic' needs the kinematic chain of robot {self.meta['config']['robot']!r}"
                             " (one of the simulated robots); use reward 'head' otherwise")
        chain, n = self.chain, self.model.spec.n
        return lambda state, goal: chain.reach_reward(state[..., :n], goal)

    def envs(self, cfg: PPOConfig, device: torch.device, num_envs: int | None = None,
             seed: int | None = None) -> ImaginedEnvs:
        icfg = ImaginedConfig(num_envs=num_envs or cfg.num_envs, max_steps=cfg.max_steps, lam=cfg.lam,
                              terminate_scale=cfg.terminate_scale, observation=cfg.observation,
                              max_step=cfg.max_step, seed=cfg.seed if seed is None else seed)
        return ImaginedEnvs.from_logs(self.model, self.meta["thresholds"], self.episodes,
                                      self.meta["config"]["robot"], icfg, self.position_limits, device,
                                      reward_fn=self.reward_fn(cfg))


@torch.no_grad()
def evaluate_in_model(envs: ImaginedEnvs, act: Any) -> dict[str, float]:
    """One imagined episode per environment with the deterministic ``act(obs) -> delta``: mean task
    return, mean / p95 per-step uncertainty, the fraction ended by the uncertainty limit."""
    obs = envs.reset()
    B = envs.cfg.num_envs
    ret = torch.zeros(B, device=envs.device)
    alive = torch.ones(B, dtype=torch.bool, device=envs.device)
    uncs, final_task = [], torch.zeros(B, device=envs.device)
    terminated = torch.zeros(B, dtype=torch.bool, device=envs.device)
    for _ in range(envs.cfg.max_steps):
        obs, _, done, info = envs.step(act(obs))
        ret += torch.where(alive, info["task_reward"], torch.zeros_like(ret))
        final_task = torch.where(alive, info["task_reward"], final_task)
        uncs.append(info["uncertainty"][alive])
        terminated |= alive & info["terminated"]
        alive &= ~done
        if not alive.any():
            break
    u = torch.cat(uncs)
    return {"task_return": float(ret.mean()), "final_task_reward": float(final_task.mean()),
            "uncertainty_mean": float(u.mean()), "uncertainty_p95": float(torch.quantile(u.float(), 0.95)),
            "terminated_fraction": float(terminated.float().mean())}


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates over (T, B) rewards/values/dones; ``last_value`` (B,) bootstraps
    the step after the buffer. A done step does not look past itself (its reward already holds any
    time-out bootstrap or terminal value)."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    acc = torch.zeros_like(last_value)
    for t in reversed(range(T)):
        nv = last_value if t == T - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * nv * nonterminal - values[t]
        acc = delta + gamma * lam * nonterminal * acc
        adv[t] = acc
    return adv


def ppo_loop(cfg: PPOConfig, envs: Any, device: torch.device, terminal_value: float = 0.0,
             metrics_path: Path | None = None, progress: bool = True) -> tuple[ActorCritic, RunningNorm, dict]:
    """PPO on a vectorised environment with the :class:`ImaginedEnvs` interface (``reset() -> obs``,
    ``step(action) -> obs, reward, done, info`` with ``task_reward``, ``uncertainty``, ``terminated``,
    ``truncated``, ``final_obs``; ``observation_dim``, ``n``). Returns the actor-critic, the observation
    normaliser and the last iteration's metrics."""
    obs_dim, act_dim = envs.observation_dim, envs.n
    ac = ActorCritic(obs_dim, act_dim, cfg.hidden, cfg.init_log_std).to(device)
    opt = torch.optim.Adam(ac.parameters(), lr=cfg.lr, eps=1e-5)
    norm = RunningNorm(obs_dim, device)
    T = cfg.rollout_steps
    metrics_log = JsonLines(metrics_path) if metrics_path else None
    bar = progress_bar(cfg.iterations, f"train policy (PPO, lambda {cfg.lam:g})", enabled=progress)
    ret_scale = None
    obs = envs.reset()
    B = obs.shape[0]
    ep_ret = torch.zeros(B, device=device)
    t0 = time.monotonic()
    buf = {k: torch.zeros(T, B, *shape, device=device) for k, shape in
           (("obs", (obs_dim,)), ("act", (act_dim,)), ("logp", ()), ("val", ()), ("rew", ()), ("done", ()))}
    rec: dict[str, Any] = {}
    for it in range(1, cfg.iterations + 1):
        finished, task_sum, unc_sum, term_count, done_count = [], 0.0, 0.0, 0, 0
        with torch.no_grad():
            for t in range(T):
                norm.update(obs)
                x = norm(obs)
                d = ac.dist(x)
                a = d.sample()
                nobs, rew, done, inf = envs.step(a * cfg.action_scale)
                # bootstrap a time-out from the state it ended in; a termination pays the terminal value
                boot = torch.where(inf["truncated"], ac.value(norm(inf["final_obs"])) * (ret_scale or 1.0),
                                   torch.zeros_like(rew))
                boot = torch.where(inf["terminated"], torch.full_like(rew, terminal_value), boot)
                buf["obs"][t], buf["act"][t], buf["logp"][t] = x, a, d.log_prob(a).sum(-1)
                buf["val"][t] = ac.value(x)
                buf["rew"][t] = rew + cfg.gamma * boot
                buf["done"][t] = done.float()
                ep_ret += inf["task_reward"]
                task_sum += float(inf["task_reward"].mean())
                unc_sum += float(inf["uncertainty"].mean())
                term_count += int(inf["terminated"].sum())
                done_count += int(done.sum())
                if done.any():
                    finished.append(ep_ret[done].clone())
                    ep_ret[done] = 0
                obs = nobs
            if ret_scale is None:  # value targets in units of the first rollout's reward spread x horizon
                ret_scale = float(buf["rew"].std().clamp_min(1e-3)) / max(1 - cfg.gamma, 1 / cfg.max_steps)
            adv = gae(buf["rew"] / ret_scale, buf["val"], buf["done"], ac.value(norm(obs)), cfg.gamma,
                      cfg.gae_lambda)
            targets = adv + buf["val"]
        # ---- update ----
        flat = {k: v.reshape(T * B, *v.shape[2:]) for k, v in buf.items()}
        f_adv, f_tgt = adv.reshape(-1), targets.reshape(-1)
        n = T * B
        mb = min(cfg.minibatch, n)
        kls, clipfracs, stop = [], [], False
        for _epoch in range(cfg.epochs):
            perm = torch.randperm(n, device=device)
            for s in range(0, n, mb):
                idx = perm[s: s + mb]
                d = ac.dist(flat["obs"][idx])
                logp = d.log_prob(flat["act"][idx]).sum(-1)
                ratio = (logp - flat["logp"][idx]).exp()
                a_ = f_adv[idx]
                a_ = (a_ - a_.mean()) / (a_.std() + 1e-8)
                pg = -torch.min(ratio * a_, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a_).mean()
                vloss = 0.5 * (ac.value(flat["obs"][idx]) - f_tgt[idx]).pow(2).mean()
                ent = d.entropy().sum(-1).mean()
                loss = pg + cfg.value_coef * vloss - cfg.entropy_coef * ent
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(ac.parameters(), cfg.max_grad_norm)
                opt.step()
                with torch.no_grad():
                    lr_ = logp - flat["logp"][idx]
                    kls.append(float(((lr_.exp() - 1) - lr_).mean()))
                    clipfracs.append(float(((ratio - 1).abs() > cfg.clip).float().mean()))
                if cfg.target_kl > 0 and kls[-1] > 1.5 * cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        ep = torch.cat(finished) if finished else torch.zeros(0)
        rec = {"iteration": it, "seconds": round(time.monotonic() - t0, 1),
               "episode_task_return": float(ep.mean()) if len(ep) else float("nan"),
               "task_reward": task_sum / T, "uncertainty": unc_sum / T,
               "terminated_fraction": term_count / max(done_count, 1),
               "policy_loss": pg.item(), "value_loss": vloss.item(), "entropy": ent.item(),
               "approx_kl": float(np.mean(kls)), "clip_fraction": float(np.mean(clipfracs)), "kl_stop": stop,
               "action_std": float(ac.log_std.detach().exp().mean() * cfg.action_scale)}
        if metrics_log is not None:
            metrics_log.write(rec)
        if not bar.disable:
            bar.set_postfix(ret=f"{rec['episode_task_return']:.2f}", unc=f"{rec['uncertainty']:.3f}",
                            term=f"{rec['terminated_fraction']:.2f}", kl=f"{rec['approx_kl']:.3f}")
            bar.update(1)
        elif it % 10 == 0:  # no bar shown: the log says how it goes
            log.info("iteration %d: %s", it, rec)
    bar.close()
    if metrics_log is not None:
        metrics_log.close()
    rec["train_seconds"] = round(time.monotonic() - t0, 1)
    return ac, norm, rec


def train_ppo(cfg: PPOConfig, world: World | str | Path, out_dir: str | Path,
              data_dirs: list[str | Path] | None = None, progress: bool = True) -> Path:
    """Train in the ensemble's imagination (``world``: a :class:`World` or an ensemble checkpoint folder);
    write ``model.safetensors`` + ``checkpoint.yaml`` to ``out_dir``."""
    from safetensors.torch import save_file

    torch.manual_seed(cfg.seed)
    dev = _device(cfg.device)
    if not isinstance(world, World):
        world = World.load(world, data_dirs)
    envs = world.envs(cfg, dev)
    model = envs.model
    # a poor reward held for ever: the value of ending where the model is lost (the logged rewards' scale)
    bad = float(model.reward_mean - 3 * model.reward_std)
    term_value = min(bad, 0.0) / (1 - cfg.gamma) if cfg.gamma < 1 else min(bad, 0.0) * cfg.max_steps
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ac, norm, rec = ppo_loop(cfg, envs, dev, term_value, out / "metrics.jsonl", progress)
    obs_dim, act_dim = envs.observation_dim, envs.n
    train_s = rec["train_seconds"]
    # ---- deterministic policy, in the model ----
    mean_c, std_c = norm.mean.float(), norm.std.float()
    actor = ac.actor.eval()

    def act(o: torch.Tensor) -> torch.Tensor:
        return actor(((o - mean_c) / std_c).clamp(-10, 10)) * cfg.action_scale

    with torch.no_grad():
        eval_envs = world.envs(cfg, dev, num_envs=1024, seed=cfg.seed + 1)
        in_model = evaluate_in_model(eval_envs, act)
    cpu = {k: v.detach().cpu().contiguous() for k, v in ac.state_dict().items()}
    save_file(cpu, str(out / "model.safetensors"))
    ckpt = {
        "kind": "ppo_policy", "config": asdict(cfg), "joint_names": world.model.spec.joint_names,
        "observation": cfg.observation, "obs_dim": obs_dim, "action_dim": act_dim,
        "normalizer": {"obs_mean": norm.mean.cpu().tolist(), "obs_std": norm.std.cpu().tolist(),
                       "act_mean": [0.0] * act_dim, "act_std": [cfg.action_scale] * act_dim},
        "ensemble": world.meta["path"], "robot": world.meta["config"]["robot"],
        "control_rate": world.meta["config"]["control_rate"],
        "data": {"dirs": world.data_dirs, "episodes": len(world.episodes), "start_states": len(envs.sw_all)},
        "terminal_value": term_value,
        "kinematics": world.chain.to_dict() if world.chain is not None else None,
        "metrics": {"train_seconds": round(train_s, 1), "device": str(dev), "last_iteration": rec,
                    "in_model": in_model},
    }
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(ckpt, sort_keys=False))
    log.info("PPO (lambda %g) trained in %.0f s: in-model task return %.3f, uncertainty %.3f", cfg.lam, train_s,
             in_model["task_return"], in_model["uncertainty_mean"])
    return out


def load_ppo(ckpt_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """The exported-policy module (raw obs -> position change) and the checkpoint metadata."""
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    meta = read_checkpoint(ckpt_dir, "ppo_policy")
    cfg = PPOConfig(**meta["config"])
    ac = ActorCritic(meta["obs_dim"], meta["action_dim"], cfg.hidden, cfg.init_log_std)
    ac.load_state_dict(load_file(str(ckpt_dir / "model.safetensors")))
    norm = {k: np.asarray(v, dtype=np.float32) for k, v in meta["normalizer"].items()}
    return ExportedPolicy.build(_Clamp(ac.actor), norm), meta


class _Clamp(nn.Module):
    """The training-time observation clamp, kept in the exported graph (normalised obs in [-10, 10])."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.clamp(-10, 10))


def export_ppo(ckpt_dir: str | Path, bundle_dir: str | Path, ensemble_dir: str | Path | None = None) -> Path:
    """A bundle with the PPO policy (``policy.onnx``, normaliser inside) and the ensemble it was trained
    in (``ensemble.onnx`` with its thresholds), so the policy node and the planner can both use it."""
    import tempfile

    from wm_control.train.ensemble import export_ensemble
    from wm_control.world.bundle import write_bundle

    policy, meta = load_ppo(ckpt_dir)
    cfg, obs_dim = meta["config"], meta["obs_dim"]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "policy.onnx"
        spec = {
            **export_policy_onnx(policy, obs_dim, onnx_path),
            "observation": meta["observation"], "action": "delta_position",
            "description": "PPO in the RWM-U ensemble; position target = q + action; normaliser folded in",
        }
        limits = sim_position_limits(meta["robot"], meta["joint_names"])
        robot = {"name": meta["robot"], "joint_names": meta["joint_names"], "control_rate": meta["control_rate"],
                 "max_step": cfg["max_step"], "position_limits": limits}
        if meta.get("kinematics"):
            robot["kinematics"] = meta["kinematics"]  # base-to-fingertip chain: the task reward for planners
        training = {"stage": "ppo", "config": cfg, "data": meta["data"], "ensemble": meta["ensemble"],
                    "terminal_value": meta["terminal_value"]}
        metrics = {"ppo_" + k: v for k, v in meta["metrics"].items()}
        policy_only = write_bundle(
            Path(tmp) / "policy_bundle", {"policy": (onnx_path, spec)}, robot=robot,
            normalizers={"policy_obs": {"mean": meta["normalizer"]["obs_mean"], "std": meta["normalizer"]["obs_std"]},
                         "policy_action": {"mean": meta["normalizer"]["act_mean"],
                                           "std": meta["normalizer"]["act_std"]}},
            training=training, metrics=metrics)
        ens = ensemble_dir or meta["ensemble"]
        if ens is None or not (Path(ens) / "checkpoint.yaml").exists():
            import shutil

            shutil.copytree(policy_only, bundle_dir, dirs_exist_ok=True)
            return Path(bundle_dir)
        return export_ensemble(ens, bundle_dir, policy_bundle=policy_only)


def lam_label(lam: float) -> str:
    return f"lam{lam:g}".replace(".", "p")


def sweep(cfg: PPOConfig, lams: list[float], ensemble_dir: str | Path, out_dir: str | Path,
          bundle_dir: str | Path | None, data_dirs: list[str | Path] | None = None,
          json_path: str | Path | None = None) -> dict[str, Any]:
    """One policy per lambda (``out_dir/lam<l>``, bundles ``bundle_dir_lam<l>``); summary with in-model metrics."""
    runs = []
    single = len(lams) == 1
    world = World.load(ensemble_dir, data_dirs)
    for lam in lams:
        c = replace(cfg, lam=lam)
        out = Path(out_dir) if single else Path(out_dir) / lam_label(lam)
        ckpt = train_ppo(c, world, out)
        meta = read_checkpoint(ckpt, "ppo_policy")
        run = {"lam": lam, "checkpoint": str(ckpt), **meta["metrics"]["in_model"],
               "train_seconds": meta["metrics"]["train_seconds"]}
        if bundle_dir:
            b = Path(bundle_dir) if single else Path(f"{bundle_dir}_{lam_label(lam)}")
            run["bundle"] = str(export_ppo(ckpt, b))
        runs.append(run)
        summary_line(f"lambda {lam:g}: in-model task return {run['task_return']:.3f}, uncertainty "
                     f"{run['uncertainty_mean']:.4f} (p95 {run['uncertainty_p95']:.4f}), terminated "
                     f"{100 * run['terminated_fraction']:.1f}%, {run['train_seconds']:.0f} s", err=True)
    result = {"ensemble": str(ensemble_dir), "config": asdict(cfg), "runs": runs}
    if json_path:
        write_json(json_path, result)
    return result


"""Behaviour cloning: expert bags -> a position-target policy -> ``policy.onnx`` in a bundle.

The policy maps the observation (:mod:`wm_control.control.features`) to a joint position *change*: the
command is ``q + policy(obs)``. Inputs and outputs are normalised with statistics of the training
data; the exported graph contains the normaliser, the network and the de-normalisation, so the
node feeds raw observations and gets raw radians. :func:`fit_bc` fits one to episodes (for any kind,
the offline ones ``eval visual-state`` compares too); :func:`train_bc` is the ``train bc`` stage.

Checkpoints are ``model.safetensors`` + ``checkpoint.yaml`` (config, normaliser, joint names):
no pickle anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wm_control.control.features import needs_goal_image, observation_dim, policy_observation
from wm_control.data.dataset import DatasetConfig, Episode, load_episodes
from wm_control.report import JsonLines, progress, summary_line
from wm_control.train import read_checkpoint
from wm_control.train.onnx import export_onnx
from wm_control.train.presets import BCConfig

log = logging.getLogger("wm_control.train.bc")


def bc_arrays(episodes: list[Episode], kind: str, goal_free: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs (N, d), delta (N, n), episode index (N,)) over all steps of all episodes. ``goal_free``: an
    episode without a goal gets the constant zero goal (a robot whose bags have no goal source; the
    policy node feeds the same zero goal), instead of being an error."""
    obs, delta, idx = [], [], []
    for i, e in enumerate(episodes):
        goal = e.goal if e.goal is not None or not goal_free else np.zeros((len(e), 3))
        try:
            obs.append(policy_observation(kind, e.q, e.qd, goal, e.latent, e.object, e.goal_latent))
        except ValueError as exc:
            raise ValueError(f"{e.source}: {exc}") from None
        delta.append((e.action - e.q).astype(np.float32))
        idx.append(np.full(len(e), i))
    return np.concatenate(obs), np.concatenate(delta), np.concatenate(idx)


def safe_std(x: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Per-dimension std; a (near-)constant dimension gets 1 so it cannot blow up unseen inputs."""
    s = x.std(0)
    return np.where(s < floor, 1.0, s).astype(np.float32)


def make_mlp(inp: int, hidden: list[int], out: int) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    d = inp
    for h in hidden:
        layers += [nn.Linear(d, h), nn.SiLU()]
        d = h
    layers.append(nn.Linear(d, out))
    return nn.Sequential(*layers)


class ExportedPolicy:
    """torch module factory: raw obs -> normalise -> MLP -> de-normalise -> position change."""

    @staticmethod
    def build(net: Any, norm: dict[str, np.ndarray]) -> Any:
        import torch
        import torch.nn as nn

        class _P(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net
                for k in ("obs_mean", "obs_std", "act_mean", "act_std"):
                    self.register_buffer(k, torch.as_tensor(norm[k], dtype=torch.float32))

            def forward(self, obs: torch.Tensor) -> torch.Tensor:
                x = (obs - self.obs_mean) / self.obs_std
                return self.net(x) * self.act_std + self.act_mean

        return _P().eval()


def ensure_data(cfg: BCConfig, data_dir: Path) -> None:
    """Collect expert demonstrations into ``data_dir`` when it holds no bags."""
    if data_dir.exists() and any(data_dir.rglob("metadata.yaml")):
        return
    from wm_control.data.bags import CollectConfig, collect

    summary_line(f"no bags in {data_dir}: collecting {cfg.episodes} expert episodes (noise {cfg.collect_noise})",
                 tag="train bc", err=True)
    collect(CollectConfig(robot=cfg.robot, policy="expert", noise=cfg.collect_noise, episodes=cfg.episodes,
                          episode_s=cfg.episode_s, control_rate=cfg.control_rate, render=False, seed=cfg.seed),
            data_dir)


def fit_bc(episodes: list[Episode], kind: str, iterations: int, seed: int = 0, *,
           hidden: list[int] | tuple[int, ...] = (256, 256), batch_size: int = 256, lr: float = 1e-3,
           weight_decay: float = 1e-5, val_fraction: float = 0.0, show_progress: bool = False,
           on_log: Callable[[dict[str, Any]], None] | None = None, goal_free: bool = False) -> tuple[Any, dict[str, Any]]:
    """The MLP from the ``kind`` observation to the position change (defaults: the quick preset's) fitted
    to ``episodes``, ``val_fraction`` of them held out whole; ``on_log`` gets the losses ~20 times. Returns
    the :class:`ExportedPolicy` and a summary (normaliser, dims, step and episode counts, losses, seconds).
    ``goal_free``: see :func:`bc_arrays`."""
    import torch

    obs, delta, idx = bc_arrays(episodes, kind, goal_free)
    rng = np.random.default_rng(seed)
    n_ep = len(episodes)
    val_eps = set(rng.choice(n_ep, size=max(1, int(round(val_fraction * n_ep))), replace=False).tolist()) \
        if val_fraction > 0 and n_ep > 1 else set()
    is_val = np.isin(idx, list(val_eps))
    tr_o, tr_a, va_o, va_a = obs[~is_val], delta[~is_val], obs[is_val], delta[is_val]
    norm = {"obs_mean": tr_o.mean(0), "obs_std": safe_std(tr_o), "act_mean": tr_a.mean(0), "act_std": safe_std(tr_a)}
    torch.manual_seed(seed)
    net = make_mlp(obs.shape[1], list(hidden), delta.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    x_tr = to((tr_o - norm["obs_mean"]) / norm["obs_std"])
    y_tr = to((tr_a - norm["act_mean"]) / norm["act_std"])
    x_va = to((va_o - norm["obs_mean"]) / norm["obs_std"]) if len(va_o) else None
    y_va = to((va_a - norm["act_mean"]) / norm["act_std"]) if len(va_a) else None
    gen = torch.Generator().manual_seed(seed)  # the batches: independent of the initialisation
    bar = progress(iterations, "train bc", enabled=show_progress)
    t0 = time.monotonic()
    val_loss = float("nan")
    for it in range(1, iterations + 1):
        b = torch.randint(0, len(x_tr), (min(batch_size, len(x_tr)),), generator=gen)
        loss = torch.nn.functional.mse_loss(net(x_tr[b]), y_tr[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % max(1, iterations // 20) == 0 or it == iterations:
            if x_va is not None:
                with torch.no_grad():
                    val_loss = float(torch.nn.functional.mse_loss(net(x_va), y_va))
            if on_log is not None:
                on_log({"iteration": it, "train_loss": loss.item(), "val_loss": val_loss, "lr": sched.get_last_lr()[0],
                     "seconds": round(time.monotonic() - t0, 2)})
            bar.set_postfix(loss=f"{loss.item():.4f}", val=f"{val_loss:.4f}")
        bar.update(1)
    bar.close()
    return ExportedPolicy.build(net, norm), {
        "normalizer": norm, "obs_dim": int(obs.shape[1]), "action_dim": int(delta.shape[1]),
        "steps": int(len(obs)), "episodes": n_ep, "val_episodes": len(val_eps), "final_train_loss": loss.item(),
        "final_val_loss": val_loss, "train_seconds": round(time.monotonic() - t0, 1)}


def train_bc(cfg: BCConfig, data_dir: str | Path, out_dir: str | Path) -> Path:
    """Train on the bags under ``data_dir``; write the checkpoint to ``out_dir``. Returns it."""
    from safetensors.torch import save_file

    data_dir, out = Path(data_dir), Path(out_dir)
    robot = None
    if cfg.robot_config:
        from wm_control.robot import load_robot_config

        robot = load_robot_config(cfg.robot_config)
        cfg = replace(cfg, robot=robot.name, control_rate=robot.control_rate)
        if not data_dir.exists():
            raise ValueError(f"no bags at {data_dir} (a robot config's bags are never collected; give --data)")
        dcfg = robot.dataset_config(load_images=False, hindsight_goal=robot.goal_kind == "hindsight")
    else:
        ensure_data(cfg, data_dir)
        dcfg = DatasetConfig(rate=cfg.control_rate, load_images=False)
    latent = None
    if cfg.visual:
        dcfg = replace(dcfg, load_images=True,
                       goal_image_topic=cfg.goal_image_topic if needs_goal_image(cfg.observation) else "")
    episodes = load_episodes([data_dir], dcfg)
    if not episodes:
        raise ValueError(f"no usable episodes under {data_dir}")
    if cfg.visual:
        latent = attach_latents(episodes, cfg.visual)
    out.mkdir(parents=True, exist_ok=True)
    with JsonLines(out / "metrics.jsonl") as metrics_log:
        policy, fit = fit_bc(episodes, cfg.observation, cfg.iterations, cfg.seed, hidden=cfg.hidden,
                             batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             val_fraction=cfg.val_fraction, show_progress=True, on_log=metrics_log.write,
                             goal_free=robot is not None and robot.goal_kind == "none")
    save_file({k: v.contiguous() for k, v in policy.net.state_dict().items()}, str(out / "model.safetensors"))
    ckpt = {
        "kind": "bc_policy", "config": asdict(cfg), "joint_names": episodes[0].joint_names,
        "robot": robot.manifest() if robot else None,
        "observation": cfg.observation, "obs_dim": fit["obs_dim"], "action_dim": fit["action_dim"],
        **({"latent": asdict(latent)} if latent else {}),
        "normalizer": {k: v.astype(float).tolist() for k, v in fit["normalizer"].items()},
        "data": {"dir": str(data_dir), "episodes": fit["episodes"], "steps": fit["steps"],
                 "val_episodes": fit["val_episodes"]},
        "metrics": {k: fit[k] for k in ("final_train_loss", "final_val_loss", "train_seconds")},
    }
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(ckpt, sort_keys=False))
    log.info("BC trained on %(steps)d steps from %(episodes)d episodes: val loss %(final_val_loss).4f", fit)
    return out


def attach_latents(episodes: list[Episode], visual: str | Path, device: str = "cpu") -> Any:
    """Each episode's ``latent``: its step frames (the latest camera frame at each control step) resized as
    camera_ingest does and encoded by the visual bundle's encoder, as the world_model node does; and, where the
    episode has goal images, its ``goal_latent`` (each step's goal image, resized and encoded the same way, as
    the world_model node publishes it on /wm/goal_latent). The frames are dropped. Returns the
    :class:`~wm_control.control.policy.LatentInput` the policy will need."""
    from wm_control.control.policy import LatentInput
    from wm_control.world.bundle import load_bundle
    from wm_control.world.frames import FrameSpec, prepare_frame
    from wm_control.world.stream import FrameEncoder

    enc = FrameEncoder(load_bundle(visual), device)
    spec = FrameSpec(enc.size[1], enc.size[0])
    bar = progress(len(episodes), "encoding frames", unit="ep")
    for e in episodes:
        if e.frames is None:
            raise ValueError(f"{e.source}: no camera frames (the visual latent needs the camera topic in the bags)")
        e.latent = enc.encode_all(np.stack([prepare_frame(f, spec) for f in e.frames]))
        e.frames = None
        if e.goal_images is not None:
            e.goal_latent = enc.encode_all(np.stack([prepare_frame(f, spec) for f in e.goal_images]))[e.goal_image_index]
        bar.update(1)
    bar.close()
    return LatentInput(enc.bundle.id, enc.latent_dim, enc.frame_rate, str(visual))


def load_bc(ckpt_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """The exported-policy torch module and the checkpoint metadata."""
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    meta = read_checkpoint(ckpt_dir, "bc_policy")
    cfg = BCConfig(**meta["config"])
    net = make_mlp(meta["obs_dim"], cfg.hidden, meta["action_dim"])
    net.load_state_dict(load_file(str(ckpt_dir / "model.safetensors")))
    norm = {k: np.asarray(v, dtype=np.float32) for k, v in meta["normalizer"].items()}
    return ExportedPolicy.build(net, norm), meta


def sim_position_limits(robot: str, joint_names: list[str]) -> list[list[float | None]] | None:
    """[lower, upper] per joint from the simulated robot's model (None for continuous joints);
    None when the robot is not one of ours (then the node needs a URDF or parameters)."""
    try:
        from wm_control.sim import ArmConfig, SimArm

        arm = SimArm(ArmConfig(robot=robot, render=False))
        arm.connect()
    except (ValueError, RuntimeError):
        return None
    try:
        if list(arm.joint_names) != list(joint_names):
            return None
        return [[None, None] if cont else [float(lo), float(hi)]
                for (lo, hi), cont in zip(arm.position_limits, arm.continuous)]
    finally:
        arm.disconnect()


def export_policy_onnx(policy: Any, obs_dim: int, path: Path) -> dict[str, Any]:
    """The policy graph (raw ``obs`` (batch, obs_dim) -> ``action`` (batch, n)) of BC and PPO; its io spec."""
    import torch

    return export_onnx(policy, (torch.zeros(1, obs_dim),), path, ["obs"], ["action"],
                       {"obs": {0: "batch"}, "action": {0: "batch"}})


def export_bc(ckpt_dir: str | Path, bundle_dir: str | Path, max_step: float = 0.15) -> Path:
    """Write a bundle with ``policy.onnx`` (normaliser inside) from a BC checkpoint."""
    import tempfile

    from wm_control.world.bundle import write_bundle

    policy, meta = load_bc(ckpt_dir)
    obs_dim = meta["obs_dim"]
    latent = meta.get("latent")
    assert obs_dim == observation_dim(meta["observation"], len(meta["joint_names"]), latent["dim"] if latent else 0)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "policy.onnx"
        io = export_policy_onnx(policy, obs_dim, onnx_path)
        cfg = meta["config"]
        robot = {"name": cfg["robot"], "joint_names": meta["joint_names"], "control_rate": cfg["control_rate"]}
        limits = None
        if meta.get("robot"):  # trained for a robot config: its name, rate, interface, camera, goal and limits
            from wm_control.robot import load_robot_config

            robot = {**robot, **meta["robot"]}
            try:
                lim = load_robot_config(cfg["robot_config"]).position_limits()
            except ValueError:
                lim = None
            if lim is not None:
                limits = [[lo, hi] for lo, hi in zip(lim[0], lim[1])]
                robot["max_velocity"] = lim[2]
        else:
            limits = sim_position_limits(cfg["robot"], meta["joint_names"])
        spec = {
            **io,
            "observation": meta["observation"],
            "action": "delta_position",
            "description": "position target = q + action; normaliser folded in",
            **({"latent": latent} if latent else {}),
        }
        return write_bundle(
            bundle_dir, {"policy": (onnx_path, spec)},
            robot={**robot, "max_step": max_step, "position_limits": limits},
            normalizers={"policy_obs": {"mean": meta["normalizer"]["obs_mean"], "std": meta["normalizer"]["obs_std"]},
                         "policy_action": {"mean": meta["normalizer"]["act_mean"],
                                           "std": meta["normalizer"]["act_std"]}},
            training={"stage": "bc", "config": cfg, "data": meta["data"]}, metrics=meta["metrics"])

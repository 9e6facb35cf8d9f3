"""The whole visual world model: every stage in order into one checkpoint folder (resumable), loading
it back (:class:`VisualModels`), and teacher + student on other action sources for the comparison."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.report import read_json, summary_line, to_plain, write_json
from wm_control.train.visual import stages
from wm_control.train.visual.config import VisualConfig
from wm_control.train.visual.data import ensure_video, labelled_split, load_video, unlabelled


def _data_dirs(cfg: VisualConfig, data_dir: str | Path | None, heldout_dir: str | Path | None
               ) -> tuple[Path, Path | None]:
    """The training and held-out bag folders (collected in the simulator where empty). A robot config's
    bags are never collected: without a held-out folder (None) its episodes are split."""
    if cfg.robot_config and not data_dir:
        raise ValueError("a robot config's bags are never collected: give --data")
    d = Path(data_dir or f"data/{cfg.robot}_video")
    h = Path(heldout_dir or f"{d}_heldout")
    ensure_video(cfg, d, cfg.episodes, cfg.seed)
    if cfg.robot_config and not heldout_dir and not (h.exists() and any(h.rglob("metadata.yaml"))):
        return d, None
    ensure_video(cfg, h, cfg.heldout_episodes, cfg.seed + 1000)
    return d, h


def split_heldout(eps: list, fraction: float = 0.1) -> tuple[list, list]:
    """The last ``fraction`` of the episodes (at least one, and at least one left) held out."""
    if len(eps) < 2:
        raise ValueError(f"{len(eps)} camera episode(s): need 2+ to hold one out (or give --heldout)")
    k = min(len(eps) - 1, max(1, int(round(fraction * len(eps)))))
    return eps[:-k], eps[-k:]


def train_visual(cfg: VisualConfig, data_dir: str | Path | None = None, out_dir: str | Path = "runs/visual",
                 heldout_dir: str | Path | None = None, resume: bool = False) -> Path:
    """Every stage (see :mod:`wm_control.train.visual`); returns the checkpoint folder."""
    import torch
    import yaml

    from wm_control.world.visual import ConvEncoder, LatentActionModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d, h = _data_dirs(cfg, data_dir, heldout_dir)
    labelled, names = load_video(d, cfg)  # read once: the commands serve the labelled subset only
    if h is None:  # a robot config's one folder: its last episodes held out
        labelled, heldout = split_heldout(labelled)
    else:
        heldout, _ = load_video(h, cfg)
    eps = unlabelled(labelled)  # every stage up to the student sees video: no action topic is used
    summary_line(f"{len(eps)} episodes ({sum(len(e.frames) for e in eps)} frames at {cfg.frame_rate:g} Hz, "
                 f"{cfg.image_size}x{cfg.image_size}) from {d}; held out: {len(heldout)} from "
                 f"{h if h is not None else 'its last episodes'}", tag="train visual",
                 err=True)
    metrics: dict[str, Any] = {}
    prev = _previous_metrics(out) if resume else {}

    def done(stage: str, *files: str) -> bool:
        """resume: a finished stage (its files and metrics are there) is kept."""
        return resume and stage in prev and all((out / f).exists() for f in files)

    if done("encoder", "encoder.pt"):
        metrics["encoder"] = prev["encoder"]
        summary_line("resume: keeping the trained encoder", tag="train visual", err=True)
    else:
        metrics["encoder"] = stages.train_encoder(cfg, eps, out, resume=resume)
        _save_progress(out, metrics)
    enc = ConvEncoder(cfg.image_size, cfg.enc_channels, cfg.latent_dim, cfg.enc_keypoints)
    enc.load_state_dict(torch.load(out / "encoder.pt", weights_only=True))
    enc.eval()
    raw = stages.encode_all(enc, [e.frames for e in eps])
    allz = np.concatenate(raw)
    mean, std = allz.mean(0), np.maximum(allz.std(0), 1e-6)
    lat = [((z - mean) / std).astype(np.float32) for z in raw]
    lat_h = [((z - mean) / std).astype(np.float32) for z in stages.encode_all(enc, [e.frames for e in heldout])]
    # the probe reads joint angles and goal off the latent: only episodes that log them (not camera-only video)
    logged = [i for i, e in enumerate(eps) if not np.isnan(e.q).any()]
    logged_h = [i for i, e in enumerate(heldout) if not np.isnan(e.q).any()]
    # ... and the object's xy where every such episode has the simulator's label (the push task)
    with_object = all(e.object is not None for e in [eps[i] for i in logged] + [heldout[i] for i in logged_h])
    with_goal = all(e.goal is not None for e in [eps[i] for i in logged] + [heldout[i] for i in logged_h])
    yt = np.concatenate([stages.probe_targets(eps[i], with_object) for i in logged])
    yh = np.concatenate([stages.probe_targets(heldout[i], with_object) for i in logged_h])
    n = len(names)
    groups = {"joint_cos_sin": slice(0, 2 * n), "goal_xy": slice(2 * n, 2 * n + 2 if with_goal else 2 * n)}
    if with_object:
        groups["object_xy"] = slice(groups["goal_xy"].stop, groups["goal_xy"].stop + 2)
    pr = stages.probe_r2(np.concatenate([lat[i] for i in logged]), yt, np.concatenate([lat_h[i] for i in logged_h]),
                         yh, groups)
    metrics["encoder"]["probe_r2"] = pr
    summary_line(f"encoder: linear probe R^2 on held-out frames: joint angles (cos, sin) {pr['joint_cos_sin']}, "
                 f"goal {pr['goal_xy']}" + (f", object {pr['object_xy']}" if with_object else ""),
                 tag="train visual", err=True)
    _save_progress(out, metrics)
    for stage, fn in (("decoder", lambda: stages.train_decoder(cfg, eps, lat, out)),
                      ("lam", lambda: stages.train_lam(cfg, lat, out))):
        if done(stage, f"{stage}.pt"):
            metrics[stage] = prev[stage]
        else:
            metrics[stage] = fn()
            _save_progress(out, metrics)
    lam = LatentActionModel(cfg.latent_dim, cfg.action_dim)
    lam.load_state_dict(torch.load(out / "lam.pt", weights_only=True))
    lam.eval()
    act = stages.latent_actions(lam, lat)
    win = stages.Windows(lat, act, cfg.window, cfg.seed)
    if done("teacher", "teacher.pt"):
        teacher = stages.make_teacher(cfg, cfg.action_dim, out / "teacher.pt")
        metrics["teacher"] = prev["teacher"]
    else:
        teacher, metrics["teacher"] = stages.train_teacher(cfg, win, cfg.action_dim, out)
        _save_progress(out, metrics)
    if done("student", "student.pt"):
        student = stages.make_student(cfg, cfg.action_dim, out / "student.pt")
        metrics["student"] = prev["student"]
    else:
        student, metrics["student"] = stages.train_student(cfg, win, teacher, cfg.action_dim, out)
        _save_progress(out, metrics)
    lab = labelled_split(labelled, cfg.labelled_fraction, cfg.seed)
    _, metrics["adapter"] = stages.train_adapter(cfg, [lat[i] for i in lab], [act[i] for i in lab],
                                                 [labelled[i].command for i in lab], out, lam, student=student.eval())
    np.savez(out / "latents.npz", mean=mean, std=std, labelled=lab)
    meta = {"kind": "visual", "config": to_plain(asdict(cfg)), "joint_names": names, "data": str(d),
            "heldout": str(h) if h is not None else None, "heldout_episodes": len(heldout), "episodes": len(eps), "labelled_episodes": [int(i) for i in lab],
            "normalizer": {"latent_mean": mean.tolist(), "latent_std": std.tolist()},
            "metrics": to_plain(metrics), "action_source": "latent"}
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return out


def _save_progress(out: Path, metrics: dict[str, Any]) -> None:
    write_json(out / "progress.json", metrics)


def _previous_metrics(out: Path) -> dict[str, Any]:
    return read_json(out / "progress.json") or {}


@dataclass
class VisualModels:
    cfg: VisualConfig
    meta: dict[str, Any]
    encoder: Any
    decoder: Any
    lam: Any
    teacher: Any
    student: Any
    adapter: Any
    mean: np.ndarray
    std: np.ndarray


def load_visual(ckpt_dir: str | Path) -> VisualModels:
    import torch

    from wm_control.train import read_checkpoint
    from wm_control.world.visual import ActionAdapter, ConvEncoder, LatentActionModel, PixelDecoder

    ckpt = Path(ckpt_dir)
    meta = read_checkpoint(ckpt, "visual")
    cfg = VisualConfig(**meta["config"])
    n = len(meta["joint_names"])
    mods = {
        "encoder": ConvEncoder(cfg.image_size, cfg.enc_channels, cfg.latent_dim, cfg.enc_keypoints),
        "decoder": PixelDecoder(cfg.image_size, cfg.latent_dim, cfg.dec_channels),
        "lam": LatentActionModel(cfg.latent_dim, cfg.action_dim),
        "teacher": stages.make_teacher(cfg, cfg.action_dim),
        "student": stages.make_student(cfg, cfg.action_dim),
        "adapter": ActionAdapter(cfg.latent_dim, n, cfg.action_dim, cfg.adapter_hidden),
    }
    for k, m in mods.items():
        m.load_state_dict(torch.load(ckpt / f"{k}.pt", weights_only=True))
        m.eval()
    norm = meta["normalizer"]
    return VisualModels(cfg, meta, mean=np.asarray(norm["latent_mean"], np.float32),
                        std=np.asarray(norm["latent_std"], np.float32), **mods)


# ------------------------------------------------------------------------------------------
# Other action sources (for the comparison)
# ------------------------------------------------------------------------------------------
def train_dynamics(ckpt_dir: str | Path, actions: str, fraction: str, out_dir: str | Path,
                   cfg_overrides: dict[str, Any] | None = None) -> Path:
    """Teacher + student on the visual checkpoint's latents with ``actions`` 'real' (normalised joint
    commands) and ``fraction`` 'all' or 'labelled' (the checkpoint's labelled episodes only)."""
    import yaml

    vm = load_visual(ckpt_dir)
    cfg = replace(vm.cfg, **(cfg_overrides or {}))
    if actions != "real" or fraction not in ("all", "labelled"):
        raise ValueError("train_dynamics: actions must be 'real', fraction 'all' or 'labelled'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    eps, _ = load_video(vm.meta["data"], cfg)
    lat = [((z - vm.mean) / vm.std).astype(np.float32) for z in stages.encode_all(vm.encoder, [e.frames for e in eps])]
    keep = [i for i, e in enumerate(eps) if not np.isnan(e.command).all()] if fraction == "all" \
        else list(vm.meta["labelled_episodes"])
    cmd = np.concatenate([eps[i].command for i in keep])
    c_mean, c_std = cmd.mean(0), np.maximum(cmd.std(0), 1e-3)
    act = [((eps[i].command - c_mean) / c_std).astype(np.float32) for i in keep]
    win = stages.Windows([lat[i] for i in keep], act, cfg.window, cfg.seed)
    (out / "train_log.jsonl").write_text("")
    teacher, m_t = stages.train_teacher(cfg, win, act[0].shape[1], out, "teacher")
    _, m_s = stages.train_student(cfg, win, teacher, act[0].shape[1], out, "student")
    meta = {"kind": "visual_dynamics", "visual": str(ckpt_dir), "actions": actions, "fraction": fraction,
            "episodes": len(keep), "config": to_plain(asdict(cfg)),
            "command_normalizer": {"mean": c_mean.tolist(), "std": c_std.tolist()},
            "metrics": to_plain({"teacher": m_t, "student": m_s})}
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return out


def load_dynamics(ckpt_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    from wm_control.train import read_checkpoint

    meta = read_checkpoint(ckpt_dir, "visual_dynamics")
    cfg = VisualConfig(**meta["config"])
    n = len(meta["command_normalizer"]["mean"])
    return (stages.make_teacher(cfg, n, Path(ckpt_dir) / "teacher.pt"),
            stages.make_student(cfg, n, Path(ckpt_dir) / "student.pt"), meta)

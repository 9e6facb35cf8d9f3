"""``wm-control train bc|ensemble|policy|visual``: each stage's flags are its configuration's fields,
with the values of ``--preset`` (debug | quick | full) as defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal

from wm_control.cli.flags import choose, parse, preset_name
from wm_control.errors import UserError

Preset = Literal["debug", "quick", "full"]
STAGES = {
    "bc": "behaviour cloning of a position-target policy from expert bags",
    "ensemble": "the RWM-U dynamics ensemble (teacher- and/or self-forced)",
    "policy": "PPO inside the ensemble with the uncertainty penalty (a lambda sweep)",
    "visual": "the visual world model: JEPA encoder, decoder, latent actions, teacher, student, adapter",
}


@dataclass
class StageOptions:
    preset: Preset = "quick"
    """The size every other default comes from: debug (seconds: tests), quick (a 2-core CPU), full (a GPU)."""
    data: str | None = None
    """Folder of bags (collected there when empty; default data/ROBOT_expert)."""
    out: str | None = None
    """Checkpoint folder (default runs/STAGE)."""
    bundle: str | None = None
    """Also export a bundle here."""


@dataclass
class BCOptions(StageOptions):
    """Behaviour cloning of a position-target policy from expert bags."""


@dataclass
class EnsembleOptions(StageOptions):
    """The RWM-U dynamics ensemble on logged bags."""

    regime: Literal["self", "teacher", "both"] = "both"
    """both: the teacher-forced and the self-forced model on the same data and budget, into OUT_teacher
    and OUT_self (default runs/ensemble_*)."""
    policy_bundle: str | None = None
    """Put this bundle's policy into the ensemble's bundle too."""


@dataclass
class PolicyOptions(StageOptions):
    """PPO inside the ensemble, reward = task - lambda x uncertainty; one policy and bundle per lambda."""

    ensemble: str = "runs/ensemble_self"
    """The ensemble checkpoint to train in."""
    lam: str | None = None
    """Uncertainty penalty lambda; a comma list is a sweep (one policy and bundle each)."""
    json: str | None = None
    """The sweep summary (default OUT/sweep.json)."""


@dataclass
class VisualOptions(StageOptions):
    """The visual world model, every stage; camera bags collected into DATA (default
    data/ROBOT_video, held out DATA_heldout) when empty."""

    heldout: str | None = None
    """Held-out camera bags (default DATA_heldout; collected if empty)."""
    resume: bool = False
    """Continue an interrupted run (finished stages kept; the encoder from its last checkpoint)."""


def _stage(stage: str, argv: list[str], options: type, kind: type):
    from wm_control.train.presets import preset

    name = preset_name(argv)
    try:
        default = preset(kind, name)
    except ValueError as exc:
        raise UserError(f"--preset: {exc}") from None
    return parse(f"wm-control train {stage}", argv, options, default)


def cmd_train(argv: list[str]) -> int:
    stage, argv = choose("wm-control train", argv, STAGES)
    if stage == "visual":
        from wm_control.train.visual import VisualConfig, export_visual, train_visual

        v, cfg = _stage(stage, argv, VisualOptions, VisualConfig)
        ckpt = train_visual(cfg, v.data, v.out or "runs/visual", heldout_dir=v.heldout, resume=v.resume)
        print(f"checkpoint: {ckpt}")
        if v.bundle:
            print(f"bundle: {export_visual(ckpt, v.bundle)}")
        return 0
    if stage == "bc":
        from wm_control.train.bc import export_bc, train_bc
        from wm_control.train.presets import BCConfig

        o, cfg = _stage(stage, argv, BCOptions, BCConfig)
        ckpt = train_bc(cfg, o.data or f"data/{cfg.robot}_expert", o.out or "runs/bc")
        print(f"checkpoint: {ckpt}")
        if o.bundle:
            print(f"bundle: {export_bc(ckpt, o.bundle)}")
        return 0
    if stage == "policy":
        from wm_control.train.ppo import PPOConfig, sweep

        p, cfg = _stage(stage, argv, PolicyOptions, PPOConfig)
        try:
            lams = [float(x) for x in p.lam.split(",")] if p.lam else [cfg.lam]
        except ValueError:
            raise UserError(f"--lam: a number or a comma list of numbers, not {p.lam!r}") from None
        out = p.out or "runs/ppo"
        json_path = p.json or f"{out}/sweep.json"
        res = sweep(cfg, lams, p.ensemble, out, p.bundle, data_dirs=[p.data] if p.data else None, json_path=json_path)
        for r in res["runs"]:
            extra = f", bundle {r['bundle']}" if "bundle" in r else ""
            print(f"lambda {r['lam']:g}: checkpoint {r['checkpoint']}{extra}")
        print(f"summary: {json_path}")
        return 0
    from wm_control.train.ensemble import EnsembleConfig, export_ensemble, train_ensemble

    e, cfg = _stage(stage, argv, EnsembleOptions, EnsembleConfig)
    regimes = ["teacher", "self"] if e.regime == "both" else [e.regime]
    for regime in regimes:
        out = e.out if (e.out and len(regimes) == 1) else f"{e.out or 'runs/ensemble'}_{regime}"
        ckpt = train_ensemble(replace(cfg, regime=regime), e.data or f"data/{cfg.robot}_expert", out)
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes
            continue
        print(f"checkpoint ({regime}-forcing): {ckpt}")
        if e.bundle and regime == regimes[-1]:
            print(f"bundle: {export_ensemble(ckpt, e.bundle, policy_bundle=e.policy_bundle)}")
    return 0

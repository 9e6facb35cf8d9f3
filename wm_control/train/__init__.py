"""Training: behaviour cloning, the RWM-U ensemble, PPO inside it, the visual world model.

Sizes by name for all of them: :mod:`wm_control.train.presets`; every ONNX graph they export:
:mod:`wm_control.train.onnx`; what they write for people (JSON, logs, progress):
:mod:`wm_control.report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_checkpoint(ckpt_dir: str | Path, kind: str) -> dict[str, Any]:
    """The metadata of a checkpoint folder (``checkpoint.yaml``), which must be of ``kind``."""
    import yaml

    path = Path(ckpt_dir) / "checkpoint.yaml"
    if not path.exists():
        raise ValueError(f"{ckpt_dir} is not a checkpoint folder (no checkpoint.yaml)")
    meta = yaml.safe_load(path.read_text()) or {}
    if meta.get("kind") != kind:
        raise ValueError(f"{ckpt_dir} is not a {kind} checkpoint (it is {meta.get('kind')!r})")
    return meta

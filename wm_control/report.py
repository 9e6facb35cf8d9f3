"""What every evaluation, benchmark and training run writes for people, written one way.

* :func:`write_json`: one JSON object, 2-space indent, numpy values as plain numbers and lists,
  the parent folders created, written to a temporary file and renamed (a reader never sees half a file);
  :func:`read_json` reads one back (``None`` when there is none). :class:`JsonLines` is the same for
  a training log (one JSON object a line, flushed after each).
* :func:`pyplot` / :func:`save_figure`: matplotlib (a requirement) on the Agg backend, no display
  needed; a figure is laid out, saved (110 dpi by default) and closed. :func:`figure_path` is the PNG
  next to a JSON.
* :func:`progress`: a tqdm bar on stderr, off when stderr is not a terminal or when asked
  (``enabled=False``); a disabled bar takes every call and shows nothing (``bar.disable`` is True).
* :func:`summary_line` / :func:`wrote`: one line for people, flushed (``[tag] text``; ``wrote A and B``).
* :func:`stats` / :func:`machine`: the blocks benchmarks report (percentiles of a sample; the machine).

It imports nothing of wm_control, so any layer may use it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def to_plain(x: Any) -> Any:
    """``x`` with numpy scalars and arrays, tuples and paths turned into JSON (and YAML) types."""
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_plain(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if type(x).__module__ == "numpy":
        return to_plain(x.tolist()) if hasattr(x, "tolist") else x
    return x


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` (parents created, replaced atomically); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(to_plain(obj), indent=indent))
    tmp.replace(p)
    return p


def read_json(path: str | Path | None) -> Any:
    """The JSON in ``path``; ``None`` when there is no path or no file."""
    if not path or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


class JsonLines:
    """A log of one JSON object a line (``metrics.jsonl``, ``train_log.jsonl``), flushed after each."""

    def __init__(self, path: str | Path, mode: str = "w"):
        self.f = open(path, mode)

    def write(self, rec: dict[str, Any] | None = None, **fields: Any) -> None:
        self.f.write(json.dumps(to_plain({**(rec or {}), **fields})) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def figure_path(json_path: str | Path, suffix: str = "") -> Path:
    """The PNG next to ``json_path``: ``x.json`` -> ``x.png`` (``x<suffix>.png`` with a suffix)."""
    p = Path(json_path)
    return p.with_name(p.stem + suffix + ".png")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only: no display is needed or opened)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Lay ``fig`` out, save it to ``path`` (parents created) and close it; returns the path."""
    import matplotlib.pyplot as plt

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        fig.savefig(p, dpi=dpi)
    finally:
        plt.close(fig)
    return p


def progress(total: int, desc: str, enabled: bool = True, leave: bool = True, unit: str = "it",
             mininterval: float = 1.0) -> Any:
    """A tqdm bar on stderr; disabled (every call a no-op) when ``enabled`` is False. Where stderr is no
    TTY (a log file, CI) it still shows progress, a line at most every 30 s, so long work is never silent."""
    from tqdm import tqdm

    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, file=sys.stderr, unit=unit, leave=leave,
                mininterval=mininterval if tty else max(mininterval, 30.0), disable=not enabled)


def summary_line(text: str, tag: str | None = None, err: bool = False) -> None:
    """Print one line for people (``[tag] text`` with a tag), flushed, on stdout (stderr with ``err``)."""
    print(f"[{tag}] {text}" if tag else text, file=sys.stderr if err else sys.stdout, flush=True)


def wrote(*paths: str | Path | None) -> None:
    """``wrote A and B`` for the files written (``None`` entries are left out)."""
    names = [str(p) for p in paths if p]
    if names:
        summary_line("wrote " + " and ".join(names))


def stats(values: Any, percentiles: tuple[int, ...] = (50, 90, 99), with_max: bool = False) -> dict[str, float]:
    """``{"p50": .., "p90": .., "p99": .., ["max": ..,] "mean": ..}`` of a sample (e.g. latencies in ms)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    out = {f"p{q}": float(np.percentile(v, q)) for q in percentiles}
    if with_max:
        out["max"] = float(v.max())
    out["mean"] = float(v.mean())
    return out


def machine(python: bool = False) -> dict[str, Any]:
    """The machine a benchmark ran on: CPU count, (Python version,) platform."""
    return {"cpus": os.cpu_count(), **({"python": platform.python_version()} if python else {}),
            "platform": platform.platform()}

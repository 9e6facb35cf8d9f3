"""Command-line flags generated from the dataclasses that already describe a job.

A verb's flags are two dataclasses' fields: its own options (where to read, where to write) and the
configuration it runs (``CollectConfig``, ``BCConfig``, ...), whose field docstrings are the help and
whose values, after any preset, are the defaults. `tyro <https://brentyi.github.io/tyro/>`_ turns them
into an argparse parser (types, choices from ``Literal``, ``--flag/--no-flag`` for booleans, lists as
``--hidden 64 64``); the configuration's ``__post_init__`` still validates what was given, and its
complaint is one line (:class:`wm_control.errors.UserError`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import tyro

from wm_control.errors import UserError
from wm_control.ros.api import field_docs

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

O = TypeVar("O")
C = TypeVar("C")


def parse(prog: str, argv: list[str], options: type[O], config: C | None = None, skip: tuple[str, ...] = (),
          description: str | None = None) -> tuple[O, C]:
    """``argv`` -> (``options`` instance, ``config`` with the given fields replaced).

    ``config`` is an instance (a preset): its class's fields become flags with its values as defaults,
    except those in ``skip`` and those ``options`` already has (the option wins)."""
    own = {f.name for f in dataclasses.fields(options)}
    extra: list[tuple[str, Any, Any]] = []
    taken: list[str] = []
    if config is not None:
        hints = typing.get_type_hints(type(config))
        docs = field_docs(type(config))
        for f in dataclasses.fields(config):
            if not f.init or f.name in skip or f.name in own:
                continue
            value = getattr(config, f.name)
            arg = tyro.conf.arg(help=docs.get(f.name) or f.metadata.get("help") or None)
            extra.append((f.name, Annotated[hints[f.name], arg],
                          dataclasses.field(default_factory=lambda v=value: copy.deepcopy(v))))
            taken.append(f.name)
    cls = dataclasses.make_dataclass(options.__name__, extra, bases=(options,)) if extra else options
    cls.__doc__ = description or options.__doc__
    args = _cli(cls, argv, prog)
    opts = options(**{name: getattr(args, name) for name in own})
    if config is None:
        return opts, config  # type: ignore[return-value]
    try:
        cfg = dataclasses.replace(config, **{name: getattr(args, name) for name in taken})
    except (ValueError, TypeError) as exc:  # the configuration's own check: one line
        raise UserError(str(exc)) from None
    return opts, cfg


def _cli(cls: type, argv: list[str], prog: str) -> Any:
    """tyro's parser; its boxed error (several lines) comes back as one line (a UserError), as every
    other mistake a user makes here."""
    if "-h" in argv or "--help" in argv:
        return tyro.cli(cls, args=argv, prog=prog, config=(tyro.conf.FlagCreatePairsOff,))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            return tyro.cli(cls, args=argv, prog=prog, config=(tyro.conf.FlagCreatePairsOff,))
    except SystemExit as exc:
        if not exc.code:
            raise
        lines = []
        for ln in err.getvalue().splitlines()[1:]:  # the first is the box's title
            ln = ln.strip(" |│╭╮╰╯+")
            if ln.startswith("For full helptext"):
                break
            if ln.strip("-─ "):
                lines.append(ln)
        raise UserError(f"{' '.join(' '.join(lines).split())} (`{prog} --help` lists the flags)") from None


def choose(prog: str, argv: list[str], choices: dict[str, str], default: str | None = None) -> tuple[str, list[str]]:
    """The sub-verb (``train bc``, ``eval suite``) and the rest of ``argv``; ``default`` when the first
    word is a flag or absent. ``--help`` alone lists the sub-verbs."""
    if argv[:1] and argv[0] in choices:
        return argv[0], argv[1:]
    if default is not None and (not argv or argv[0].startswith("-")) and argv[:1] not in (["-h"], ["--help"]):
        return default, argv
    width = max(map(len, choices))
    listing = "\n".join(f"  {k:<{width}}  {v}" for k, v in choices.items())
    if argv[:1] in (["-h"], ["--help"]) or not argv:
        print(f"usage: {prog} {{{','.join(choices)}}} [--help | FLAGS]\n\n{listing}")
        raise SystemExit(0 if argv else 2)
    raise UserError(f"unknown {prog.split()[-1]} {argv[0]!r}; choose one of: {', '.join(choices)}")


def preset_name(argv: list[str], default: str = "quick") -> str:
    """The ``--preset`` in ``argv`` (read before the parser is built: the preset sets the defaults)."""
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--preset="):
            return a.split("=", 1)[1]
    return default


def config_path(name: str) -> str:
    """A graph or suite YAML: the path itself, else the file of that name in the repo's ``config/``."""
    p = Path(name)
    if p.exists():
        return str(p)
    for cand in (CONFIG_DIR / name, Path(__file__).resolve().parents[1] / "config" / name):
        if cand.exists():
            return str(cand)
    raise UserError(f"config {name!r} not found (looked in ., {CONFIG_DIR}); give the path of a ROS params YAML "
                    "(node: ros__parameters: ...)")


def write_json(path: str | None, result: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")

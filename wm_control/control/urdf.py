"""Joint limits from a URDF: pure parsing, no ROS, no xacro.

Only the ``<joint>`` elements directly under ``<robot>`` count (``<transmission>`` elements also hold
``<joint name=...>``, which are not joints). Documents with a ``<!DOCTYPE`` or ``<!ENTITY`` are refused
before parsing, so entity-expansion tricks never reach the XML parser. Every problem (missing joint,
missing limit, bad number) is collected and raised as one :class:`ValueError` naming the joints.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

PathOrText = str | bytes | os.PathLike


@dataclass(frozen=True)
class JointLimit:
    """Position limits (rad or m) and velocity limit of one joint.

    A continuous joint has ``lower=-inf, upper=+inf, continuous=True``; its ``velocity`` is +inf when
    the URDF gives none.
    """

    lower: float
    upper: float
    velocity: float
    continuous: bool = False


def _read(path_or_text: PathOrText) -> tuple[str, str]:
    """(text, what): a str that starts with '<' is URDF text; anything else is a path."""
    if isinstance(path_or_text, bytes):
        raw, what = path_or_text, "URDF text"
    elif isinstance(path_or_text, str) and path_or_text.lstrip().startswith("<"):
        return path_or_text, "URDF text"
    else:
        what = f"URDF {os.fspath(path_or_text)}"
        try:
            with open(path_or_text, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ValueError(f"{what}: cannot read: {e}") from e
    try:
        return raw.decode("utf-8"), what
    except UnicodeDecodeError as e:
        raise ValueError(f"{what}: not UTF-8: {e}") from e


def _number(el: ET.Element, attr: str) -> float | None:
    v = el.get(attr)
    return None if v is None else float(v)


def joint_limits_from_urdf(path_or_text: PathOrText, joint_names: Sequence[str]) -> dict[str, JointLimit]:
    """Limits of ``joint_names`` (in that order) from a URDF file path or URDF text.

    revolute / prismatic joints need ``<limit lower upper velocity>`` (finite, lower <= upper,
    velocity > 0); continuous joints need nothing (a ``<limit velocity>`` is read when present).
    ``<safety_controller soft_lower_limit soft_upper_limit>`` narrows revolute / prismatic limits
    (attributes that are absent are ignored; soft position limits on continuous joints are ignored, as
    ros2_control does). Other joint types (fixed, floating, planar) are refused.
    """
    text, what = _read(path_or_text)
    upper_text = text.upper()
    if "<!DOCTYPE" in upper_text or "<!ENTITY" in upper_text:
        raise ValueError(f"{what}: DOCTYPE / ENTITY declarations are not allowed in a URDF")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"{what}: not well-formed XML: {e}") from e
    if root.tag != "robot":
        raise ValueError(f"{what}: root element is <{root.tag}>, expected <robot>")
    names = list(joint_names)
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: duplicate names in the requested joints {names}")

    joints: dict[str, list[ET.Element]] = {}
    for j in root.findall("joint"):
        joints.setdefault(j.get("name", ""), []).append(j)

    problems: list[str] = []
    missing = [n for n in names if n not in joints]
    if missing:
        problems.append(f"missing joints {missing}")
    out: dict[str, JointLimit] = {}
    for name in names:
        if name not in joints:
            continue
        if len(joints[name]) > 1:
            problems.append(f"joint {name!r} is defined {len(joints[name])} times")
            continue
        joint = joints[name][0]
        kind = joint.get("type")
        limit, soft = joint.find("limit"), joint.find("safety_controller")
        try:
            if kind == "continuous":
                vel = _number(limit, "velocity") if limit is not None else None
                vel = math.inf if vel is None else vel
                if not vel > 0:
                    problems.append(f"joint {name!r}: velocity limit must be > 0, got {vel}")
                    continue
                out[name] = JointLimit(-math.inf, math.inf, vel, continuous=True)
                continue
            if kind not in ("revolute", "prismatic"):
                problems.append(f"joint {name!r} has type {kind!r}; expected revolute, prismatic or continuous")
                continue
            if limit is None:
                problems.append(f"{kind} joint {name!r} has no <limit>")
                continue
            lo, hi, vel = (_number(limit, a) for a in ("lower", "upper", "velocity"))
            absent = [a for a, v in (("lower", lo), ("upper", hi), ("velocity", vel)) if v is None]
            if absent:
                problems.append(f"{kind} joint {name!r}: <limit> lacks {absent}")
                continue
            if soft is not None:
                s_lo, s_hi = _number(soft, "soft_lower_limit"), _number(soft, "soft_upper_limit")
                lo = lo if s_lo is None else max(lo, s_lo)
                hi = hi if s_hi is None else min(hi, s_hi)
        except ValueError as e:
            problems.append(f"joint {name!r}: bad number ({e})")
            continue
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            problems.append(f"joint {name!r}: position limits [{lo}, {hi}] must be finite with lower <= upper")
        elif not vel > 0:
            problems.append(f"joint {name!r}: velocity limit must be > 0, got {vel}")
        else:
            out[name] = JointLimit(lo, hi, vel)
    if problems:
        raise ValueError(f"{what}: " + "; ".join(problems))
    return out

"""Joint limits and the kinematic chain from a URDF: pure parsing, no ROS, no xacro.

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


def _parse(path_or_text: PathOrText) -> tuple[ET.Element, str]:
    """The ``<robot>`` element, refusing DOCTYPE / ENTITY declarations before parsing."""
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
    return root, what


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
    root, what = _parse(path_or_text)
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


def _vector(text: str | None, default: tuple[float, ...], what: str) -> list[float]:
    if text is None:
        return list(default)
    vals = [float(v) for v in text.split()]
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what}: expected 3 finite numbers, got {text!r}")
    return vals


def _rpy_matrix(r: float, p: float, y: float) -> list[list[float]]:
    """URDF's fixed-axis roll-pitch-yaw: R = Rz(y) Ry(p) Rx(r)."""
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr]]


def chain_from_urdf(path_or_text: PathOrText, joint_names: Sequence[str], tip_link: str,
                    tip_offset: Sequence[float] = (0.0, 0.0, 0.0), goal_dims: int = 3):
    """The :class:`~wm_control.control.kinematics.Chain` from the URDF's root link to ``tip_offset`` (m,
    in ``tip_link``'s frame), for the planner's and the imagined environments' reach reward.

    The joints between root and tip are walked through their ``<origin xyz rpy>`` and ``<axis>``; fixed
    joints fold into the next moving one; the revolute / continuous joints on the way must be
    ``joint_names`` in that order (the order of every array), and any other moving joint type on the
    way is refused. The root link is the world frame. Every problem is one ``ValueError`` naming it.
    """
    import numpy as np

    from wm_control.control.kinematics import Chain

    root, what = _parse(path_or_text)
    by_child: dict[str, ET.Element] = {}
    for j in root.findall("joint"):
        child = j.find("child")
        if child is not None and child.get("link"):
            by_child[child.get("link")] = j
    links = {el.get("name") for el in root.findall("link")}
    if tip_link not in links:
        raise ValueError(f"{what}: no link {tip_link!r} (tip_link); links: {sorted(n for n in links if n)}")
    path: list[ET.Element] = []
    link, seen = tip_link, set()
    while link in by_child:
        if link in seen:
            raise ValueError(f"{what}: the joints above {tip_link!r} form a loop at {link!r}")
        seen.add(link)
        j = by_child[link]
        path.append(j)
        parent = j.find("parent")
        link = parent.get("link") if parent is not None else None
    path.reverse()  # root first
    moving = [j.get("name") for j in path if j.get("type") != "fixed"]
    if moving != list(joint_names):
        raise ValueError(f"{what}: the joints from the root to {tip_link!r} are {moving}, not joint_names "
                         f"{list(joint_names)} (same joints, same order)")
    out: list[dict[str, list[float]]] = []
    acc_pos, acc_rot = np.zeros(3), np.eye(3)
    for j in path:
        name, kind = j.get("name"), j.get("type")
        origin = j.find("origin")
        try:
            xyz = _vector(origin.get("xyz") if origin is not None else None, (0.0, 0.0, 0.0), f"{what}: joint {name!r} origin xyz")
            rpy = _vector(origin.get("rpy") if origin is not None else None, (0.0, 0.0, 0.0), f"{what}: joint {name!r} origin rpy")
            axis_el = j.find("axis")
            axis = _vector(axis_el.get("xyz") if axis_el is not None else None, (1.0, 0.0, 0.0), f"{what}: joint {name!r} axis")
        except ValueError as e:
            raise ValueError(str(e)) from None
        acc_pos, acc_rot = acc_pos + acc_rot @ np.asarray(xyz), acc_rot @ np.asarray(_rpy_matrix(*rpy))
        if kind == "fixed":
            continue
        if kind not in ("revolute", "continuous"):
            raise ValueError(f"{what}: joint {name!r} has type {kind!r}; the reach chain takes revolute and continuous joints")
        if not np.linalg.norm(axis) > 0:
            raise ValueError(f"{what}: joint {name!r} has a zero axis")
        out.append({"pos": acc_pos.tolist(), "rot": acc_rot.reshape(-1).tolist(), "axis": [float(a) for a in axis]})
        acc_pos, acc_rot = np.zeros(3), np.eye(3)
    tip = acc_pos + acc_rot @ np.asarray([float(v) for v in tip_offset], dtype=float)
    return Chain(out, tip.tolist(), [0.0, 0.0, 0.0], np.eye(3).reshape(-1).tolist(), goal_dims=int(goal_dims))

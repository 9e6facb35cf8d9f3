"""ROS message <-> numpy conversions: pure functions, no ROS graph, no rclpy.

Each ``*_to_*`` reader validates what it is given and raises :class:`ConversionError` with a message
that says what is wrong; nodes catch it, count a drop and log it. Writers take a ``make(typename,
**fields)`` factory (``node.msg``) so they work on either backend.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

Make = Callable[..., Any]


class ConversionError(ValueError):
    """A message that cannot be turned into a valid value (bad encoding, sizes, NaN, names)."""


# ------------------------------------------------------------------------------------------
# Time: builtin_interfaces/Time and Duration (sec, nanosec) <-> seconds or nanoseconds. The one
# place these conversions are written; nodes, backends and bag tools call these.
# ------------------------------------------------------------------------------------------
NS_PER_SEC = 1_000_000_000


def stamp_sec(stamp: Any) -> float:
    """A ``Time`` / ``Duration`` (anything with ``sec`` and ``nanosec``) in seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def stamp_ns(stamp: Any) -> int:
    """A ``Time`` / ``Duration`` in integer nanoseconds, exactly; a ``nanosec`` outside [0, 1e9) is an error."""
    sec, nsec = int(stamp.sec), int(stamp.nanosec)
    if not 0 <= nsec < NS_PER_SEC:
        raise ConversionError(f"stamp nanosec {nsec} out of range [0, {NS_PER_SEC})")
    return sec * NS_PER_SEC + nsec


def ns_fields(ns: int) -> dict[str, int]:
    """``{"sec", "nanosec"}`` of a time in integer nanoseconds (``nanosec`` in [0, 1e9), also before 0)."""
    sec, nsec = divmod(int(ns), NS_PER_SEC)
    return {"sec": sec, "nanosec": nsec}


def sec_nsec(t: float) -> tuple[int, int]:
    """``(sec, nanosec)`` of a time in seconds, rounded to the nanosecond.

    Whole and fractional seconds are split first (exact in floating point): ``round(t * 1e9)`` would
    round the product of an epoch time (~1.7e18 ns, past 2**53) to a multiple of 256 ns.
    """
    sec = math.floor(t)
    nsec = int(round((t - sec) * 1e9))
    if nsec >= NS_PER_SEC:
        sec, nsec = sec + 1, nsec - NS_PER_SEC
    return int(sec), nsec


def time_fields(t: float) -> dict[str, int]:
    """``{"sec", "nanosec"}`` of a time in seconds (the keyword arguments of a ``Time`` / ``Duration``)."""
    sec, nsec = sec_nsec(t)
    return {"sec": sec, "nanosec": nsec}


def header(make: Make, t: float, frame_id: str = "") -> Any:
    return make("std_msgs/msg/Header", stamp=make("builtin_interfaces/msg/Time", **time_fields(t)),
                frame_id=frame_id)


# ------------------------------------------------------------------------------------------
# sensor_msgs/JointState: always by name, never by index
# ------------------------------------------------------------------------------------------
def _index_by_name(names: Sequence[str], wanted: Sequence[str], what: str) -> np.ndarray:
    names = list(names)
    if len(set(names)) != len(names):
        raise ConversionError(f"{what}: duplicate joint names {names}")
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in pos]
    if missing:
        raise ConversionError(f"{what}: missing joints {missing} (got {names})")
    return np.array([pos[n] for n in wanted], dtype=np.int64)


def command_order(joint_order: Sequence[str], names: Sequence[str], whose: str = "the bundle's joints"
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The joint order of Float64MultiArray commands (``joint_order``; empty: ``names``), which must be a
    permutation of ``names``. Returns ``(order, from_order, to_order)``: ``values[from_order]`` puts a
    command into ``names`` order, ``values[to_order]`` puts ``names``-ordered values into command order."""
    names = list(names)
    order = list(joint_order) or names
    if sorted(order) != sorted(names):
        raise ValueError(f"joint_order {order} must be a permutation of {whose} {names}")
    return (order, np.array([order.index(n) for n in names], dtype=np.int64),
            np.array([names.index(n) for n in order], dtype=np.int64))


def joint_state_to_arrays(msg: Any, joint_names: Sequence[str], require_velocity: bool = False
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, velocity, effort) in ``joint_names`` order; extra joints in the message are ignored.

    Missing velocity/effort arrays (allowed by the message spec) come back as NaN unless
    ``require_velocity``; non-finite positions are an error.
    """
    n = len(msg.name)
    pos = np.asarray(msg.position, dtype=np.float64)
    if pos.shape != (n,):
        raise ConversionError(f"JointState: {n} names but {pos.size} positions")
    idx = _index_by_name(msg.name, joint_names, "JointState")
    q = pos[idx]
    if not np.all(np.isfinite(q)):
        raise ConversionError(f"JointState: non-finite position {q.tolist()}")
    out = [q]
    for field in ("velocity", "effort"):
        arr = np.asarray(getattr(msg, field), dtype=np.float64)
        if arr.size == 0:
            if field == "velocity" and require_velocity:
                raise ConversionError("JointState: velocity required but empty")
            out.append(np.full(len(joint_names), np.nan))
        elif arr.shape != (n,):
            raise ConversionError(f"JointState: {n} names but {arr.size} {field} values")
        else:
            v = arr[idx]
            if field == "velocity" and not np.all(np.isfinite(v)):
                raise ConversionError(f"JointState: non-finite velocity {v.tolist()}")
            out.append(v)
    return out[0], out[1], out[2]


def make_joint_state(make: Make, t: float, names: Sequence[str], q: np.ndarray,
                     qd: np.ndarray | None = None, effort: np.ndarray | None = None) -> Any:
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    return make("sensor_msgs/msg/JointState", header=header(make, t), name=list(names),
                position=f64(q), velocity=f64(qd if qd is not None else []),
                effort=f64(effort if effort is not None else []))


# ------------------------------------------------------------------------------------------
# sensor_msgs/Image
# ------------------------------------------------------------------------------------------
#: encoding -> (channels, dtype, layout)
IMAGE_ENCODINGS: dict[str, tuple[int, Any]] = {
    "rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "rgba8": (4, np.uint8), "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8), "mono16": (1, np.uint16),
}


def uint8_data(data: Any) -> np.ndarray:
    """A message's ``uint8[]`` field (numpy array, bytes, array.array or list) as a 1-D uint8 array
    (no copy where the data already is bytes)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1) if data.dtype == np.uint8 else data.astype(np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_array(msg: Any) -> np.ndarray:
    """An Image as an (H, W, C) array in its own encoding (a view on the message data, no copy)."""
    enc = msg.encoding
    if enc not in IMAGE_ENCODINGS:
        raise ConversionError(f"Image: unsupported encoding {enc!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    ch, dtype = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    if h <= 0 or w <= 0:
        raise ConversionError(f"Image: empty size {w}x{h}")
    if step < w * ch * itemsize:
        raise ConversionError(f"Image: step {step} < width*channels*bytes = {w * ch * itemsize}")
    data = uint8_data(msg.data)
    if data.size != h * step:
        raise ConversionError(f"Image: data has {data.size} bytes, expected height*step = {h}*{step} = {h * step}")
    rows = data.reshape(h, step)[:, : w * ch * itemsize]
    arr = rows.view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")) if itemsize > 1 else rows
    return arr.reshape(h, w, ch)


def make_image(make: Make, t: float, rgb: np.ndarray, frame_id: str = "camera", encoding: str = "rgb8") -> Any:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    h, w, c = rgb.shape
    if IMAGE_ENCODINGS.get(encoding, (None,))[0] != c:
        raise ConversionError(f"make_image: {c} channels do not fit encoding {encoding!r}")
    return make("sensor_msgs/msg/Image", header=header(make, t, frame_id), height=h, width=w,
                encoding=encoding, is_bigendian=0, step=w * c, data=rgb.reshape(-1))


# ------------------------------------------------------------------------------------------
# Commands: std_msgs/Float64MultiArray (forward_command_controller) and JointTrajectory
# ------------------------------------------------------------------------------------------
def multiarray_to_command(msg: Any, n: int) -> np.ndarray:
    """A forward_command_controller command: exactly ``n`` finite values, in the configured joint order."""
    data = np.asarray(msg.data, dtype=np.float64)
    if data.shape != (n,):
        raise ConversionError(f"Float64MultiArray command: expected {n} values, got {data.size}")
    if not np.all(np.isfinite(data)):
        raise ConversionError(f"Float64MultiArray command: non-finite value in {data.tolist()}")
    return data


def make_multiarray(make: Make, values: np.ndarray) -> Any:
    return make("std_msgs/msg/Float64MultiArray", data=np.ascontiguousarray(values, dtype=np.float64))


def trajectory_to_arrays(msg: Any, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(times_from_start (k,), positions (k, n) in ``joint_names`` order) from a JointTrajectory.

    Unknown joint names are an error (a controller would reject the goal); so are non-increasing
    times, missing positions and non-finite values.
    """
    names = list(msg.joint_names)
    unknown = [n for n in names if n not in joint_names]
    if unknown:
        raise ConversionError(f"JointTrajectory: unknown joints {unknown}; this robot has {list(joint_names)}")
    idx = _index_by_name(names, joint_names, "JointTrajectory")
    if not msg.points:
        raise ConversionError("JointTrajectory: no points")
    times, rows = [], []
    for i, p in enumerate(msg.points):
        pos = np.asarray(p.positions, dtype=np.float64)
        if pos.shape != (len(names),):
            raise ConversionError(f"JointTrajectory: point {i} has {pos.size} positions for {len(names)} joints")
        if not np.all(np.isfinite(pos)):
            raise ConversionError(f"JointTrajectory: point {i} has a non-finite position")
        times.append(stamp_sec(p.time_from_start))
        rows.append(pos[idx])
    t = np.array(times)
    if np.any(np.diff(t) <= 0) or t[0] < 0:
        raise ConversionError(f"JointTrajectory: time_from_start must be increasing and >= 0, got {t.tolist()}")
    return t, np.stack(rows)


def make_trajectory(make: Make, t: float, names: Sequence[str], times: Sequence[float],
                    positions: np.ndarray) -> Any:
    pts = [make("trajectory_msgs/msg/JointTrajectoryPoint",
                positions=np.ascontiguousarray(p, dtype=np.float64),
                time_from_start=make("builtin_interfaces/msg/Duration", **time_fields(float(s))))
           for s, p in zip(times, np.atleast_2d(positions))]
    return make("trajectory_msgs/msg/JointTrajectory", header=header(make, t), joint_names=list(names), points=pts)


# ------------------------------------------------------------------------------------------
# geometry_msgs/PointStamped (the task goal)
# ------------------------------------------------------------------------------------------
def point_to_array(msg: Any) -> np.ndarray:
    p = msg.point if hasattr(msg, "point") else msg
    v = np.array([p.x, p.y, p.z], dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ConversionError(f"goal: non-finite point {v.tolist()}")
    return v


def make_point(make: Make, t: float, xyz: np.ndarray, frame_id: str = "world") -> Any:
    x, y, z = (float(v) for v in xyz)
    return make("geometry_msgs/msg/PointStamped", header=header(make, t, frame_id),
                point=make("geometry_msgs/msg/Point", x=x, y=y, z=z))

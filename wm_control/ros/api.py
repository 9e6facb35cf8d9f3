"""The small node API every wm_control node is written against, and what both backends share.

A node class is plain Python that *holds* a :class:`Node` handle (never inherits from one)::

    class Talker:
        NAME = "talker"
        Config = TalkerConfig            # dataclass: one field per ROS parameter

        def __init__(self, node: Node, cfg: TalkerConfig): ...
        def close(self): ...             # optional

Backends (``dds`` over Cyclone DDS, ``rclpy`` over ROS 2) implement :class:`Node`. Parameters are
declared from the ``Config`` dataclass fields (types and defaults in one place), overridden by the
params file and ``-p``, and validated by the dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import typing
from collections import deque
from typing import Any, Callable, Protocol

import numpy as np

from wm_control.ros.qos import QoSProfile


class ConfigError(ValueError):
    """A parameter has the wrong type or an invalid value."""


# ------------------------------------------------------------------------------------------
# Time
# ------------------------------------------------------------------------------------------
def stamp_to_sec(stamp: Any) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def sec_to_sec_nsec(t: float) -> tuple[int, int]:
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


# ------------------------------------------------------------------------------------------
# The node handle protocol (what node classes may call)
# ------------------------------------------------------------------------------------------
class Publisher(Protocol):
    topic: str

    def publish(self, msg: Any) -> None: ...


class Timer(Protocol):
    period: float

    def cancel(self) -> None: ...


class Node(Protocol):
    name: str
    namespace: str
    logger: logging.Logger

    def msg(self, typename: str, **fields: Any) -> Any: ...
    def create_publisher(self, typename: str, topic: str, qos: QoSProfile | str | int = ...) -> Publisher: ...
    def create_subscription(self, typename: str, topic: str, callback: Callable[[Any], None],
                            qos: QoSProfile | str | int = ...) -> Any: ...
    def create_timer(self, period: float, callback: Callable[[], None]) -> Timer: ...
    def create_steady_timer(self, period: float, callback: Callable[[], None]) -> Timer:
        """A timer on the monotonic (steady) clock, even under sim time: wall-clock timeouts."""
        ...
    def now(self) -> float: ...
    def now_msg(self) -> Any: ...
    def resolve(self, topic: str) -> str: ...


class ControlTick:
    """A fixed-rate control tick on ROS time that, under sim time, acts on the state of its instant.

    In real time ``act()`` runs on every timer tick. Under sim time (lock-step simulation, bag
    replay) the tick at time T waits until a joint state stamped at T or later has arrived, so the
    result does not depend on whether ``/clock`` or ``/joint_states`` was delivered first.
    Call :meth:`on_state` with each joint state's stamp.

    ``ready(T)`` (optional, sim time only) gates the act at T on another input of that instant (the
    policy node waits for the plan made from the state at T): once the state has arrived, the tick
    waits for ``ready(T)`` at most ``wait`` seconds of wall time (a steady timer; sim time does not
    advance while a lock-step simulator waits for the command), then acts anyway with
    :attr:`timed_out` set for that act. Call :meth:`poke` when the gated input arrives.

    A lock-step simulator that has not had a command re-announces the state of its instant; when that
    state comes again more than ``resend_after`` s (wall) after we acted on that instant, our command
    was lost (sent before the simulator had matched our publisher), so the tick acts on it again
    (counted in :attr:`resent`) rather than both sides waiting for each other for ever.
    """

    def __init__(self, node: "Node", rate: float, act: Callable[[], None],
                 ready: Callable[[float], bool] | None = None, wait: float = 0.5, resend_after: float = 0.25):
        self.node = node
        self.resend_after = float(resend_after)
        self.acted_wall = -math.inf  # monotonic time of the last act
        self.resent = 0
        self.act = act
        self.sim_time = bool(getattr(node, "use_sim_time", False))
        self.state_stamp = -math.inf
        self.pending: float | None = None
        self.acted_at = -math.inf  # sim time: the instant of the last act (at most one per instant)
        self.ready = ready if self.sim_time else None
        self.wait = float(wait)
        self.waiting_since: float | None = None  # monotonic time the pending instant became gated
        self.timed_out = False
        self.timer = node.create_timer(1.0 / rate, self._tick)
        if self.ready is not None:
            self.grace_timer = node.create_steady_timer(max(1e-3, min(0.01, self.wait / 10)), self._try)

    def _act_at(self, t: float) -> None:
        if t > self.acted_at + 1e-6:
            self.acted_at = t
            self.acted_wall = time.monotonic()
            self.act()

    def _try(self) -> None:
        """Act at the pending instant if its state is here and the gate is open (or timed out)."""
        t = self.pending
        if t is None:
            return
        if t <= self.acted_at + 1e-6:
            self.pending = self.waiting_since = None
            return
        if self.state_stamp < t - 1e-6:
            return
        timed_out = False
        if self.ready is not None and not self.ready(t):
            now = time.monotonic()
            if self.waiting_since is None:
                self.waiting_since = now
            if now - self.waiting_since < self.wait:
                return
            timed_out = True
        self.pending, self.waiting_since = None, None
        self.timed_out = timed_out
        try:
            self._act_at(t)
        finally:
            self.timed_out = False

    def poke(self) -> None:
        """The gated input arrived: act now if the pending instant is complete."""
        self._try()

    def on_state(self, stamp: float) -> None:
        first = self.state_stamp == -math.inf
        if (self.sim_time and abs(stamp - self.acted_at) <= 1e-6 and stamp >= self.state_stamp - 1e-6
                and time.monotonic() - self.acted_wall > self.resend_after):
            # the simulator still waits at the instant we acted on: our command did not reach it
            self.resent += 1
            self.node.logger.info("state at t=%.3f announced again: acting on it again (command lost?)", stamp)
            self.acted_at = stamp - 1e-3
            self.pending = stamp
        self.state_stamp = max(self.state_stamp, stamp)
        if self.sim_time and first:
            # a lock-step simulator waits for the first command at its first state: act on it
            if self.pending is None or self.pending <= stamp + 1e-6:
                self.pending = stamp
            else:  # the clock is already past it (bag replay): act on it now, the later instant stays pending
                self._act_at(stamp)
        self._try()

    def _tick(self) -> None:
        if not self.sim_time:
            self.act()
            return
        now = self.node.now()
        if self.pending is None or now > self.pending + 1e-6:
            if self.pending is not None and self.pending > self.acted_at + 1e-6:
                self.waiting_since = None  # a newer instant supersedes one never acted on
            self.pending = now
        self._try()


def close_instance(instance: Any, logger: logging.Logger) -> None:
    """Call a node class's optional ``close()``; an error there is logged, never raised."""
    close = getattr(instance, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        import traceback

        logger.error("error while closing:\n%s", traceback.format_exc())


# ------------------------------------------------------------------------------------------
# Parameters from a config dataclass
# ------------------------------------------------------------------------------------------
def config_fields(config_cls: type) -> list[tuple[str, Any, Any, str]]:
    """(name, default, type, description) for each field of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            raise TypeError(f"{config_cls.__name__}.{f.name} needs a default to be a ROS parameter")
        out.append((f.name, default, hints[f.name], f.metadata.get("help", "")))
    return out


def _coerce(name: str, value: Any, typ: Any, default: Any) -> Any:
    """Check/convert a parameter value against the field type, the way ROS 2 types parameters."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and str(origin) == "types.UnionType"):
        non_none = [a for a in args if a is not type(None)]
        if value is None or value == "":
            if type(None) in args:
                return None
        return _coerce(name, value, non_none[0], default)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"parameter {name!r} must be a bool, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"parameter {name!r} must be an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter {name!r} must be a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter {name!r} must be a string, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter {name!r} must be a list, got {value!r}")
        inner = args[0] if args else Any
        if inner is Any:
            return list(value)
        return [_coerce(f"{name}[{i}]", v, inner, None) for i, v in enumerate(value)]
    return value


def config_from_params(config_cls: type, overrides: dict[str, Any],
                       declare: Callable[[str, Any, str], Any] | None = None) -> Any:
    """Build a config dataclass from parameter overrides (unknown names are returned separately).

    ``declare(name, default, description) -> value`` lets a backend declare each parameter on its
    own parameter server (rclpy) and return the effective value; by default overrides win.
    """
    values = {}
    for name, default, typ, desc in config_fields(config_cls):
        if declare is not None:
            value = declare(name, default, desc)
        else:
            value = overrides.get(name, default)
        values[name] = _coerce(name, value, typ, default) if value is not default else default
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid parameters for {config_cls.__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------
# Measurements every node reports
# ------------------------------------------------------------------------------------------
class RateMeter:
    """Events per second over a sliding window of recent event times (monotonic clock)."""

    def __init__(self, window: int = 200):
        self.times: deque[float] = deque(maxlen=window)
        self.count = 0

    def tick(self, t: float | None = None) -> None:
        self.times.append(time.monotonic() if t is None else t)
        self.count += 1

    def rate(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def age(self) -> float:
        return time.monotonic() - self.times[-1] if self.times else math.inf


class Window:
    """Recent values of a measurement with percentiles."""

    def __init__(self, n: int = 1000):
        self.values: deque[float] = deque(maxlen=n)

    def add(self, v: float) -> None:
        self.values.append(v)

    def pct(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.values, float), q)) if self.values else float("nan")


class Diagnostics:
    """Publishes one ``diagnostic_msgs/DiagnosticArray`` per period on ``/diagnostics``.

    Nodes report rates, latencies, counters (drops) and a level with a reason; every hold or drop
    is visible there, the way ``diagnostic_updater`` would show it.
    """

    OK, WARN, ERROR, STALE = 0, 1, 2, 3

    def __init__(self, node: Node, hardware_id: str = "", period: float = 1.0):
        self.node = node
        self.hardware_id = hardware_id
        self.rates: dict[str, RateMeter] = {}
        self.latencies: dict[str, Window] = {}
        self.counters: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        self.level = self.OK
        self.message = "ok"
        self._pub = node.create_publisher("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", "diagnostics")
        self._timer = node.create_timer(period, self.publish)

    def tick(self, name: str) -> None:
        self.rates.setdefault(name, RateMeter()).tick()

    def latency(self, name: str, seconds: float) -> None:
        self.latencies.setdefault(name, Window()).add(seconds)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def status(self, level: int, message: str) -> None:
        self.level, self.message = level, message

    def key_values(self) -> dict[str, str]:
        kv: dict[str, str] = {}
        for k, r in self.rates.items():
            kv[f"{k}.rate_hz"] = f"{r.rate():.2f}"
            kv[f"{k}.age_s"] = f"{r.age():.3f}"
        for k, w in self.latencies.items():
            kv[f"{k}.p50_ms"] = f"{1e3 * w.pct(50):.3f}"
            kv[f"{k}.p99_ms"] = f"{1e3 * w.pct(99):.3f}"
        for k, c in self.counters.items():
            kv[k] = str(c)
        for k, v in self.values.items():
            kv[k] = f"{v:.4g}" if isinstance(v, float) else str(v)
        return kv

    def publish(self) -> None:
        n = self.node
        values = [n.msg("diagnostic_msgs/msg/KeyValue", key=k, value=v) for k, v in self.key_values().items()]
        status = n.msg("diagnostic_msgs/msg/DiagnosticStatus", level=self.level,
                       name=f"{n.namespace.rstrip('/')}/{n.name}".lstrip("/"),
                       message=self.message, hardware_id=self.hardware_id, values=values)
        header = n.msg("std_msgs/msg/Header", stamp=n.now_msg())
        self._pub.publish(n.msg("diagnostic_msgs/msg/DiagnosticArray", header=header, status=[status]))

"""The small node API every wm_control node is written against, and what both backends share.

A node class is plain Python that *holds* a :class:`Node` handle (never inherits from one)::

    class Talker:
        NAME = "talker"
        Config = TalkerConfig            # dataclass: one field per ROS parameter

        def __init__(self, node: Node, cfg: TalkerConfig): ...
        def close(self): ...             # optional
        def on_parameters(self, cfg): ...  # optional: take a parameter set at run time (ValueError: refuse)

Backends (``dds`` over Cyclone DDS, ``rclpy`` over ROS 2) implement :class:`Node`. Parameters are
declared from the ``Config`` dataclass fields (types, defaults and descriptions in one place: the
description is the string literal written after a field), overridden by the params file and ``-p``,
and validated by the dataclass's ``__post_init__``. ``wm-control run NODE --help`` lists them. At run
time they are the node's ROS parameters (``ros2 param list/get/set/describe``): a node class without
``on_parameters`` has them all read-only (:mod:`wm_control.ros.params`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import logging
import math
import textwrap
import time
import types
import typing
from collections import deque
from typing import Any, Callable, Protocol

import numpy as np

from wm_control.messages.convert import sec_nsec as sec_to_sec_nsec  # noqa: F401  (the time helpers live there)
from wm_control.ros.qos import QoSProfile


class ConfigError(ValueError):
    """A parameter has the wrong type or an invalid value."""


# ------------------------------------------------------------------------------------------
# The node handle protocol (what node classes may call)
# ------------------------------------------------------------------------------------------
class Publisher(Protocol):
    topic: str

    def publish(self, msg: Any) -> None: ...


class Timer(Protocol):
    period: float

    def cancel(self) -> None: ...


class Client(Protocol):
    def wait_for_service(self, timeout: float = ...) -> bool: ...
    def call(self, request: Any, timeout: float = ...) -> Any:
        """The response (``pkg/srv/Name_Response``) to a request (``node.msg("pkg/srv/Name_Request", ...)``);
        TimeoutError when no server answers within ``timeout`` s."""
        ...


class Node(Protocol):
    name: str
    namespace: str
    logger: logging.Logger

    def msg(self, typename: str, **fields: Any) -> Any: ...
    def create_publisher(self, typename: str, topic: str, qos: QoSProfile | str | int = ...) -> Publisher: ...
    def create_subscription(self, typename: str, topic: str, callback: Callable[[Any], None],
                            qos: QoSProfile | str | int = ...) -> Any: ...
    def create_service(self, srv_type: str, name: str, callback: Callable[[Any, Any], Any]) -> Any:
        """Serve ``name`` (``~/x``: private to the node) of type ``pkg/srv/Name``:
        ``callback(request, response) -> response``, as in rclpy."""
        ...
    def create_client(self, srv_type: str, name: str) -> Client: ...
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
    waits for ``ready(T)`` at most ``wait`` seconds of wall time (``first_wait`` for the very first act,
    while the gated input may still be starting; a steady timer; sim time does not advance while a lock-step
    simulator waits for the command), then acts anyway with :attr:`timed_out` set for that act. Call
    :meth:`poke` when the gated input arrives.

    A lock-step simulator that has not had a command re-announces the state of its instant; when that
    state comes again more than ``resend_after`` s (wall) after we acted on that instant, our command
    was lost (sent before the simulator had matched our publisher), so the tick acts on it again
    (counted in :attr:`resent`) rather than both sides waiting for each other for ever.
    """

    def __init__(self, node: "Node", rate: float, act: Callable[[], None],
                 ready: Callable[[float], bool] | None = None, wait: float = 0.5, resend_after: float = 0.25,
                 first_wait: float | None = None):
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
        self.first_wait = self.wait if first_wait is None else float(first_wait)  # the first act's (inputs starting)
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
            if now - self.waiting_since < (self.first_wait if self.acted_at == -math.inf else self.wait):
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
def _field_docs_of(cls: type) -> dict[str, str]:
    """The attribute docstrings of one class's own body: the string literal right after a field."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (built in a REPL, a frozen app): no descriptions
        return {}
    body = next((n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__), [])
    docs: dict[str, str] = {}
    for stmt, after in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name = stmt.target.id
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
        else:
            continue
        if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[name] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


@functools.lru_cache(maxsize=None)
def field_docs(config_cls: type) -> dict[str, str]:
    """Each field's description: the string literal written right after it in the class body (the
    attribute-docstring convention Sphinx and ``docstring_parser`` read), base classes first so a
    subclass's own docstring wins; one line, whitespace collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_field_docs_of(klass))
    return docs


def config_fields(config_cls: type) -> list[tuple[str, Any, Any, str]]:
    """(name, default, type, description) for each field of a config dataclass.

    The description is the field's attribute docstring (:func:`field_docs`), or its
    ``field(metadata={"help": ...})``; ``""`` when it has neither.
    """
    hints = typing.get_type_hints(config_cls)
    docs = field_docs(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            raise TypeError(f"{config_cls.__name__}.{f.name} needs a default to be a ROS parameter")
        out.append((f.name, default, hints[f.name], f.metadata.get("help") or docs.get(f.name, "")))
    return out


def type_name(typ: Any) -> str:
    """A field type as the help shows it: ``float``, ``list[str]``, ``str | None``."""
    if isinstance(typ, type) and not typing.get_args(typ):
        return typ.__name__
    args = typing.get_args(typ)
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return str(typ).replace("typing.", "")


def param_text(value: Any) -> str:
    """A parameter value as it is written after ``-p name:=`` (YAML): ``true``, ``''``, ``[a, b]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() or any(c in value for c in ",:[]{}#'\"") \
            else value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(param_text(v) for v in value) + "]"
    return str(value)


def config_help(config_cls: type, width: int = 100) -> str:
    """Every parameter of a config dataclass: ``name (type, default D)`` and its description below."""
    lines = []
    for name, default, typ, desc in config_fields(config_cls):
        lines.append(f"  {name} ({type_name(typ)}, default {param_text(default)})")
        if desc:
            lines += textwrap.wrap(desc, width=width, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def coerce(name: str, value: Any, typ: Any, default: Any) -> Any:
    """Check/convert a parameter value against the field type, the way ROS 2 types parameters."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None or value == "":
            if type(None) in args:
                return None
        return coerce(name, value, non_none[0], default)
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
        return [coerce(f"{name}[{i}]", v, inner, None) for i, v in enumerate(value)]
    return value


def config_from_params(config_cls: type, overrides: dict[str, Any],
                       declare: Callable[[str, Any, Any, str], Any] | None = None) -> Any:
    """Build a config dataclass from parameter overrides (names it does not have are ignored here).

    ``declare(name, default, type, description) -> value`` lets a backend declare each parameter on
    its own parameter server (rclpy) and return the effective value; by default overrides win.
    """
    values = {}
    for name, default, typ, desc in config_fields(config_cls):
        if declare is not None:
            value = declare(name, default, typ, desc)
        else:
            value = overrides.get(name, default)
        values[name] = coerce(name, value, typ, default) if value is not default else default
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


# ------------------------------------------------------------------------------------------
# The node of a program that watches or drives a graph from outside (demo, eval, replay, record,
# benchmarks): built here, on the backend the graph runs on, never from a backend's class
# ------------------------------------------------------------------------------------------
def spin_until(spin_once: Callable[[float], None], stopped: Callable[[], bool],
               until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
    """Spin (``spin_once(seconds)``) until ``stopped()``, ``until()`` is true, or ``timeout`` s pass;
    returns ``until()``. The one spin loop of both backends."""
    end = None if timeout is None else time.monotonic() + timeout
    while not stopped():
        if until is not None and until():
            return True
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            break
        spin_once(0.1 if left is None else min(0.1, left))
    return bool(until and until())


def make_node(name: str, backend: str | None = None, *, namespace: str = "/", use_sim_time: bool = False) -> Any:
    """A node for a program on ``backend``: ``dds``, ``rclpy``, or ``auto``/None (``WM_BACKEND``, else
    rclpy when ROS 2 is sourced), chosen as ``wm-control run`` chooses it
    (:func:`wm_control.ros.runner.choose_backend`); the dds backend refuses DDS Security as a node does.

    Besides :class:`Node` it has ``spin(until, timeout) -> bool``, ``spin_once(timeout)``,
    ``shutdown()`` (stop spinning; safe from signal handlers), ``ok``, ``destroy()`` and ``backend``;
    ``create_subscription`` takes ``raw`` / ``with_info``; publishers have ``publish_raw(cdr)`` and
    ``matched()``, subscriptions ``matched()``."""
    import os

    from wm_control.ros.runner import SECURITY_REFUSAL, choose_backend

    b = choose_backend(backend)
    if b == "rclpy":
        return _rclpy_program_node(name, namespace, use_sim_time)
    if os.environ.get("ROS_SECURITY_ENABLE", "").lower() == "true":
        from wm_control.errors import UserError

        raise UserError(SECURITY_REFUSAL)
    from wm_control.ros.dds import DdsNode

    return DdsNode(name, namespace, params={"use_sim_time": bool(use_sim_time)})


def _rclpy_program_node(name: str, namespace: str, use_sim_time: bool) -> Any:
    """:func:`make_node` on rclpy: an :class:`~wm_control.ros.rclpy_backend.RclpyNode` with its own
    executor (rclpy is initialised once, without its signal handlers: the program keeps Ctrl-C)."""
    import os

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from wm_control.ros.rclpy_backend import RclpyNode

    if not (os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or os.environ.get("ROS_LOCALHOST_ONLY")):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # as wm-control run does for its nodes
    if not rclpy.ok():
        rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)

    class ProgramNode(RclpyNode):
        def __init__(self) -> None:
            super().__init__(rclpy.create_node(name, namespace=namespace, parameter_overrides=[
                Parameter("use_sim_time", value=bool(use_sim_time))]))
            self._stop = False
            self.executor = SingleThreadedExecutor()
            self.executor.add_node(self.ros)

        def create_publisher(self, typename: str, topic: str, qos: Any = "default") -> Any:
            pub = super().create_publisher(typename, topic, qos)
            pub.publish_raw, pub.matched = pub.publish, pub.get_subscription_count  # publish() takes CDR bytes
            return pub

        def create_subscription(self, typename: str, topic: str, callback: Callable[..., None],
                                qos: Any = "default", **kw: Any) -> Any:
            sub = super().create_subscription(typename, topic, callback, qos, **kw)
            sub.matched = lambda: self.ros.count_publishers(sub.topic_name)
            return sub

        def spin_once(self, timeout: float | None = None) -> None:
            self.executor.spin_once(timeout_sec=0.1 if timeout is None else timeout)

        def spin(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
            return spin_until(self.spin_once, lambda: self._stop, until, timeout)

        def shutdown(self) -> None:  # this node stops spinning; rclpy (and other nodes) go on
            self._stop = True

        @property
        def ok(self) -> bool:
            return not self._stop

        def destroy(self) -> None:
            self._stop = True
            self.executor.remove_node(self.ros)
            self.ros.destroy_node()

    return ProgramNode()

"""The ``rclpy`` backend: the same node classes on a ROS 2 install (Humble / Jazzy).

Thin on purpose: rclpy does naming, remapping, parameters files, QoS, time and logging itself; this
module only adapts the small node API onto it. Imported only when ROS 2 is sourced.
"""

from __future__ import annotations

import array
import logging
import signal
import time
import traceback
import typing
from typing import Any, Callable

import numpy as np
import rclpy  # noqa: F401  (import-guarded by the caller: only loaded when ROS 2 is sourced)
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node as _RosNode
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy
from rclpy.qos import QoSProfile as _RosQoS
from rclpy.serialization import deserialize_message
from rosidl_runtime_py.utilities import get_message, get_service

from wm_control.messages.convert import time_fields
from wm_control.ros import qos as qosmod
from wm_control.ros.api import ConfigError, close_instance, config_from_params, type_name
from wm_control.ros.params import Parameters, read_only_fields, ros_type
from wm_control.ros.throttle import ThrottledLog

_TYPECODES = {"double": "d", "float": "f", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H",
              "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "octet": "B", "char": "B"}


def ros_qos(p: qosmod.QoSProfile) -> _RosQoS:
    return _RosQoS(
        reliability=ReliabilityPolicy.RELIABLE if p.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if p.durability == "transient_local" else DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_LAST if p.history == "keep_last" else HistoryPolicy.KEEP_ALL,
        depth=p.depth)


class _ForwardToRclpy(logging.Handler):
    def __init__(self, rlogger: Any):
        super().__init__()
        self.r = rlogger

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.r.error(text)
        elif record.levelno >= logging.WARNING:
            self.r.warning(text)
        elif record.levelno >= logging.INFO:
            self.r.info(text)
        else:
            self.r.debug(text)


class RclpyNode:
    """Adapts an rclpy Node to :class:`wm_control.ros.api.Node`."""

    backend = "rclpy"

    def __init__(self, node: _RosNode):
        self.ros = node
        self.name = node.get_name()
        self.namespace = node.get_namespace()
        self.logger = logging.getLogger(f"wm.{self.namespace}.{self.name}")
        self.logger.handlers[:] = [_ForwardToRclpy(node.get_logger())]
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self._classes: dict[str, Any] = {}

    def resolve(self, topic: str) -> str:
        return self.ros.resolve_topic_name(topic)

    def msg(self, typename: str, **fields: Any) -> Any:
        cls = self._classes.get(typename) or self._classes.setdefault(typename, get_message(typename))
        types = cls.get_fields_and_field_types()
        for k, v in list(fields.items()):
            t = types.get(k, "")
            if t == "octet" and isinstance(v, int):
                fields[k] = bytes([v])
            elif isinstance(v, np.ndarray) and t.startswith("sequence<"):
                inner = t[len("sequence<"):].split(",")[0].rstrip(">")
                code = _TYPECODES.get(inner)
                if code is not None:
                    fields[k] = array.array(code, np.ascontiguousarray(v).astype(code, copy=False).tobytes())
                else:
                    fields[k] = v.tolist()
        return cls(**fields)

    def create_publisher(self, typename: str, topic: str, qos: Any = qosmod.DEFAULT) -> Any:
        pub = self.ros.create_publisher(get_message(typename), topic, ros_qos(qosmod.profile(qos)))
        pub.topic = pub.topic_name
        return pub

    def create_subscription(self, typename: str, topic: str, callback: Callable[[Any], None],
                            qos: Any = qosmod.DEFAULT, raw: bool = False, with_info: bool = False,
                            max_bytes: int | None = None) -> Any:
        """Taken serialised, checked against ``max_bytes`` (default :data:`qos.MAX_BYTES`), then decoded:
        an oversize message is dropped before rclpy spends time on it."""
        cls, limit = get_message(typename), int(max_bytes or qosmod.max_bytes_for(typename))
        cb = (lambda m: callback(m, None)) if with_info else callback
        warn = ThrottledLog(self.logger, period=5.0)

        def guarded(data: bytes) -> None:
            if len(data) > limit:
                warn.log("oversize", "dropped a %d-byte %s on %s (limit %d bytes)", len(data), typename, topic, limit)
                return
            cb(data if raw else deserialize_message(data, cls))

        return self.ros.create_subscription(cls, topic, guarded, ros_qos(qosmod.profile(qos)), raw=True)

    def create_service(self, srv_type: str, name: str, callback: Callable[[Any, Any], Any]) -> Any:
        return self.ros.create_service(get_service(srv_type), name, callback)

    def create_client(self, srv_type: str, name: str) -> "RclpyClient":
        return RclpyClient(self.ros, self.ros.create_client(get_service(srv_type), name))

    def create_timer(self, period: float, callback: Callable[[], None]) -> Any:
        t = self.ros.create_timer(period, callback)
        t.period = period
        return t

    def create_steady_timer(self, period: float, callback: Callable[[], None]) -> Any:
        """A timer on the steady clock, also under use_sim_time (wall-clock timeouts)."""
        t = self.ros.create_timer(period, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))
        t.period = period
        return t

    def now(self) -> float:
        return self.ros.get_clock().now().nanoseconds * 1e-9

    def now_msg(self) -> Any:
        return self.ros.get_clock().now().to_msg()

    def time_msg(self, t: float) -> Any:
        return self.msg("builtin_interfaces/msg/Time", **time_fields(t))

    @property
    def use_sim_time(self) -> bool:
        return bool(self.ros.get_parameter("use_sim_time").value)

    def shutdown(self) -> None:
        rclpy.try_shutdown()


class RclpyClient:
    """An rclpy client with the blocking ``call(request, timeout)`` of the node API. It spins the node's
    executor (rclpy's global one while the node has none) until the reply is there: call it from a
    program's own code, not from a callback of that executor."""

    def __init__(self, node: _RosNode, client: Any):
        self.node = node
        self.client = client

    def wait_for_service(self, timeout: float = 5.0) -> bool:
        return bool(self.client.wait_for_service(timeout_sec=timeout))

    def call(self, request: Any, timeout: float = 5.0) -> Any:
        end = time.monotonic() + timeout
        if not self.client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {self.client.srv_name} is not available (waited {timeout:g} s)")
        future = self.client.call_async(request)
        left = max(0.0, end - time.monotonic())
        if self.node.executor is None:
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=left)
        else:
            self.node.executor.spin_until_future_complete(future, timeout_sec=left)
        if not future.done():
            self.client.remove_pending_request(future)
            raise TimeoutError(f"no reply from service {self.client.srv_name} within {timeout:g} s")
        return future.result()


def parameter_type(typ: Any) -> Any:
    """The ``Parameter.Type`` a config field of type ``typ`` is declared as; None: dynamically typed
    (an optional or any other type rclpy has no static parameter type for)."""
    code = ros_type(typ)
    return Parameter.Type(code) if code else None


def _as_type(value: Any, typ: Any) -> Any:
    """A default as the field's type (``rate: float = 0`` declares a double, not an integer)."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)):
        args = typing.get_args(typ)
        value = [float(v) if args[:1] == (float,) and isinstance(v, int) and not isinstance(v, bool) else v
                 for v in value]
    return value


def _declare(node: _RosNode, read_only: set[str] | frozenset[str] = frozenset()
             ) -> Callable[[str, Any, Any, str], Any]:
    """Declare each config field on the node's parameter server, typed by the field's type, described
    by its docstring (``ros2 param describe``) and read-only if named in ``read_only``
    (:func:`wm_control.ros.params.read_only_fields`); return the value rclpy settled on (override or default)."""

    def declare(name: str, default: Any, typ: Any, description: str) -> Any:
        ptype = parameter_type(typ)
        ro = name in read_only
        if ptype is None or default is None:
            desc = ParameterDescriptor(description=description, dynamic_typing=True, read_only=ro)
            p = node.declare_parameter(name, None if default is None else _as_type(default, typ), desc)
        else:
            desc = ParameterDescriptor(description=description, type=ptype.value, read_only=ro)
            value = _as_type(default, typ)
            # an empty list has no type of its own (rclpy would take it for a byte array): declare the
            # type, and the default stands when nothing overrides it
            try:
                p = node.declare_parameter(name, value if not isinstance(value, list) or value else ptype, desc)
            except Exception as exc:  # an override of another type (rclpy: InvalidParameterTypeException)
                raise ConfigError(f"parameter {name!r} is declared as {type_name(typ)} "
                                  f"({ptype.name}): {exc}") from None
        value = p.value
        return default if value is None else (list(value) if isinstance(value, (tuple, array.array)) else value)

    return declare


def on_set_parameters(params: Parameters) -> Callable[[list[Any]], Any]:
    """An rclpy on-set-parameters callback: rclpy itself refuses undeclared and read-only names and values
    of another type; this adds the config's ``__post_init__`` and the node's ``on_parameters``."""

    def callback(parameters: list[Any]) -> Any:
        changes = {p.name: list(p.value) if isinstance(p.value, (tuple, array.array)) else p.value
                   for p in parameters if p.name in params.declared}
        ok, reason = params.update(changes) if changes else (True, "")
        return SetParametersResult(successful=ok, reason=reason)

    return callback


def run_rclpy_node(cls: type, name: str, argv: list[str]) -> int:
    rclpy.init(args=["wm-control", *argv])
    ros_node = rclpy.create_node(name)
    node = RclpyNode(ros_node)
    code = 0
    instance = None
    try:
        try:
            read_only = read_only_fields(cls.Config, writable=hasattr(cls, "on_parameters"))
            cfg = config_from_params(cls.Config, {}, declare=_declare(ros_node, read_only))
            instance = cls(node, cfg)
        except (ConfigError, ValueError, RuntimeError, FileNotFoundError) as exc:  # as on the dds backend
            node.logger.error("failed to start: %s", exc)
            return 1
        params = Parameters(cfg, getattr(instance, "on_parameters", None))
        ros_node.add_on_set_parameters_callback(on_set_parameters(params))
        signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
        node.logger.info("ready")
        rclpy.spin(ros_node)
    except KeyboardInterrupt:
        pass
    except Exception:
        node.logger.error("crashed:\n%s", traceback.format_exc())
        code = 1
    finally:
        close_instance(instance, node.logger)
        ros_node.destroy_node()
        rclpy.try_shutdown()
    return code

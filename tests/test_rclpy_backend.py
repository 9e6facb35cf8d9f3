"""The rclpy backend without ROS 2: minimal fake ``rclpy``, ``rcl_interfaces`` and ``rosidl_runtime_py``
modules that keep the rules of the real ones this backend depends on (rosidl setters refuse numpy arrays
for ``sequence<T>`` fields; rclpy infers a parameter's static type from its default, an empty list as a
byte array, and refuses an override of another type), then the backend on them: message construction,
the QoS mapping, parameter declaration (names, defaults, types, the config's field docstrings as
descriptions, read-only unless the node class has an ``on_parameters`` hook, and the on-set callback that
lets the config and the hook refuse a value), the size-limited subscription, services and clients (a thin
pass-through; a client's blocking call spins the executor), and the runner's rclpy branch (discovery range)."""

from __future__ import annotations

import array
import enum
import importlib
import os
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pytest
import yaml

from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.api import ConfigError, config_from_params

# ------------------------------------------------------------------------------------------
# Fake messages (rosidl-generated Python classes, as far as the backend relies on them)
# ------------------------------------------------------------------------------------------
_ARRAY_CODES = {"double": "d", "float": "f", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H",
                "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}
_INTS = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}

SPECS: dict[str, dict[str, str]] = {
    "builtin_interfaces/msg/Time": {"sec": "int32", "nanosec": "uint32"},
    "builtin_interfaces/msg/Duration": {"sec": "int32", "nanosec": "uint32"},
    "std_msgs/msg/Header": {"stamp": "builtin_interfaces/Time", "frame_id": "string"},
    "std_msgs/msg/Bool": {"data": "boolean"},
    "std_msgs/msg/String": {"data": "string"},
    "std_msgs/msg/Float64MultiArray": {"data": "sequence<double>"},
    "sensor_msgs/msg/JointState": {"header": "std_msgs/Header", "name": "sequence<string>",
                                   "position": "sequence<double>", "velocity": "sequence<double>",
                                   "effort": "sequence<double>"},
    "sensor_msgs/msg/Image": {"header": "std_msgs/Header", "height": "uint32", "width": "uint32",
                              "encoding": "string", "is_bigendian": "uint8", "step": "uint32",
                              "data": "sequence<uint8>"},
    "trajectory_msgs/msg/JointTrajectoryPoint": {"positions": "sequence<double>",
                                                "time_from_start": "builtin_interfaces/Duration"},
    "trajectory_msgs/msg/JointTrajectory": {"header": "std_msgs/Header", "joint_names": "sequence<string>",
                                           "points": "sequence<trajectory_msgs/JointTrajectoryPoint>"},
    "lifecycle_msgs/msg/State": {"id": "uint8", "label": "string"},
    "lifecycle_msgs/msg/Transition": {"id": "uint8", "label": "string"},
    "lifecycle_msgs/msg/TransitionDescription": {"transition": "lifecycle_msgs/Transition",
                                                 "start_state": "lifecycle_msgs/State",
                                                 "goal_state": "lifecycle_msgs/State"},
    "lifecycle_msgs/msg/TransitionEvent": {"timestamp": "uint64", "transition": "lifecycle_msgs/Transition",
                                           "start_state": "lifecycle_msgs/State", "goal_state": "lifecycle_msgs/State"},
    "test_msgs/msg/Arrays": {"f32": "sequence<float>", "i8": "sequence<int8>", "u16": "sequence<uint16, 8>",
                             "i64": "sequence<int64>", "flags": "sequence<boolean>", "byte": "octet",
                             "fixed": "double[3]", "names": "sequence<string>"},
}
GET_MESSAGE_CALLS: list[str] = []


def _check(typ: str, value, where: str) -> None:
    """What a rosidl setter asserts about a value of field type ``typ``."""
    if typ.startswith("sequence<"):
        inner = typ[len("sequence<"):-1].split(",")[0].strip()
        bound = int(typ[:-1].split(",")[1]) if "," in typ else None
        code = _ARRAY_CODES.get(inner)
        if code is not None and isinstance(value, array.array):
            assert value.typecode == code, f"{where}: array.array('{value.typecode}') for {typ}"
        else:
            # rosidl checks isinstance(value, Sequence): a numpy array is not one
            assert isinstance(value, Sequence) and not isinstance(value, (str, bytes)), \
                f"{where}: {type(value).__name__} for {typ}"
            for i, v in enumerate(value):
                _check(inner, v, f"{where}[{i}]")
        assert bound is None or len(value) <= bound, f"{where}: {len(value)} elements for {typ}"
    elif typ.endswith("]"):  # fixed-size array: stored as a numpy array
        n = int(typ[typ.index("[") + 1:-1])
        assert len(value) == n, f"{where}: {len(value)} elements for {typ}"
    elif typ in _INTS:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} for {typ}"
    elif typ in ("double", "float"):
        assert isinstance(value, float), f"{where}: {value!r} for {typ}"
    elif typ == "boolean":
        assert isinstance(value, bool), f"{where}: {value!r} for {typ}"
    elif typ == "octet":
        assert isinstance(value, bytes) and len(value) == 1, f"{where}: {value!r} for {typ}"
    elif typ == "string":
        assert isinstance(value, str), f"{where}: {value!r} for {typ}"
    else:  # a nested message, "pkg/Name"
        pkg, name = typ.split("/")
        assert type(value).__name__ == name and value.TYPENAME == f"{pkg}/msg/{name}", f"{where}: {value!r}"


def _default(typ: str):
    if typ.startswith("sequence<"):
        code = _ARRAY_CODES.get(typ[len("sequence<"):-1].split(",")[0].strip())
        return array.array(code) if code else []
    if typ.endswith("]"):
        return np.zeros(int(typ[typ.index("[") + 1:-1]))
    return {"double": 0.0, "float": 0.0, "boolean": False, "octet": b"\x00", "string": ""}.get(
        typ, 0 if typ in _INTS else None)


def _message_class(typename: str) -> type:
    spec = SPECS[typename]

    def __init__(self, **kw):
        unknown = set(kw) - set(spec)
        assert not unknown, f"{typename}: no fields {sorted(unknown)}"
        for name, typ in spec.items():
            value = kw[name] if name in kw else _default(typ)
            if value is None:  # a nested message left out: its default
                value = get_message(f"{typ.split('/')[0]}/msg/{typ.split('/')[1]}")()
            _check(typ, value, f"{typename}.{name}")
            setattr(self, name, value)

    return type(typename.rsplit("/", 1)[1], (), {"__init__": __init__, "TYPENAME": typename,
                                                 "get_fields_and_field_types": classmethod(lambda cls: dict(spec))})


_CLASSES: dict[str, type] = {}


def get_message(typename: str) -> type:
    GET_MESSAGE_CALLS.append(typename)
    if typename not in _CLASSES:
        _CLASSES[typename] = _message_class(typename)
    return _CLASSES[typename]


# ------------------------------------------------------------------------------------------
# Fake rclpy
# ------------------------------------------------------------------------------------------
class ParameterType(enum.Enum):  # rclpy.parameter.Parameter.Type; values are rcl_interfaces' ParameterType
    NOT_SET = 0
    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    BYTE_ARRAY = 5
    BOOL_ARRAY = 6
    INTEGER_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9

    @classmethod
    def from_parameter_value(cls, v):
        """As rclpy: ``all()`` of an empty list is true, so ``[]`` is a byte array."""
        if v is None:
            return cls.NOT_SET
        for t, kind in ((bool, cls.BOOL), (int, cls.INTEGER), (float, cls.DOUBLE), (str, cls.STRING)):
            if isinstance(v, t):
                return kind
        if isinstance(v, (list, tuple, array.array)):
            for t, kind in ((bytes, cls.BYTE_ARRAY), (bool, cls.BOOL_ARRAY), (int, cls.INTEGER_ARRAY),
                            (float, cls.DOUBLE_ARRAY), (str, cls.STRING_ARRAY)):
                if all(isinstance(x, t) for x in v):
                    return kind
        raise TypeError(f"not a parameter value: {v!r}")


class Parameter:
    Type = ParameterType

    def __init__(self, name, value=None):
        self.name, self.value = name, value
        self.type_ = ParameterType.from_parameter_value(value)


class ParameterDescriptor:
    def __init__(self, name="", type=0, description="", dynamic_typing=False, read_only=False):
        self.name, self.type, self.description = name, type, description
        self.dynamic_typing, self.read_only = dynamic_typing, read_only


class SetParametersResult:
    def __init__(self, successful=False, reason=""):
        self.successful, self.reason = successful, reason


def get_service(srv_type):
    """rosidl_runtime_py.utilities.get_service: the generated service class (here: one per name)."""
    return _SERVICES.setdefault(srv_type, type(srv_type.rsplit("/", 1)[1], (), {"TYPENAME": srv_type}))


_SERVICES: dict[str, type] = {}


class FakeFuture:
    def __init__(self):
        self._result, self._done = None, False

    def set_result(self, result):
        self._result, self._done = result, True

    def done(self):
        return self._done

    def result(self):
        return self._result


class FakeClient:
    """rclpy's Client: ``respond(request) -> response`` stands for a server (None: it never answers)."""

    def __init__(self, srv_type, srv_name):
        self.srv_type, self.srv_name = srv_type, srv_name
        self.available, self.respond = True, None
        self.requests, self.removed, self.waits = [], [], []

    def wait_for_service(self, timeout_sec=None):
        self.waits.append(timeout_sec)
        return self.available

    def call_async(self, request):
        f = FakeFuture()
        f.client, f.request = self, request
        self.requests.append(request)
        return f

    def remove_pending_request(self, future):
        self.removed.append(future)


def spin_until_future_complete(future, timeout_sec=None, spun=None):
    """What spinning does for a pending call: the server (if any) answers it."""
    spun.append(timeout_sec)
    if future.client.respond is not None:
        future.set_result(future.client.respond(future.request))


class FakeExecutor:
    def __init__(self):
        self.spun = []

    def spin_until_future_complete(self, future, timeout_sec=None):
        spin_until_future_complete(future, timeout_sec, self.spun)


class InvalidParameterTypeException(Exception):
    pass


class ReliabilityPolicy(enum.Enum):
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(enum.Enum):
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


class HistoryPolicy(enum.Enum):
    KEEP_LAST = 1
    KEEP_ALL = 2


class QoSProfile:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class ClockType(enum.Enum):
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


class Clock:
    def __init__(self, clock_type=ClockType.ROS_TIME):
        self.clock_type = clock_type


class FakeTime:
    def __init__(self, ns):
        self.nanoseconds = ns

    def to_msg(self):
        return get_message("builtin_interfaces/msg/Time")(**cv.ns_fields(self.nanoseconds))


class FakeRosClock:
    def __init__(self):
        self.ns = 1_700_000_000_250_000_000

    def now(self):
        return FakeTime(self.ns)


class FakeRLogger:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level):
        if level not in ("debug", "info", "warning", "error"):
            raise AttributeError(level)
        return lambda text: self.lines.append((level, text))


class FakeEndpoint:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def cancel(self):
        self.cancelled = True


def deserialize_message(data, cls):
    return ("deserialized", bytes(data), cls)


class FakeRosNode:
    """An rclpy Node, as far as the backend uses it."""

    def __init__(self, name, namespace="/", overrides=None):
        self.name, self.namespace = name, namespace
        self.overrides = dict(overrides or {})
        self.parameters: dict[str, tuple[object, ParameterDescriptor]] = {}
        self.logger = FakeRLogger()
        self.clock = FakeRosClock()
        self.publishers, self.subscriptions, self.timers = [], [], []
        self.services, self.clients, self.on_set = [], [], []
        self.executor = None
        self.destroyed = False

    def get_name(self):
        return self.name

    def get_namespace(self):
        return self.namespace

    def get_logger(self):
        return self.logger

    def get_clock(self):
        return self.clock

    def resolve_topic_name(self, topic):
        return topic if topic.startswith("/") else self.namespace.rstrip("/") + "/" + topic

    def declare_parameter(self, name, value=None, descriptor=None):
        """rclpy's rules (Node.declare_parameters and _apply_descriptor)."""
        assert name not in self.parameters, f"{name} declared twice"
        descriptor = descriptor or ParameterDescriptor()
        if isinstance(value, ParameterType):
            assert value != ParameterType.NOT_SET and not descriptor.dynamic_typing
            descriptor.type, value = value.value, None
        elif not descriptor.dynamic_typing:
            descriptor.type = ParameterType.from_parameter_value(value).value
            if descriptor.type == 0:
                raise ValueError("Cannot declare a statically typed parameter with default value of type NOT_SET")
        if name in self.overrides:
            value = self.overrides[name]
        p = Parameter(name, value)
        if descriptor.dynamic_typing:
            descriptor.type = p.type_.value
        elif p.type_ != ParameterType.NOT_SET and p.type_.value != descriptor.type:
            raise InvalidParameterTypeException(
                f"Trying to set parameter {name} to {value!r} of type {p.type_.name}, expecting type "
                f"{ParameterType(descriptor.type).name}")
        self.parameters[name] = (p.value, descriptor)
        return p

    def get_parameter(self, name):
        assert name == "use_sim_time", name
        return Parameter(name, bool(self.overrides.get("use_sim_time", False)))

    def create_publisher(self, cls, topic, qos_profile):
        pub = FakeEndpoint(cls=cls, topic_name=self.resolve_topic_name(topic), qos=qos_profile, sent=[])
        pub.publish = pub.sent.append
        self.publishers.append(pub)
        return pub

    def create_subscription(self, cls, topic, callback, qos_profile, raw=False):
        sub = FakeEndpoint(cls=cls, topic=topic, callback=callback, qos=qos_profile, raw=raw)
        self.subscriptions.append(sub)
        return sub

    def create_timer(self, period, callback, clock=None):
        t = FakeEndpoint(period_arg=period, callback=callback, clock=clock)
        self.timers.append(t)
        return t

    def create_service(self, srv_type, name, callback):
        srv = FakeEndpoint(srv_type=srv_type, name=name, callback=callback)
        self.services.append(srv)
        return srv

    def create_client(self, srv_type, name):
        cli = FakeClient(srv_type, self.resolve_topic_name(name))
        self.clients.append(cli)
        return cli

    def add_on_set_parameters_callback(self, callback):
        self.on_set.append(callback)

    def destroy_node(self):
        self.destroyed = True


class FakeRclpy:
    """The ``rclpy`` module functions: ``init`` takes ``-p name:=value`` overrides as rcl does."""

    def __init__(self):
        self.args: list[str] | None = None
        self.nodes: list[FakeRosNode] = []
        self.spun = 0
        self.spun_futures: list = []  # timeout_sec of each spin_until_future_complete on the global executor
        self.shutdowns = 0
        self.env_at_init: dict[str, str | None] = {}

    def init(self, args=None):
        self.args = list(args or [])
        self.env_at_init = {k: os.environ.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")}

    def create_node(self, name):
        over, a = {}, self.args or []
        for i, x in enumerate(a[:-1]):
            if x == "-p":
                k, v = a[i + 1].split(":=", 1)
                over[k] = yaml.safe_load(v)
        node = FakeRosNode(name, overrides=over)
        self.nodes.append(node)
        return node

    def spin(self, node):
        self.spun += 1

    def spin_until_future_complete(self, node, future, timeout_sec=None):
        spin_until_future_complete(future, timeout_sec, self.spun_futures)

    def try_shutdown(self):
        self.shutdowns += 1


@pytest.fixture
def fake_ros(monkeypatch):
    """The fake modules in sys.modules and ``wm_control.ros.rclpy_backend`` imported on them (and forgotten
    afterwards, so no later test sees a backend bound to fakes)."""
    state = FakeRclpy()
    GET_MESSAGE_CALLS.clear()
    _CLASSES.clear()

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m

    rclpy = module("rclpy", init=state.init, create_node=state.create_node, spin=state.spin,
                   try_shutdown=state.try_shutdown, spin_until_future_complete=state.spin_until_future_complete)
    rclpy.node = module("rclpy.node", Node=FakeRosNode)
    rclpy.qos = module("rclpy.qos", QoSProfile=QoSProfile, ReliabilityPolicy=ReliabilityPolicy,
                       DurabilityPolicy=DurabilityPolicy, HistoryPolicy=HistoryPolicy)
    rclpy.clock = module("rclpy.clock", Clock=Clock, ClockType=ClockType)
    rclpy.serialization = module("rclpy.serialization", deserialize_message=deserialize_message)
    rclpy.parameter = module("rclpy.parameter", Parameter=Parameter)
    module("rcl_interfaces").msg = module("rcl_interfaces.msg", ParameterDescriptor=ParameterDescriptor,
                                          SetParametersResult=SetParametersResult)
    module("rosidl_runtime_py").utilities = module("rosidl_runtime_py.utilities", get_message=get_message,
                                                   get_service=get_service)
    sys.modules.pop("wm_control.ros.rclpy_backend", None)
    backend = importlib.import_module("wm_control.ros.rclpy_backend")
    try:
        yield types.SimpleNamespace(backend=backend, rclpy=state)
    finally:
        sys.modules.pop("wm_control.ros.rclpy_backend", None)
        import wm_control.ros

        wm_control.ros.__dict__.pop("rclpy_backend", None)


def adapted(fake_ros, name="talker", overrides=None):
    ros = FakeRosNode(name, overrides=overrides)
    return ros, fake_ros.backend.RclpyNode(ros)


# ------------------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------------------
def test_messages_with_nested_messages_and_arrays(fake_ros):
    _, node = adapted(fake_ros)
    js = cv.make_joint_state(node.msg, 1.25, ["a", "b"], np.array([1.0, -2.5]), np.array([0.5, 0.25]))
    assert js.header.stamp.sec == 1 and js.header.stamp.nanosec == 250_000_000
    assert isinstance(js.position, array.array) and js.position.typecode == "d"
    assert list(js.position) == [1.0, -2.5] and list(js.velocity) == [0.5, 0.25] and len(js.effort) == 0
    assert js.name == ["a", "b"]
    q, qd, _ = cv.joint_state_to_arrays(js, ["b", "a"])  # and readable by the same converters
    assert q.tolist() == [-2.5, 1.0] and qd.tolist() == [0.25, 0.5]

    cmd = cv.make_multiarray(node.msg, np.array([0.1, 0.2], np.float32))
    assert cmd.data.typecode == "d" and list(cmd.data) == [float(np.float32(0.1)), float(np.float32(0.2))]

    traj = cv.make_trajectory(node.msg, 2.0, ["a", "b"], [0.1, 0.2], np.array([[1.0, 2.0], [3.0, 4.0]]))
    t, pos = cv.trajectory_to_arrays(traj, ["a", "b"])
    assert t.tolist() == pytest.approx([0.1, 0.2]) and pos.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert traj.points[1].time_from_start.nanosec == 200_000_000


def test_image_data_becomes_bytes_and_decodes_back(fake_ros):
    from wm_control.world import frames

    _, node = adapted(fake_ros)
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msg = cv.make_image(node.msg, 3.0, rgb[:, ::-1][:, ::-1])  # a non-contiguous view on the way in
    assert msg.data.typecode == "B" and msg.data.tobytes() == rgb.tobytes()
    assert (msg.height, msg.width, msg.step, msg.encoding) == (4, 6, 18, "rgb8")
    assert np.array_equal(frames.image_msg_to_rgb(msg), rgb)


def test_every_array_type_and_octet(fake_ros):
    _, node = adapted(fake_ros)
    m = node.msg("test_msgs/msg/Arrays", f32=np.array([0.5, -1.25]), i8=np.array([-128, 5, 127]),
                 u16=np.arange(10, dtype=np.int64)[::2], i64=np.array([-(2**62), 2**62]),
                 flags=np.array([True, False]), byte=7, fixed=np.array([1.0, 2.0, 3.0]),
                 names=np.array(["x", "y"]))
    assert (m.f32.typecode, list(m.f32)) == ("f", [0.5, -1.25])
    assert (m.i8.typecode, list(m.i8)) == ("b", [-128, 5, 127])
    assert (m.u16.typecode, list(m.u16)) == ("H", [0, 2, 4, 6, 8])  # bounded sequence<uint16, 8>
    assert (m.i64.typecode, list(m.i64)) == ("q", [-(2**62), 2**62])
    assert m.flags == [True, False] and m.names == ["x", "y"]  # no typecode: Python lists
    assert m.byte == b"\x07"
    assert isinstance(m.fixed, np.ndarray) and m.fixed.tolist() == [1.0, 2.0, 3.0]  # fixed arrays: as given
    node.msg("test_msgs/msg/Arrays")
    assert GET_MESSAGE_CALLS.count("test_msgs/msg/Arrays") == 1  # classes are looked up once


def test_time(fake_ros):
    ros, node = adapted(fake_ros)
    t = node.time_msg(1_700_000_000.25)
    assert (t.sec, t.nanosec) == (1_700_000_000, 250_000_000)
    assert node.now() == pytest.approx(1_700_000_000.25)
    now = node.now_msg()
    assert (now.sec, now.nanosec) == (1_700_000_000, 250_000_000)


# ------------------------------------------------------------------------------------------
# QoS
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", [*qos.PROFILES.values(), qos.QoSProfile("reliable", "transient_local", 1, "keep_all"),
                                     qos.QoSProfile("best_effort", "volatile", 200)])
def test_qos_mapping(fake_ros, profile):
    r = fake_ros.backend.ros_qos(profile)
    assert r.reliability == {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}[
        profile.reliability]
    assert r.durability == {"volatile": DurabilityPolicy.VOLATILE,
                            "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}[profile.durability]
    assert r.history == {"keep_last": HistoryPolicy.KEEP_LAST, "keep_all": HistoryPolicy.KEEP_ALL}[profile.history]
    assert r.depth == profile.depth


def test_endpoints_get_the_mapped_qos(fake_ros):
    ros, node = adapted(fake_ros)
    pub = node.create_publisher("std_msgs/msg/Bool", "estop", "latched")
    assert pub.topic == "/estop" and pub.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL and pub.qos.depth == 1
    node.create_subscription("sensor_msgs/msg/JointState", "/joint_states", lambda m: None, 5)
    sub = ros.subscriptions[-1]
    assert sub.raw and sub.qos.reliability == ReliabilityPolicy.RELIABLE and sub.qos.depth == 5
    timer = node.create_steady_timer(0.01, lambda: None)
    assert timer.period == 0.01 and ros.timers[-1].clock.clock_type == ClockType.STEADY_TIME
    assert node.create_timer(0.5, lambda: None).period == 0.5 and ros.timers[-1].clock is None


# ------------------------------------------------------------------------------------------
# The size-limited subscription
# ------------------------------------------------------------------------------------------
def test_oversize_messages_are_dropped_before_deserialising(fake_ros):
    ros, node = adapted(fake_ros)
    got = []
    node.create_subscription("sensor_msgs/msg/JointState", "/joint_states", got.append)
    guarded = ros.subscriptions[-1].callback
    limit = qos.max_bytes_for("sensor_msgs/msg/JointState")
    guarded(b"\0" * (limit + 1))
    assert got == []
    assert any(level == "warning" and f"dropped a {limit + 1}-byte sensor_msgs/msg/JointState" in text
               for level, text in ros.logger.lines), ros.logger.lines
    guarded(b"\1" * limit)
    assert got == [("deserialized", b"\1" * limit, get_message("sensor_msgs/msg/JointState"))]


def test_subscription_limit_raw_and_info(fake_ros):
    ros, node = adapted(fake_ros)
    raw, info = [], []
    node.create_subscription("sensor_msgs/msg/Image", "/img", raw.append, raw=True, max_bytes=100)
    node.create_subscription("std_msgs/msg/String", "/s", lambda m, i: info.append((m, i)), with_info=True,
                             max_bytes=10)
    img, s = (x.callback for x in ros.subscriptions)
    img(b"x" * 101)
    img(b"x" * 100)
    assert raw == [b"x" * 100]  # raw: the serialised bytes, never deserialised
    s(b"y" * 11)
    s(b"y" * 3)
    assert info == [(("deserialized", b"yyy", get_message("std_msgs/msg/String")), None)]


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------
@dataclass
class TalkerConfig:
    rate: float = 10
    """Messages per second."""
    names: list[str] = field(default_factory=list)
    """Joint names,
    in order."""
    gains: list[float] = field(default_factory=lambda: [1, 2])
    count: int = 3
    """How many."""
    verbose: bool = False
    label: str | None = None
    """Optional label (dynamically typed)."""
    topic: str = "chatter"
    """Output topic."""

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError("rate must be > 0")


class Talker:
    NAME = "talker"
    Config = TalkerConfig
    seen: list = []

    def __init__(self, node, cfg):
        Talker.seen.append(cfg)
        self.pub = node.create_publisher("std_msgs/msg/String", cfg.topic)
        self.timer = node.create_timer(1.0 / cfg.rate, lambda: self.pub.publish(node.msg("std_msgs/msg/String")))


def declared(ros):
    return {n: (v, d.type, d.description, d.dynamic_typing) for n, (v, d) in ros.parameters.items()}


def test_parameters_are_declared_typed_and_described(fake_ros):
    ros, _ = adapted(fake_ros)
    cfg = config_from_params(TalkerConfig, {}, declare=fake_ros.backend._declare(ros))
    assert list(ros.parameters) == [f.name for f in fields(TalkerConfig)]
    T = ParameterType
    assert declared(ros) == {
        "rate": (10.0, T.DOUBLE.value, "Messages per second.", False),  # an int default, declared a double
        "names": (None, T.STRING_ARRAY.value, "Joint names, in order.", False),  # [] typed, not a byte array
        "gains": ([1.0, 2.0], T.DOUBLE_ARRAY.value, "", False),
        "count": (3, T.INTEGER.value, "How many.", False),
        "verbose": (False, T.BOOL.value, "", False),
        "label": (None, T.NOT_SET.value, "Optional label (dynamically typed).", True),
        "topic": ("chatter", T.STRING.value, "Output topic.", False),
    }
    assert cfg == TalkerConfig(rate=10.0, names=[], gains=[1.0, 2.0])


def test_parameter_overrides(fake_ros):
    ros, _ = adapted(fake_ros, overrides={"rate": 2.5, "names": ["j1", "j0"], "gains": array.array("d", [3.0]),
                                          "label": "x", "verbose": True})
    cfg = config_from_params(TalkerConfig, {}, declare=fake_ros.backend._declare(ros))
    assert (cfg.rate, cfg.names, cfg.gains, cfg.label, cfg.verbose) == (2.5, ["j1", "j0"], [3.0], "x", True)
    assert type(cfg.gains) is list
    for bad in ({"rate": "fast"}, {"names": [1, 2]}, {"count": 2.0}):
        ros, _ = adapted(fake_ros, overrides=bad)
        with pytest.raises(ConfigError, match=f"parameter '{next(iter(bad))}' is declared as"):
            config_from_params(TalkerConfig, {}, declare=fake_ros.backend._declare(ros))
    ros, _ = adapted(fake_ros, overrides={"rate": -1.0})  # the right type, refused by the dataclass
    with pytest.raises(ConfigError, match="rate must be > 0"):
        config_from_params(TalkerConfig, {}, declare=fake_ros.backend._declare(ros))


def test_real_node_configs_declare_their_docstrings(fake_ros):
    from wm_control.ros.nodes.planner import PlannerNodeConfig
    from wm_control.ros.nodes.policy import PolicyConfig

    ros, _ = adapted(fake_ros)
    config_from_params(PolicyConfig, {}, declare=fake_ros.backend._declare(ros))
    d = declared(ros)
    assert d["bundle"] == ("", ParameterType.STRING.value,
                           "Model bundle folder (policy.onnx + manifest.yaml); verified at start.", False)
    assert d["trusted_keys"][:2] == (None, ParameterType.STRING_ARRAY.value)
    assert d["position_lower"][:2] == (None, ParameterType.DOUBLE_ARRAY.value)
    assert d["realtime_priority"][1] == ParameterType.INTEGER.value
    assert d["max_future_stamp"][2].startswith("Plans, and under sim time joint states, stamped more than")
    assert d["mode"][2] == ""  # no docstring: no description
    assert not any(dyn for *_, dyn in d.values())
    ros, _ = adapted(fake_ros)
    config_from_params(PlannerNodeConfig, {}, declare=fake_ros.backend._declare(ros))
    d = declared(ros)  # inherited fields keep the base class's docstrings
    assert d["horizon"][2] == "Control steps planned (at the bundle's control rate)."
    assert d["rate"][2] == "Plans per second in real time (under sim time: one per joint state instant)."


def test_read_only_parameters_are_declared_read_only(fake_ros):
    ros, _ = adapted(fake_ros)
    config_from_params(TalkerConfig, {}, declare=fake_ros.backend._declare(ros, {"rate", "label"}))
    assert {n for n, (_, d) in ros.parameters.items() if d.read_only} == {"rate", "label"}


def test_on_set_callback_lets_the_config_and_the_hook_refuse(fake_ros):
    from wm_control.ros.params import Parameters

    got = []

    def hook(cfg):
        if cfg.count == 13:
            raise ValueError("13 is an unlucky count")
        got.append(cfg)

    params = Parameters(TalkerConfig(), hook)
    callback = fake_ros.backend.on_set_parameters(params)
    r = callback([Parameter("rate", 2.5), Parameter("gains", array.array("d", [3.0])), Parameter("use_sim_time", True)])
    assert (r.successful, r.reason) == (True, "")
    assert got == [TalkerConfig(rate=2.5, gains=[3.0])] and params.config == got[0] and type(got[0].gains) is list
    r = callback([Parameter("rate", -1.0)])  # the right type (rclpy checked it), refused by __post_init__
    assert (r.successful, r.reason) == (False, "rate must be > 0")
    r = callback([Parameter("count", 13)])
    assert (r.successful, r.reason) == (False, "13 is an unlucky count")
    assert params.config.rate == 2.5 and len(got) == 1  # refused sets change nothing
    assert callback([Parameter("use_sim_time", True)]).successful  # not a config field: rclpy's own


# ------------------------------------------------------------------------------------------
# Services and clients
# ------------------------------------------------------------------------------------------
def test_create_service_passes_through_to_rclpy(fake_ros):
    ros, node = adapted(fake_ros)

    def on_reset(request, response):
        return response

    node.create_service("std_srvs/srv/Trigger", "~/reset", on_reset)
    (srv,) = ros.services
    assert srv.srv_type is get_service("std_srvs/srv/Trigger") and srv.name == "~/reset" and srv.callback is on_reset


def test_lifecycle_services_and_events_go_through_the_same_calls(fake_ros):
    """A managed node on rclpy: the lifecycle_msgs services and ~/transition_event, created and answered through
    the node API as on the dds backend (rclpy's own types; nothing lifecycle-specific in the backend)."""
    from wm_control.ros import lifecycle

    ros, node = adapted(fake_ros)
    machine = lifecycle.StateMachine({"activate": lambda state: False})
    lifecycle.serve(node, machine)
    srvs = {s.name: s for s in ros.services}
    assert {n: s.srv_type.TYPENAME for n, s in srvs.items()} == {
        "~/change_state": "lifecycle_msgs/srv/ChangeState", "~/get_state": "lifecycle_msgs/srv/GetState",
        "~/get_available_states": "lifecycle_msgs/srv/GetAvailableStates",
        "~/get_available_transitions": "lifecycle_msgs/srv/GetAvailableTransitions",
        "~/get_transition_graph": "lifecycle_msgs/srv/GetAvailableTransitions"}
    (pub,) = ros.publishers
    assert pub.cls.TYPENAME == "lifecycle_msgs/msg/TransitionEvent" and pub.topic_name.endswith("~/transition_event")
    assert (pub.qos.reliability.name, pub.qos.durability.name, pub.qos.depth) == ("RELIABLE", "VOLATILE", 10)

    def change(tid, label=""):
        rq = types.SimpleNamespace(transition=types.SimpleNamespace(id=tid, label=label))
        return srvs["~/change_state"].callback(rq, types.SimpleNamespace()).success

    def state():
        s = srvs["~/get_state"].callback(None, types.SimpleNamespace()).current_state
        return type(s).__name__, s.id, s.label

    assert not change(3) and state() == ("State", 1, "unconfigured")  # activate from unconfigured: refused
    assert change(0, "configure") and state() == ("State", 2, "inactive")
    assert not change(3) and state() == ("State", 2, "inactive")  # the callback said no
    got = srvs["~/get_available_transitions"].callback(None, types.SimpleNamespace()).available_transitions
    assert [(d.transition.label, d.transition.id, d.goal_state.label) for d in got] == [
        ("cleanup", 2, "cleaningup"), ("activate", 3, "activating"), ("shutdown", 6, "shuttingdown")]
    assert [(e.transition.id, e.start_state.id, e.goal_state.id) for e in pub.sent] == [
        (1, 1, 10), (10, 10, 2), (3, 2, 13), (31, 13, 2)]
    assert pub.sent[0].timestamp == 1_700_000_000_250_000_000  # the node's clock, in ns


def test_client_call_spins_until_the_reply(fake_ros):
    ros, node = adapted(fake_ros)
    client = node.create_client("std_srvs/srv/SetBool", "enable")
    (cli,) = ros.clients
    assert cli.srv_type is get_service("std_srvs/srv/SetBool") and cli.srv_name == "/enable"
    cli.respond = lambda rq: ("reply to", rq)
    assert client.call("request", timeout=2.0) == ("reply to", "request")
    assert cli.waits == [2.0] and len(fake_ros.rclpy.spun_futures) == 1 and 0 < fake_ros.rclpy.spun_futures[0] <= 2.0
    ros.executor = FakeExecutor()  # a node spun by an executor of its own: that one is spun
    assert client.call("again") == ("reply to", "again")
    assert len(ros.executor.spun) == 1 and len(fake_ros.rclpy.spun_futures) == 1


def test_client_call_times_out(fake_ros):
    ros, node = adapted(fake_ros)
    client = node.create_client("std_srvs/srv/Trigger", "/robot/reset")
    (cli,) = ros.clients
    cli.available = False
    with pytest.raises(TimeoutError, match="service /robot/reset is not available"):
        client.call("request", timeout=0.1)
    assert cli.requests == []
    cli.available = True  # a server that never answers: the pending request is given up
    with pytest.raises(TimeoutError, match="no reply from service /robot/reset within 0.1 s"):
        client.call("request", timeout=0.1)
    assert len(cli.removed) == 1 and cli.removed[0].request == "request"
    assert client.wait_for_service(0.5) and cli.waits[-1] == 0.5


# ------------------------------------------------------------------------------------------
# The runner's rclpy branch
# ------------------------------------------------------------------------------------------
@pytest.fixture
def rclpy_runner(fake_ros, monkeypatch):
    from wm_control.ros import runner

    monkeypatch.setenv("AMENT_PREFIX_PATH", "/opt/ros/fake")
    for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "WM_BACKEND"):
        monkeypatch.setenv(k, "")  # recorded, so the test's own value is undone
        monkeypatch.delenv(k)
    monkeypatch.setitem(runner.NODE_TYPES, "talker", f"{__name__}:Talker")
    Talker.seen.clear()
    return runner


def test_rclpy_branch_runs_the_node_with_localhost_discovery(rclpy_runner, fake_ros):
    assert rclpy_runner.choose_backend(None) == "rclpy"  # ROS 2 sourced: auto is rclpy
    code = rclpy_runner.run_node("talker", ["--ros-args", "-p", "rate:=4.0", "-p", "names:=[a, b]"])
    assert code == 0
    assert fake_ros.rclpy.env_at_init["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert fake_ros.rclpy.args == ["wm-control", "--ros-args", "-p", "rate:=4.0", "-p", "names:=[a, b]"]
    (cfg,) = Talker.seen
    assert (cfg.rate, cfg.names) == (4.0, ["a", "b"])
    (ros,) = fake_ros.rclpy.nodes
    assert ros.name == "talker" and fake_ros.rclpy.spun == 1 and ros.destroyed
    assert ros.publishers[0].topic_name == "/chatter" and ros.timers[0].period_arg == 0.25
    assert ("info", "ready") in ros.logger.lines



class HookedTalker(Talker):
    def on_parameters(self, cfg):
        Talker.seen.append(("on_parameters", cfg))


def test_rclpy_branch_declares_read_only_without_a_hook(rclpy_runner, fake_ros, monkeypatch):
    assert rclpy_runner.run_node("talker", [], backend="rclpy") == 0
    (ros,) = fake_ros.rclpy.nodes
    assert all(d.read_only for _, d in ros.parameters.values())  # nothing could take a change
    monkeypatch.setitem(rclpy_runner.NODE_TYPES, "hooked", f"{__name__}:HookedTalker")
    assert rclpy_runner.run_node("hooked", [], backend="rclpy") == 0
    ros = fake_ros.rclpy.nodes[-1]
    assert not any(d.read_only for _, d in ros.parameters.values())
    (callback,) = ros.on_set  # no parameter services of ours: rclpy has them; the config and hook get a say
    assert not callback([Parameter("rate", 0.0)]).successful
    assert callback([Parameter("count", 7)]).successful
    assert Talker.seen[-1] == ("on_parameters", TalkerConfig(count=7, names=[], gains=[1.0, 2.0]))
    assert ros.services == []

@pytest.mark.parametrize("env,want", [({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, ("SUBNET", None)),
                                      ({"ROS_LOCALHOST_ONLY": "1"}, (None, "1")),
                                      ({"ROS_LOCALHOST_ONLY": "0"}, (None, "0"))])
def test_a_discovery_setting_of_the_users_is_kept(rclpy_runner, fake_ros, monkeypatch, env, want):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert rclpy_runner.run_node("talker", [], backend="rclpy") == 0
    assert (fake_ros.rclpy.env_at_init["ROS_AUTOMATIC_DISCOVERY_RANGE"], fake_ros.rclpy.env_at_init["ROS_LOCALHOST_ONLY"]) == want


def test_rclpy_branch_bad_parameter_fails_to_start(rclpy_runner, fake_ros):
    assert rclpy_runner.run_node("talker", ["--ros-args", "-p", "rate:=fast"], backend="rclpy") == 1
    (ros,) = fake_ros.rclpy.nodes
    assert any(level == "error" and "failed to start: parameter 'rate' is declared as float" in text
               for level, text in ros.logger.lines), ros.logger.lines
    assert fake_ros.rclpy.spun == 0 and ros.destroyed and not Talker.seen


def test_help_needs_no_ros(rclpy_runner, fake_ros, capsys):
    assert rclpy_runner.run_node("talker", ["--help"], backend="rclpy") == 0
    out = capsys.readouterr().out
    assert fake_ros.rclpy.args is None  # rclpy never initialised
    assert "rate (float, default 10)\n      Messages per second." in out
    assert "names (list[str], default [])\n      Joint names, in order." in out
    assert "label (str | None, default null)" in out

"""ROS 2 services over real Cyclone DDS, and every node's parameter services.

The node runs as a real process (through the runner, as ``wm-control run`` starts it). The client that
calls it is not built from our service classes: it is plain cyclonedds, with IdlStructs made from the
shipped ``.srv`` texts (parsed by rosbags) and laid out as rmw_cyclonedds lays a request or reply out,
``cdds_request_header_t {uint64 guid; int64 seq;}`` first, then the message's fields; cyclonedds' own
CDR encodes the requests and decodes the replies. Then a round trip through our ``create_client``.

Run as ``python -m tests.test_services [--ros-args ...]`` this module is the node process: a talker
with a config (a ``__post_init__`` check) and an ``on_parameters`` hook.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
import time
import types
from collections import deque
from dataclasses import dataclass, field

import cyclonedds.idl.types as t
import pytest
from cyclonedds._clayer import ddspy_write
from cyclonedds.idl import IdlStruct
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from wm_control.messages import srv_dir

NS = "/srv_test"
PARAM, VALUE = "rcl_interfaces/msg/Parameter", "rcl_interfaces/msg/ParameterValue"
NOT_SET, BOOL, INTEGER, DOUBLE, STRING, _, _, INTEGER_ARRAY, DOUBLE_ARRAY, STRING_ARRAY = range(10)


# ------------------------------------------------------------------------------------------
# The node under test
# ------------------------------------------------------------------------------------------
@dataclass
class TalkerConfig:
    rate: float = 10.0
    """Messages per second."""
    names: list[str] = field(default_factory=lambda: ["a", "b"])
    """Joint names, in order."""
    gains: list[float] = field(default_factory=lambda: [1.0, 2.0])
    count: int = 3
    """How many."""
    verbose: bool = False
    label: str | None = None
    """An optional label (dynamically typed)."""
    bundle: str = field(default="", metadata={"read_only": True})
    """Fixed at start."""

    def __post_init__(self):
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")


class Talker:
    NAME = "talker"
    Config = TalkerConfig

    def __init__(self, node, cfg):
        self.node, self.cfg = node, cfg
        self.pub = node.create_publisher("std_msgs/msg/String", "~/config", "latched")

    def on_parameters(self, cfg):
        if cfg.count == 13:
            raise ValueError("13 is an unlucky count")
        self.cfg = cfg
        self.pub.publish(self.node.msg("std_msgs/msg/String", data=repr(cfg)))


class TalkerProcess:
    """This module as a node process (``python -m tests.test_services``); ready at its ``ready`` line."""

    def __init__(self, *argv: str, timeout: float = 30.0):
        self.lines: deque[str] = deque(maxlen=400)
        self.p = subprocess.Popen([sys.executable, "-m", "tests.test_services", *argv], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        ready = threading.Event()

        def pump():
            for line in self.p.stdout:
                self.lines.append(line.rstrip())
                if "]: ready" in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("the talker did not start:\n" + "\n".join(self.lines))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


# ------------------------------------------------------------------------------------------
# A client from the .srv texts and cyclonedds alone
# ------------------------------------------------------------------------------------------
STORE = get_typestore(Stores.ROS2_HUMBLE)
_BASE = {"bool": bool, "byte": t.byte, "octet": t.byte, "char": t.uint8, "int8": t.int8, "uint8": t.uint8,
         "int16": t.int16, "uint16": t.uint16, "int32": t.int32, "uint32": t.uint32, "int64": t.int64,
         "uint64": t.uint64, "float32": t.float32, "float64": t.float64}
_STRUCTS: dict[str, type] = {}


def _idl(desc):
    kind, rest = desc
    if kind == Nodetype.BASE:
        return (t.bounded_str[rest[1]] if rest[1] else str) if rest[0] == "string" else _BASE[rest[0]]
    if kind == Nodetype.NAME:
        return _struct(rest, STORE.fielddefs[rest][1])
    sub, n = rest
    if kind == Nodetype.ARRAY:
        return t.array[_idl(sub), n]
    return t.sequence[_idl(sub), n] if n else t.sequence[_idl(sub)]


def _struct(typename, defs, header=False):
    """An IdlStruct named as ROS 2 names its DDS type; a request/reply gets the header members first."""
    if (typename, header) not in _STRUCTS:
        pkg, kind, name = typename.split("/")
        ann = {"guid": t.uint64, "seq": t.int64} if header else {}
        defs = defs or [("structure_needs_at_least_one_member", (Nodetype.BASE, ("uint8", 0)))]  # as rosidl
        ann.update((n, _idl(d)) for n, d in defs)
        cls = types.new_class(f"raw_{pkg}_{name}_{header}", (IdlStruct,), {"typename": f"{pkg}::{kind}::dds_::{name}_"},
                              lambda ns: ns.update(__annotations__=ann, __module__=__name__))
        _STRUCTS[(typename, header)] = dataclasses.dataclass(cls)
    return _STRUCTS[(typename, header)]


def srv_structs(srv_type):
    """(request, reply) IdlStructs of a shipped .srv text, split at its '---' line."""
    pkg, _, name = srv_type.split("/")
    text = (srv_dir() / pkg / "srv" / f"{name}.srv").read_text()
    req, resp = re.split(r"^---$", text, flags=re.M)
    out = []
    for half, part in (("Request", req), ("Response", resp)):
        (defs,) = get_types_from_msg(part, f"{pkg}/msg/{name}_{half}").values()
        out.append(_struct(f"{pkg}/srv/{name}_{half}", defs[1], header=True))
    return out


def nested(typename, **fields):
    """A nested message of the raw client (ParameterValue, Parameter ...), unset fields at their default."""
    for name, (kind, rest) in STORE.fielddefs[typename][1]:
        if name in fields:
            continue
        if kind == Nodetype.NAME:
            fields[name] = nested(rest)
        elif kind == Nodetype.SEQUENCE:
            fields[name] = []
        else:
            fields[name] = {"bool": False, "string": ""}.get(rest[0], 0.0 if rest[0].startswith("float") else 0)
    return _struct(typename, STORE.fielddefs[typename][1])(**fields)


def value(ptype, v=None):
    field_name = {BOOL: "bool_value", INTEGER: "integer_value", DOUBLE: "double_value", STRING: "string_value",
                  INTEGER_ARRAY: "integer_array_value", DOUBLE_ARRAY: "double_array_value",
                  STRING_ARRAY: "string_array_value"}.get(ptype)
    return nested(VALUE, type=ptype, **({field_name: v} if field_name else {}))


class RawClient:
    """A service client as rmw_cyclonedds makes one (topics, type names, QoS, user data, header)."""

    def __init__(self, participant, service, srv_type, guid=0x1122334455667788):
        self.Request, self.Reply = srv_structs(srv_type)
        q = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.Durability.Volatile,
                Policy.History.KeepLast(10), Policy.DataRepresentation(use_cdrv0_representation=True),
                Policy.Userdata(f"clientid=raw.{guid:x};".encode()))
        self.writer = DataWriter(participant, Topic(participant, f"rq{service}Request", self.Request), qos=q)
        self.reader = DataReader(participant, Topic(participant, f"rr{service}Reply", self.Reply), qos=q)
        self.guid, self.seq = guid, 100

    def __call__(self, timeout=10.0, **fields):
        end = time.monotonic() + timeout
        while not (self.writer.get_matched_subscriptions() and self.reader.get_matched_publications()):
            assert time.monotonic() < end, "the service never matched"
            time.sleep(0.02)
        self.seq += 1
        self.writer.write(self.Request(guid=self.guid, seq=self.seq, **fields))
        while time.monotonic() < end:
            for reply in self.reader.take(N=16):
                # the reply carries our request's header
                if getattr(reply, "guid", None) == self.guid and reply.seq == self.seq:
                    return reply
            time.sleep(0.01)
        raise AssertionError(f"no reply to request {self.seq}")


@pytest.fixture(scope="module")
def talker():
    p = TalkerProcess("--ros-args", "-r", f"__ns:={NS}", "-p", "count:=4", "-p", "bundle:=/models/b1")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def raw(talker):
    from cyclonedds.domain import DomainParticipant

    from wm_control.ros.dds import configure_environment

    configure_environment()  # loopback, as the node has it
    participant = DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))  # a participant of its own
    srvs = {"list": ("list_parameters", "ListParameters"), "get": ("get_parameters", "GetParameters"),
            "set": ("set_parameters", "SetParameters"),
            "atomic": ("set_parameters_atomically", "SetParametersAtomically"),
            "describe": ("describe_parameters", "DescribeParameters"),
            "types": ("get_parameter_types", "GetParameterTypes")}
    clients = {k: RawClient(participant, f"{NS}/talker/{name}", f"rcl_interfaces/srv/{typ}")
               for k, (name, typ) in srvs.items()}
    return types.SimpleNamespace(participant=participant, **clients)


def get(raw, *names):
    return raw.get(names=list(names)).values


def param(name, ptype, v=None):
    return nested(PARAM, name=name, value=value(ptype, v))


NAMES = ["use_sim_time", "rate", "names", "gains", "count", "verbose", "label", "bundle"]


# ------------------------------------------------------------------------------------------
# The parameter services of a running dds node, called as a ROS 2 client calls them
# ------------------------------------------------------------------------------------------
def test_list_parameters(raw):
    r = raw.list(prefixes=[], depth=0)
    assert (r.result.names, r.result.prefixes) == (NAMES, [])
    assert raw.list(prefixes=["count"], depth=0).result.names == ["count"]


def test_get_parameters_and_their_types(raw):
    v = get(raw, "rate", "names", "count", "verbose", "label", "bundle", "use_sim_time")
    assert [x.type for x in v] == [DOUBLE, STRING_ARRAY, INTEGER, BOOL, NOT_SET, STRING, BOOL]
    assert (v[0].double_value, v[1].string_array_value, v[2].integer_value, v[5].string_value) == (
        10.0, ["a", "b"], 4, "/models/b1")  # -p count:=4, -p bundle:=... on the command line
    assert get(raw, "gains")[0].double_array_value == [1.0, 2.0]
    assert get(raw, "rate", "no_such_parameter") == []  # as rclcpp and rclpy: nothing when one is unknown
    assert list(raw.types(names=["rate", "names", "count", "label"]).types) == [DOUBLE, STRING_ARRAY, INTEGER, NOT_SET]


def test_describe_parameters(raw):
    d = {x.name: x for x in raw.describe(names=["rate", "names", "label", "bundle", "use_sim_time"]).descriptors}
    assert (d["rate"].type, d["rate"].description, d["rate"].read_only, d["rate"].dynamic_typing) == (
        DOUBLE, "Messages per second.", False, False)
    assert d["names"].description == "Joint names, in order."
    assert d["label"].dynamic_typing and not d["label"].read_only
    assert d["bundle"].read_only and d["use_sim_time"].read_only  # metadata read_only; fixed at start here
    assert raw.describe(names=["nope"]).descriptors == []


def test_set_parameters_updates_the_config_and_the_node_reacts(talker, raw):
    from wm_control.ros.dds import DdsNode

    seen = []
    node = DdsNode("config_watch")
    node.create_subscription("std_msgs/msg/String", f"{NS}/talker/config", lambda m: seen.append(m.data), "latched")
    r = raw.set(parameters=[param("rate", DOUBLE, 2.5), param("names", STRING_ARRAY, ["j1", "j0"]),
                            param("label", STRING, "left")])
    assert [(x.successful, x.reason) for x in r.results] == [(True, "")] * 3
    v = get(raw, "rate", "names", "label")
    assert (v[0].double_value, v[1].string_array_value) == (2.5, ["j1", "j0"])
    assert (v[2].type, v[2].string_value) == (STRING, "left")
    assert node.spin(until=lambda: seen and "label='left'" in seen[-1], timeout=10), seen  # on_parameters got it
    assert "rate=2.5" in seen[-1] and "names=['j1', 'j0']" in seen[-1]
    node.destroy()


def test_set_with_a_wrong_type_is_refused_as_rclcpp_refuses_it(raw):
    (r,) = raw.set(parameters=[param("rate", INTEGER, 3)]).results
    assert not r.successful
    assert r.reason == ("Wrong parameter type, parameter {rate} is of type {double}, "
                        "setting it to {integer} is not allowed.")
    (r,) = raw.set(parameters=[param("count", STRING, "many")]).results
    assert r.reason == ("Wrong parameter type, parameter {count} is of type {integer}, "
                        "setting it to {string} is not allowed.")
    (r,) = raw.set(parameters=[param("label", INTEGER, 7)]).results  # dynamically typed, but the field is str | None
    assert not r.successful and r.reason == "parameter 'label' must be a string, got 7"
    assert get(raw, "rate")[0].type == DOUBLE


def test_set_of_a_bad_value_is_refused_with_the_configs_message(raw):
    before = get(raw, "rate")[0].double_value
    (r,) = raw.set(parameters=[param("rate", DOUBLE, -1.0)]).results
    assert (r.successful, r.reason) == (False, "rate must be > 0, got -1.0")
    (r,) = raw.set(parameters=[param("count", INTEGER, 13)]).results  # the node's hook says no
    assert (r.successful, r.reason) == (False, "13 is an unlucky count")
    assert get(raw, "rate")[0].double_value == before and get(raw, "count")[0].integer_value != 13


def test_read_only_and_undeclared_parameters_are_refused(raw):
    results = raw.set(parameters=[param("bundle", STRING, "/other"), param("use_sim_time", BOOL, True),
                                  param("nope", INTEGER, 1)]).results
    assert [(r.successful, r.reason) for r in results] == [
        (False, "parameter 'bundle' cannot be set because it is read-only"),
        (False, "parameter 'use_sim_time' cannot be set because it is read-only"),
        (False, "parameter 'nope' cannot be set because it was not declared")]
    assert get(raw, "bundle")[0].string_value == "/models/b1"


def test_set_parameters_atomically_is_all_or_nothing(raw):
    r = raw.atomic(parameters=[param("count", INTEGER, 5), param("rate", DOUBLE, -2.0)]).result
    assert (r.successful, r.reason) == (False, "rate must be > 0, got -2.0")
    assert get(raw, "count")[0].integer_value != 5
    r = raw.atomic(parameters=[param("count", INTEGER, 5), param("gains", DOUBLE_ARRAY, [0.5])]).result
    assert r.successful
    v = get(raw, "count", "gains")
    assert (v[0].integer_value, v[1].double_array_value) == (5, [0.5])


def test_a_malformed_request_is_dropped_and_the_service_goes_on(talker, raw):
    ddspy_write(raw.get.writer._ref, b"\x00\x01\x00\x00\x01\x02\x03\x04")  # shorter than the header
    assert get(raw, "count")[0].type == INTEGER
    assert talker.p.poll() is None


# ------------------------------------------------------------------------------------------
# Our own client and server
# ------------------------------------------------------------------------------------------
def test_round_trip_through_our_client(talker):
    from wm_control.ros.dds import DdsNode

    node = DdsNode("param_client")
    cli = node.create_client("rcl_interfaces/srv/GetParameters", f"{NS}/talker/get_parameters")
    r = cli.call(node.msg("rcl_interfaces/srv/GetParameters_Request", names=["verbose", "bundle"]), timeout=10)
    assert r.__msgtype__ == "rcl_interfaces/srv/GetParameters_Response"
    assert [(v.type, v.bool_value, v.string_value) for v in r.values] == [(BOOL, False, ""),
                                                                           (STRING, False, "/models/b1")]
    setter = node.create_client("rcl_interfaces/srv/SetParameters", f"{NS}/talker/set_parameters")
    new = node.msg(PARAM, name="verbose", value=node.msg(VALUE, type=BOOL, bool_value=True))
    (res,) = setter.call(node.msg("rcl_interfaces/srv/SetParameters_Request", parameters=[new]), timeout=10).results
    assert res.successful
    r = cli.call(node.msg("rcl_interfaces/srv/GetParameters_Request", names=["verbose"]), timeout=10)
    assert r.values[0].bool_value is True
    node.destroy()


def test_our_service_answers_our_client_and_a_raw_one(raw):
    from wm_control.ros.dds import DdsNode

    server = DdsNode("switch", "/srv_test2")
    calls = []

    def on_set(rq, rs):
        calls.append(bool(rq.data))
        rs.success, rs.message = True, f"now {'on' if rq.data else 'off'}"
        return rs

    server.create_service("std_srvs/srv/SetBool", "~/enable", on_set)
    stop = threading.Event()
    th = threading.Thread(target=lambda: server.spin(until=stop.is_set), daemon=True)
    th.start()
    try:
        other = DdsNode("switch_client")
        r = other.create_client("std_srvs/srv/SetBool", "/srv_test2/switch/enable").call(
            other.msg("std_srvs/srv/SetBool_Request", data=True), timeout=10)
        assert (r.success, r.message) == (True, "now on")
        r = RawClient(raw.participant, "/srv_test2/switch/enable", "std_srvs/srv/SetBool", guid=7)(data=False)
        assert (r.guid, r.success, r.message) == (7, True, "now off")
        assert calls == [True, False]
        with pytest.raises(TimeoutError, match="service /nobody/home .* is not available"):
            other.create_client("std_srvs/srv/Trigger", "/nobody/home").call(
                other.msg("std_srvs/srv/Trigger_Request"), timeout=0.3)
        other.destroy()
    finally:
        stop.set()
        th.join(5)
        server.destroy()


def test_a_node_without_a_hook_has_read_only_parameters():
    from wm_control.ros.params import Parameters

    class Fixed:
        Config = TalkerConfig

    p = Parameters(TalkerConfig(), getattr(Fixed, "on_parameters", None), {"use_sim_time": False})
    assert all(d.read_only for d in p.declared.values())
    from wm_control.messages import registry

    reg = registry()
    ok, reason = p.set_atomically([reg.new(PARAM, name="rate", value=reg.new(VALUE, type=DOUBLE, double_value=1.0))])
    assert (ok, reason) == (False, "parameter 'rate' cannot be set because it is read-only")


if __name__ == "__main__":  # the talker as a node process, through the runner
    from wm_control.ros import runner

    runner.NODE_TYPES["talker"] = "tests.test_services:Talker"
    sys.exit(runner.run_node("talker", sys.argv[1:], "dds"))

"""Looking at a running graph without ROS, as the ``ros2`` CLI does: topics and types from DDS discovery,
nodes from ``ros_discovery_info``, messages <-> plain dicts, a node's parameters through its services.

On the dds backend the graph is read from the DDS built-in topics (DCPSParticipant, DCPSPublication,
DCPSSubscription, read with cyclonedds' ``BuiltinDataReader``: a plain ``DataReader`` of them crashes)
and from ``ros_discovery_info``, which every ROS 2 participant (ours included) publishes with the
readers and writers of each of its nodes. On the rclpy backend it is rclpy's graph API. The verbs are in
:mod:`wm_control.cli.graph`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from wm_control.messages import ros_type_name
from wm_control.ros import params as P
from wm_control.ros import qos as _qos

TOPIC_PREFIX = "rt/"
DISCOVERY_INFO = "rmw_dds_common/msg/ParticipantEntitiesInfo"


# ------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------
def ros_topic_name(dds_name: str) -> str | None:
    """``rt/joint_states`` -> ``/joint_states``; None for service halves (``rq/``, ``rr/``) and
    topics that are not ROS topics (``ros_discovery_info``, DCPS*)."""
    if dds_name.startswith(TOPIC_PREFIX):
        return "/" + dds_name[len(TOPIC_PREFIX):].lstrip("/")
    return None


def ros_service_name(dds_name: str) -> str | None:
    """``rq/sim_robot/get_parametersRequest`` -> ``/sim_robot/get_parameters``; None otherwise."""
    for prefix, suffix in (("rq/", "Request"), ("rr/", "Reply")):
        if dds_name.startswith(prefix) and dds_name.endswith(suffix):
            return "/" + dds_name[len(prefix):-len(suffix)].lstrip("/")
    return None


def node_fqn(name: str) -> str:
    """``sim_robot`` or ``/sim_robot`` -> ``/sim_robot``."""
    return name if name.startswith("/") else "/" + name


def own_fqn(node: Any) -> str:
    return (getattr(node, "namespace", "/") or "/").rstrip("/") + "/" + node.name


def hidden(fqn: str) -> bool:
    """A hidden node or topic (a name part starting with ``_``), as ``ros2 node list`` hides them."""
    return any(part.startswith("_") for part in fqn.split("/"))


# ------------------------------------------------------------------------------------------
# The graph
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Endpoint:
    topic: str  # ROS name (a topic, or a service for rq/rr endpoints)
    type: str  # ROS type name
    kind: str  # "publisher" | "subscriber" | "service" | "client"
    guid: bytes
    reliability: str | None = None  # what a writer offers / a reader asks: 'reliable' | 'best_effort'
    durability: str | None = None  # 'volatile' | 'transient_local'


@dataclasses.dataclass
class Graph:
    endpoints: list[Endpoint]
    nodes: dict[str, dict[str, set[bytes]]]  # node fqn -> {"readers": gids, "writers": gids} (16-byte GUIDs)

    def topics(self) -> dict[str, list[str]]:
        """ROS topic -> its types (sorted), as ``ros2 topic list -t``; services hidden."""
        out: dict[str, set[str]] = {}
        for e in self.endpoints:
            if e.kind in ("publisher", "subscriber"):
                out.setdefault(e.topic, set()).add(e.type)
        return {t: sorted(v) for t, v in sorted(out.items())}

    def publishers(self, topic: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.kind == "publisher" and e.topic == topic]

    def subscribers(self, topic: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.kind == "subscriber" and e.topic == topic]

    def node_info(self, fqn: str) -> dict[str, dict[str, str]]:
        """``{"subscribers": {topic: type}, "publishers": ..., "services": ..., "clients": ...}`` of a node."""
        if fqn not in self.nodes:
            raise KeyError(fqn)
        gids = self.nodes[fqn]
        mine = {x[:16] for x in gids["writers"]} | {x[:16] for x in gids["readers"]}
        info: dict[str, dict[str, str]] = {"subscribers": {}, "publishers": {}, "services": {}, "clients": {}}
        for e in self.endpoints:
            if e.guid[:16] in mine:
                info[e.kind + "s"][e.topic] = e.type
        return {k: dict(sorted(v.items())) for k, v in info.items()}


def _service_type(ros_type: str) -> str:
    """``pkg/srv/Name_Request`` / ``_Response`` -> ``pkg/srv/Name``."""
    for suffix in ("_Request", "_Response"):
        if ros_type.endswith(suffix):
            return ros_type[:-len(suffix)]
    return ros_type



def _endpoint(dds_topic: str, dds_type: str, guid: bytes, writer: bool, qos: Any = None) -> Endpoint | None:
    rtype = ros_type_name(dds_type) or dds_type
    topic = ros_topic_name(dds_topic)
    if topic is not None:
        return Endpoint(topic, rtype, "publisher" if writer else "subscriber", guid, *_qos.offered_qos(qos))
    service = ros_service_name(dds_topic)
    if service is not None:  # a server reads requests and writes replies; a client the other way round
        server = dds_topic.startswith("rr/") == writer
        return Endpoint(service, _service_type(rtype), "service" if server else "client", guid)
    return None


class GraphWatcher:
    """What discovery has found so far, kept up to date: :meth:`poll` takes what arrived since the last
    call (never blocks); :meth:`wait` polls until a condition holds or a timeout. Endpoints and nodes of
    this process are left out (the tool's own node is no part of the graph it shows)."""

    def __init__(self, node: Any):
        self.node = node
        self.rclpy = getattr(node, "backend", "dds") == "rclpy"
        self._endpoints: dict[bytes, Endpoint] = {}
        self._participants: set[bytes] = set()
        self._nodes: dict[bytes, dict[str, dict[str, set[bytes]]]] = {}  # participant -> its nodes
        if not self.rclpy:
            self._open_dds()

    def _open_dds(self) -> None:
        from cyclonedds.builtin import (
            BuiltinDataReader,
            BuiltinTopicDcpsParticipant,
            BuiltinTopicDcpsPublication,
            BuiltinTopicDcpsSubscription,
        )
        from cyclonedds.sub import DataReader

        from wm_control.ros import qos as qosmod
        from wm_control.ros.dds import dds_qos

        ctx = self.node.context
        p = ctx.participant
        self._own = p.guid.bytes[:12]  # the GUID prefix of this process's participant
        self._parts = BuiltinDataReader(p, BuiltinTopicDcpsParticipant)
        self._pubs = BuiltinDataReader(p, BuiltinTopicDcpsPublication)
        self._subs = BuiltinDataReader(p, BuiltinTopicDcpsSubscription)
        reg = self.node.registry
        topic = ctx.topic("ros_discovery_info", DISCOVERY_INFO, reg)  # the one our own graph writer uses
        self._info = DataReader(p, topic, qos=dds_qos(qosmod.QoSProfile("reliable", "transient_local", 100)))

    # ---- dds --------------------------------------------------------------------------------
    def _take_all(self, reader: Any) -> list[Any]:
        out = []
        while True:
            got = reader.take(N=256)
            out.extend(got)
            if len(got) < 256:
                return out

    def _poll_dds(self) -> bool:
        from cyclonedds._clayer import ddspy_take

        new = False
        for s in self._take_all(self._parts):
            key = s.key.bytes
            info = getattr(s, "sample_info", None)
            if info is not None and not info.valid_data:  # the participant left
                self._participants.discard(key)
                self._nodes.pop(key, None)
                self._endpoints = {k: e for k, e in self._endpoints.items() if k[:12] != key[:12]}
            else:
                self._participants.add(key)
            new = True
        for reader, writer in ((self._pubs, True), (self._subs, False)):
            for s in self._take_all(reader):
                key = s.key.bytes
                info = getattr(s, "sample_info", None)
                if info is not None and not info.valid_data:  # the endpoint went away
                    new |= self._endpoints.pop(key, None) is not None
                    continue
                if key[:12] == self._own or key in self._endpoints:
                    continue
                ep = _endpoint(getattr(s, "topic_name", "") or "", getattr(s, "type_name", "") or "", key, writer,
                               getattr(s, "qos", None))
                if ep is not None:
                    self._endpoints[key] = ep
                    new = True
        reg = self.node.registry
        while True:
            taken = ddspy_take(self._info._ref, 0xFFFF_FFFF, 64)
            if isinstance(taken, int) or not taken:
                break
            for data, si in taken:
                if not si.valid_data:
                    continue
                try:
                    m = reg.deserialize(data, DISCOVERY_INFO)
                except Exception:
                    continue
                gid = bytes(m.gid.data[:16])
                if gid[:12] == self._own:
                    continue
                self._nodes[gid] = {
                    (n.node_namespace.rstrip("/") + "/" + n.node_name): {
                        "readers": {bytes(g.data[:16]) for g in n.reader_gid_seq},
                        "writers": {bytes(g.data[:16]) for g in n.writer_gid_seq}}
                    for n in m.node_entities_info_seq}
                new = True
            if len(taken) < 64:
                break
        return new

    # ---- rclpy ------------------------------------------------------------------------------
    def _rclpy_graph(self) -> Graph:
        ros = self.node.ros
        me = own_fqn(self.node)
        endpoints: list[Endpoint] = []
        for topic, types in ros.get_topic_names_and_types():
            for kind, infos in (("publisher", ros.get_publishers_info_by_topic(topic)),
                                ("subscriber", ros.get_subscriptions_info_by_topic(topic))):
                for i in infos:
                    if (i.node_namespace.rstrip("/") + "/" + i.node_name) == me:
                        continue
                    q = getattr(i, "qos_profile", None)
                    rel = str(getattr(getattr(q, "reliability", None), "name", "") or "").lower() or None
                    dur = str(getattr(getattr(q, "durability", None), "name", "") or "").lower() or None
                    endpoints.append(Endpoint(topic, i.topic_type, kind, bytes(getattr(i, "endpoint_gid", b"")),
                                              rel if rel in ("reliable", "best_effort") else None,
                                              dur if dur in ("volatile", "transient_local") else None))
        nodes: dict[str, dict[str, set[bytes]]] = {}
        for name, ns in ros.get_node_names_and_namespaces():
            fqn = ns.rstrip("/") + "/" + name
            if fqn != me:
                nodes[fqn] = {"readers": set(), "writers": set()}
        return Graph(endpoints, nodes)

    # ---- both -------------------------------------------------------------------------------
    def poll(self) -> Graph:
        """The graph as discovery knows it now."""
        if self.rclpy:
            self.node.spin_once(0.0)
            return self._rclpy_graph()
        self._poll_dds()
        nodes: dict[str, dict[str, set[bytes]]] = {}
        for gid, per in self._nodes.items():
            if gid in self._participants:  # the participant is alive
                nodes.update(per)
        return Graph(list(self._endpoints.values()), nodes)

    def wait(self, until: Callable[[Graph], bool] | None = None, timeout: float = 2.0,
             stop: Callable[[], bool] | None = None) -> Graph:
        """Poll until ``until(graph)`` (or, without one, until discovery settles: nothing new for a
        third of ``timeout``, at least half of it), ``timeout`` s, or ``stop()``."""
        start = last_new = time.monotonic()
        seen = -1
        while True:
            g = self.poll()
            now = time.monotonic()
            size = len(g.endpoints) + sum(len(v["readers"]) + len(v["writers"]) + 1 for v in g.nodes.values())
            if size != seen:
                seen, last_new = size, now
            if until is not None and until(g):
                return g
            if stop is not None and stop():
                return g
            if now - start >= timeout:
                return g
            if until is None and now - start >= timeout / 2 and now - last_new >= timeout / 3:
                return g
            time.sleep(0.02)


def read_graph(node: Any, wait: float = 1.5) -> Graph:
    """What discovery has found within ``wait`` s (it keeps reading until no new entity came for a
    third of ``wait``, at least until ``wait``/2)."""
    return GraphWatcher(node).wait(None, wait)


def topic_type(graph: Graph, topic: str) -> str:
    """The type of ``topic``'s publishers (else of its subscribers) in ``graph``; KeyError when the
    topic is not in it, ValueError when its endpoints disagree."""
    pubs = {e.type for e in graph.publishers(topic)} or {e.type for e in graph.subscribers(topic)}
    if not pubs:
        raise KeyError(topic)
    if len(pubs) > 1:
        raise ValueError(f"topic {topic} has several types: {', '.join(sorted(pubs))}")
    return next(iter(pubs))


def matching_qos(graph: Graph, topic: str) -> Any:
    """A subscription QoS that gets what ``topic``'s publishers send, as ``ros2 topic echo`` picks one:
    best effort if any publisher is, transient local (the latched value) if every one is."""
    from wm_control.ros.qos import QoSProfile

    pubs = graph.publishers(topic)
    rel = "best_effort" if any(e.reliability == "best_effort" for e in pubs) else "reliable"
    dur = "transient_local" if pubs and all(e.durability == "transient_local" for e in pubs) else "volatile"
    return QoSProfile(rel, dur, 10)


# ------------------------------------------------------------------------------------------
# Messages <-> plain dicts
# ------------------------------------------------------------------------------------------
def msg_to_dict(msg: Any) -> Any:
    """A message as plain Python (dicts in field order, lists, numbers, strings), for printing as YAML
    or JSON; rosbags messages (the dds backend) and rclpy ones."""
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        return {f.name: msg_to_dict(getattr(msg, f.name)) for f in dataclasses.fields(msg)
                if not f.name.startswith("__")}
    if hasattr(msg, "get_fields_and_field_types"):  # an rclpy message
        return {k: msg_to_dict(getattr(msg, k)) for k in msg.get_fields_and_field_types()}
    if isinstance(msg, np.ndarray):
        return msg.tolist()
    if isinstance(msg, (bytes, bytearray)):
        return list(msg)
    if isinstance(msg, (list, tuple)) or type(msg).__name__ == "array":
        return [msg_to_dict(v) for v in msg]
    if isinstance(msg, np.generic):
        return msg.item()
    return msg


def truncate(value: Any, length: int) -> Any:
    """``value`` (from :func:`msg_to_dict`) with every list longer than ``length`` cut to ``length``
    items and a ``'...'``, strings to ``length`` characters and ``'...'`` (``ros2 topic echo``'s
    ``--truncate-length``); 0: nothing cut."""
    if length <= 0:
        return value
    if isinstance(value, dict):
        return {k: truncate(v, length) for k, v in value.items()}
    if isinstance(value, list):
        return [truncate(v, length) for v in value[:length]] + (["..."] if len(value) > length else [])
    if isinstance(value, str) and len(value) > length:
        return value[:length] + "..."
    return value


_INT_RANGES = {f"{s}int{b}": (np.iinfo(f"{s}int{b}").min, np.iinfo(f"{s}int{b}").max)
               for s in ("", "u") for b in (8, 16, 32, 64)}
_INT_RANGES.update(byte=(0, 255), octet=(0, 255), char=(0, 255))


def _base(kind: str, v: Any) -> Any:
    """A YAML scalar as a field of ROS base type ``kind``, refused when it does not fit (as ros2 does)."""
    if kind == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"expected a bool (true/false), got {v!r}")
        return bool(v)
    if kind in _INT_RANGES:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"expected an integer ({kind}), got {v!r}")
        lo, hi = _INT_RANGES[kind]
        if not lo <= int(v) <= hi:
            raise ValueError(f"{v} is out of range for {kind} ({lo}..{hi})")
        return int(v)
    if kind in ("float32", "float64"):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"expected a number ({kind}), got {v!r}")
        return float(v)
    if kind in ("string", "wstring"):
        if isinstance(v, (dict, list)):
            raise ValueError(f"expected a string, got {v!r}")
        return "" if v is None else str(v)
    raise ValueError(f"unsupported field type {kind}")


class FieldError(ValueError):
    """A value that does not fit its field: the message names the field (``header.stamp.sec: ...``)."""


def dict_to_msg(reg: Any, typename: str, values: Any, now: Callable[[], Any] | None = None) -> Any:
    """A ``typename`` message (dds backend: a rosbags one) from a (YAML) dict: fields not given keep
    their ROS defaults; nested messages are dicts, arrays lists. A ``builtin_interfaces/msg/Time`` given
    as ``now`` and a ``std_msgs/msg/Header`` given as ``auto`` get ``now()`` (as ``ros2 topic pub``).
    A wrong field or value is a :class:`FieldError` (a ValueError) naming the field."""
    if not reg.has(typename):
        raise FieldError(f"unknown message type {typename!r} (pkg/msg/Name, e.g. std_msgs/msg/String)")
    return _fill(reg, typename, values, now, "")


def _fill(reg: Any, typename: str, values: Any, now: Callable[[], Any] | None, path: str) -> Any:
    from rosbags.interfaces import Nodetype

    where = f"{typename}" + (f" (field {path})" if path else "")
    if values is None:
        values = {}
    if typename == "builtin_interfaces/msg/Time" and values in ("now", "auto") and now is not None:
        return now()
    if typename == "std_msgs/msg/Header" and values in ("now", "auto") and now is not None:
        return reg.new(typename, stamp=now())
    if not isinstance(values, dict):
        raise FieldError(f"{where} must be given as a dict of fields ({{field: value, ...}}), got {values!r}")
    _, defs = reg.store.fielddefs[typename]
    descs = dict(defs)
    unknown = set(values) - set(descs)
    if unknown:
        raise FieldError(f"{where} has no field(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"its fields are {', '.join(descs)}")
    msg = reg.new(typename)
    for name, v in values.items():
        kind, rest = descs[name]
        default = getattr(msg, name)
        here = f"{path}.{name}" if path else name
        try:
            if kind == Nodetype.NAME:
                setattr(msg, name, _fill(reg, rest, v, now, here))
            elif kind == Nodetype.BASE:
                setattr(msg, name, _base(rest[0], v))
            else:  # ARRAY (fixed length) or SEQUENCE (bounded or not)
                (sub_kind, sub), length = rest
                if not isinstance(v, (list, tuple)):
                    raise ValueError(f"expected a list, got {v!r}")
                if kind == Nodetype.ARRAY and len(v) != length:
                    raise ValueError(f"expected {length} items, got {len(v)}")
                if kind == Nodetype.SEQUENCE and length and len(v) > length:
                    raise ValueError(f"at most {length} items, got {len(v)}")
                if sub_kind == Nodetype.NAME:
                    items = [_fill(reg, sub, x, now, f"{here}[{i}]") for i, x in enumerate(v)]
                else:
                    items = [_base(sub[0], x) for x in v]
                setattr(msg, name, np.asarray(items, dtype=default.dtype) if isinstance(default, np.ndarray)
                        else items)
        except FieldError:
            raise
        except ValueError as exc:
            raise FieldError(f"field {here}: {exc}") from None
    return msg


def dict_to_rclpy_msg(node: Any, typename: str, values: Any) -> Any:
    """:func:`dict_to_msg` on the rclpy backend (rosidl_runtime_py's set_message_fields, as ``ros2 topic pub``)."""
    from rosidl_runtime_py import set_message_fields

    msg = node.msg(typename)
    try:
        set_message_fields(msg, values or {})
    except Exception as exc:
        raise ValueError(f"{typename}: {exc}") from None
    return msg


# ------------------------------------------------------------------------------------------
# A node's parameters (rcl_interfaces services)
# ------------------------------------------------------------------------------------------
class ParamClient:
    """``list`` / ``get`` / ``set`` / ``describe`` on the parameter services of node ``fqn``; a node not
    found is a LookupError."""

    def __init__(self, node: Any, fqn: str, timeout: float = 2.0):
        self.node, self.fqn, self.timeout = node, node_fqn(fqn), timeout
        self._clients: dict[str, Any] = {}

    def _call(self, service: str, typ: str, **fields: Any) -> Any:
        srv = f"rcl_interfaces/srv/{typ}"
        if service not in self._clients:
            self._clients[service] = self.node.create_client(srv, f"{self.fqn}/{service}")
        cli = self._clients[service]
        if not cli.wait_for_service(self.timeout):
            raise LookupError(f"node {self.fqn} not found (no {self.fqn}/{service} service within {self.timeout:g} s)")
        try:
            return cli.call(self.node.msg(f"{srv}_Request", **fields), timeout=self.timeout)
        except TimeoutError:
            raise LookupError(f"node {self.fqn} did not answer {service} within {self.timeout:g} s") from None

    def list(self) -> list[str]:
        return sorted(self._call("list_parameters", "ListParameters", prefixes=[], depth=0).result.names)

    def get(self, name: str) -> tuple[int, Any]:
        """(ParameterType, value); KeyError when the node has no such parameter."""
        values = self._call("get_parameters", "GetParameters", names=[name]).values
        if not values or int(values[0].type) == P.NOT_SET and name not in self.list():
            raise KeyError(name)
        return int(values[0].type), P.plain_value(values[0])

    def describe(self, name: str) -> Any:
        ds = self._call("describe_parameters", "DescribeParameters", names=[name]).descriptors
        if not ds:
            raise KeyError(name)
        return ds[0]

    def set(self, name: str, value: Any) -> tuple[bool, str]:
        """Set ``name`` to ``value`` (typed as ROS types it: bool, integer, double, string, arrays);
        (successful, the node's reason)."""
        pv = P.value_msg(self.node.msg, value, P.value_type(value))
        param = self.node.msg("rcl_interfaces/msg/Parameter", name=name, value=pv)
        (res,) = self._call("set_parameters", "SetParameters", parameters=[param]).results
        return bool(res.successful), str(res.reason)

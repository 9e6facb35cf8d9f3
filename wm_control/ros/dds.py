"""The ``dds`` backend: ROS 2 nodes over Cyclone DDS, speaking the ROS 2 wire protocol.

What makes a ROS 2 node on the same domain see us (and us see it), as ``rmw_cyclonedds`` does:

* topic ``/x/y`` is DDS topic ``rt/x/y``; type ``pkg/msg/Name`` is ``pkg::msg::dds_::Name_``;
* payloads are plain CDR (XCDR1, little endian, encapsulation ``CDR_LE``), padded to 4 bytes with
  the pad count in the encapsulation options as XTypes specifies; the bytes before the padding are
  exactly ``rosbags``' serialisation (this module serialises with it, so they cannot differ);
* QoS: reliability, durability, history/depth mapped from the ROS profiles; data representation
  XCDR1 only;
* participant user data ``enclave=/;``; on Jazzy, endpoint user data ``typehash=RIHS01_...;``;
* service ``/x/y`` of type ``pkg/srv/Name`` is a request topic ``rq/x/yRequest`` of type
  ``pkg::srv::dds_::Name_Request_`` and a reply topic ``rr/x/yReply`` of type
  ``pkg::srv::dds_::Name_Response_`` (QoS: reliable, volatile, keep last 10); every sample starts with
  rmw_cyclonedds' ``cdds_request_header_t`` (``uint64 guid``: the client's request writer's instance
  handle; ``int64 seq``), then the message's fields; a reply carries its request's header. Client and
  server endpoints carry ``clientid=...;`` / ``serviceid=...;`` in their user data, and a server holds
  a reply until the client's reply reader has matched, as rmw_cyclonedds does.

One :class:`DdsContext` (a participant) per process; any number of nodes on it. Each node has a
single-threaded executor: a WaitSet over its readers plus timers with absolute deadlines on the
monotonic clock (or on ROS time from ``/clock`` when ``use_sim_time`` is true).
"""

from __future__ import annotations

import logging
import math
import os
import struct
import threading
import time
import traceback
from typing import Any, Callable

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.core import Entity, GuardCondition, InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from wm_control.messages import MessageRegistry, registry
from wm_control.messages import convert as cv
from wm_control.messages.convert import sec_nsec as sec_to_sec_nsec
from wm_control.ros import qos as qosmod
from wm_control.ros.api import spin_until
from wm_control.ros.args import resolve_topic
from wm_control.ros.throttle import ThrottledLog

_ANY = SampleState.Any | ViewState.Any | InstanceState.Any
#: rmw_qos_profile_services_default
SERVICES_QOS = qosmod.QoSProfile("reliable", "volatile", 10)
#: how long a server holds a reply for a client whose reply reader has not matched yet
REPLY_WAIT = 1.0

LOOPBACK_CONFIG = (
    "<CycloneDDS><Domain Id=\"any\"><General><Interfaces>"
    "<NetworkInterface name=\"lo\" multicast=\"true\"/></Interfaces>"
    "<DontRoute>true</DontRoute></General></Domain></CycloneDDS>"
)


def discovery_range() -> str:
    """LOCALHOST unless the user asked for the network: ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (Jazzy: LOCALHOST,
    SUBNET, SYSTEM_DEFAULT, OFF) or ``ROS_LOCALHOST_ONLY`` (Humble: 1 / 0). Unlike ROS's own default
    (SUBNET), nothing of ours is reachable from another host until one of them says so: a robot's
    e-stop and command topics are not for every machine on the network."""
    rng = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper()
    if rng:
        return rng
    only = os.environ.get("ROS_LOCALHOST_ONLY", "").strip()
    if only:
        return "LOCALHOST" if only == "1" else "SUBNET"
    return "LOCALHOST"


def configure_environment() -> None:
    """Apply the discovery range (:func:`discovery_range`) to Cyclone DDS when the user set no config:
    LOCALHOST (the default) keeps all traffic on the loopback interface, as rmw_cyclonedds does;
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` reaches the robot's network. An explicit ``CYCLONEDDS_URI``
    always wins."""
    if os.environ.get("CYCLONEDDS_URI"):
        return
    if discovery_range() == "LOCALHOST":
        os.environ["CYCLONEDDS_URI"] = LOOPBACK_CONFIG


def dds_qos(p: qosmod.QoSProfile, user_data: bytes | None = None) -> Qos:
    policies = [
        Policy.Reliability.Reliable(duration(seconds=1)) if p.reliability == "reliable"
        else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if p.durability == "transient_local" else Policy.Durability.Volatile,
        Policy.History.KeepLast(p.depth) if p.history == "keep_last" else Policy.History.KeepAll,
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    if p.durability == "transient_local":
        # late joiners get the last `depth` samples (Cyclone keeps only 1 unless told)
        policies.append(Policy.DurabilityService(0, policies[2], -1, -1, -1))
    if user_data:
        policies.append(Policy.Userdata(user_data))
    return Qos(*policies)


def pad_cdr(data: bytes) -> bytes:
    """Pad a CDR payload to a multiple of 4 and record the pad count in the options (XTypes 7.6.3)."""
    pad = (-len(data)) % 4
    if not pad:
        return data
    return data[:3] + bytes([data[3] | pad]) + data[4:] + b"\0" * pad


def join_request(cdr: bytes, guid: int, seq: int) -> bytes:
    """A service request or reply as rmw_cyclonedds writes it: the message's CDR (with encapsulation
    header) with its ``cdds_request_header_t {uint64 guid; int64 seq;}`` before the fields. The header
    is 16 bytes, so the fields after it keep the alignment they have in the message alone."""
    order = "<" if cdr[1] & 1 else ">"
    return cdr[:4] + struct.pack(order + "Qq", guid & 0xFFFF_FFFF_FFFF_FFFF, seq) + cdr[4:]


def split_request(data: bytes | memoryview) -> tuple[int, int, bytes]:
    """(guid, seq, the message's CDR) of a service request or reply sample."""
    data = bytes(data)
    if len(data) < 20:
        raise ValueError(f"a {len(data)}-byte sample is too short for a request header")
    guid, seq = struct.unpack_from(("<" if data[1] & 1 else ">") + "Qq", data, 4)
    return guid, seq, data[:4] + data[20:]


def user_data_key(qos: Qos | None, key: str) -> str | None:
    """A ``key=value;`` entry of an endpoint's user data (rmw_cyclonedds' get_user_data_key)."""
    for policy in qos or ():
        if isinstance(policy, Policy.Userdata):
            for item in policy.data.decode(errors="replace").split(";"):
                k, sep, v = item.partition("=")
                if sep and k == key:
                    return v
    return None


def unpad_cdr(data: bytes) -> bytes:
    """Strip the XTypes padding (and its count in the options), giving the plain CDR serialisation."""
    pad = data[3] & 0x3 if len(data) >= 4 else 0
    if not pad:
        return data
    return data[:3] + bytes([data[3] & ~0x3 & 0xFF]) + data[4:len(data) - pad]


class DdsContext:
    """One DDS participant per process, shared by the nodes in it."""

    _instance: "DdsContext | None" = None
    _lock = threading.Lock()

    def __init__(self, domain_id: int | None = None):
        configure_environment()
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
        if not 0 <= domain_id <= 232:
            raise ValueError(f"ROS_DOMAIN_ID must be in 0..232, got {domain_id}")
        self.domain_id = domain_id
        self.participant = DomainParticipant(domain_id, qos=Qos(Policy.Userdata(b"enclave=/;")))
        self._topics: dict[tuple[str, str], Topic] = {}
        self._tlock = threading.Lock()
        self._graph: dict[str, dict] = {}  # node fqn -> {ns, name, readers, writers}
        self._graph_writer: DataWriter | None = None
        self._csid = 0

    @classmethod
    def get(cls, domain_id: int | None = None) -> "DdsContext":
        with cls._lock:
            if cls._instance is None:
                cls._instance = DdsContext(domain_id)
            return cls._instance

    # ---- ROS graph discovery -----------------------------------------------------------------
    def graph_add(self, node: "DdsNode", kind: str, entity: Any) -> None:
        """Announce a node's reader/writer on ``ros_discovery_info`` (what ``ros2 node list`` and
        ``ros2 node info`` read), as rmw_dds_common does for every ROS 2 participant."""
        with self._tlock:
            info = self._graph.setdefault(node.fqn, {"ns": node.namespace, "name": node.name,
                                                     "readers": [], "writers": []})
            info[kind].append(entity.guid.bytes)
        self._publish_graph(node.registry)

    def graph_remove(self, node: "DdsNode") -> None:
        with self._tlock:
            self._graph.pop(node.fqn, None)
        self._publish_graph(node.registry)

    def _publish_graph(self, reg: MessageRegistry) -> None:
        typ = "rmw_dds_common/msg/ParticipantEntitiesInfo"
        size = 24 if reg.distro == "humble" else 16
        import numpy as np

        def gid(raw: bytes) -> Any:
            return reg.new("rmw_dds_common/msg/Gid", data=np.frombuffer(raw.ljust(size, b"\0")[:size], np.uint8).copy())

        with self._tlock:
            if self._graph_writer is None:
                topic = Topic(self.participant, "ros_discovery_info", reg.dds_struct(typ))
                self._graph_writer = DataWriter(self.participant, topic, qos=dds_qos(qosmod.LATCHED))
            nodes = [reg.new("rmw_dds_common/msg/NodeEntitiesInfo", node_namespace=v["ns"], node_name=v["name"],
                             reader_gid_seq=[gid(g) for g in v["readers"]],
                             writer_gid_seq=[gid(g) for g in v["writers"]]) for v in self._graph.values()]
            msg = reg.new(typ, gid=gid(self.participant.guid.bytes), node_entities_info_seq=nodes)
            ddspy_write(self._graph_writer._ref, pad_cdr(reg.serialize(msg, typ)))

    def client_service_id(self) -> str:
        """A new id for a client's or service's endpoint pair, as rmw_cyclonedds makes them: the
        participant's GUID prefix and a big-endian counter, in its hex-and-dots notation."""
        with self._tlock:
            self._csid += 1
            raw = self.participant.guid.bytes[:12] + self._csid.to_bytes(4, "big")
        return f"{raw[0]:2x}" + "".join(f".{b:x}" for b in raw[1:])

    def topic(self, dds_name: str, typename: str, reg: MessageRegistry, request_header: bool = False) -> Topic:
        key = (dds_name, typename)
        with self._tlock:
            t = self._topics.get(key)
            if t is None:
                for (name, other), _ in self._topics.items():
                    if name == dds_name and other != typename:
                        raise TypeError(f"topic {dds_name[2:]} already exists in this process with type "
                                        f"{other}, cannot also use {typename}")
                t = Topic(self.participant, dds_name, reg.dds_struct(typename, request_header))
                self._topics[key] = t
            return t


def _endpoint(node: "DdsNode", typename: str, topic: str, qos: qosmod.QoSProfile) -> tuple[Topic, Qos]:
    """The DDS topic (``rt/`` + ROS name) and QoS of a ROS endpoint; on Jazzy the type hash goes in
    the user data as ``typehash=RIHS01_...;``."""
    th = node.registry.type_hash(typename)
    user = f"typehash={th};".encode() if th else None
    return node.context.topic("rt" + topic, typename, node.registry), dds_qos(qos, user)


def _service_endpoint(node: "DdsNode", dds_name: str, typename: str, csid: str) -> tuple[Topic, Qos]:
    """The DDS topic (``rq/...Request`` or ``rr/...Reply``) and QoS of one half of a service or client;
    its user data names the client or service (``clientid=...;`` / ``serviceid=...;``), then the type hash."""
    th = node.registry.type_hash(typename)
    user = (csid + (f"typehash={th};" if th else "")).encode()
    return (node.context.topic(dds_name, typename, node.registry, request_header=True),
            dds_qos(SERVICES_QOS, user))



def _delete_entities(*entities: Any) -> None:
    """Delete DDS entities now, as ``__del__`` would once the last reference goes: a destroyed node's
    writers must stop serving their (latched) samples even while a callback cycle keeps the objects."""
    for e in entities:
        ref = getattr(e, "_ref", None)
        if ref is None or ref not in Entity._entities:
            continue
        del Entity._entities[ref]
        e._delete(ref)  # dds_delete; an entity already gone with its parent returns an error code


class DdsPublisher:
    def __init__(self, node: "DdsNode", typename: str, topic: str, qos: qosmod.QoSProfile):
        self.node = node
        self.typename = typename
        self.topic = topic
        reg = node.registry
        self._writer = DataWriter(node.context.participant, *_endpoint(node, typename, topic, qos))
        self._serialize = reg.serialize
        self.count = 0

    def publish(self, msg: Any) -> None:
        self.publish_raw(self._serialize(msg, self.typename))

    def publish_raw(self, cdr: bytes) -> None:
        """Publish already-serialised CDR (with encapsulation header), e.g. from a bag. After its node is
        destroyed a publisher publishes nothing."""
        if self.node._destroyed:
            return
        ret = ddspy_write(self._writer._ref, pad_cdr(cdr))
        if ret < 0:
            raise RuntimeError(f"DDS write on {self.topic} failed ({ret})")
        self.count += 1

    def matched(self) -> int:
        return len(self._writer.get_matched_subscriptions())


class DdsSubscription:
    def __init__(self, node: "DdsNode", typename: str, topic: str, callback: Callable[[Any], None],
                 qos: qosmod.QoSProfile, raw: bool, max_bytes: int | None = None):
        self.node = node
        self.typename = typename
        self.topic = topic
        self.callback = callback
        self.raw = raw
        reg = node.registry
        self.reader = DataReader(node.context.participant, *_endpoint(node, typename, topic, qos))
        self.condition = ReadCondition(self.reader, _ANY)
        self._deserialize = reg.deserialize
        self.count = 0
        self.errors = 0
        self.oversize = 0
        self.max_bytes = int(max_bytes or qosmod.max_bytes_for(typename))
        self._warn = ThrottledLog(node.logger, period=5.0)

    def take(self) -> list[tuple[Any, Any]]:
        """(message or raw bytes, sample info) for every valid sample waiting."""
        ret = ddspy_take(self.reader._ref, _ANY, 64)
        if isinstance(ret, int):
            raise RuntimeError(f"DDS take on {self.topic} failed ({ret})")
        out = []
        for data, info in ret:
            if not info.valid_data:
                continue
            if len(data) > self.max_bytes:  # before any decoding
                self.oversize += 1
                self._warn.log("oversize", "dropped a %d-byte %s on %s (limit %d bytes)", len(data), self.typename,
                               self.topic, self.max_bytes)
                continue
            if self.raw:
                out.append((data, info))
                continue
            try:
                out.append((self._deserialize(data, self.typename), info))
            except Exception as exc:  # a malformed sample is dropped and counted, never fatal
                self.errors += 1
                self._warn.log("undecodable", "dropped undecodable %s on %s: %s", self.typename, self.topic, exc)
        return out

    def matched(self) -> int:
        return len(self.reader.get_matched_publications())


class DdsService:
    """A service server: takes requests from ``rq/<name>Request``, answers each with
    ``callback(request, response) -> response`` (``response``: a default one to fill in) on
    ``rr/<name>Reply`` under the request's header. A reply waits (at most :data:`REPLY_WAIT` s, without
    blocking the executor) until the client's reply reader has matched, or is dropped if the client left."""

    def __init__(self, node: "DdsNode", srv_type: str, name: str, callback: Callable[[Any, Any], Any]):
        self.node = node
        self.srv_type = srv_type
        self.name = node.resolve(name)
        self.callback = callback
        self.request_type, self.response_type = node.registry.srv(srv_type)
        csid = f"serviceid={node.context.client_service_id()};"
        p = node.context.participant
        self.reader = DataReader(p, *_service_endpoint(node, f"rq{self.name}Request", self.request_type, csid))
        self.writer = DataWriter(p, *_service_endpoint(node, f"rr{self.name}Reply", self.response_type, csid))
        self.condition = ReadCondition(self.reader, _ANY)
        self.pending: list[tuple[float, int, bytes]] = []  # (deadline, request writer, reply sample)
        self.count = 0
        self.errors = 0
        self.max_bytes = qosmod.max_bytes_for(self.request_type)
        self._warn = ThrottledLog(node.logger, period=5.0)

    def handle(self) -> None:
        """Answer every request waiting, then send the replies whose client can now take them."""
        reg = self.node.registry
        ret = ddspy_take(self.reader._ref, _ANY, 64)
        if isinstance(ret, int):
            raise RuntimeError(f"DDS take on service {self.name} failed ({ret})")
        for data, info in ret:
            if not info.valid_data:
                continue
            try:
                if len(data) > self.max_bytes:
                    raise ValueError(f"{len(data)} bytes, over the limit of {self.max_bytes}")
                guid, seq, cdr = split_request(data)
                request = reg.deserialize(cdr, self.request_type)
            except Exception as exc:  # a malformed request is dropped and counted, never fatal
                self.errors += 1
                self._warn.log("undecodable", "dropped a request on service %s: %s", self.name, exc)
                continue
            try:
                reply = reg.serialize(self.callback(request, reg.new(self.response_type)), self.response_type)
            except Exception:
                self.errors += 1
                self.node.logger.error("service %s failed on a request:\n%s", self.name, traceback.format_exc())
                continue
            self.count += 1
            self.pending.append((time.monotonic() + REPLY_WAIT, info.publication_handle,
                                 pad_cdr(join_request(reply, guid, seq))))
        if self.pending:
            self._flush()

    def _client_ready(self, request_writer: int) -> bool | None:
        """rmw_cyclonedds' check_for_response_reader: True when the client's reply reader has matched
        (or the client names no id), False while not yet, None when its request writer is gone."""
        ep = self.reader.get_matched_publication_data(request_writer)
        if ep is None:
            return None
        cid = user_data_key(ep.qos, "clientid")
        return cid is None or any(
            user_data_key(getattr(self.writer.get_matched_subscription_data(h), "qos", None), "clientid") == cid
            for h in self.writer.get_matched_subscriptions())

    def _flush(self) -> None:
        keep = []
        for deadline, request_writer, sample in self.pending:
            ready = self._client_ready(request_writer)
            if ready:
                ret = ddspy_write(self.writer._ref, sample)
                if ret < 0:
                    self._warn.log("write", "DDS write of a reply on service %s failed (%d)", self.name, ret)
            elif ready is False and time.monotonic() < deadline:
                keep.append((deadline, request_writer, sample))
            elif ready is False:
                self._warn.log("unmatched", "dropped a reply on service %s: the client's reply reader did not "
                               "match within %g s", self.name, REPLY_WAIT)
        self.pending = keep


class DdsClient:
    """A service client: ``call(request, timeout)`` writes the request on ``rq/<name>Request`` under a
    header of its own (the request writer's instance handle, as rmw_cyclonedds uses, and a sequence
    number) and waits for the reply with that header on ``rr/<name>Reply``; it does not spin the node, so
    it may be called from a callback."""

    def __init__(self, node: "DdsNode", srv_type: str, name: str):
        self.node = node
        self.srv_type = srv_type
        self.name = node.resolve(name)
        self.request_type, self.response_type = node.registry.srv(srv_type)
        csid = f"clientid={node.context.client_service_id()};"
        p = node.context.participant
        self.writer = DataWriter(p, *_service_endpoint(node, f"rq{self.name}Request", self.request_type, csid))
        self.reader = DataReader(p, *_service_endpoint(node, f"rr{self.name}Reply", self.response_type, csid))
        self.guid = self.writer.get_instance_handle() & 0xFFFF_FFFF_FFFF_FFFF
        self.seq = 0
        self.waitset = WaitSet(p)
        self.waitset.attach(ReadCondition(self.reader, _ANY))
        self._lock = threading.Lock()

    def service_is_ready(self) -> bool:
        """A server's request reader and reply writer are both matched."""
        return bool(self.writer.get_matched_subscriptions()) and bool(self.reader.get_matched_publications())

    def wait_for_service(self, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while not self.service_is_ready():
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True

    def call(self, request: Any, timeout: float = 5.0) -> Any:
        """The response to ``request``; TimeoutError when no server answers within ``timeout`` s."""
        end = time.monotonic() + timeout
        if not self.wait_for_service(timeout):
            raise TimeoutError(f"service {self.name} ({self.srv_type}) is not available (waited {timeout:g} s)")
        reg = self.node.registry
        with self._lock:
            self.seq += 1
            ret = ddspy_write(self.writer._ref, pad_cdr(join_request(reg.serialize(request, self.request_type),
                                                                     self.guid, self.seq)))
            if ret < 0:
                raise RuntimeError(f"DDS write of a request on service {self.name} failed ({ret})")
            while (left := end - time.monotonic()) > 0:
                self.waitset.wait(int(left * 1e9))
                taken = ddspy_take(self.reader._ref, _ANY, 64)
                for data, info in [] if isinstance(taken, int) else taken:
                    if info.valid_data and len(data) >= 20:
                        guid, seq, cdr = split_request(data)
                        if guid == self.guid and seq == self.seq:  # not another client's, not a late one
                            return reg.deserialize(cdr, self.response_type)
        raise TimeoutError(f"no reply from service {self.name} within {timeout:g} s")


class DdsTimer:
    """A periodic timer on absolute deadlines: tick k is due at start + k * period.

    If a callback overruns by whole periods, the missed ticks are skipped (counted in ``missed``)
    rather than fired in a burst; the phase is kept.
    """

    def __init__(self, node: "DdsNode", period: float, callback: Callable[[], None], sim_time: bool):
        if not period > 0 or not math.isfinite(period):
            raise ValueError(f"timer period must be positive, got {period}")
        self.node = node
        self.period = period
        self.callback = callback
        self.sim_time = sim_time
        # sim time: ticks at whole multiples of the period on the ROS time axis, so they do not depend
        # on when the node started; real time: period after period from now
        self.start = 0.0 if sim_time else time.monotonic()
        self.k = math.floor(node.now() / period + 1e-6) + 1 if sim_time else 1
        self.deadline = self.start + self.k * period
        self.missed = 0
        self.cancelled = False
        self.last_fire: float | None = None
        self.lateness: list[float] = []  # monotonic lateness of each firing, for benchmarks
        self.record_lateness = False

    def cancel(self) -> None:
        self.cancelled = True

    def due(self, now: float) -> bool:
        # sim time arrives as integer nanoseconds: allow 1 us so k * period lands on its tick
        return not self.cancelled and now >= self.deadline - (1e-6 if self.sim_time else 0.0)

    def fire(self, now: float) -> None:
        if self.record_lateness:
            self.lateness.append(now - self.deadline)
        behind = int((now - self.deadline + (1e-6 if self.sim_time else 0.0)) // self.period)
        if self.sim_time and behind > 1000:  # the clock jumped (first /clock, bag loop): re-phase
            self.start, self.k, behind = 0.0, math.floor(now / self.period + 1e-6), 0
        if behind > 0:
            self.missed += behind
            self.k += behind
        self.k += 1
        self.deadline = self.start + self.k * self.period
        self.last_fire = now
        self.callback()


class DdsNode:
    """A ROS 2 node on the dds backend. See :mod:`wm_control.ros.api` for the interface."""

    backend = "dds"

    def __init__(self, name: str, namespace: str = "/", *, params: dict[str, Any] | None = None,
                 remaps: dict[str, str] | None = None, distro: str | None = None,
                 context: DdsContext | None = None, log_level: str | None = None):
        self.name = name
        self.namespace = namespace or "/"
        self.remaps = dict(remaps or {})
        self.param_overrides = dict(params or {})
        self.registry = registry(distro)
        self.context = context or DdsContext.get()
        self.logger = make_logger(self.fqn, log_level)
        self.publishers: list[DdsPublisher] = []
        self.subscriptions: list[DdsSubscription] = []
        self.services: list[DdsService] = []
        self.clients: list[DdsClient] = []
        self.timers: list[DdsTimer] = []
        self.waitset = WaitSet(self.context.participant)
        self.guard = GuardCondition(self.context.participant)
        self.waitset.attach(self.guard)
        self._shutdown = False
        self._destroyed = False
        self._sim_now: float | None = None
        self.use_sim_time = bool(self.param_overrides.get("use_sim_time", False))
        if self.use_sim_time:
            self.create_subscription("rosgraph_msgs/msg/Clock", "/clock", self._on_clock, qosmod.CLOCK)
        self._rosout = self.create_publisher("rcl_interfaces/msg/Log", "/rosout", qosmod.ROSOUT)
        self.logger.addHandler(_RosoutHandler(self))

    # ---- names ----------------------------------------------------------------------------
    @property
    def fqn(self) -> str:
        return (self.namespace.rstrip("/") + "/" + self.name)

    def resolve(self, topic: str) -> str:
        return resolve_topic(topic, self.name, self.namespace, self.remaps)

    # ---- messages -------------------------------------------------------------------------
    def msg(self, typename: str, **fields: Any) -> Any:
        return self.registry.new(typename, **fields)

    # ---- entities -------------------------------------------------------------------------
    def create_publisher(self, typename: str, topic: str, qos: Any = qosmod.DEFAULT) -> DdsPublisher:
        pub = DdsPublisher(self, typename, self.resolve(topic), qosmod.profile(qos))
        self.publishers.append(pub)
        self.context.graph_add(self, "writers", pub._writer)
        return pub

    def create_subscription(self, typename: str, topic: str, callback: Callable[[Any], None],
                            qos: Any = qosmod.DEFAULT, raw: bool = False,
                            with_info: bool = False, max_bytes: int | None = None) -> DdsSubscription:
        """``max_bytes``: larger samples are dropped undecoded and counted (default: :data:`wm_control.ros.qos.MAX_BYTES`)."""
        cb = callback if with_info else (lambda m, _info, _cb=callback: _cb(m))
        sub = DdsSubscription(self, typename, self.resolve(topic), cb, qosmod.profile(qos), raw, max_bytes)
        self.subscriptions.append(sub)
        self.waitset.attach(sub.condition)
        self.context.graph_add(self, "readers", sub.reader)
        return sub

    def create_service(self, srv_type: str, name: str, callback: Callable[[Any, Any], Any]) -> DdsService:
        """Serve ``name`` (``~/x`` is private to the node): ``callback(request, response) -> response``."""
        srv = DdsService(self, srv_type, name, callback)
        self.services.append(srv)
        self.waitset.attach(srv.condition)
        self.context.graph_add(self, "readers", srv.reader)
        self.context.graph_add(self, "writers", srv.writer)
        return srv

    def create_client(self, srv_type: str, name: str) -> DdsClient:
        cli = DdsClient(self, srv_type, name)
        self.clients.append(cli)
        self.context.graph_add(self, "writers", cli.writer)
        self.context.graph_add(self, "readers", cli.reader)
        return cli

    def create_timer(self, period: float, callback: Callable[[], None]) -> DdsTimer:
        t = DdsTimer(self, period, callback, self.use_sim_time)
        self.timers.append(t)
        return t

    def create_steady_timer(self, period: float, callback: Callable[[], None]) -> DdsTimer:
        """A timer on the monotonic clock whatever ``use_sim_time`` says (wall-clock timeouts)."""
        t = DdsTimer(self, period, callback, sim_time=False)
        self.timers.append(t)
        return t

    # ---- time -----------------------------------------------------------------------------
    def _on_clock(self, msg: Any) -> None:
        self._sim_now = cv.stamp_sec(msg.clock)

    def now(self) -> float:
        """ROS time in seconds: wall clock, or the latest ``/clock`` under sim time (0 before one)."""
        if self.use_sim_time:
            return self._sim_now if self._sim_now is not None else 0.0
        return time.time()

    def now_msg(self) -> Any:
        return self.time_msg(self.now())

    def time_msg(self, t: float) -> Any:
        sec, nsec = sec_to_sec_nsec(t)
        return self.registry.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec)

    # ---- executor -------------------------------------------------------------------------
    def _timer_clock(self) -> float:
        return self.now() if self.use_sim_time else time.monotonic()

    def spin_once(self, timeout: float | None = None) -> None:
        """Wait for data or the next timer deadline (at most ``timeout`` s), then dispatch."""
        live = [t for t in self.timers if not t.cancelled]
        wait = 0.1 if timeout is None else timeout
        steady = [t for t in live if not t.sim_time]  # all of them, unless use_sim_time
        if steady:
            wait = min(wait, max(0.0, min(t.deadline for t in steady) - time.monotonic()))
        if any(s.pending for s in self.services):  # replies waiting for their client's reader to match
            wait = min(wait, 0.01)
        if wait > 0:
            self.waitset.wait(int(wait * 1e9))
        if self.guard.read():
            self.guard.set(False)
        for sub in self.subscriptions:
            for msg, info in sub.take():
                sub.count += 1
                sub.callback(msg, info)
        for srv in self.services:
            srv.handle()
        now = self._timer_clock()
        for t in sorted((t for t in live if t.sim_time and t.due(now)), key=lambda t: t.deadline):
            t.fire(now)
        mono = time.monotonic()
        for t in sorted((t for t in steady if t.due(mono)), key=lambda t: t.deadline):
            t.fire(time.monotonic())
        if self.timers and any(t.cancelled for t in self.timers):
            self.timers = [t for t in self.timers if not t.cancelled]

    def spin(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Run callbacks until shutdown, ``until()`` is true, or ``timeout`` s pass. Returns until()."""
        return spin_until(self.spin_once, lambda: self._shutdown, until, timeout)

    def shutdown(self) -> None:
        """Stop spinning (safe from signal handlers and other threads)."""
        self._shutdown = True
        try:
            self.guard.set(True)
        except Exception:
            pass

    @property
    def ok(self) -> bool:
        return not self._shutdown

    def destroy(self) -> None:
        self.shutdown()
        try:
            self.context.graph_remove(self)
        except Exception:
            pass
        for ent in (*self.subscriptions, *self.services):
            try:
                self.waitset.detach(ent.condition)
            except Exception:
                pass
        self._destroyed = True
        _delete_entities(*(p._writer for p in self.publishers),
                         *(e for s in (*self.subscriptions, *self.services) for e in (s.condition, s.reader,
                                                                                       getattr(s, "writer", None))),
                         *(e for c in self.clients for e in (c.writer, c.reader)))
        self.subscriptions.clear()
        self.services.clear()
        self.clients.clear()
        self.publishers.clear()
        self.timers.clear()


# ------------------------------------------------------------------------------------------
# Logging: ROS-style console lines, and /rosout
# ------------------------------------------------------------------------------------------
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
           "WARNING": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}


class _RosFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(record.levelname, record.levelname)
        return f"[{level}] [{record.created:.6f}] [{record.name.lstrip('/').replace('/', '.')}]: {record.getMessage()}"


def make_logger(fqn: str, level: str | None = None) -> logging.Logger:
    logger = logging.getLogger(fqn)
    if not any(isinstance(h, logging.StreamHandler) and getattr(h, "_wm", False) for h in logger.handlers):
        h = logging.StreamHandler()
        h._wm = True  # type: ignore[attr-defined]
        h.setFormatter(_RosFormatter())
        logger.addHandler(h)
        logger.propagate = False
    lvl = (level or os.environ.get("WM_LOG_LEVEL", "INFO")).upper()
    if lvl not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of debug, info, warn, error, fatal")
    logger.setLevel(_LEVELS[lvl])
    return logger


class _RosoutHandler(logging.Handler):
    _ROS_LEVEL = {logging.DEBUG: 10, logging.INFO: 20, logging.WARNING: 30, logging.ERROR: 40, logging.CRITICAL: 50}

    def __init__(self, node: DdsNode):
        super().__init__()
        self.node = node

    def emit(self, record: logging.LogRecord) -> None:
        try:
            n = self.node
            sec, nsec = sec_to_sec_nsec(record.created)
            n._rosout.publish(n.registry.new(
                "rcl_interfaces/msg/Log",
                stamp=n.registry.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                level=self._ROS_LEVEL.get(record.levelno, 20), name=n.fqn.lstrip("/").replace("/", "."),
                msg=record.getMessage(), file=record.pathname, function=record.funcName, line=record.lineno))
        except Exception:
            pass


__all__ = ["DdsClient", "DdsContext", "DdsNode", "DdsPublisher", "DdsService", "DdsSubscription", "DdsTimer",
           "configure_environment", "join_request", "pad_cdr", "split_request", "unpad_cdr"]

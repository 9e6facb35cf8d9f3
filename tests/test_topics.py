"""The topic table (wm_control/ros/topics.py) is the graph: every node, started on a fake Node that records
its publishers and subscriptions (no DDS), creates exactly the table's topics with the table's types and
QoS, its config's default topic names are the table's, and docs/architecture.md shows the same table."""

import dataclasses
import inspect
import itertools
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.test_planner import toy_bundle
from wm_control.messages import registry
from wm_control.ros import qos as qosmod
from wm_control.ros import topics
from wm_control.ros.api import close_instance, config_from_params
from wm_control.ros.dds import DdsNode
from wm_control.ros.runner import NODE_TYPES, node_class

make = registry().new
BACKEND_DEFAULT = inspect.signature(DdsNode.create_publisher).parameters["qos"].default  # what no QoS argument means
DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


class _Pub:
    def publish(self, msg):
        pass


class RecordingNode:
    """Just enough of :class:`wm_control.ros.api.Node` to construct a node; records what it creates."""

    name, namespace, backend, use_sim_time = "fake", "/", "fake", False

    def __init__(self):
        self.logger = logging.getLogger("test_topics")
        self.endpoints: list[tuple[str, str, str, qosmod.QoSProfile]] = []  # (pub | sub, type, topic, QoS)
        self.services: list[tuple[str, str]] = []  # (type, name)
        self.clients: list[tuple[str, str]] = []  # (type, name)
        self.msg = make

    def create_publisher(self, typename, topic, qos=BACKEND_DEFAULT):
        self.endpoints.append(("pub", typename, topic, qosmod.profile(qos)))
        return _Pub()

    def create_subscription(self, typename, topic, callback, qos=BACKEND_DEFAULT, **kw):
        self.endpoints.append(("sub", typename, topic, qosmod.profile(qos)))

    def create_service(self, srv_type, name, callback):
        self.services.append((srv_type, name))
        return SimpleNamespace(name=name)

    def create_client(self, srv_type, name):
        self.clients.append((srv_type, name))
        return SimpleNamespace(name=name, wait_for_service=lambda timeout=0.0: False)

    def create_timer(self, period, callback):
        return SimpleNamespace(period=period, cancel=lambda: None)

    create_steady_timer = create_timer

    def now(self):
        return 1000.0

    def now_msg(self):
        return make("builtin_interfaces/msg/Time", sec=1000, nanosec=0)

    def resolve(self, topic):
        return topic


class _StubWorldModel:
    """world_model's model, for the wiring only (no visual bundle to train)."""

    frame_rate, providers, window, size = 10.0, ["CPUExecutionProvider"], 4, (64, 64)

    def __init__(self, bundle, device):
        pass


#: per node type, the configurations that between them create every topic the node can have
CONFIGS = {
    "sim_robot": [{"render": False}, {"render": False, "mode": "lockstep"}],
    "scripted_controller": [{}, {"command_interface": "trajectory"}],
    "camera_ingest": [{}, {"source": "compressed"}],
    "policy": [{"use_plan": True}, {"command_interface": "trajectory"}, {"dry_run": True},
               {"dry_run": True, "command_interface": "trajectory"}, {"bundle": "LATENT"},
               {"bundle": "GOAL_IMAGE"}],
    "planner": [{"threads": 1, "samples": 16}, {"bundle": "LATENT_PLANNER", "threads": 1, "samples": 16}],
    "world_model": [{}],
    "teleop": [{"input": "joy", "view": "topic", "joint_names": ["joint0", "joint1"]}],
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return toy_bundle(tmp_path_factory.mktemp("topics") / "bundle")


@pytest.fixture(scope="module")
def graph(bundle, tmp_path_factory):
    """node type -> the endpoints it created over its CONFIGS ("LATENT": a policy that sees the camera,
    "GOAL_IMAGE": one in the goal-image mode, "LATENT_PLANNER": a planner whose ensemble predicts the latent)."""
    from tests.test_latent_policy import GOAL_KIND, latent_bundle, latent_planner_bundle
    from wm_control.ros.nodes import world_model

    special = {"LATENT": str(latent_bundle(tmp_path_factory.mktemp("topics_latent") / "bundle")),
               "LATENT_PLANNER": str(latent_planner_bundle(tmp_path_factory.mktemp("topics_latent_planner") / "b")),
               "GOAL_IMAGE": str(latent_bundle(tmp_path_factory.mktemp("topics_goal_image") / "bundle",
                                               kind=GOAL_KIND))}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(world_model, "load_bundle", lambda path, expect_id=None: SimpleNamespace(
            joint_names=["joint0", "joint1"], id="0" * 64))
        mp.setattr(world_model, "StreamingWorldModel", _StubWorldModel)
        out = {}
        for node_type, configs in CONFIGS.items():
            cls, out[node_type] = node_class(node_type), []
            for params in configs:
                if node_type in ("policy", "planner", "world_model"):
                    params = {"bundle": str(bundle), "device": "cpu", **params}
                    params["bundle"] = special.get(params["bundle"], params["bundle"])
                node = RecordingNode()
                close_instance(cls(node, config_from_params(cls.Config, params)), node.logger)
                out[node_type] += node.endpoints + [("srv", typ, name, None) for typ, name in node.services] + \
                    [("cli", typ, name, None) for typ, name in node.clients]
    return out


def qos_text(t: topics.Topic) -> str:
    q = t.qos
    text = f"{q.reliability}, {q.durability}, " + (f"depth {q.depth}" if q.history == "keep_last" else "keep_all")
    return text + " (publishers: any QoS)" if t.any_qos else text


def doc_row(t: topics.Topic) -> list[str]:
    return [f"`{t.name}`", f"`{t.type}`", qos_text(t), ", ".join(t.publishers) or "-", ", ".join(t.subscribers) or "-"]


def hears(writer: qosmod.QoSProfile, reader: qosmod.QoSProfile) -> bool:
    """DDS request/offered matching: a reliable reader needs a reliable writer, a transient-local reader a
    transient-local writer."""
    return ((reader.reliability == "best_effort" or writer.reliability == "reliable")
            and (reader.durability == "volatile" or writer.durability == "transient_local"))


def listed(t: topics.Topic, node_type: str, kind: str) -> bool:
    names = t.publishers if kind == "pub" else t.subscribers
    return node_type in names or (kind == "pub" and topics.EVERY_NODE in names)


# ------------------------------------------------------------------------------------------
def test_the_table_is_well_formed():
    assert len(topics.BY_NAME) == len(topics.TOPICS)  # one row per name
    for t in topics.TOPICS:
        assert make(t.type) is not None  # a message type the registry knows
        assert re.fullmatch(r"(/|~/)[a-z0-9_/]+", t.name), t.name
        assert t.publishers, f"{t.name}: nobody publishes it"
    ours = set(NODE_TYPES) | {topics.EVERY_NODE}
    for t in topics.TOPICS:  # no row for a topic none of our nodes touches
        assert any(n in ours for n in t.publishers + t.subscribers), f"{t.name}: no node of ours uses it"


@pytest.mark.parametrize("node_type", sorted(NODE_TYPES))
def test_every_endpoint_of_a_node_is_the_tables(graph, node_type):
    assert node_type in CONFIGS, f"add {node_type} to CONFIGS"
    for kind, typename, name, q in graph[node_type]:
        if kind in ("srv", "cli"):
            continue  # services: test_every_service_of_a_node_is_the_tables
        t = topics.BY_NAME.get(name)
        assert t is not None, f"{node_type} {kind} {name}: not in the topic table"
        assert typename == t.type, f"{node_type} {kind} {name}: type {typename}, the table says {t.type}"
        if kind == "pub":
            assert q == t.qos, f"{node_type} publishes {name} with {q}, the table says {t.qos}"
        elif not t.any_qos:  # a reader's depth is its own buffer; what it matches must be the table's
            assert (q.reliability, q.durability) == (t.qos.reliability, t.qos.durability), \
                f"{node_type} reads {name} with {q}, the table says {t.qos}"
    for kind in ("pub", "sub"):
        made = {name for k, _, name, _ in graph[node_type] if k == kind}
        table = {t.name for t in topics.TOPICS if listed(t, node_type, kind)}
        assert made == table, f"{node_type} {kind}: the node has {sorted(made - table)} beyond the table, " \
                              f"lacks {sorted(table - made)}"


@pytest.mark.parametrize("node_type", sorted(NODE_TYPES))
def test_every_service_of_a_node_is_the_tables(graph, node_type):
    made = {(typ, name) for k, typ, name, _ in graph[node_type] if k == "srv"}
    table = {(s.type, s.name) for s in topics.SERVICES if node_type in s.servers}
    assert made == table, f"{node_type} serves {sorted(made - table)} beyond the table, lacks {sorted(table - made)}"
    called = {(typ, name) for k, typ, name, _ in graph[node_type] if k == "cli"}
    table = {(s.type, s.name) for s in topics.SERVICES if node_type in s.clients}
    assert called == table, f"{node_type} calls {sorted(called - table)} beyond the table, lacks {sorted(table - called)}"


def test_a_service_name_is_not_a_topic_name():
    """Legal in ROS 2 (services live in rq/rr), but a remap of the name would move both: kept apart."""
    assert not set(topics.SERVICES_BY_NAME) & set(topics.BY_NAME)
    for s in topics.SERVICES:
        assert make(s.type + "_Request") is not None and make(s.type + "_Response") is not None
    text = DOC.read_text()
    for s in topics.SERVICES:
        assert f"`{s.name}`" in text, f"docs/architecture.md does not name the service {s.name}"


# readers of an any-QoS topic: (node type, topic)
ANY_QOS_READERS = [(n, t.name) for t in topics.TOPICS if t.any_qos for n in t.subscribers if n in NODE_TYPES]


@pytest.mark.parametrize("node_type,name", ANY_QOS_READERS)
def test_readers_of_an_any_qos_topic_hear_every_publisher(graph, node_type, name):
    readers = [q for k, _, n, q in graph[node_type] if k == "sub" and n == name]
    assert readers
    for rel, dur in itertools.product(("reliable", "best_effort"), ("volatile", "transient_local")):
        writer = qosmod.QoSProfile(rel, dur, 1)
        assert any(hears(writer, r) for r in readers), f"{node_type} does not hear a {rel} {dur} publisher of {name}"


@pytest.mark.parametrize("node_type", sorted(NODE_TYPES))
def test_config_default_topic_names_are_the_tables(graph, node_type):
    cls = node_class(node_type)
    fields = [f for f in dataclasses.fields(cls.Config) if f.name.endswith("_topic")]
    for f in fields:
        t = topics.BY_NAME.get(f.default)
        assert t is not None, f"{node_type}.{f.name} defaults to {f.default!r}, not a topic of the table"
        assert any(name == f.default and typename == t.type for _, typename, name, _ in graph[node_type]), \
            f"{node_type} never uses its {f.name} {f.default!r} as a {t.type}"
    if node_type == "camera_ingest":
        assert cls.Config(source="compressed").input_topic == topics.CAMERA_COMPRESSED.name


def test_the_doc_topic_table_is_this_table():
    text = DOC.read_text()
    assert "### Topics" in text, "docs/architecture.md has no '### Topics' section"
    section = text.split("### Topics", 1)[1].splitlines()
    start = next(i for i, ln in enumerate(section) if ln.startswith("|"))
    end = next((i for i in range(start, len(section)) if not section[i].startswith("|")), len(section))
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in section[start + 2:end]]  # header, rule
    expected = [doc_row(t) for t in topics.TOPICS]
    assert rows == expected, "docs/architecture.md's topic table differs from wm_control/ros/topics.py:\n" + \
        "\n".join("| " + " | ".join(r) + " |" for r in expected)

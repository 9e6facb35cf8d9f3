"""``wm-control topic|node|param``: a running graph from the command line, as ``ros2 topic``,
``ros2 node`` and ``ros2 param`` show it, without ROS installed (the dds backend) or on it (rclpy).

The tool is a hidden node of its own (``/_wm_control_cli_<pid>``, left out of what it shows) that reads
discovery (:mod:`wm_control.ros.introspect`): a topic's type comes from its publishers, so ``echo`` and
``hz`` need no type; a topic with no publisher within ``--wait`` s (2 s) is a one-line error. ``echo``,
``hz`` and ``pub`` run until their count or duration, or until Ctrl-C / SIGTERM, which ends them cleanly
(exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from typing import Any, Iterator

from wm_control.cli.flags import choose
from wm_control.errors import UserError

WAIT = 2.0
"""Seconds to wait for discovery to show what a verb needs (a topic's publisher, a node's services)."""


# ------------------------------------------------------------------------------------------
# Plumbing
# ------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse whose complaint is one line (a UserError), as every verb's."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (`{self.prog} --help` lists the arguments)")


def _parser(prog: str, description: str) -> _Parser:
    return _Parser(prog=prog, description=description)


class _Stop:
    """Ctrl-C and SIGTERM set a flag (and stop the node's spinning) instead of raising in the middle
    of a DDS call: the loops check it and end cleanly."""

    def __init__(self) -> None:
        self.set = False
        self.node: Any = None
        self._old: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.set

    def _handle(self, signum: int, frame: Any) -> None:
        self.set = True
        if self.node is not None:
            self.node.shutdown()

    def __enter__(self) -> "_Stop":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (tests calling cmd_* from a thread)
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _cli_node(stop: _Stop | None = None) -> Iterator[Any]:
    """The tool's own hidden node, on the backend ``--backend`` / ``WM_BACKEND`` chose."""
    from wm_control.ros.api import make_node

    node = make_node(f"_wm_control_cli_{os.getpid()}")
    if stop is not None:
        stop.node = node
    try:
        yield node
    finally:
        with contextlib.suppress(Exception):
            node.destroy()


def _topic_name(name: str) -> str:
    if not name or name.strip("/") == "":
        raise UserError(f"{name!r} is not a topic name (e.g. /joint_states)")
    return name if name.startswith("/") else "/" + name


def _full_type(typ: str) -> str:
    """``std_msgs/String`` -> ``std_msgs/msg/String`` (as ros2 accepts both)."""
    parts = typ.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else typ


def _check_type(node: Any, typ: str, topic: str) -> None:
    reg = getattr(node, "registry", None)
    if reg is not None and not reg.has(typ):
        raise UserError(f"{topic} is of type {typ}, which wm_control does not know (it knows the ROS "
                        f"{reg.distro} message packages and its own)")


def _dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, default=str)
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=1 << 16).rstrip("\n") + "\n---"


def _print(text: str) -> None:
    print(text, flush=True)


def _publisher_wait(node: Any, topic: str, wait: float, stop: _Stop) -> Any:
    """The graph once ``topic`` has a publisher (UserError after ``wait`` s without one)."""
    from wm_control.ros.introspect import GraphWatcher

    g = GraphWatcher(node).wait(lambda g: bool(g.publishers(topic)), wait, stop)
    if not g.publishers(topic) and not stop():
        raise UserError(f"no publisher of {topic} seen in {wait:.1f} s (`wm-control topic list` shows the "
                        "topics being published)")
    return g


def _topic_and_type(node: Any, topic: str, typ: str | None, wait: float, stop: _Stop) -> tuple[str, Any]:
    """(type, a subscription QoS that matches the publishers) of ``topic``, from discovery."""
    from wm_control.ros import qos as qosmod
    from wm_control.ros.introspect import matching_qos, topic_type

    if typ:  # given: subscribe at once with the default QoS, whoever publishes
        from wm_control.ros.introspect import GraphWatcher

        g = GraphWatcher(node).wait(lambda g: bool(g.publishers(topic)), min(wait, 0.5), stop)
        return _full_type(typ), matching_qos(g, topic) if g.publishers(topic) else qosmod.DEFAULT
    g = _publisher_wait(node, topic, wait, stop)
    if stop():
        return "", qosmod.DEFAULT
    try:
        return topic_type(g, topic), matching_qos(g, topic)
    except ValueError as exc:
        raise UserError(f"{exc}; give the type: topic echo {topic} TYPE") from None


# ------------------------------------------------------------------------------------------
# topic
# ------------------------------------------------------------------------------------------
TOPIC_VERBS = {
    "list": "the topics (-t: with their types)",
    "info": "a topic's type and how many publish / subscribe to it",
    "echo": "print a topic's messages (YAML, or --json lines)",
    "pub": "publish a message given as YAML: pub TOPIC TYPE 'data: 1.0' [--once | -r HZ] [-n N]",
    "hz": "a topic's publishing rate",
}


def cmd_topic(argv: list[str]) -> int:
    sub, rest = choose("wm-control topic", argv, TOPIC_VERBS)
    return {"list": _topic_list, "info": _topic_info, "echo": _topic_echo, "pub": _topic_pub,
            "hz": _topic_hz}[sub](rest)


def _topic_list(argv: list[str]) -> int:
    from wm_control.ros.introspect import hidden, read_graph

    ap = _parser("wm-control topic list", "The topics discovery finds, as `ros2 topic list`.")
    ap.add_argument("-t", "--show-types", action="store_true", help="each topic's type(s)")
    ap.add_argument("-c", "--count-topics", action="store_true", help="only how many")
    ap.add_argument("-a", "--include-hidden-topics", action="store_true", help="topics with a part starting '_'")
    ap.add_argument("--json", action="store_true", help="a JSON object topic -> types")
    ap.add_argument("--wait", type=float, default=1.5, help="seconds of discovery (default 1.5)")
    a = ap.parse_args(argv)
    with _cli_node() as node:
        topics = read_graph(node, a.wait).topics()
    topics = {t: v for t, v in topics.items() if a.include_hidden_topics or not hidden(t)}
    if a.count_topics:
        _print(str(len(topics)))
    elif a.json:
        _print(json.dumps(topics, indent=2))
    else:
        for t, types in topics.items():
            _print(f"{t} [{', '.join(types)}]" if a.show_types else t)
    return 0


def _topic_info(argv: list[str]) -> int:
    from wm_control.ros.introspect import read_graph

    ap = _parser("wm-control topic info", "A topic's type, publishers and subscribers, as `ros2 topic info`.")
    ap.add_argument("topic")
    ap.add_argument("--wait", type=float, default=1.5, help="seconds of discovery (default 1.5)")
    a = ap.parse_args(argv)
    topic = _topic_name(a.topic)
    with _cli_node() as node:
        g = read_graph(node, a.wait)
    types = g.topics().get(topic)
    if not types:
        raise UserError(f"topic {topic} not found in {a.wait:.1f} s of discovery")
    _print(f"Type: {', '.join(types)}\nPublisher count: {len(g.publishers(topic))}\n"
           f"Subscription count: {len(g.subscribers(topic))}")
    return 0


def _select(value: Any, field: str | None) -> Any:
    if not field:
        return value
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            value = value[int(part)]
        else:
            raise UserError(f"the message has no field {field!r}")
    return value


def _topic_echo(argv: list[str]) -> int:
    from wm_control.ros.introspect import msg_to_dict, truncate

    ap = _parser("wm-control topic echo", "Print a topic's messages, as `ros2 topic echo` (type from discovery).")
    ap.add_argument("topic")
    ap.add_argument("type", nargs="?", help="the message type (default: the publishers')")
    ap.add_argument("--once", action="store_true", help="one message, then exit")
    ap.add_argument("-n", "--times", type=int, default=0, help="this many messages, then exit")
    ap.add_argument("--json", action="store_true", help="one JSON object per message and line")
    ap.add_argument("--field", help="only this field of each message (a.b.0)")
    ap.add_argument("--truncate-length", type=int, default=128, help="cut longer arrays and strings (0: never)")
    ap.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (0: never)")
    ap.add_argument("--wait", type=float, default=WAIT, help="seconds to wait for a publisher (default 2)")
    a = ap.parse_args(argv)
    topic, limit = _topic_name(a.topic), (1 if a.once else max(0, a.times))
    got: list[Any] = []
    with _Stop() as stop, _cli_node(stop) as node:
        typ, qos = _topic_and_type(node, topic, a.type, a.wait, stop)
        if stop():
            return 0
        _check_type(node, typ, topic)
        node.create_subscription(typ, topic, got.append, qos)
        end = time.monotonic() + a.timeout if a.timeout > 0 else math.inf
        shown = 0
        try:
            while not stop() and (not limit or shown < limit) and time.monotonic() < end:
                node.spin_once(0.1)
                while got and (not limit or shown < limit):
                    value = truncate(_select(msg_to_dict(got.pop(0)), a.field), a.truncate_length)
                    _print(_dump(value, "json" if a.json else "yaml"))
                    shown += 1
        except BrokenPipeError:  # `| head`
            with contextlib.suppress(Exception):
                sys.stdout = open(os.devnull, "w")
            return 0
        if a.timeout > 0 and not shown and not stop():
            raise UserError(f"no message on {topic} in {a.timeout:g} s")
    return 0


def _topic_pub(argv: list[str]) -> int:
    import yaml

    from wm_control.ros import qos as qosmod

    ap = _parser("wm-control topic pub", "Publish a message given as YAML, as `ros2 topic pub`.")
    ap.add_argument("topic")
    ap.add_argument("type", help="the message type: std_msgs/msg/Float64 (or std_msgs/Float64)")
    ap.add_argument("values", nargs="?", default="{}", help="the message as YAML: '{data: 1.0}' "
                    "(fields left out keep their defaults; a header 'auto' / a stamp 'now' get the time)")
    ap.add_argument("-r", "--rate", type=float, default=1.0, help="messages per second (default 1)")
    ap.add_argument("--once", action="store_true", help="one message, then exit")
    ap.add_argument("-n", "-t", "--times", type=int, default=0, help="this many messages, then exit")
    ap.add_argument("-w", "--wait-matching-subscriptions", type=int, default=None,
                    help="first wait for this many subscribers (default: 1 with --once / -n, else 0)")
    ap.add_argument("--qos", default="default", choices=sorted(qosmod.PROFILES), help="QoS profile (default: default)")
    ap.add_argument("-p", "--print", type=int, default=1, help="print every N-th message published (0: none)")
    a = ap.parse_args(argv)
    topic, typ = _topic_name(a.topic), _full_type(a.type)
    count = 1 if a.once else max(0, a.times)
    if not a.rate > 0:
        raise UserError(f"--rate must be > 0, got {a.rate}")
    try:
        values = yaml.safe_load(a.values)
    except yaml.YAMLError as exc:
        raise UserError(f"the message is not YAML: {' '.join(str(exc).split())}") from None
    wait_subs = a.wait_matching_subscriptions if a.wait_matching_subscriptions is not None else (1 if count else 0)
    with _Stop() as stop, _cli_node(stop) as node:
        make = _message_maker(node, typ, values)
        make()  # a bad message is an error before anything is published
        pub = node.create_publisher(typ, topic, a.qos)
        if wait_subs > 0 and pub.matched() < wait_subs:
            print(f"Waiting for at least {wait_subs} matching subscription(s)...", file=sys.stderr, flush=True)
            from wm_control.ros.introspect import GraphWatcher

            watcher, checked = GraphWatcher(node), time.monotonic() + 1.0
            while not stop() and pub.matched() < wait_subs:
                node.spin_once(0.05)
                if checked and time.monotonic() > checked:  # a subscriber of another type never matches
                    others = set(watcher.poll().topics().get(topic, [])) - {typ}
                    if others:
                        raise UserError(f"{topic} is of type {', '.join(sorted(others))} in this graph, not {typ}")
                    checked = time.monotonic() + 1.0
        _print("publisher: beginning loop")
        sent, period = 0, 1.0 / a.rate
        next_t = time.monotonic()
        while not stop() and (not count or sent < count):
            msg = make()
            pub.publish(msg)
            sent += 1
            if a.print > 0 and (sent - 1) % a.print == 0:
                from wm_control.ros.introspect import msg_to_dict

                _print(f"publishing #{sent}: {json.dumps(msg_to_dict(msg), default=str)}")
            if count and sent >= count:
                break
            next_t += period
            while not stop() and (left := next_t - time.monotonic()) > 0:
                node.spin_once(min(left, 0.1))
            if time.monotonic() - next_t > period:  # fell behind (a slow machine): keep the rate, skip ticks
                next_t = time.monotonic()
        _flush(node, pub)
    return 0


def _message_maker(node: Any, typ: str, values: Any) -> Any:
    """A function making the message to publish (each call: ``now`` stamps get the time of the call)."""
    from wm_control.ros.introspect import dict_to_msg, dict_to_rclpy_msg

    if getattr(node, "backend", "dds") == "rclpy":
        def make_rclpy() -> Any:
            try:
                return dict_to_rclpy_msg(node, typ, values)
            except (ValueError, ImportError, AttributeError) as exc:
                raise UserError(f"bad {typ}: {exc}") from None
        return make_rclpy

    def make() -> Any:
        try:
            return dict_to_msg(node.registry, typ, values, now=node.now_msg)
        except ValueError as exc:
            raise UserError(f"bad {typ}: {exc}") from None
    return make


def _flush(node: Any, pub: Any) -> None:
    """Let the last reliable messages reach their subscribers before the process (and its writer) goes."""
    writer = getattr(pub, "_writer", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.wait_for_acks(int(1e9))
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        node.spin_once(0.05)


def _topic_hz(argv: list[str]) -> int:
    ap = _parser("wm-control topic hz", "A topic's publishing rate, as `ros2 topic hz` (reception times).")
    ap.add_argument("topic")
    ap.add_argument("-w", "--window", type=int, default=10000, help="over the last N messages (default 10000)")
    ap.add_argument("-n", "--times", type=int, default=0, help="this many reports (one a second), then exit")
    ap.add_argument("-d", "--duration", type=float, default=0.0, help="measure this many seconds, report, exit")
    ap.add_argument("--json", action="store_true", help="each report as a JSON line")
    ap.add_argument("--wait", type=float, default=WAIT, help="seconds to wait for a publisher (default 2)")
    a = ap.parse_args(argv)
    if a.window < 2:
        raise UserError(f"--window must be at least 2, got {a.window}")
    topic = _topic_name(a.topic)
    stamps: list[float] = []
    reports = 0

    def on_msg(_m: Any) -> None:
        stamps.append(time.monotonic())
        if len(stamps) > a.window + 1:
            del stamps[:len(stamps) - a.window - 1]

    def report() -> bool:
        if len(stamps) < 2:
            return False
        gaps = [b - x for x, b in zip(stamps, stamps[1:])]
        mean = sum(gaps) / len(gaps)
        std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
        r = {"topic": topic, "rate": 1.0 / mean if mean > 0 else 0.0, "min": min(gaps), "max": max(gaps),
             "std_dev": std, "window": len(gaps) + 1}
        if a.json:
            _print(json.dumps(r))
        else:
            _print(f"average rate: {r['rate']:.3f}\n\tmin: {r['min']:.3f}s max: {r['max']:.3f}s "
                   f"std dev: {std:.5f}s window: {r['window']}")
        return True

    with _Stop() as stop, _cli_node(stop) as node:
        typ, qos = _topic_and_type(node, topic, None, a.wait, stop)
        if stop():
            return 0
        _check_type(node, typ, topic)
        node.create_subscription(typ, topic, on_msg, qos, raw=True)
        start = time.monotonic()
        end = start + a.duration if a.duration > 0 else math.inf
        next_report = start + 1.0
        while not stop() and time.monotonic() < end and (not a.times or reports < a.times):
            node.spin_once(min(0.1, max(0.0, min(end, next_report) - time.monotonic())))
            if time.monotonic() >= next_report and a.duration <= 0:
                next_report += 1.0
                reports += report()
        if a.duration > 0 or stop():
            if not report() and not stop():
                raise UserError(f"fewer than two messages on {topic} in {a.duration:g} s")
    return 0


# ------------------------------------------------------------------------------------------
# node
# ------------------------------------------------------------------------------------------
NODE_VERBS = {"list": "the nodes (-a: hidden ones too)", "info": "a node's publishers, subscribers and services"}


def cmd_node(argv: list[str]) -> int:
    from wm_control.ros.introspect import hidden, node_fqn, read_graph

    sub, rest = choose("wm-control node", argv, NODE_VERBS)
    if sub == "list":
        ap = _parser("wm-control node list", "The nodes discovery finds, as `ros2 node list`.")
        ap.add_argument("-a", "--all", action="store_true", help="hidden nodes (a name part starting '_') too")
        ap.add_argument("-c", "--count-nodes", action="store_true", help="only how many")
        ap.add_argument("--wait", type=float, default=1.5, help="seconds of discovery (default 1.5)")
        a = ap.parse_args(rest)
        with _cli_node() as node:
            names = sorted(n for n in read_graph(node, a.wait).nodes if a.all or not hidden(n))
        _print(str(len(names)) if a.count_nodes else "\n".join(names))
        return 0
    ap = _parser("wm-control node info", "A node's endpoints, as `ros2 node info`.")
    ap.add_argument("node")
    ap.add_argument("--wait", type=float, default=1.5, help="seconds of discovery (default 1.5)")
    a = ap.parse_args(rest)
    fqn = node_fqn(a.node)
    with _cli_node() as node:
        g = read_graph(node, a.wait)
    if fqn not in g.nodes:
        raise UserError(f"node {fqn} not found in {a.wait:.1f} s of discovery (`wm-control node list`)")
    info = g.node_info(fqn)
    lines = [fqn]
    for key, title in (("subscribers", "Subscribers"), ("publishers", "Publishers"),
                       ("services", "Service Servers"), ("clients", "Service Clients")):
        lines.append(f"  {title}:")
        lines += [f"    {t}: {typ}" for t, typ in info[key].items()]
    _print("\n".join(lines))
    return 0


# ------------------------------------------------------------------------------------------
# param
# ------------------------------------------------------------------------------------------
PARAM_VERBS = {"list": "a node's parameter names (every node's without NODE)", "get": "one parameter's value",
               "set": "set one (the value's type from YAML: 3 is an integer, 3.0 a double)",
               "describe": "a parameter's type, description and constraints"}
_KINDS = {1: "Boolean", 2: "Integer", 3: "Double", 4: "String", 5: "Byte", 6: "Boolean", 7: "Integer",
          8: "Double", 9: "String"}


def cmd_param(argv: list[str]) -> int:
    sub, rest = choose("wm-control param", argv, PARAM_VERBS)
    ap = _parser(f"wm-control param {sub}", f"{PARAM_VERBS[sub][0].upper()}{PARAM_VERBS[sub][1:]}, as "
                 f"`ros2 param {sub}`.")
    ap.add_argument("node", nargs="?" if sub == "list" else None)
    if sub != "list":
        ap.add_argument("name")
    if sub == "set":
        ap.add_argument("value", help="YAML: true, 3, 3.0, text, [1.0, 2.0]")
    if sub == "get":
        ap.add_argument("--hide-type", action="store_true", help="only the value")
    ap.add_argument("--timeout", type=float, default=WAIT, help="seconds to wait for the node (default 2)")
    a = ap.parse_args(rest)
    with _cli_node() as node:
        try:
            return _param(node, sub, a)
        except LookupError as exc:  # the node is not there (KeyError: no such parameter, handled below)
            if isinstance(exc, KeyError):
                raise UserError(f"node {a.node} has no parameter {exc.args[0]!r} (`wm-control param list "
                                f"{a.node}`)") from None
            raise UserError(str(exc)) from None


def _param(node: Any, sub: str, a: argparse.Namespace) -> int:
    from wm_control.ros import params as P
    from wm_control.ros.introspect import ParamClient, hidden, read_graph

    if sub == "list":
        if a.node:
            _print("\n".join(f"  {n}" for n in ParamClient(node, a.node, a.timeout).list()))
            return 0
        g = read_graph(node, 1.5)
        for fqn in sorted(n for n in g.nodes if not hidden(n)):
            known = g.nodes[fqn]["readers"] or g.nodes[fqn]["writers"]  # (the dds backend knows each node's)
            if known and f"{fqn}/list_parameters" not in g.node_info(fqn)["services"]:
                continue  # a node without parameter services
            try:
                names = ParamClient(node, fqn, a.timeout).list()
            except LookupError:  # a node without parameter services
                continue
            _print(f"{fqn}:\n" + "\n".join(f"  {n}" for n in names))
        return 0
    client = ParamClient(node, a.node, a.timeout)
    if sub == "get":
        ptype, value = client.get(a.name)
        text = str(value) if not isinstance(value, list) else json.dumps(value)
        if a.hide_type:
            _print(text)
        elif ptype == P.NOT_SET:
            _print("Parameter not set.")
        else:
            _print(f"{_KINDS[ptype]} value{'s are' if ptype >= P.BYTE_ARRAY else ' is'}: {text}")
        return 0
    if sub == "describe":
        d = client.describe(a.name)
        lines = [f"Parameter name: {d.name}", f"  Type: {P.TYPE_NAMES[int(d.type)]}"]
        if d.description:
            lines.append(f"  Description: {d.description}")
        lines += ["  Constraints:", f"    Read only: {str(bool(d.read_only)).lower()}",
                  f"    Dynamic typing: {str(bool(d.dynamic_typing)).lower()}"]
        _print("\n".join(lines))
        return 0
    import yaml

    try:
        value = yaml.safe_load(a.value)
    except yaml.YAMLError:
        value = a.value  # as ros2: what is not YAML is a string
    if value is not None and P.value_type(value) == P.NOT_SET:
        raise UserError(f"{a.value!r} is no parameter value: give a bool, integer, double, string, or a list "
                        "of one of these (e.g. [1.0, 2.0])")
    ok, reason = client.set(a.name, value)
    if not ok:
        raise UserError(f"setting parameter failed: {reason or 'refused by the node'}")
    _print("Set parameter successful")
    return 0

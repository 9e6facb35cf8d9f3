"""The ROS 2 command line (``--ros-args ...``), the ROS params YAML, and name resolution.

Pure functions: parse what ``ros2 run`` / ``launch_ros`` hand a node, so our executables accept the
same arguments on both backends. Errors are :class:`RosArgsError` with a message that says what is
wrong and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC_TOKEN_RE = re.compile(r"^(~|[A-Za-z_][A-Za-z0-9_]*|\{node\}|\{ns\})$")


class RosArgsError(ValueError):
    """A bad command line, params file or name."""


@dataclass
class RosArgs:
    node_name: str | None = None
    namespace: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # name -> value, later wins
    params_files: list[str] = field(default_factory=list)
    remaps: dict[str, str] = field(default_factory=dict)  # from -> to (topic names, unresolved)
    log_level: str | None = None
    user_args: list[str] = field(default_factory=list)  # arguments outside --ros-args

    def resolved_params(self, node_name: str, namespace: str) -> dict[str, Any]:
        """Parameters for a node: params files in order (wildcard then node keys), then ``-p``."""
        out: dict[str, Any] = {}
        for f in self.params_files:
            out.update(load_params_file(f, node_name, namespace))
        out.update(self.params)
        return out


def parse_value(text: str) -> Any:
    """A ``-p name:=value`` value, typed the way ROS does it (YAML scalar / list)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RosArgsError(f"cannot parse parameter value {text!r}: {exc}") from None
    if value is None and text.strip() not in ("", "~", "null"):
        return text
    return value


def parse_ros_args(argv: list[str]) -> RosArgs:
    """Parse ``[user args] --ros-args [-p n:=v] [-r a:=b] [--params-file F] [--log-level L] [--]``."""
    out = RosArgs()
    i = 0
    in_ros = False
    while i < len(argv):
        a = argv[i]
        if a == "--ros-args":
            in_ros = True
            i += 1
            continue
        if not in_ros:
            out.user_args.append(a)
            i += 1
            continue
        if a == "--":
            in_ros = False
            i += 1
            continue
        if a in ("-p", "--param", "-r", "--remap", "--params-file", "--log-level"):
            if i + 1 >= len(argv):
                raise RosArgsError(f"{a} needs an argument")
            val = argv[i + 1]
            i += 2
            if a in ("-p", "--param"):
                if ":=" not in val:
                    raise RosArgsError(f"-p expects name:=value, got {val!r}")
                name, raw = val.split(":=", 1)
                if not name:
                    raise RosArgsError(f"-p expects name:=value, got {val!r}")
                out.params[name] = parse_value(raw)
            elif a in ("-r", "--remap"):
                if ":=" not in val:
                    raise RosArgsError(f"-r expects from:=to, got {val!r}")
                src, dst = val.split(":=", 1)
                if ":" in src and not src.startswith(("__", "/", "~")):
                    # node-specific remap "node:from:=to": keep only the rule part
                    src = src.split(":", 1)[1]
                if src == "__node" or src == "__name":
                    validate_node_name(dst)
                    out.node_name = dst
                elif src == "__ns":
                    out.namespace = normalize_namespace(dst)
                elif not src or not dst:
                    raise RosArgsError(f"-r expects from:=to, got {val!r}")
                else:
                    out.remaps[src] = dst
            elif a == "--params-file":
                if not Path(val).is_file():
                    raise RosArgsError(f"params file {val!r} does not exist")
                out.params_files.append(val)
            else:
                out.log_level = val.upper().split(":")[-1]
            continue
        if a.startswith("--enclave") or a == "-e":
            i += 2
            continue
        if a in ("--disable-rosout-logs", "--disable-stdout-logs", "--disable-external-lib-logs"):
            i += 1
            continue
        raise RosArgsError(f"unknown ROS argument {a!r} (expected -p, -r, --params-file, --log-level)")
    return out


def validate_node_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise RosArgsError(f"invalid node name {name!r}: letters, digits and _ only, not starting with a digit")


def normalize_namespace(ns: str) -> str:
    if not ns or ns == "/":
        return "/"
    if not ns.startswith("/"):
        ns = "/" + ns
    ns = ns.rstrip("/")
    for tok in ns.split("/")[1:]:
        if not _NAME_RE.match(tok):
            raise RosArgsError(f"invalid namespace {ns!r}: bad token {tok!r}")
    return ns


def resolve_topic(name: str, node_name: str, namespace: str, remaps: dict[str, str] | None = None) -> str:
    """Fully qualified topic name per the ROS 2 name rules, after remapping.

    ``foo`` -> ``/ns/foo``, ``~/foo`` -> ``/ns/node/foo``, ``/foo`` stays. Remap rules match either
    the name as written or the resolved name (both forms are accepted by ROS 2).
    """
    namespace = normalize_namespace(namespace)
    remaps = remaps or {}

    def expand(n: str) -> str:
        n = n.replace("{node}", node_name).replace("{ns}", namespace.strip("/"))
        if n.startswith("~"):
            base = (namespace.rstrip("/") + "/" + node_name)
            n = base + n[1:]
        elif not n.startswith("/"):
            n = namespace.rstrip("/") + "/" + n
        if n != "/" and n.endswith("/"):
            raise RosArgsError(f"invalid topic name {name!r}: must not end with '/'")
        for tok in n.split("/")[1:]:
            if not _NAME_RE.match(tok):
                raise RosArgsError(f"invalid topic name {name!r}: bad token {tok!r}")
        return n

    if not name:
        raise RosArgsError("empty topic name")
    resolved = expand(name)
    for src, dst in remaps.items():
        if src == name or expand(src) == resolved:
            return expand(dst)
    return resolved


def _match_node_key(key: str, node_name: str, namespace: str) -> bool:
    """Does a params-YAML top-level key address this node? (``/**``, ``node``, ``/ns/node``, globs)."""
    if key in ("/**", "**"):
        return True
    fq = (namespace.rstrip("/") + "/" + node_name)
    pattern = key if key.startswith("/") else None
    if pattern is None:
        return key == node_name or key == fq.lstrip("/")
    regex = "^" + re.escape(pattern).replace(r"/\*\*", "(/[^/]+)*").replace(r"\*", "[^/]*") + "$"
    return re.match(regex, fq) is not None


def _flatten(prefix: str, d: dict, out: dict) -> None:
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            _flatten(name, v, out)
        else:
            out[name] = v


def load_yaml(path: str | Path, what: str) -> Any:
    """``yaml.safe_load`` of a file, with errors that name the file and what it is."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise RosArgsError(f"cannot read {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise RosArgsError(f"{what} {path} is not valid YAML: {exc}") from None


def load_params_file(path: str | Path, node_name: str, namespace: str = "/") -> dict[str, Any]:
    """Parameters for one node from a ROS 2 params YAML (``<node>: ros__parameters: {...}``).

    Wildcard sections apply first, then sections naming the node, so the specific wins.
    Nested dicts flatten to dotted names as in ROS 2.
    """
    data = load_yaml(path, "params file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RosArgsError(f"params file {path}: top level must be a mapping of node names")
    wild: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    for key, section in data.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise RosArgsError(
                f"params file {path}: section {key!r} must contain 'ros__parameters:' "
                f"(format: <node or /**>: ros__parameters: {{name: value}})")
        params = section["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise RosArgsError(f"params file {path}: {key}.ros__parameters must be a mapping")
        if _match_node_key(str(key), node_name, namespace):
            flat: dict[str, Any] = {}
            _flatten("", params, flat)
            (wild if "*" in str(key) else specific).update(flat)
    return {**wild, **specific}

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
    node_params: list[tuple[str, str, Any]] = field(default_factory=list)  # -p node:name:=value
    params_files: list[str] = field(default_factory=list)
    remaps: dict[str, str] = field(default_factory=dict)  # from -> to (topic names, unresolved)
    log_level: str | None = None
    enclave: str | None = None  # SROS2 security enclave (--enclave)
    user_args: list[str] = field(default_factory=list)  # arguments outside --ros-args

    def resolved_params(self, node_name: str, namespace: str) -> dict[str, Any]:
        """Parameters for a node: params files in order (wildcard then node keys), then ``-p``, then
        ``-p node:name:=value`` for this node. Launcher-only keys (``node_type``, ``launch.*``) are left out."""
        out: dict[str, Any] = {}
        for f in self.params_files:
            out.update(load_params_file(f, node_name, namespace))
        out.update(self.params)
        for key, name, value in self.node_params:
            if _match_node_key(key, node_name, namespace):
                out[name] = value
        return {k: v for k, v in out.items() if not is_launcher_param(k)}


#: keys of a node's ros__parameters that only the launcher reads (ROS keeps them as undeclared overrides)
LAUNCH_PREFIX = "launch"
LAUNCHER_PARAMS = ("node_type",)


def is_launcher_param(name: str) -> bool:
    """``node_type`` and ``launch.*``: read by ``wm-control launch``, never declared by a node."""
    return name in LAUNCHER_PARAMS or name == LAUNCH_PREFIX or name.startswith(LAUNCH_PREFIX + ".")


def split_param_rule(rule: str) -> tuple[str | None, str, str]:
    """``[node:]name:=value`` (as rcl parses ``-p``) -> (node or None, name, raw value)."""
    if ":=" not in rule:
        raise RosArgsError(f"-p expects name:=value or node:name:=value, got {rule!r}")
    lhs, raw = rule.split(":=", 1)
    node, colon, name = lhs.rpartition(":")
    if not name or (colon and not node):
        raise RosArgsError(f"-p expects name:=value or node:name:=value, got {rule!r}")
    return (node if colon else None), name, raw


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
                node, name, raw = split_param_rule(val)
                if node is None:
                    out.params[name] = parse_value(raw)
                else:  # node-specific, as rcl: applies only to the node that key names
                    out.node_params.append((node, name, parse_value(raw)))
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
        if a in ("--enclave", "-e") or a.startswith("--enclave="):
            if "=" in a:
                out.enclave, i = a.split("=", 1)[1], i + 1
            elif i + 1 < len(argv):
                out.enclave, i = argv[i + 1], i + 2
            else:
                raise RosArgsError(f"{a} needs an enclave name (e.g. --enclave /wm_control/policy)")
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


def match_node_key(key: str, node_name: str, namespace: str = "/") -> bool:
    """Does a params-YAML key (or the node part of ``-p node:name:=value``) address this node?"""
    return _match_node_key(key, node_name, namespace)


def load_yaml(path: str | Path, what: str) -> Any:
    """``yaml.safe_load`` of a file, with one-line errors that name the file, what it is and where."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise RosArgsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RosArgsError(f"{what} {path} is not valid YAML{where}: {problem}") from None


def params_sections(path: str | Path, what: str = "params file") -> dict[str, dict[str, Any]]:
    """The sections of a ROS 2 params YAML, checked as rcl checks them: ``{key: ros__parameters}``.

    Every top-level key names a node (or a ``/**``-style pattern) and holds exactly one key,
    ``ros__parameters``, a mapping; anything else (a typo such as ``paramters:``) is an error.
    """
    data = load_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RosArgsError(f"{what} {path}: top level must be a mapping of node names "
                           f"(format: <node or /**>: ros__parameters: {{name: value}})")
    out: dict[str, dict[str, Any]] = {}
    for key, section in data.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise RosArgsError(
                f"{what} {path}: section {key!r} must contain 'ros__parameters:' "
                f"(format: <node or /**>: ros__parameters: {{name: value}})")
        extra = [str(k) for k in section if k != "ros__parameters"]
        if extra:
            raise RosArgsError(
                f"{what} {path}: section {key!r} has {', '.join(repr(k) for k in extra)} beside "
                f"'ros__parameters'; only 'ros__parameters' is allowed there (put parameters under it)")
        params = section["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise RosArgsError(f"{what} {path}: {key}.ros__parameters must be a mapping")
        out[str(key)] = params
    return out


def load_params_file(path: str | Path, node_name: str, namespace: str = "/") -> dict[str, Any]:
    """Parameters for one node from a ROS 2 params YAML (``<node>: ros__parameters: {...}``).

    Wildcard sections apply first, then sections naming the node, so the specific wins.
    Nested dicts flatten to dotted names as in ROS 2.
    """
    wild: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    for key, params in params_sections(path, "params file").items():
        if _match_node_key(key, node_name, namespace):
            flat: dict[str, Any] = {}
            _flatten("", params, flat)
            (wild if "*" in key else specific).update(flat)
    return {**wild, **specific}


def flatten_params(params: dict[str, Any]) -> dict[str, Any]:
    """Nested mappings -> dotted names, as ROS 2 reads a params YAML."""
    out: dict[str, Any] = {}
    _flatten("", params, out)
    return out

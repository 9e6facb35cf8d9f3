"""Message definitions: one source of truth, the ``.msg`` / ``.srv`` text.

Standard ROS 2 message types come from the ``rosbags`` typestores (Humble or Jazzy definitions); our
own types are parsed from the ``.msg`` files in ``msg/`` at run time, so adding a file there is all it
takes. The typestores hold no services: the standard ``.srv`` texts we use are shipped in
``interfaces/<pkg>/srv/`` and each registers its two halves as the message types ROS 2 generates,
``pkg/srv/Name_Request`` and ``pkg/srv/Name_Response``; the standard ``.msg`` texts they use are shipped
beside them in ``interfaces/<pkg>/msg/`` (lifecycle_msgs), registered first (a text that differs from the
distro's own definition is refused). From the same definitions this module derives

* message classes (``rosbags`` dataclasses; primitive arrays are numpy arrays, so an Image's
  ``uint8[] data`` is one ``np.ndarray``, never a list of ints),
* CDR (XCDR1, little endian) serialisation, byte-identical to ``rosbags`` by construction,
* the DDS type name (``pkg::msg::dds_::Name_``) and a Cyclone DDS ``IdlStruct`` describing the type
  on the wire (used for topic creation and type discovery only; payloads are serialised here),
* the RIHS01 type hash that ROS 2 Jazzy advertises in endpoint user data.

Nothing here imports rclpy.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types as pytypes
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

PACKAGE = "wm_control"
SUPPORTED_DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
_NUMPY_BASE = {
    "bool": np.bool_, "byte": np.uint8, "octet": np.uint8, "char": np.uint8,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
    "float32": np.float32, "float64": np.float64,
}


def default_distro() -> str:
    """The ROS distro whose message definitions we speak: ``$ROS_DISTRO`` if supported, else humble."""
    distro = os.environ.get("ROS_DISTRO", "humble").lower()
    return distro if distro in SUPPORTED_DISTROS else "humble"


def msg_dirs() -> list[Path]:
    """Where our ``.msg`` files live: the installed copy, else the source tree's ``msg/``."""
    pkg = Path(__file__).resolve().parent.parent  # wm_control/
    return [d for d in (pkg / "msg_defs", pkg.parent / "msg") if d.is_dir()]


def load_package_msgs(package: str = PACKAGE) -> dict[str, Any]:
    """Parse every ``.msg`` file of our package into rosbags type definitions."""
    typs: dict[str, Any] = {}
    for d in msg_dirs():
        for f in sorted(d.glob("*.msg")):
            name = f"{package}/msg/{f.stem}"
            if name not in typs:
                typs.update(get_types_from_msg(f.read_text(), name))
        if typs:
            break
    return typs


def srv_dir() -> Path:
    """The standard texts we ship: ``interfaces/<pkg>/srv/<Name>.srv`` and ``interfaces/<pkg>/msg/<Name>.msg``."""
    return Path(__file__).resolve().parent / "interfaces"


def get_types_from_srv(text: str, srv_type: str) -> dict[str, Any]:
    """The two message types of a ``.srv`` text (request, then ``---``, then response), named as ROS 2
    names them: ``pkg/srv/Name_Request`` and ``pkg/srv/Name_Response``."""
    lines = text.splitlines()
    try:
        cut = next(i for i, line in enumerate(lines) if line.strip() == "---")
    except StopIteration:
        raise ValueError(f"{srv_type}: a .srv text needs a '---' line between request and response") from None
    pkg, _, name = srv_type.split("/")
    typs: dict[str, Any] = {}
    for half, part in (("Request", lines[:cut]), ("Response", lines[cut + 1:])):
        # parsed as pkg/msg/X so that relative names resolve in pkg, then named pkg/srv/X
        parsed = get_types_from_msg("\n".join(part) + "\n", f"{pkg}/msg/{name}_{half}")
        typs[f"{pkg}/srv/{name}_{half}"] = next(iter(parsed.values()))
    return typs


def load_interface_msgs() -> dict[str, Any]:
    """Every shipped standard ``.msg``: ``interfaces/<pkg>/msg/<Name>.msg`` -> ``pkg/msg/Name``."""
    typs: dict[str, Any] = {}
    for f in sorted(srv_dir().glob("*/msg/*.msg")):
        typs.update(get_types_from_msg(f.read_text(), f"{f.parent.parent.name}/msg/{f.stem}"))
    return typs


def load_srvs() -> tuple[dict[str, Any], set[str]]:
    """Every shipped ``.srv``: (message types of both halves, service type names)."""
    typs: dict[str, Any] = {}
    names: set[str] = set()
    for f in sorted(srv_dir().glob("*/srv/*.srv")):
        srv_type = f"{f.parent.parent.name}/srv/{f.stem}"
        typs.update(get_types_from_srv(f.read_text(), srv_type))
        names.add(srv_type)
    return typs, names


def dds_type_name(typename: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_`` (the ROS 2 DDS mangling)."""
    pkg, kind, name = typename.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def ros_type_name(ddsname: str) -> str | None:
    """Inverse of :func:`dds_type_name`; None for names that are not ROS 2 types."""
    parts = ddsname.split("::")
    if len(parts) != 4 or parts[2] != "dds_" or not parts[3].endswith("_"):
        return None
    return f"{parts[0]}/{parts[1]}/{parts[3][:-1]}"


class MessageRegistry:
    """All message types of one ROS distro plus ours, with defaults, CDR and DDS descriptions."""

    def __init__(self, distro: str | None = None):
        distro = (distro or default_distro()).lower()
        if distro not in SUPPORTED_DISTROS:
            raise ValueError(f"unsupported ROS distro {distro!r}; choose one of {sorted(SUPPORTED_DISTROS)}")
        self.distro = distro
        self.store = get_typestore(SUPPORTED_DISTROS[distro])
        self.store.register(load_package_msgs())
        self.store.register(load_interface_msgs())  # before the services that use them
        srv_types, self.services = load_srvs()
        self.store.register(srv_types)

    # ---- classes and construction -------------------------------------------------------
    def has(self, typename: str) -> bool:
        return typename in self.store.fielddefs

    def _check(self, typename: str) -> None:
        if typename not in self.store.fielddefs:
            raise KeyError(f"unknown message type {typename!r} (ROS {self.distro}); "
                           f"is it a .msg file in msg/ or a standard type?")

    def srv(self, srv_type: str) -> tuple[str, str]:
        """``pkg/srv/Name`` -> its request and response message types."""
        if srv_type not in self.services:
            raise KeyError(f"unknown service type {srv_type!r}; known: {', '.join(sorted(self.services))} "
                           f"(a .srv file in {srv_dir()}/<pkg>/srv/)")
        return f"{srv_type}_Request", f"{srv_type}_Response"

    def cls(self, typename: str) -> type:
        self._check(typename)
        return self.store.types[typename]

    def new(self, typename: str, **fields: Any) -> Any:
        """A message with every field not given set to its ROS default (0, '', empty, nested default)."""
        self._check(typename)
        _, defs = self.store.fielddefs[typename]
        names = {n for n, _ in defs}
        unknown = set(fields) - names
        if unknown:
            raise TypeError(f"{typename} has no field(s) {sorted(unknown)}; fields are {sorted(names)}")
        values = {n: fields[n] if n in fields else self._default(desc) for n, desc in defs}
        return self.store.types[typename](**values)

    def _default(self, desc: tuple) -> Any:
        kind, rest = desc
        if kind == Nodetype.BASE:
            name = rest[0]
            if name == "string" or name == "wstring":
                return ""
            return False if name == "bool" else (0.0 if name.startswith("float") else 0)
        if kind == Nodetype.NAME:
            return self.new(rest)
        sub, count = rest
        if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY_BASE:
            dtype = _NUMPY_BASE[sub[1][0]]
            return np.zeros(count if kind == Nodetype.ARRAY else 0, dtype=dtype)
        if kind == Nodetype.ARRAY:
            return [self._default(sub) for _ in range(count)]
        return []

    def constants(self, typename: str) -> dict[str, Any]:
        self._check(typename)
        return {name: value for name, _, value in self.store.fielddefs[typename][0]}

    # ---- CDR ------------------------------------------------------------------------------
    def serialize(self, msg: Any, typename: str | None = None) -> bytes:
        """XCDR1 little-endian bytes with the 4-byte encapsulation header (what goes on the wire)."""
        typename = typename or msg.__msgtype__
        return bytes(self.store.serialize_cdr(msg, typename))

    def deserialize(self, raw: bytes | memoryview, typename: str) -> Any:
        return self.store.deserialize_cdr(raw, typename)

    # ---- DDS ------------------------------------------------------------------------------
    def type_hash(self, typename: str) -> str | None:
        """RIHS01 hash as advertised by Jazzy endpoints; None on distros without type hashes."""
        if self.distro == "humble":
            return None
        return self.store.hash_rihs01(typename)

    def msgdef(self, typename: str) -> str:
        """The concatenated message definition (for MCAP schemas and rosbag2 metadata)."""
        return self.store.generate_msgdef(typename, ros_version=2)[0]

    @functools.lru_cache(maxsize=None)  # noqa: B019 - registry lives as long as the process
    def dds_struct(self, typename: str, request_header: bool = False) -> type:
        """A Cyclone DDS IdlStruct with the type's DDS name and members (for discovery/type info).

        ``request_header``: a service request or reply as rmw_cyclonedds puts it on the wire, the
        members of its ``cdds_request_header_t`` (``uint64 guid``, ``int64 seq``) first."""
        import cyclonedds.idl.types as t
        from cyclonedds.idl import IdlStruct

        base = {
            "bool": bool, "byte": t.byte, "octet": t.byte, "char": t.uint8,
            "int8": t.int8, "uint8": t.uint8, "int16": t.int16, "uint16": t.uint16,
            "int32": t.int32, "uint32": t.uint32, "int64": t.int64, "uint64": t.uint64,
            "float32": t.float32, "float64": t.float64,
        }

        def idl(desc: tuple) -> Any:
            kind, rest = desc
            if kind == Nodetype.BASE:
                name, bound = rest
                if name in ("string", "wstring"):
                    return t.bounded_str[bound] if bound else str
                return base[name]
            if kind == Nodetype.NAME:
                return self.dds_struct(rest)
            sub, count = rest
            if kind == Nodetype.ARRAY:
                return t.array[idl(sub), count]
            return t.sequence[idl(sub), count] if count else t.sequence[idl(sub)]

        self._check(typename)
        _, defs = self.store.fielddefs[typename]
        annotations = {"guid": t.uint64, "seq": t.int64} if request_header else {}
        if set(annotations) & {name for name, _ in defs}:
            raise TypeError(f"{typename} has a field named guid or seq: it cannot carry a request header")
        annotations.update((name, idl(desc)) for name, desc in defs)
        pyname = typename.replace("/", "__") + ("__with_request_header" if request_header else "")

        def body(ns: dict) -> None:
            ns["__annotations__"] = annotations
            ns["__module__"] = __name__

        cls = pytypes.new_class(pyname, (IdlStruct,), {"typename": dds_type_name(typename)}, body)
        return dataclasses.dataclass(cls)


@functools.lru_cache(maxsize=None)
def registry(distro: str | None = None) -> MessageRegistry:
    """Process-wide registry for a distro (building a typestore takes a moment)."""
    return MessageRegistry(distro or default_distro())

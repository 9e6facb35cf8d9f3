"""A node's ROS 2 parameters, backed by its config dataclass, with ROS's rules for setting them.

The parameters are the ``Config`` fields (types, defaults, descriptions: :func:`wm_control.ros.api.config_fields`)
and ``use_sim_time``. A set is refused as rclcpp refuses it (an undeclared or read-only parameter, a
value of another type than the declared one: ``Wrong parameter type, ...``), or with the message of the
config's ``__post_init__`` or of the node's hook; when it is accepted the node gets the new config.

The hook is an optional method of the node class, ``on_parameters(self, cfg)``: it is called with the
new config (raise ``ValueError`` to refuse it). A node class without one cannot take a change at run
time, so all its parameters are declared read-only; a field with ``field(metadata={"read_only": True})``
is read-only either way.

:class:`Parameters` answers the six parameter services (``~/list_parameters``, ``~/get_parameters``,
``~/set_parameters``, ``~/set_parameters_atomically``, ``~/describe_parameters``,
``~/get_parameter_types``); :func:`serve` offers them on a node (the dds backend; rclpy has its own and
uses only :meth:`Parameters.update`, from an on-set-parameters callback).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable

import numpy as np

from wm_control.ros.api import ConfigError, coerce, config_fields

# rcl_interfaces/msg/ParameterType, and the names rclcpp::to_string gives them (in its refusals)
NOT_SET, BOOL, INTEGER, DOUBLE, STRING, BYTE_ARRAY, BOOL_ARRAY, INTEGER_ARRAY, DOUBLE_ARRAY, STRING_ARRAY = range(10)
TYPE_NAMES = ("not set", "bool", "integer", "double", "string", "byte_array", "bool_array", "integer_array",
              "double_array", "string_array")
_VALUE_FIELDS = ("", "bool_value", "integer_value", "double_value", "string_value", "byte_array_value",
                 "bool_array_value", "integer_array_value", "double_array_value", "string_array_value")
_DTYPES = {BYTE_ARRAY: np.uint8, BOOL_ARRAY: np.bool_, INTEGER_ARRAY: np.int64, DOUBLE_ARRAY: np.float64}
_SCALARS = {bool: BOOL, int: INTEGER, float: DOUBLE, str: STRING}
_ARRAYS = {bool: BOOL_ARRAY, int: INTEGER_ARRAY, float: DOUBLE_ARRAY, str: STRING_ARRAY}
_PLAIN = {BOOL: bool, INTEGER: int, DOUBLE: float, STRING: str, BYTE_ARRAY: int, BOOL_ARRAY: bool,
          INTEGER_ARRAY: int, DOUBLE_ARRAY: float, STRING_ARRAY: str}


def ros_type(typ: Any) -> int:
    """The ParameterType a config field of type ``typ`` is declared as; NOT_SET: dynamically typed."""
    if typ in _SCALARS:
        return _SCALARS[typ]
    args = typing.get_args(typ)
    if typing.get_origin(typ) is list and args and args[0] in _ARRAYS:
        return _ARRAYS[args[0]]
    return NOT_SET


def value_type(value: Any) -> int:
    """The ParameterType of a value (a dynamically typed parameter has its value's type); NOT_SET for
    None and for what no parameter type holds (an empty or mixed list)."""
    for t in (bool, int, float, str):  # bool before int
        if isinstance(value, t):
            return _SCALARS[t]
    if isinstance(value, (list, tuple)) and value:
        for t in (bool, int, float, str):
            if all(isinstance(v, t) and (t is bool or not isinstance(v, bool)) for v in value):
                return _ARRAYS[t]
    return NOT_SET


def value_msg(make: Callable[..., Any], value: Any, ptype: int) -> Any:
    """An ``rcl_interfaces/msg/ParameterValue`` holding ``value`` as type ``ptype``."""
    fields: dict[str, Any] = {"type": ptype}
    if ptype in _DTYPES:
        fields[_VALUE_FIELDS[ptype]] = np.asarray(value, dtype=_DTYPES[ptype])
    elif ptype != NOT_SET:
        fields[_VALUE_FIELDS[ptype]] = list(value) if ptype == STRING_ARRAY else value
    return make("rcl_interfaces/msg/ParameterValue", **fields)


def plain_value(msg: Any) -> Any:
    """The Python value of an ``rcl_interfaces/msg/ParameterValue`` (None when not set)."""
    t = int(msg.type)
    if t == NOT_SET:
        return None
    if t not in _PLAIN:
        raise ConfigError(f"unknown parameter type {t}")
    v = getattr(msg, _VALUE_FIELDS[t])
    return _PLAIN[t](v) if t <= STRING else [_PLAIN[t](x) for x in v]


def type_reason(name: str, declared: int, given: int) -> str:
    """rclcpp's refusal of a value of another type (format_type_reason)."""
    def word(t: int) -> str:
        return TYPE_NAMES[t] if 0 <= t < len(TYPE_NAMES) else f"unknown type {t}"

    return (f"Wrong parameter type, parameter {{{name}}} is of type {{{word(declared)}}}, "
            f"setting it to {{{word(given)}}} is not allowed.")


def read_only_fields(config_cls: type, writable: bool) -> set[str]:
    """The fields declared read-only: all of them unless the node can take a change (``writable``: its
    class has an ``on_parameters`` hook), and those with ``metadata={"read_only": True}``."""
    return {f.name for f in dataclasses.fields(config_cls) if not writable or f.metadata.get("read_only")}


@dataclasses.dataclass(frozen=True)
class Declared:
    name: str
    field_type: Any
    type: int  # the declared ParameterType; NOT_SET: dynamically typed
    description: str
    read_only: bool


class Parameters:
    """The parameters of one node: its config's fields, plus ``extra`` read-only ones (``use_sim_time``).

    ``hook(new_config)``: the node's ``on_parameters``, None when it has none (every field read-only)."""

    def __init__(self, config: Any, hook: Callable[[Any], None] | None = None, extra: dict[str, Any] | None = None):
        self.config = config
        self.hook = hook
        self.extra = dict(extra or {})
        ro = read_only_fields(type(config), hook is not None)
        self.declared = {n: Declared(n, type(v), value_type(v), "", True) for n, v in self.extra.items()}
        for name, default, typ, desc in config_fields(type(config)):
            self.declared[name] = Declared(name, typ, NOT_SET if default is None else ros_type(typ), desc, name in ro)

    def value(self, name: str) -> Any:
        return self.extra[name] if name in self.extra else getattr(self.config, name)

    def type_of(self, name: str) -> int:
        d = self.declared[name]
        return d.type if d.type != NOT_SET else value_type(self.value(name))

    # ---- setting ----------------------------------------------------------------------------
    def update(self, changes: dict[str, Any]) -> tuple[bool, str]:
        """Apply already type-checked values to the config: the config's ``__post_init__`` and the hook
        may refuse them (their message is the reason). Returns (successful, reason)."""
        try:
            values = {n: coerce(n, v, self.declared[n].field_type, None) for n, v in changes.items()}
            new = dataclasses.replace(self.config, **values)
        except (TypeError, ValueError) as exc:
            return False, str(exc)
        if self.hook is not None:
            try:
                self.hook(new)
            except ValueError as exc:
                return False, str(exc)
        self.config = new
        return True, ""

    def set_atomically(self, parameters: list[Any]) -> tuple[bool, str]:
        """Set ``rcl_interfaces/msg/Parameter`` messages all together or not at all, as rclcpp does:
        undeclared and read-only names first, then each value's type, then the config and the hook."""
        for p in parameters:
            if p.name not in self.declared:
                return False, f"parameter '{p.name}' cannot be set because it was not declared"
            if self.declared[p.name].read_only:
                return False, f"parameter '{p.name}' cannot be set because it is read-only"
        changes = {}
        for p in parameters:
            declared, given = self.declared[p.name].type, int(p.value.type)
            if declared != NOT_SET and given != declared:
                return False, type_reason(p.name, declared, given)
            try:
                changes[p.name] = plain_value(p.value)
            except ConfigError as exc:
                return False, str(exc)
        return self.update(changes)

    # ---- the services' answers ------------------------------------------------------------------
    def list_names(self, prefixes: list[str], depth: int) -> tuple[list[str], list[str]]:
        """(names, prefixes) as rclcpp's list_parameters gives them ('.' separates name levels)."""
        def shallow(rest: str) -> bool:
            return depth == 0 or rest.count(".") < depth  # 0: ListParameters.DEPTH_RECURSIVE

        names, found = [], []
        for name in self.declared:
            if (not prefixes and shallow(name)) or any(
                    name == p or (name.startswith(p + ".") and shallow(name[len(p):])) for p in prefixes):
                names.append(name)
                if "." in name and name.rsplit(".", 1)[0] not in found:
                    found.append(name.rsplit(".", 1)[0])
        return names, found

    def known(self, names: list[str]) -> bool:
        """rclcpp and rclpy answer a get, describe or get-types with any undeclared name with nothing."""
        return all(n in self.declared for n in names)

    def descriptor(self, make: Callable[..., Any], name: str) -> Any:
        d = self.declared[name]
        return make("rcl_interfaces/msg/ParameterDescriptor", name=name, type=self.type_of(name),
                    description=d.description, read_only=d.read_only, dynamic_typing=d.type == NOT_SET)


def serve(node: Any, params: Parameters) -> list[Any]:
    """Offer the six parameter services of ``node`` (``~/list_parameters`` ...) backed by ``params``."""
    make = node.msg

    def list_parameters(rq: Any, rs: Any) -> Any:
        names, prefixes = params.list_names(list(rq.prefixes), int(rq.depth))
        rs.result = make("rcl_interfaces/msg/ListParametersResult", names=names, prefixes=prefixes)
        return rs

    def get_parameters(rq: Any, rs: Any) -> Any:
        names = list(rq.names)
        rs.values = [value_msg(make, params.value(n), params.type_of(n)) for n in names] if params.known(names) else []
        return rs

    def get_parameter_types(rq: Any, rs: Any) -> Any:
        names = list(rq.names)
        rs.types = np.array([params.type_of(n) for n in names] if params.known(names) else [], np.uint8)
        return rs

    def describe_parameters(rq: Any, rs: Any) -> Any:
        names = list(rq.names)
        rs.descriptors = [params.descriptor(make, n) for n in names] if params.known(names) else []
        return rs

    def result(ok_reason: tuple[bool, str]) -> Any:
        return make("rcl_interfaces/msg/SetParametersResult", successful=ok_reason[0], reason=ok_reason[1])

    def set_parameters(rq: Any, rs: Any) -> Any:
        rs.results = [result(params.set_atomically([p])) for p in rq.parameters]  # one by one, as rclcpp
        return rs

    def set_parameters_atomically(rq: Any, rs: Any) -> Any:
        rs.result = result(params.set_atomically(list(rq.parameters)))
        return rs

    handlers = {"list_parameters": ("ListParameters", list_parameters),
                "get_parameters": ("GetParameters", get_parameters),
                "get_parameter_types": ("GetParameterTypes", get_parameter_types),
                "set_parameters": ("SetParameters", set_parameters),
                "set_parameters_atomically": ("SetParametersAtomically", set_parameters_atomically),
                "describe_parameters": ("DescribeParameters", describe_parameters)}
    return [node.create_service(f"rcl_interfaces/srv/{typ}", f"~/{name}", cb) for name, (typ, cb) in handlers.items()]

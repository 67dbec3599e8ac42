"""The field registry: named, typed values that plugins expose for reading and setting.

Fields live in dotted namespaces (``node.*``, ``peer.*``, ``net.*``, ``cfg.*``,
``store.*``, ...). The repeater serves them over a Unix socket; the web UI and the
``p2pkit ctl`` command read them. A field's type fixes its wire encoding (see
:mod:`p2pkit.repeater.protocol`).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ._exceptions import FieldError, validator_message

MAX_FIELD_NAME_BYTES = 32


class FieldType(enum.Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    BYTES = "bytes"
    JSON = "json"


_PY_TYPES: dict[FieldType, tuple[type, ...]] = {
    FieldType.INT: (int,),
    FieldType.FLOAT: (float, int),
    FieldType.BOOL: (bool,),
    FieldType.STR: (str,),
    FieldType.BYTES: (bytes, bytearray, memoryview),
    FieldType.JSON: (dict, list, str, int, float, bool, type(None)),
}

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def coerce(ftype: FieldType, value: Any, name: str = "value") -> Any:
    """Check ``value`` against ``ftype`` and normalise it; FieldError if it does not fit."""
    if ftype in (FieldType.INT, FieldType.FLOAT) and isinstance(value, bool):
        raise FieldError(f"{name}: expected {ftype.value}, got bool")  # bool is an int subclass
    if not isinstance(value, _PY_TYPES[ftype]):
        raise FieldError(f"{name}: expected {ftype.value}, got {type(value).__name__}")
    checked: Any = value  # isinstance() with a tuple of types leaves mypy with ``object``
    if ftype is FieldType.INT and not INT64_MIN <= checked <= INT64_MAX:
        raise FieldError(f"{name}: {value} does not fit in a signed 64-bit integer")
    if ftype is FieldType.FLOAT:
        # NaN passes every range check (``nan < 0`` is False) and is not JSON
        if not math.isfinite(checked):
            raise FieldError(f"{name}: expected a finite number, got {value!r}")
        return float(checked)
    if ftype is FieldType.BYTES:
        return bytes(checked)
    if ftype is FieldType.JSON:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise FieldError(f"{name}: not representable as JSON ({exc})") from None
    return value


@attrs.frozen
class Field:
    """One named value. ``setter`` absent means read-only; ``validate`` may raise
    FieldError (or ValueError) to refuse a value before the setter sees it."""

    name: str
    type: FieldType
    getter: Callable[[], Any]
    setter: Callable[[Any], None] | None = None
    validate: Callable[[Any], None] | None = None
    description: str = ""

    def __attrs_post_init__(self) -> None:
        encoded = self.name.encode("utf-8")
        if not encoded or len(encoded) > MAX_FIELD_NAME_BYTES or "\x00" in self.name:
            raise FieldError(f"field name {self.name!r} must be 1..32 UTF-8 bytes without NUL")

    @property
    def settable(self) -> bool:
        return self.setter is not None


class FieldRegistry:
    """Name → Field. Registration of a name twice is an error (two plugins disagree)."""

    def __init__(self) -> None:
        self._fields: dict[str, Field] = {}

    def register(self, field: Field) -> None:
        if field.name in self._fields:
            raise FieldError(f"field {field.name!r} is registered twice")
        self._fields[field.name] = field

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[Field]:
        return iter(sorted(self._fields.values(), key=lambda f: f.name))

    def field(self, name: str) -> Field:
        try:
            return self._fields[name]
        except KeyError:
            raise FieldError(f"unknown field {name!r}") from None

    def get(self, name: str) -> Any:
        field = self.field(name)
        return coerce(field.type, field.getter(), name)

    def set(self, name: str, value: Any) -> Any:
        """Validate and apply; returns the value read back after setting."""
        field = self.field(name)
        if field.setter is None:
            raise FieldError(f"field {name!r} is read-only")
        value = coerce(field.type, value, name)
        if field.validate is not None:
            try:
                field.validate(value)
            except ValueError as exc:
                raise FieldError(f"{name}: {validator_message(exc)}") from None
        field.setter(value)
        return self.get(name)

    def describe(self) -> list[dict[str, Any]]:
        """What ``meta.fields`` returns: every field with its type and settability."""
        return [
            {"name": f.name, "type": f.type.value, "settable": f.settable,
             "description": f.description}
            for f in self
        ]

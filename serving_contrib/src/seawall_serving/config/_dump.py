"""`dump`: a configuration as JSON-safe data with its secrets masked; and comparing two."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, time, timedelta
from enum import Enum
from pathlib import PurePath
from typing import Any

from seawall_serving.config._fields import Struct, is_struct, struct_of
from seawall_serving.config._secret import MASK, Secret


__all__ = ("dump", "same_values")


def dump(config: object) -> dict[str, Any]:
    """Return *config* as a JSON-safe dict, with secrets masked: for logs and debug pages.

    Keys are the file's keys, so the result reads like a configuration file; durations
    are seconds, paths strings, enums their values, and every secret (a `Secret`, a
    ``secret=True`` setting, a pydantic ``SecretStr``) is ``"**********"``.

    Raises:
        TypeError: *config* is not a dataclass or pydantic model instance.

    .. versionadded:: 0.1.0
    """
    if isinstance(config, type) or not is_struct(type(config)):
        msg = f"dump() takes a dataclass or pydantic model instance, got {type(config).__name__}"
        raise TypeError(msg)
    return _dump_struct(config, struct_of(type(config), check=False))


def _dump_struct(config: object, struct: Struct) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in struct.fields:
        value = getattr(config, spec.name)
        out[spec.key] = MASK if spec.secret and value is not None else _dump_value(value)
    return out


def _dump_value(value: object) -> Any:  # noqa: PLR0911 -- one return per kind of value
    if isinstance(value, Enum):
        return _dump_value(value.value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Secret) or hasattr(value, "get_secret_value"):
        return MASK
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (PurePath, date, time)):
        return value.isoformat() if isinstance(value, (date, time)) else str(value)
    return _dump_container(value)


def _dump_container(value: object) -> Any:
    if is_struct(type(value)):
        return _dump_struct(value, struct_of(type(value), check=False))
    if isinstance(value, Mapping):
        return {str(key): _dump_value(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_dump_value(item) for item in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [_dump_value(item) for item in value]
    return str(value)


def same_values(a: object, b: object) -> bool:
    """Tell whether two configurations hold the same values (whatever their ``__eq__``)."""
    return _comparable(a) == _comparable(b)


def _comparable(value: object) -> object:
    if isinstance(value, Secret):
        return (Secret, _comparable(value.get_secret_value()))
    if not isinstance(value, type) and is_struct(type(value)):
        names = (
            [field.name for field in dataclasses.fields(value)]
            if dataclasses.is_dataclass(value)
            else list(type(value).model_fields)  # type: ignore[attr-defined]
        )
        return (type(value), tuple((name, _comparable(getattr(value, name))) for name in names))
    if isinstance(value, Mapping):
        return (dict, tuple((key, _comparable(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_comparable(item) for item in value))
    return value

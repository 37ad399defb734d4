"""Converting raw values (from a file, the environment or overrides) to their types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import PurePath
from typing import Any, Final, Literal, final, get_args, get_origin

from seawall_serving.config._errors import ConfigIssue
from seawall_serving.config._fields import (
    MAPPINGS,
    NONE_TYPE,
    SEQUENCES,
    Struct,
    UnsupportedTypeError,
    is_struct,
    is_union,
    strip_annotated,
    struct_of,
    type_name,
)
from seawall_serving.config._parse import (
    DURATION_HELP,
    describe,
    duration_from_seconds,
    json_value,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int,
    split_list,
)
from seawall_serving.config._secret import Secret


__all__ = ("INVALID", "Converter", "EnvValue", "Layer", "collect_strings", "join")

PARSERS: Final[Mapping[type[Any], Callable[[str], object]]] = {
    bool: parse_bool,
    int: parse_int,
    float: parse_float,
    str: str,
}


@final
class _Invalid:
    """The result of a conversion that failed (its issue is already recorded)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


@final
@dataclass(frozen=True, slots=True)
class EnvValue:
    """A raw string from the environment, with the variable it came from."""

    name: str
    text: str


@final
@dataclass(frozen=True, slots=True)
class Layer:
    """One source of values: its kind, the label its issues carry, and its mapping."""

    kind: Literal["file", "env", "override"]
    label: str
    data: Mapping[str, Any]

    def source(self, raw: object) -> str:
        """Return the source label of *raw*, a value of this layer."""
        return f"env {raw.name}" if isinstance(raw, EnvValue) else self.label


def join(path: str, name: str) -> str:
    """Return the dotted path of *name* under *path*."""
    return f"{path}.{name}" if path else name


def collect_strings(value: object, out: set[str]) -> None:
    """Add every non-empty string in *value* (a secret's raw value) to *out*."""
    if isinstance(value, str):
        if value:
            out.add(value)
    elif isinstance(value, EnvValue):
        collect_strings(value.text, out)
    elif isinstance(value, Secret):
        collect_strings(value.get_secret_value(), out)
    elif isinstance(value, Mapping):
        for item in value.values():
            collect_strings(item, out)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            collect_strings(item, out)


class Converter:
    """Converts raw values to typed ones, recording problems instead of raising.

    Values from the file and from overrides ("typed" sources) must already have the
    right type; values from the environment are parsed from strings. Every problem
    becomes an issue in `issues`, so that one pass finds them all; the raw values of
    secrets are collected in `secrets`, to be scrubbed from any message.
    """

    __slots__ = ("issues", "secrets")

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []
        self.secrets: set[str] = set()

    def fork(self) -> Converter:
        """Return a converter sharing this one's secrets but recording issues apart."""
        raise NotImplementedError

    def nested(self, struct: Struct, path: str, source: str, raw: Mapping[str, Any]) -> object:
        """Build *struct* from the mapping *raw* (an item of a list, say)."""
        raise NotImplementedError

    def fail(self, path: str, source: str, message: str) -> _Invalid:
        """Record an issue; return `INVALID` for the caller to return."""
        self.issues.append(ConfigIssue(path, source, message))
        return INVALID

    def wrong(
        self, path: str, source: str, expected: str, raw: object, *, env: bool, secret: bool
    ) -> _Invalid:
        """Record "expected X, got Y"; return `INVALID`."""
        got = describe(raw, from_env=env, secret=secret)
        return self.fail(path, source, f"expected {expected}, got {got}")

    def value(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        """Convert *raw*, from *source*, to *tp*: strictly, or by parsing if *env*.

        Raises:
            UnsupportedTypeError: *tp* is not a type the loader reads (only possible
                for pydantic models: dataclasses' types are checked up front).
        """
        tp = strip_annotated(tp)
        if secret and isinstance(raw, str):
            collect_strings(raw, self.secrets)
        if tp is Any or tp is object:
            return raw
        if is_union(tp):
            return self._union(tp, raw, path, source, env=env, secret=secret)
        if raw is None or tp is NONE_TYPE:
            return self._none(tp, raw, path, source, env=env, secret=secret)
        convert = self._converter(tp, path)
        return convert(tp, raw, path, source, env=env, secret=secret)

    def _converter(self, tp: Any, path: str) -> Callable[..., object]:  # noqa: PLR0911 -- a table
        origin = get_origin(tp)
        if tp is Secret or origin is Secret:
            return self._secret
        if origin is Literal:
            return self._literal
        if tp in SEQUENCES or origin in SEQUENCES:
            return self._sequence
        if tp in MAPPINGS or origin in MAPPINGS:
            return self._mapping
        if tp in PARSERS:
            return self._scalar
        if isinstance(tp, type) and issubclass(tp, Enum):
            return self._enum
        if isinstance(tp, type) and (tp is timedelta or issubclass(tp, PurePath)):
            return self._duration if tp is timedelta else self._path
        if is_struct(tp):
            return self._struct
        msg = f"{path}: {type_name(tp)} is not a type seawall_serving.config can read"
        raise UnsupportedTypeError(msg)

    def _none(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        accepts_none = tp is NONE_TYPE or (get_origin(tp) is Literal and None in get_args(tp))
        if accepts_none and (raw is None or (env and raw == "")):
            return None
        return self.wrong(path, source, type_name(tp), raw, env=env, secret=secret)

    def _union(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        members = [strip_annotated(a) for a in get_args(tp)]
        if NONE_TYPE in members and (raw is None or (env and raw == "")):
            return None  # an empty variable unsets an optional setting
        others = [m for m in members if m is not NONE_TYPE]
        if len(others) == 1:
            return self.value(others[0], raw, path, source, env=env, secret=secret)
        for member in others:
            converted = self.fork().value(member, raw, path, source, env=env, secret=secret)
            if converted is not INVALID:
                return converted
        return self.wrong(path, source, type_name(tp), raw, env=env, secret=secret)

    def _secret(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        del secret  # always one
        inner = get_args(tp)[0] if get_args(tp) else str
        if isinstance(raw, Secret):
            raw = raw.get_secret_value()
        converted = self.value(inner, raw, path, source, env=env, secret=True)
        return converted if converted is INVALID else Secret(converted)

    def _literal(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        options = get_args(tp)
        for option in options:
            if env and isinstance(raw, str):
                if option is not None and _env_matches(option, raw):
                    return option
            elif (type(raw) is type(option) and raw == option) or (
                isinstance(option, Enum) and type(raw) is type(option.value) and raw == option.value
            ):
                return option
        if env and raw == "" and None in options:
            return None
        expected = "one of " + type_name(tp).replace(" | ", ", ")
        return self.wrong(path, source, expected, raw, env=env, secret=secret)

    def _scalar(
        self, tp: type[Any], raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        if env and isinstance(raw, str):
            try:
                return PARSERS[tp](raw)
            except ValueError as exc:
                got = describe(raw, from_env=True, secret=secret)
                return self.fail(path, source, f"{exc}, got {got}")
        # bool is an int to Python, but not to a configuration (nor the reverse).
        if isinstance(raw, bool) == (tp is bool):
            if tp is float and isinstance(raw, int):
                return float(raw)
            if isinstance(raw, tp):
                return raw
        return self.wrong(path, source, tp.__name__, raw, env=env, secret=secret)

    def _enum(
        self, tp: type[Enum], raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        if isinstance(raw, tp):
            return raw
        for member in tp:
            if env and isinstance(raw, str) and _env_matches(member, raw):
                return member
            if not env and type(raw) is type(member.value) and raw == member.value:
                return member
        if isinstance(raw, str) and raw in tp.__members__:
            return tp.__members__[raw]
        options = ", ".join(repr(member.value) for member in tp)
        return self.wrong(path, source, f"one of {options}", raw, env=env, secret=secret)

    def _duration(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        del tp  # a string parses the same from any source
        try:
            if isinstance(raw, timedelta):
                return raw
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return duration_from_seconds(raw)
            if isinstance(raw, str):
                return parse_duration(raw)
        except ValueError as exc:
            got = describe(raw, from_env=env, secret=secret)
            return self.fail(path, source, f"{exc}, got {got}")
        return self.wrong(path, source, DURATION_HELP, raw, env=env, secret=secret)

    def _path(
        self, tp: type[PurePath], raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        if isinstance(raw, PurePath) or (isinstance(raw, str) and raw):
            return tp(raw)
        return self.wrong(path, source, "a path (a non-empty string)", raw, env=env, secret=secret)

    def _struct(
        self, tp: type[Any], raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        if isinstance(raw, tp):
            return raw
        if isinstance(raw, Mapping):
            return self.nested(struct_of(tp), path, source, raw)
        expected = f"a mapping of settings ({tp.__qualname__})"
        return self.wrong(path, source, expected, raw, env=env, secret=secret)

    def _sequence(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        origin = get_origin(tp) or tp
        found = self._items(tp, raw, path, source, env=env, secret=secret)
        if found is None:
            return INVALID
        items, items_from_env = found
        kinds = _item_types(tp, len(items))
        if kinds is None:
            return self.fail(path, source, f"expected {type_name(tp)}, got {len(items)} items")
        converted = [
            self.value(kind, item, f"{path}[{index}]", source, env=items_from_env, secret=secret)
            for index, (kind, item) in enumerate(zip(kinds, items, strict=True))
        ]
        if any(item is INVALID for item in converted):
            return INVALID
        if origin in (set, frozenset):
            return origin(converted)
        return converted if origin is list else tuple(converted)

    def _items(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> tuple[list[object], bool] | None:
        """Return the items of *raw* and whether they are strings to parse, or None."""
        if env and isinstance(raw, str):
            try:
                items, typed = split_list(raw)
            except ValueError as exc:
                self.fail(path, source, str(exc))
                return None
            return items, not typed
        sets_allowed = (get_origin(tp) or tp) in (set, frozenset)
        if isinstance(raw, (list, tuple)) or (sets_allowed and isinstance(raw, (set, frozenset))):
            return list(raw), False
        self.wrong(path, source, type_name(tp), raw, env=env, secret=secret)
        return None

    def _mapping(
        self, tp: Any, raw: object, path: str, source: str, *, env: bool, secret: bool
    ) -> object:
        key_type, value_type = get_args(tp) or (str, Any)
        if env and isinstance(raw, str):
            try:
                raw = json_value(raw.strip(), "object")
            except ValueError as exc:
                return self.fail(path, source, str(exc))
            if not isinstance(raw, dict):
                return self.wrong(path, source, "a JSON object", raw, env=False, secret=secret)
        if not isinstance(raw, Mapping):
            return self.wrong(path, source, type_name(tp), raw, env=env, secret=secret)
        result: dict[object, object] = {}
        for key, item in raw.items():
            where = join(path, str(key))
            # Keys are strings in every format: parse them as the environment's are.
            new_key = self.value(
                key_type, key, where, source, env=isinstance(key, str), secret=False
            )
            new_item = self.value(value_type, item, where, source, env=False, secret=secret)
            result[new_key] = new_item
        if INVALID in result or any(item is INVALID for item in result.values()):
            return INVALID
        return result


def _item_types(tp: Any, count: int) -> list[Any] | None:
    """Return the type of each of *count* items of the sequence type *tp*, or None."""
    args = get_args(tp)
    fixed = (get_origin(tp) or tp) is tuple and args and args[-1] is not Ellipsis
    if not fixed:
        return [args[0] if args else Any] * count
    return list(args) if len(args) == count else None


def _env_matches(option: object, text: str) -> bool:
    """Tell whether *text*, from the environment, spells the literal or member *option*."""
    if isinstance(option, Enum):
        return text == option.name or _env_matches(option.value, text)
    parse = PARSERS.get(type(option))
    if parse is None:
        return False
    try:
        return parse(text) == option
    except ValueError:
        return False

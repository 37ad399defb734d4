"""`setting`, the field specifier, and the schema the loader reads from a class."""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import PurePath
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    TypeVar,
    Union,
    final,
    get_args,
    get_origin,
    overload,
)

from seawall_serving.config._secret import Secret


__all__ = (
    "MISSING",
    "FieldSpec",
    "Struct",
    "UnsupportedTypeError",
    "is_union",
    "setting",
    "split_optional",
    "strip_annotated",
    "struct_of",
    "type_name",
)

T = TypeVar("T")

#: The "no default" marker: the same object as `dataclasses.MISSING`.
MISSING: Final[Any] = dataclasses.MISSING

METADATA_KEY: Final = "seawall_serving.config"
ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NONE_TYPE: Final = type(None)
SCALARS: Final = frozenset({str, int, float, bool, timedelta})
SEQUENCES: Final = frozenset({list, tuple, set, frozenset, collections.abc.Sequence})
MAPPINGS: Final = frozenset({dict, collections.abc.Mapping})


class UnsupportedTypeError(TypeError):
    """A field's type is not one the loader can read."""


@final
@dataclass(frozen=True, slots=True)
class SettingInfo:
    """What `setting` records in a field's metadata."""

    env: str | None
    secret: bool
    doc: str | None
    key: str | None


@overload
def setting(
    *,
    env: str | None = None,
    default: T,
    secret: bool = False,
    doc: str | None = None,
    key: str | None = None,
) -> T: ...
@overload
def setting(
    *,
    env: str | None = None,
    default_factory: Callable[[], T],
    secret: bool = False,
    doc: str | None = None,
    key: str | None = None,
) -> T: ...
@overload
def setting(
    *,
    env: str | None = None,
    secret: bool = False,
    doc: str | None = None,
    key: str | None = None,
) -> Any: ...
def setting(
    *,
    env: str | None = None,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    secret: bool = False,
    doc: str | None = None,
    key: str | None = None,
) -> Any:
    """Describe a dataclass field of a configuration: its variable, default and key.

    The Python form of Go's ``json``, ``env``, ``default`` and ``required`` struct tags;
    it returns a `dataclasses.field`, so it goes wherever ``field(...)`` would::

        @dataclass(frozen=True, kw_only=True)
        class Server:
            port: int = setting(env="PORT", default=8080, doc="The port to listen on.")
            host: str = setting(key="listen-host", default="0.0.0.0")
            token: str = setting(secret=True)  # no default: required

    A field without `setting` is read like one with ``setting()`` and its own default.
    Use ``@dataclass(kw_only=True)`` so that required fields may follow ones with
    defaults.

    Args:
        env: The environment variable that sets this field, used as written (no
            prefix). Without it the name is derived: ``APP_SERVER__PORT`` for
            ``server.port`` with the prefix ``APP``. Not allowed on a nested
            dataclass field, whose own fields each have a variable.
        default: The value when no source sets the field.
        default_factory: A function returning the default, for mutable defaults.
        secret: Mask the value in ``repr``, `dump` and errors, and accept the
            variable's ``_FILE`` form. Implied by a ``Secret[...]`` type, which also
            masks the value wherever it is passed.
        doc: What the field means, for humans (shown with "missing" errors).
        key: The key in the file (and in ``overrides``) when it differs from the
            attribute name.

    Returns:
        A `dataclasses.field` carrying the setting's metadata.

    Raises:
        ValueError: *env* is not a valid variable name, *key* is empty, or both
            *default* and *default_factory* are given.

    .. versionadded:: 0.1.0
    """
    if env is not None and (not isinstance(env, str) or not ENV_NAME_RE.fullmatch(env)):
        msg = f"setting(env=...) must be an environment variable name, got {env!r}"
        raise ValueError(msg)
    if key is not None and (not isinstance(key, str) or not key):
        msg = f"setting(key=...) must be a non-empty string, got {key!r}"
        raise ValueError(msg)
    if default is not MISSING and default_factory is not MISSING:
        msg = "setting() takes default or default_factory, not both"
        raise ValueError(msg)
    info = SettingInfo(env=env, secret=bool(secret), doc=doc, key=key)
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        repr=not secret,
        metadata={METADATA_KEY: info},
    )


@final
@dataclass(frozen=True, slots=True, eq=False)
class FieldSpec:
    """One field of a configuration class, as the loader reads it."""

    name: str
    key: str
    annotation: Any
    env: str | None
    secret: bool
    doc: str | None
    required: bool
    default: Any
    default_factory: Any
    nullable: bool
    struct: Struct | None


@final
@dataclass(frozen=True, slots=True, eq=False)
class Struct:
    """A configuration class: a dataclass or a pydantic model, and its fields."""

    cls: type[Any]
    pydantic: bool
    fields: tuple[FieldSpec, ...]
    #: Every key the class accepts, to its field (pydantic models may accept two).
    accepts: Mapping[str, FieldSpec]
    extra_allowed: bool


def strip_annotated(tp: Any) -> Any:
    """Return *tp* without ``Annotated[...]`` wrappers."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def is_union(tp: Any) -> bool:
    """Whether *tp* is ``Union[...]`` or ``X | Y``."""
    origin = get_origin(tp)
    return origin is Union or origin is types.UnionType


def split_optional(tp: Any) -> tuple[Any, bool]:
    """Split ``X | None`` into ``(X, True)``; other types into ``(tp, False)``."""
    tp = strip_annotated(tp)
    if not is_union(tp):
        return tp, tp is NONE_TYPE
    members = tuple(strip_annotated(a) for a in get_args(tp))
    rest = tuple(a for a in members if a is not NONE_TYPE)
    nullable = len(rest) < len(members)
    if len(rest) == 1:
        return rest[0], nullable
    return (Union[rest] if nullable else tp), nullable  # noqa: UP007 -- built from a tuple


def type_name(tp: Any) -> str:  # noqa: PLR0911 -- one return per kind of type
    """Render a type annotation for an error message (``list[int]``, ``int | None``)."""
    tp = strip_annotated(tp)
    if tp is NONE_TYPE:
        return "None"
    if tp is Any:
        return "Any"
    if is_union(tp):
        return " | ".join(type_name(a) for a in get_args(tp))
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a.value if isinstance(a, Enum) else a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


def is_pydantic_model(tp: Any) -> bool:
    """Whether *tp* is a pydantic model class (pydantic is then already imported)."""
    module = sys.modules.get("pydantic")
    base = getattr(module, "BaseModel", None) if module is not None else None
    return base is not None and isinstance(tp, type) and issubclass(tp, base)


def is_struct(tp: Any) -> bool:
    """Whether *tp* is a dataclass or a pydantic model class."""
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or is_pydantic_model(tp))


def mentions_secret(tp: Any) -> bool:
    """Whether *tp* is or holds a secret type (ours, or pydantic's ``SecretStr``...)."""
    tp = strip_annotated(tp)
    if tp is Secret or get_origin(tp) is Secret:
        return True
    base = get_origin(tp) or tp
    if (
        isinstance(base, type)
        and base.__module__.startswith("pydantic")
        and hasattr(base, "get_secret_value")
    ):
        return True
    return any(mentions_secret(a) for a in get_args(tp) if a is not Ellipsis)


def struct_of(cls: Any, *, check: bool = True) -> Struct:
    """Read the configuration schema of *cls*, a dataclass or a pydantic model class.

    With *check*, refuse fields of types the loader cannot read (`dump` reads any).

    Raises:
        TypeError: *cls* is neither, a field has a type the loader cannot read, or
            the classes nest recursively.
    """
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return _dataclass_struct(cls, (), check=check)
    if is_pydantic_model(cls):
        return _pydantic_struct(cls, ())
    msg = f"a configuration class must be a dataclass or a pydantic model, got {cls!r}"
    raise TypeError(msg)


def _hints(cls: type[Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError) as exc:
        msg = (
            f"cannot resolve the annotations of {cls.__qualname__}: {exc} (define "
            "configuration classes at module level, where their annotations resolve)"
        )
        raise TypeError(msg) from exc


def _nested(
    owner: type[Any], name: str, tp: Any, chain: tuple[type[Any], ...], *, check: bool
) -> Struct | None:
    inner, _ = split_optional(tp)
    if not is_struct(inner):
        return None
    if inner in chain:
        msg = f"{owner.__qualname__}.{name}: {inner.__qualname__} nests itself"
        raise TypeError(msg)
    if is_pydantic_model(inner):
        if check:
            msg = (
                f"{owner.__qualname__}.{name}: a dataclass configuration cannot nest a "
                "pydantic model; make both dataclasses or both models"
            )
            raise TypeError(msg)
        return _pydantic_struct(inner, chain)
    return _dataclass_struct(inner, chain, check=check)


def _finish(cls: type[Any], specs: list[FieldSpec], accepts: dict[str, FieldSpec]) -> None:
    for spec in specs:
        other = accepts.setdefault(spec.key, spec)
        if other is not spec:
            msg = (
                f"{cls.__qualname__}: fields {other.name!r} and {spec.name!r} "
                f"share the key {spec.key!r}"
            )
            raise TypeError(msg)


def _dataclass_struct(cls: type[Any], chain: tuple[type[Any], ...], *, check: bool) -> Struct:
    chain = (*chain, cls)
    hints = _hints(cls)
    specs: list[FieldSpec] = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        info = field.metadata.get(METADATA_KEY)
        if not isinstance(info, SettingInfo):
            info = SettingInfo(env=None, secret=False, doc=None, key=None)
        tp = strip_annotated(hints.get(field.name, Any))
        struct = _nested(cls, field.name, tp, chain, check=check)
        where = f"{cls.__qualname__}.{field.name}"
        if struct is not None and info.env is not None:
            msg = (
                f"{where}: env= names one variable, but a nested dataclass is read from "
                "one variable per field"
            )
            raise TypeError(msg)
        if struct is None and check:
            check_type(tp, where, chain)
        specs.append(
            FieldSpec(
                name=field.name,
                key=info.key or field.name,
                annotation=tp,
                env=info.env,
                secret=info.secret or mentions_secret(tp),
                doc=info.doc,
                required=field.default is MISSING and field.default_factory is MISSING,
                default=field.default,
                default_factory=field.default_factory,
                nullable=split_optional(tp)[1],
                struct=struct,
            )
        )
    accepts: dict[str, FieldSpec] = {}
    _finish(cls, specs, accepts)
    return Struct(
        cls=cls, pydantic=False, fields=tuple(specs), accepts=accepts, extra_allowed=False
    )


def _pydantic_struct(cls: Any, chain: tuple[type[Any], ...]) -> Struct:
    chain = (*chain, cls)
    config: Mapping[str, Any] = getattr(cls, "model_config", {})
    by_name = bool(config.get("populate_by_name") or config.get("validate_by_name"))
    specs: list[FieldSpec] = []
    accepts: dict[str, FieldSpec] = {}
    for name, info in cls.model_fields.items():
        tp = info.annotation if info.annotation is not None else Any
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        env = extra.get("env")
        if env is not None and (not isinstance(env, str) or not ENV_NAME_RE.fullmatch(env)):
            msg = f"{cls.__qualname__}.{name}: json_schema_extra 'env' must be a variable name"
            raise TypeError(msg)
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        spec = FieldSpec(
            name=name,
            key=alias or name,
            annotation=tp,
            env=env,
            secret=extra.get("secret") is True or mentions_secret(tp),
            doc=info.description,
            required=info.is_required(),
            default=MISSING,
            default_factory=MISSING,
            nullable=split_optional(tp)[1],
            struct=_nested(cls, name, tp, chain, check=False),
        )
        specs.append(spec)
        if by_name:
            accepts.setdefault(name, spec)
    _finish(cls, specs, accepts)
    return Struct(
        cls=cls,
        pydantic=True,
        fields=tuple(specs),
        accepts=accepts,
        extra_allowed=config.get("extra") == "allow",
    )


def check_type(tp: Any, where: str, chain: tuple[type[Any], ...]) -> None:  # noqa: C901
    """Raise `UnsupportedTypeError` unless the loader can read values of type *tp*."""
    tp = strip_annotated(tp)
    origin = get_origin(tp)
    if tp is Any or tp is object or tp is NONE_TYPE or tp is Secret:
        return
    if is_union(tp) or origin is Secret or origin in SEQUENCES:
        for arg in get_args(tp):
            if arg is not Ellipsis:
                check_type(arg, where, chain)
        return
    if origin is Literal:
        if all(isinstance(a, (str, int, Enum)) or a is None for a in get_args(tp)):
            return
    elif origin in MAPPINGS:
        key, value = get_args(tp) or (str, Any)
        check_type(key, where, chain)
        check_type(value, where, chain)
        return
    elif isinstance(tp, type):
        if tp in SCALARS or tp in SEQUENCES or tp in MAPPINGS or issubclass(tp, (Enum, PurePath)):
            return
        if dataclasses.is_dataclass(tp):
            if tp not in chain:  # a list of itself is fine: it may be empty
                _dataclass_struct(tp, chain, check=True)
            return
    msg = (
        f"{where}: {type_name(tp)} is not a type seawall_serving.config can read "
        "(str, int, float, bool, Literal, Enum, timedelta, Path, Secret, lists, tuples, "
        "sets, dicts, dataclasses, and unions of them)"
    )
    raise UnsupportedTypeError(msg)

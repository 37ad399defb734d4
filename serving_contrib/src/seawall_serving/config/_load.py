"""`load`: a typed configuration from defaults, a file, the environment and overrides."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast, final

from seawall_serving.config._convert import (
    INVALID,
    Converter,
    EnvValue,
    Layer,
    collect_strings,
    join,
)
from seawall_serving.config._env import env_layer, env_names
from seawall_serving.config._errors import ConfigError, ConfigIssue
from seawall_serving.config._fields import (
    MISSING,
    FieldSpec,
    Struct,
    UnsupportedTypeError,
    struct_of,
)
from seawall_serving.config._files import FileProblemError, read_config_file
from seawall_serving.config._secret import MASK


__all__ = ("Unknown", "load")

T = TypeVar("T")
Unknown = Literal["error", "ignore"]
PREFIX_RE: Final = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*)?")

#: A pydantic error location: keys and list indices.
Loc = tuple[object, ...]


@final
class Builder(Converter):
    """Resolves each setting from the layers and builds the configuration objects."""

    __slots__ = ("env_names", "report_missing", "unknown")

    def __init__(
        self, *, unknown: Unknown, report_missing: bool, env_names: Mapping[str, str]
    ) -> None:
        super().__init__()
        self.unknown: Unknown = unknown
        #: False when the file could not be read: its settings are then all "missing".
        self.report_missing = report_missing
        self.env_names = env_names

    def fork(self) -> Builder:
        """Return a builder sharing this one's secrets but recording issues apart."""
        other = Builder(
            unknown=self.unknown, report_missing=self.report_missing, env_names=self.env_names
        )
        other.secrets = self.secrets
        return other

    def nested(self, struct: Struct, path: str, source: str, raw: Mapping[str, Any]) -> object:
        """Build *struct* from one typed mapping (an item of a list of dataclasses)."""
        return self.build(struct, path, [Layer("override", source, raw)], None)

    def missing(self, spec: FieldSpec, path: str) -> object:
        """Record that the required setting at *path* has no value; return `INVALID`."""
        if self.report_missing:
            hint = f"set {join(path.rpartition('.')[0], spec.key)!r} in the file"
            if (name := self.env_names.get(path)) is not None:
                hint += f" or the environment variable {name}"
            about = f" ({spec.doc})" if spec.doc else ""
            self.fail(path, "default", f"missing required setting{about}; {hint}")
        return INVALID

    def unknown_key(self, struct: Struct, path: str, key: object, layer: Layer) -> None:
        """Record *key* of *layer*, which names no field of *struct*, if it should be."""
        if self.unknown == "ignore" and layer.kind != "override":
            return
        close = difflib.get_close_matches(str(key), sorted(struct.accepts), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.fail(join(path, str(key)), layer.label, f"unknown setting {str(key)!r}{hint}")

    # -- dataclasses -----------------------------------------------------------------

    def build(self, struct: Struct, path: str, layers: list[Layer], default: object) -> object:
        """Build *struct*'s dataclass from *layers* (lowest precedence first).

        *default* is the object the field holding this one defaults to (or None):
        its attributes are the defaults of the settings here.
        """
        for layer in layers:
            for key in layer.data:
                if key not in struct.accepts:
                    self.unknown_key(struct, path, key, layer)
        values: dict[str, object] = {}
        for spec in struct.fields:
            where = join(path, spec.name)
            found = [(layer, layer.data[spec.key]) for layer in layers if spec.key in layer.data]
            if spec.secret:
                collect_strings([raw for _, raw in found], self.secrets)
            if spec.struct is not None:
                values[spec.name] = self._node(spec, spec.struct, where, found, default)
            elif found:
                values[spec.name] = self._leaf(spec, where, *found[-1])
            else:
                values[spec.name] = self._default(spec, where, default)
        if any(value is INVALID for value in values.values()):
            return INVALID
        try:
            return struct.cls(**values)
        except (ValueError, TypeError) as exc:
            return self.fail(path, "validation", str(exc) or type(exc).__name__)

    def _leaf(self, spec: FieldSpec, path: str, layer: Layer, raw: object) -> object:
        if raw is INVALID:  # an environment variable that could not be read
            return INVALID
        source, from_env = layer.source(raw), isinstance(raw, EnvValue)
        text = raw.text if isinstance(raw, EnvValue) else raw
        return self.value(spec.annotation, text, path, source, env=from_env, secret=spec.secret)

    def _node(
        self,
        spec: FieldSpec,
        struct: Struct,
        path: str,
        found: list[tuple[Layer, object]],
        default: object,
    ) -> object:
        """Resolve a nested dataclass setting, merging the layers that give mappings."""
        picked = self._pick(struct, path, found)
        if picked is None:
            return INVALID
        if isinstance(picked, tuple):  # one layer set the whole value: None or an object
            layer, raw = picked
            if raw is None and not spec.nullable:
                expected = f"a mapping of settings ({struct.cls.__qualname__})"
                return self.wrong(path, layer.label, expected, raw, env=False, secret=False)
            return raw
        if picked:
            base = getattr(default, spec.name) if default is not None else _default_of(spec)
            return self.build(struct, path, picked, base if isinstance(base, struct.cls) else None)
        if not spec.required or default is not None:
            return self._default(spec, path, default)
        # Required, and no source said anything: its own settings may all have defaults.
        return self.missing(spec, path) if spec.nullable else self.build(struct, path, [], None)

    def _pick(
        self, struct: Struct, path: str, found: list[tuple[Layer, object]]
    ) -> list[Layer] | tuple[Layer, object] | None:
        """Return the layers' mappings to merge, the one whole value that wins, or None.

        None means a layer gave something else than a mapping (reported).
        """
        layers: list[Layer] = []
        whole: tuple[Layer, object] | None = None
        for layer, raw in found:
            if isinstance(raw, Mapping):
                layers.append(Layer(layer.kind, layer.label, raw))
                whole = None
            elif raw is None or isinstance(raw, struct.cls):
                layers.clear()
                whole = (layer, raw)
            else:
                expected = f"a mapping of settings ({struct.cls.__qualname__})"
                self.wrong(path, layer.label, expected, raw, env=False, secret=False)
                return None
        return whole if whole is not None else layers

    def _default(self, spec: FieldSpec, path: str, default: object) -> object:
        if default is not None:
            return getattr(default, spec.name)
        if spec.required:
            return self.missing(spec, path)
        return _default_of(spec)

    # -- pydantic models -------------------------------------------------------------

    def merge(
        self,
        struct: Struct,
        target: dict[str, Any],
        data: Mapping[str, Any],
        *,
        layer: Layer,
        at: tuple[Loc, str],
        sources: dict[Loc, str],
    ) -> None:
        """Merge *data*, *layer*'s mapping for *struct*, into *target* (a model's input).

        *at* is where *struct* is: its pydantic location and its dotted path.
        """
        loc, path = at
        for key, raw in data.items():
            spec = struct.accepts.get(key)
            if spec is None:
                if struct.extra_allowed:
                    extra = (*loc, key)
                    target[key], sources[extra] = raw, layer.source(raw)
                else:
                    self.unknown_key(struct, path, key, layer)
                continue
            here, where = (*loc, spec.key), join(path, spec.name)
            if spec.secret:
                collect_strings(raw, self.secrets)
            if spec.struct is not None and isinstance(raw, Mapping):
                inner = target.get(spec.key)
                if not isinstance(inner, dict):
                    inner = target[spec.key] = {}
                sources[here] = layer.label
                self.merge(spec.struct, inner, raw, layer=layer, at=(here, where), sources=sources)
                continue
            value = self._model_value(spec, where, raw)
            if value is not INVALID:
                target[spec.key], sources[here] = value, layer.source(raw)

    def _model_value(self, spec: FieldSpec, path: str, raw: object) -> object:
        if not isinstance(raw, EnvValue):
            return raw
        trial = self.fork()
        source = f"env {raw.name}"
        try:
            value = trial.value(
                spec.annotation, raw.text, path, source, env=True, secret=spec.secret
            )
        except UnsupportedTypeError:  # pydantic's own types (SecretStr...) parse strings
            return raw.text
        self.issues.extend(trial.issues)
        return value

    def model_issues(
        self, struct: Struct, exc: Any, sources: Mapping[Loc, str], done: set[Loc]
    ) -> None:
        """Record the errors of a pydantic ``ValidationError`` as issues.

        Locations in *done* were reported already (by the environment's parser).
        """
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = tuple(error["loc"])
            if any(loc[: len(prefix)] == prefix for prefix in done):
                continue
            path, spec = _model_path(struct, loc)
            if error["type"] == "missing" and spec is not None:
                self.missing(spec, path)
                continue
            prefixes = (loc[:end] for end in range(len(loc), 0, -1))
            fallback = "default" if loc else "validation"
            source = next((sources[p] for p in prefixes if p in sources), fallback)
            self.fail(path, source, str(error["msg"]))


def _default_of(spec: FieldSpec) -> object:
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return None


def _model_path(struct: Struct, loc: Loc) -> tuple[str, FieldSpec | None]:
    """Turn a pydantic error's location (keys) into our path (attributes)."""
    path, spec = "", None
    current: Struct | None = struct
    for part in loc:
        found = current.accepts.get(part) if current is not None and isinstance(part, str) else None
        if isinstance(part, int):
            path, current, spec = f"{path}[{part}]", None, None
        elif found is not None:
            path, current, spec = join(path, found.name), found.struct, found
        else:
            path, current, spec = join(path, str(part)), None, None
    return path, spec


def _key_loc(struct: Struct, path: str) -> Loc:
    """Return the pydantic location (keys) of a dotted attribute *path* of *struct*."""
    loc: list[object] = []
    current: Struct | None = struct
    for name in path.split("."):
        spec = next((f for f in current.fields if f.name == name), None) if current else None
        loc.append(spec.key if spec is not None else name)
        current = spec.struct if spec is not None else None
    return tuple(loc)


def _scrub(issue: ConfigIssue, secrets: set[str]) -> ConfigIssue:
    """Mask the values of secrets in *issue* (a ``__post_init__`` may quote them)."""
    message = issue.message
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, MASK)
    return issue if message == issue.message else dataclasses.replace(issue, message=message)


def load(
    cls: type[T],
    path: str | os.PathLike[str] | None = None,
    *,
    env_prefix: str = "APP",
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
    unknown: Unknown = "error",
) -> T:
    """Load a configuration of type *cls* from defaults, a file, the environment and overrides.

    Each setting takes the value of the highest-precedence source that has one:
    the class's defaults, then the file, then the environment, then *overrides*.
    Nested dataclasses merge setting by setting; a list or a mapping is replaced
    whole. Values from the file and from *overrides* must already have the right type
    (a float setting takes an int, but nothing turns a string into a number); values
    from the environment are parsed from their strings.

    Args:
        cls: A dataclass (nested dataclasses allowed; fields described with
            `setting`) or a pydantic v2 model.
        path: The configuration file: ``.json``, ``.toml``, or ``.yaml``/``.yml`` with
            PyYAML installed. ``None`` reads no file.
        env_prefix: The prefix of derived variable names: with ``"APP"``,
            ``server.port`` is read from ``APP_SERVER__PORT``. With ``""`` names have
            no prefix, and no variable is "unknown".
        env: The environment (any mapping; ``{}`` ignores the real one).
        overrides: Values that win over every other source, nested like the file
            and keyed by the file's keys (for tests and command-line flags).
        unknown: ``"error"`` reports keys of the file that match no setting, and
            variables that start with the prefix but match no setting; ``"ignore"``
            skips both. Unknown keys in *overrides* are always errors.

    Returns:
        An instance of *cls*.

    Raises:
        ConfigError: Anything was wrong; its ``errors`` lists every problem.
        TypeError: *cls* is not a configuration class, or one of its fields has a
            type this loader cannot read (a mistake in the code, not the config).
        ValueError: *unknown* or *env_prefix* is invalid.

    .. versionadded:: 0.1.0
    """
    if unknown not in ("error", "ignore"):
        msg = f"unknown must be 'error' or 'ignore', got {unknown!r}"
        raise ValueError(msg)
    if not isinstance(env_prefix, str) or not PREFIX_RE.fullmatch(env_prefix):
        msg = f"env_prefix must be an environment variable name or '', got {env_prefix!r}"
        raise ValueError(msg)
    if overrides is not None and not isinstance(overrides, Mapping):
        msg = f"overrides must be a mapping, got {type(overrides).__name__}"
        raise TypeError(msg)
    struct = struct_of(cls)
    title = f"invalid configuration for {cls.__qualname__}"
    layers: list[Layer] = []
    file_issues: list[ConfigIssue] = []
    if path is not None:
        file = Path(path)
        title += f" from {file}"
        try:
            layers.append(Layer("file", f"file {file}", read_config_file(file)))
        except FileProblemError as exc:
            file_issues.append(exc.issue)
    names = env_names(struct, env_prefix)
    builder = Builder(unknown=unknown, report_missing=not file_issues, env_names=names)
    environment = env_layer(
        struct,
        env,
        prefix=env_prefix,
        names=names,
        report_unknown=unknown == "error",
        sink=builder,
    )
    layers.append(Layer("env", "env", environment))
    if overrides is not None:
        layers.append(Layer("override", "override", overrides))
    if struct.pydantic:
        result = _load_model(struct, layers, builder)
    else:
        result = builder.build(struct, "", layers, None)
    issues = file_issues + builder.issues
    if issues:
        raise ConfigError([_scrub(issue, builder.secrets) for issue in issues], title)
    return cast("T", result)


def _load_model(struct: Struct, layers: list[Layer], builder: Builder) -> object:
    merged: dict[str, Any] = {}
    sources: dict[Loc, str] = {}
    for layer in layers:
        builder.merge(struct, merged, layer.data, layer=layer, at=((), ""), sources=sources)
    done = {_key_loc(struct, issue.path) for issue in builder.issues}
    error_type = getattr(sys.modules.get("pydantic"), "ValidationError", None)
    try:
        return struct.cls.model_validate(merged)
    except Exception as exc:
        if error_type is None or not isinstance(exc, error_type):
            raise
        builder.model_issues(struct, exc, sources, done)
        return INVALID

"""The environment as a layer of values: derived names, ``_FILE`` secrets, unknown names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from seawall_serving.config._convert import Converter, EnvValue
from seawall_serving.config._fields import FieldSpec, Struct
from seawall_serving.config._files import read_secret_file


__all__ = ("env_layer", "env_names")


def _derive(prefix: str, names: list[str]) -> str:
    body = "__".join(name.upper() for name in names)
    if not prefix:
        return body
    return f"{prefix}{body}" if prefix.endswith("_") else f"{prefix}_{body}"


def env_names(struct: Struct, prefix: str) -> dict[str, str]:
    """Return the environment variable of every leaf setting, by its dotted path.

    A field's own ``env`` is used as written; other names are derived from the
    attribute path: ``APP_SERVER__PORT`` for ``server.port`` with the prefix ``APP``.
    """
    names: dict[str, str] = {}

    def walk(node: Struct, attrs: list[str]) -> None:
        for spec in node.fields:
            here = [*attrs, spec.name]
            if spec.struct is not None:
                walk(spec.struct, here)
            else:
                names[".".join(here)] = spec.env or _derive(prefix, here)

    walk(struct, [])
    return names


def _read(
    spec: FieldSpec, path: str, name: str, environ: Mapping[str, str], sink: Converter
) -> object:
    """Return the variable's `EnvValue`, `INVALID` (reported), or None when unset."""
    text = environ.get(name)
    file_name = f"{name}_FILE"
    file_path = environ.get(file_name) if spec.secret else None
    if file_path is None:
        return None if text is None else EnvValue(name, text)
    if text is not None:
        return sink.fail(path, f"env {name}", f"both {name} and {file_name} are set; set only one")
    try:
        return EnvValue(file_name, read_secret_file(file_path))
    except UnicodeDecodeError:
        message = f"the secret file {file_path} is not UTF-8 text"
    except OSError as exc:
        message = f"cannot read the secret file {file_path}: {exc.strerror or type(exc).__name__}"
    return sink.fail(path, f"env {file_name}", message)


def env_layer(
    struct: Struct,
    environ: Mapping[str, str],
    *,
    prefix: str,
    names: Mapping[str, str],
    report_unknown: bool,
    sink: Converter,
) -> dict[str, Any]:
    """Collect the environment's values for *struct*'s settings, nested by file keys.

    Leaves are `EnvValue` strings, or `INVALID` for a variable that could not be
    read (a conflicting or unreadable ``_FILE`` secret, reported to *sink*): a lower
    source must not stand in for it. With *report_unknown*, variables that start with
    the prefix but match no setting are reported too.
    """
    known: set[str] = set()

    def walk(node: Struct, attrs: list[str]) -> dict[str, Any]:
        layer: dict[str, Any] = {}
        for spec in node.fields:
            path = ".".join([*attrs, spec.name])
            if spec.struct is not None:
                if sub := walk(spec.struct, [*attrs, spec.name]):
                    layer[spec.key] = sub
                continue
            name = names[path]
            known.update((name, f"{name}_FILE") if spec.secret else (name,))
            value = _read(spec, path, name, environ, sink)
            if value is not None:
                layer[spec.key] = value
        return layer

    layer = walk(struct, [])
    if prefix and report_unknown:
        start = prefix if prefix.endswith("_") else f"{prefix}_"
        for name in sorted(environ):
            if name.startswith(start) and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                guess = name[len(start) :].lower().replace("__", ".")
                sink.fail(guess, f"env {name}", f"unknown setting: {name} matches no setting{hint}")
    return layer

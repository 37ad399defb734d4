"""Reading configuration files (JSON, TOML, YAML) and secret files."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from seawall_serving.config._errors import ConfigIssue


__all__ = ("FileProblemError", "read_config_file", "read_secret_file")

SUFFIXES: Final = {".json": "JSON", ".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}
TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
TOML_AT_END: Final = re.compile(r"\s*\(at end of document\)\s*$")


class FileProblemError(Exception):
    """The configuration file could not be read or parsed; carries the issue."""

    def __init__(self, issue: ConfigIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def _optional_module(name: str) -> Any:
    # Imported by name: the package imports with the stdlib alone, and type checking
    # needs none of the optional packages.
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _problem(
    path: Path, message: str, line: int | None = None, column: int | None = None
) -> FileProblemError:
    return FileProblemError(ConfigIssue("", f"file {path}", message, line, column))


def _end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _parse_json(path: Path, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise _problem(path, message, exc.lineno, exc.colno) from None
    except RecursionError:
        raise _problem(path, "malformed JSON: nested too deeply") from None


def _parse_toml(path: Path, text: str) -> object:
    module_name = "tomllib" if sys.version_info >= (3, 11) else "tomli"
    toml = _optional_module(module_name)
    if toml is None:
        message = (
            "reading TOML needs Python 3.11's tomllib or, before it, tomli: "
            "pip install 'seawall-serving[toml]'"
        )
        raise _problem(path, message)
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        # Python 3.14 gives the position as attributes; earlier ones only in the text.
        message = str(getattr(exc, "msg", None) or exc)
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        if (found := TOML_POSITION.search(message)) is not None:
            line, column = int(found[1]), int(found[2])
        elif TOML_AT_END.search(message) is not None:
            line, column = _end_of(text)
        message = TOML_AT_END.sub("", TOML_POSITION.sub("", message))
        if line is not None and column is not None:
            message = f"malformed TOML at line {line}, column {column}: {message}"
        else:  # pragma: no cover -- tomllib always says where
            message = f"malformed TOML: {message}"
        raise _problem(path, message, line, column) from None


def _parse_yaml(path: Path, text: str) -> object:
    yaml = _optional_module("yaml")
    if yaml is None:
        message = "reading YAML needs PyYAML: pip install 'seawall-serving[yaml]'"
        raise _problem(path, message)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the problem and its position: the full text quotes the file's lines,
        # which may hold secrets.
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        if mark is None:
            raise _problem(path, f"malformed YAML: {problem}") from None
        line, column = mark.line + 1, mark.column + 1
        message = f"malformed YAML at line {line}, column {column}: {problem}"
        raise _problem(path, message, line, column) from None


def read_config_file(path: Path) -> Mapping[str, Any]:
    """Read and parse the configuration file at *path*, by its extension.

    Raises:
        FileProblemError: The file is missing, unreadable, malformed, of an unknown
            kind, or does not hold a mapping at the top.
    """
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        message = (
            f"cannot tell the format of {path} from its extension "
            "(.json, .toml, .yaml and .yml are read)"
        )
        raise _problem(path, message)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _problem(path, f"file not found: {path}") from None
    except IsADirectoryError:
        raise _problem(path, f"cannot read {path}: it is a directory") from None
    except OSError as exc:
        raise _problem(path, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _problem(path, f"{path} is not UTF-8 text (byte {exc.start})") from None
    parse = {"JSON": _parse_json, "TOML": _parse_toml, "YAML": _parse_yaml}[kind]
    value = parse(path, text)
    if value is None and kind == "YAML":  # an empty YAML document
        return {}
    if not isinstance(value, Mapping):
        message = (
            f"the top of a {kind} configuration file must be a mapping of settings, "
            f"not a {type(value).__name__}"
        )
        raise _problem(path, message)
    return value


def read_secret_file(path: str) -> str:
    """Read a secret mounted as a file (Docker, Kubernetes): its text, less one newline.

    Raises:
        OSError: The file cannot be read.
        UnicodeDecodeError: It is not UTF-8 text.
    """
    text = Path(path).read_bytes().decode("utf-8")
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text

"""`ConfigError` and `ConfigIssue`: every problem with a configuration, reported at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import final


__all__ = ("ConfigError", "ConfigIssue")


@final
@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem with one setting (or with the file as a whole).

    Attributes:
        path: The setting's dotted attribute path (``server.port``; items of lists as
            ``hosts[2]``, entries of mappings as ``labels.team``), or ``""`` for a
            problem with the whole file or class.
        source: Where the offending value came from: ``default`` (no source gave
            one: a required setting is missing), ``file PATH``, ``env NAME``,
            ``override``, or ``validation`` (the class's own checks, such as a
            dataclass's ``__post_init__`` or a pydantic model validator).
        message: What is wrong: for a wrong type, the type expected and the one
            received. It never holds the value of a secret.
        line: The 1-based line of a malformed file's syntax error, else ``None``.
        column: The 1-based column of that error, else ``None``.

    .. versionadded:: 0.1.0
    """

    path: str
    source: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message} [{self.source}]"


@final
class ConfigError(ValueError):
    """A configuration could not be loaded; `errors` lists every problem found.

    Loading does not stop at the first problem: a missing setting, a wrong type in the
    file and an unknown environment variable are all reported by one `ConfigError`,
    whose ``str`` lists them one per line.

    Attributes:
        errors: The problems, in the order they were found (file, environment, then
            the settings in declaration order).
        title: The first line of the message, naming the class (and the file).

    .. versionadded:: 0.1.0
    """

    errors: list[ConfigIssue]
    title: str

    def __init__(self, errors: Iterable[ConfigIssue], title: str = "invalid configuration") -> None:
        self.errors = list(errors)
        self.title = title
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{self.title} ({count} error{'' if count == 1 else 's'}):"
        return "\n".join([head, *(f"  {issue}" for issue in self.errors)])

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[ConfigIssue], str]]:
        return (type(self), (self.errors, self.title))

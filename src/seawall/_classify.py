"""Error classification (interface stub: being filled in)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


__all__ = ("Classification", "ErrorKind", "classify", "is_retryable")


class ErrorKind(enum.Enum):
    """What an exception says about the call that raised it."""

    TRANSIENT = "transient"
    CALLER_ERROR = "caller_error"
    QUOTA_EXHAUSTED = "quota_exhausted"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict of `classify`."""

    kind: ErrorKind
    retry_after: float | None = None
    status_code: int | None = None


def classify(exc: BaseException) -> Classification:
    """Classify *exc*."""
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return Classification(ErrorKind.TRANSIENT)
    return Classification(ErrorKind.UNKNOWN)


def is_retryable(exc: BaseException) -> bool:
    """Return whether *exc* is worth retrying."""
    return classify(exc).kind is ErrorKind.TRANSIENT

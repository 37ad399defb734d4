"""The events a `seawall.Retrier` reports to its hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from seawall._hooks import Event


if TYPE_CHECKING:
    from seawall._retry._core import GiveUpReason


__all__ = ("RetryGaveUp", "RetryScheduled")


@final
@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """An attempt failed and the retrier will try again after *delay* seconds.

    Reported before the wait starts.

    Attributes:
        name: The retrier's name.
        attempt: The number of the attempt that failed, from 1.
        delay: Seconds the retrier waits before the next attempt.
        exception: The exception of the failed attempt, or ``None`` when a result was
            rejected by ``retry_on_result``.
        result_retried: Whether a result, rather than an exception, is being retried.

    .. versionadded:: 0.1.0
    """

    attempt: int
    delay: float
    exception: BaseException | None
    result_retried: bool


@final
@dataclass(frozen=True, slots=True)
class RetryGaveUp(Event):
    """The retrier stopped retrying; the last outcome goes to the caller.

    Attributes:
        name: The retrier's name.
        attempts: Attempts made, the first one included.
        reason: Why the retrier stopped.
        exception: The exception that propagates, or ``None`` when the last result
            (rejected by ``retry_on_result``) is returned.

    .. versionadded:: 0.1.0
    """

    attempts: int
    reason: GiveUpReason
    exception: BaseException | None

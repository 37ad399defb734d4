"""Time, injected: every primitive reads the time and sleeps through a `Clock`.

This is the only module of seawall that touches the real clock. Tests and users swap
it for `seawall.testing.FakeClock`, which moves virtual time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

import anyio


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = (
    "Clock",
    "SystemClock",
    "asleep_until",
    "call_after",
    "resolve_clock",
    "sleep_until",
)


@runtime_checkable
class Clock(Protocol):
    """The time source and the sleeper of a primitive.

    One clock serves a primitive's sync and async callers alike, so ``now`` must be on
    the same timeline as the waits of both ``sleep`` and ``asleep``.

    .. versionadded:: 0.1.0
    """

    def now(self) -> float:
        """Return the current time in seconds on a monotonic timeline."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for *seconds*."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for *seconds* (asyncio or trio, through anyio)."""
        ...


@final
class SystemClock:
    """The real clock: `time.monotonic`, `time.sleep` and `anyio.sleep`.

    anyio's sleep is measured against the event loop's clock, which on asyncio and
    trio is monotonic as well, so the sync and async waits share one timeline.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    # Bound as plain attributes so a call costs one C call, not a Python frame.
    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for *seconds*; always a checkpoint."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def resolve_clock(clock: Clock | None) -> Clock:
    """Return *clock*, or the shared `SystemClock` when it is ``None``."""
    if clock is None:
        return SYSTEM_CLOCK
    if not isinstance(clock, Clock):
        msg = f"clock must provide now(), sleep() and asleep(); got {type(clock).__name__}"
        raise TypeError(msg)
    return clock


def sleep_until(clock: Clock, deadline: float, slack: float = 0.0) -> None:
    """Block until *clock* reads within *slack* seconds of *deadline*.

    A loop, because a real sleep may end a little early.
    """
    remaining = deadline - clock.now()
    while remaining > slack:
        clock.sleep(remaining)
        remaining = deadline - clock.now()


async def asleep_until(clock: Clock, deadline: float, slack: float = 0.0) -> None:
    """Suspend the task until *clock* reads within *slack* seconds of *deadline*.

    Not a checkpoint when the deadline has already come.
    """
    remaining = deadline - clock.now()
    while remaining > slack:
        await clock.asleep(remaining)
        remaining = deadline - clock.now()


def call_after(clock: Clock, seconds: float, callback: Callable[[], object], *, name: str) -> None:
    """Run *callback* once *seconds* have passed on *clock*, without blocking the caller.

    The deadline helper of the sync shells (a sync timeout, a bulkhead's ``max_wait``,
    a sync hedge delay) for clocks other than `SystemClock`, whose callers wait on OS
    primitives directly.

    * A clock with a callable ``call_at(deadline, callback)`` attribute (a virtual
      clock such as `seawall.testing.FakeClock`) gets
      ``clock.call_at(clock.now() + seconds, callback)``: the deadline fires when
      virtual time moves past it, never by itself. So with a virtual clock, a sync call
      is slow in virtual time only if it sleeps on the clock (or a test advances the
      clock) while it runs; an instant call never times out and moves no time.
    * Any other clock: a daemon thread named *name* calls ``clock.sleep(seconds)`` and
      then *callback*.
    """
    call_at = getattr(clock, "call_at", None)
    if callable(call_at):
        call_at(clock.now() + seconds, callback)
        return

    def alarm() -> None:
        clock.sleep(seconds)
        callback()

    threading.Thread(target=alarm, name=name, daemon=True).start()

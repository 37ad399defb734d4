"""Per-instance event hooks: the protocol, the event base class and the dispatcher.

A primitive keeps its hooks as a tuple. With no hooks attached the tuple is empty and
the primitive builds no event at all, so instrumentation costs nothing until it is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias


__all__ = ("Event", "Hook", "Hooks", "emit", "normalize_hooks", "wants_call_events")

logger = logging.getLogger("seawall")


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event a primitive reports to its hooks.

    Attributes:
        name: The name of the primitive that reports the event.

    .. versionadded:: 0.1.0
    """

    name: str


Hook: TypeAlias = Callable[[Event], object]
"""A hook is any callable that takes one event; its return value is ignored.

A hook that has no use for the events of every call (`seawall.CallStarted`,
`seawall.CallEnded`, `seawall.AttemptStarted`, `seawall.AttemptEnded`) may say so with
an attribute ``wants_call_events = False``. When every hook of a primitive says so,
the primitive builds none of them, and its success path costs what it costs without
hooks; the other events still come. Primitives read the attribute once, when made.
"""

Hooks: TypeAlias = tuple[Hook, ...]


def normalize_hooks(hooks: Iterable[Hook] | None) -> Hooks:
    """Validate *hooks* and freeze them into a tuple."""
    if hooks is None:
        return ()
    if callable(hooks):
        msg = "hooks must be an iterable of callables, not a single callable; wrap it: hooks=(h,)"
        raise TypeError(msg)
    frozen = tuple(hooks)
    for index, hook in enumerate(frozen):
        if not callable(hook):
            msg = f"hooks[{index}] must be callable, got {type(hook).__name__}"
            raise TypeError(msg)
    return frozen


def emit(hooks: Hooks, event: Event) -> None:
    """Call every hook with *event*.

    A hook that raises does not change what the protected call returns or raises, nor the
    primitive's state (events are reported after the state is committed). Its exception is
    logged with its traceback on the ``seawall`` logger, never dropped silently.
    """
    for hook in hooks:
        try:
            hook(event)
        except Exception:  # noqa: PERF203 -- each hook is isolated from the others
            logger.exception("seawall hook %r raised while handling %r", hook, event)


def wants_call_events(hooks: Hooks) -> bool:
    """Whether any of *hooks* wants call and attempt events (see `Hook`)."""
    return any(getattr(hook, "wants_call_events", True) for hook in hooks)

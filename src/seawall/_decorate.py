"""Decorators made of a policy's own ``call`` and ``acall``.

`Timeout`, `Bulkhead`, `Fallback` and `Pipeline` decorate a function by routing each
call through their ``call`` (sync functions) or ``acall`` (coroutine functions), or
the unreported versions of those. The kind is decided once, when the decorator is
applied, and so is the reporting of calls (only with an `Observer`); the wrapper keeps
the function's name, docstring and signature.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from seawall._validate import check_callable, is_async_callable


if TYPE_CHECKING:
    from seawall._observe import Observer


__all__ = ("decorate_with_calls",)

P = ParamSpec("P")
T = TypeVar("T")


def decorate_with_calls(
    fn: Callable[P, T],
    call: Callable[..., Any],
    acall: Callable[..., Awaitable[Any]],
    *,
    generator_hint: str,
    observer: Observer | None = None,
) -> Callable[P, T]:
    """Wrap *fn* so that each call goes through *call*, or *acall* if *fn* is async.

    With an *observer*, each call of the wrapper is also reported to its hooks (then
    *call* and *acall* should not report it themselves); without one, nothing is
    added.

    Raises:
        TypeError: *fn* is not callable, or is a (sync or async) generator function,
            which a call-shaped policy cannot guard as a whole; *generator_hint* says
            what to do instead.
    """
    check_callable("fn", fn)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        msg = f"cannot decorate the generator function {fn!r}: {generator_hint}"
        raise TypeError(msg)
    wrapper: Callable[..., object]
    if is_async_callable(fn):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(fn, *args, **kwargs)

        wrapper = async_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return call(fn, *args, **kwargs)

        wrapper = sync_wrapper
    if observer is not None:
        wrapper = observer.wrap(wrapper)
    return cast("Callable[P, T]", functools.update_wrapper(wrapper, fn))

"""`Pipeline`: resilience policies composed around plain functions, first listed outermost.

Not the LLM middleware (`seawall.as_llm_middleware`), whose order is the reverse and
which knows about models and streams; a pipeline only runs calls.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, final

from seawall._decorate import decorate_with_calls
from seawall._limit import RateLimiter


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


__all__ = ("Pipeline",)

P = ParamSpec("P")
T = TypeVar("T")


@final
class _LimiterPolicy:
    """A `RateLimiter` as a pipeline policy: one token per call."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def __repr__(self) -> str:
        return repr(self._limiter)

    def call(self, fn: Callable[[], T], /) -> T:
        with self._limiter:  # one token; reported as a call when the limiter has hooks
            return fn()

    async def acall(self, fn: Callable[[], Awaitable[T]], /) -> T:
        async with self._limiter:
            return await fn()


@final
class Pipeline:
    """Resilience policies around any function; the **first listed is the outermost**.

    ``Pipeline(a, b, c).call(fn)`` runs ``a.call(lambda: b.call(lambda: c.call(fn)))``,
    which reads like stacked decorators, top-down, and like Polly and resilience4j
    pipelines::

        pipeline = seawall.Pipeline(limiter, retrier, breaker)

        call ──► limiter ──► retrier ──► breaker ──► fn
                 (once)      (re-runs     (every
                              what is      attempt)
                              inside)

        # the same as
        @limiter
        @retrier
        @breaker
        def fn(...): ...

    **The LLM middleware's rule is the opposite.** `seawall.as_llm_middleware` and
    `seawall.apply_middleware` follow the Go guide: the *last* listed is outermost, so
    ``as_llm_middleware(with_circuit_breaker(b), with_retry(r), with_rate_limit(l))``
    is the same order as ``Pipeline(l, r, b)``.

    Use it three ways::

        result = pipeline.call(fetch, url)  # sync
        result = await pipeline.acall(afetch, url)  # asyncio or trio


        @pipeline  # sync or coroutine functions; the kind is decided once, here
        async def afetch(url: str) -> bytes: ...

    A policy is any object with ``call(fn, /)`` (for `call`) and/or ``acall(fn, /)``
    (for `acall`) that calls ``fn()`` (or awaits it) and returns its result:
    `seawall.Retrier`, `seawall.CircuitBreaker`, `seawall.Hedger`, ``seawall.Timeout``,
    ``seawall.Bulkhead``, ``seawall.Fallback``, or your own. A `seawall.RateLimiter` is
    accepted too and takes one token per call. The pipeline keeps no per-call state:
    one instance serves every thread and task.

    Args:
        *policies: The policies, outermost first. None at all is allowed: the
            pipeline then just calls the function.

    Raises:
        TypeError: A policy has neither ``call`` nor ``acall``; the message names it.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_async_missing", "_policies", "_sync_missing")

    def __init__(self, *policies: object) -> None:
        adapted: list[Any] = []
        sync_missing: str | None = None
        async_missing: str | None = None
        for index, policy in enumerate(policies):
            if isinstance(policy, RateLimiter):
                adapted.append(_LimiterPolicy(policy))
                continue
            has_call = callable(getattr(policy, "call", None))
            has_acall = callable(getattr(policy, "acall", None))
            if not (has_call or has_acall):
                msg = (
                    f"policies[{index}] must have a call() or acall() method, "
                    f"got {type(policy).__name__}"
                )
                raise TypeError(msg)
            if not has_call and sync_missing is None:
                sync_missing = f"policies[{index}] ({policy!r}) has no call() method"
            if not has_acall and async_missing is None:
                async_missing = f"policies[{index}] ({policy!r}) has no acall() method"
            adapted.append(policy)
        self._policies = tuple(adapted)
        self._sync_missing = sync_missing
        self._async_missing = async_missing

    @property
    def policies(self) -> tuple[object, ...]:
        """The policies, outermost first (a `RateLimiter` appears as its adapter)."""
        return self._policies

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(map(repr, self._policies))})"

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through every policy, the first outermost.

        Raises:
            TypeError: A policy has no ``call`` method (it is async only).
            Exception: Whatever the policies or *fn* raise.
        """
        if self._sync_missing is not None:
            raise TypeError(f"cannot call a sync function: {self._sync_missing}")
        step: Callable[[], Any] = functools.partial(fn, *args, **kwargs)
        for policy in reversed(self._policies):
            step = functools.partial(policy.call, step)
        return cast("T", step())

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through every policy, the first outermost.

        Raises:
            TypeError: A policy has no ``acall`` method (it is sync only).
            Exception: Whatever the policies or *fn* raise.
        """
        if self._async_missing is not None:
            raise TypeError(f"cannot await a coroutine function: {self._async_missing}")
        step: Callable[[], Awaitable[Any]] = functools.partial(fn, *args, **kwargs)
        for policy in reversed(self._policies):
            step = functools.partial(policy.acall, step)
        return cast("T", await step())

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate *fn*, a sync or coroutine function, so that each call runs through.

        The kind is decided once, here; the wrapper keeps *fn*'s name, docstring and
        signature.

        Raises:
            TypeError: *fn* is not callable, or is a (sync or async) generator function.
        """
        return decorate_with_calls(
            fn,
            self.call,
            self.acall,
            generator_hint="run the code that consumes it through the pipeline instead",
        )

"""LLM middleware: the `Model` protocol, the proxy that wraps a model, and the ordering rule.

A middleware turns a model into a model. `apply_middleware` and `as_llm_middleware`
compose them the way the Go guide does: right to left, the last one outermost. This is
not a pipeline for plain functions (see `seawall.Pipeline`, whose rule is the reverse).
"""

from __future__ import annotations

import functools
import inspect
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, final, runtime_checkable

from seawall._validate import is_async_callable


if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Awaitable,
        Callable,
        Generator,
        Iterator,
    )


__all__ = (
    "Layer",
    "Middleware",
    "Model",
    "apply_middleware",
    "as_llm_middleware",
    "wrap_model",
)

T = TypeVar("T")
M = TypeVar("M", bound="Model")

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


@runtime_checkable
class Model(Protocol):
    """Anything with a ``generate(...)`` method, and optionally ``stream(...)``.

    Each method may be sync or async. ``generate`` returns a response (or a coroutine
    of one). ``stream``, when present, is one of:

    * an async generator function (``async def stream(...)`` with ``yield``);
    * a coroutine function returning an async iterator (``await model.stream(...)``,
      like ``await client.chat.completions.create(..., stream=True)``);
    * a sync function returning an iterator (a generator function, typically).

    A sync ``stream`` must return a sync iterator; an async model's ``stream`` must be
    one of the two ``async def`` forms. A protocol cannot say "optional method", so
    ``isinstance(obj, seawall.Model)`` checks ``generate`` only.

    .. versionadded:: 0.1.0
    """

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """Produce one response; sync or ``async def``."""
        ...


class Middleware(Protocol):
    """A callable that wraps a model into another of the same type."""

    def __call__(self, model: M, /) -> M:
        """Return *model* wrapped."""
        ...


class Layer(Protocol):
    """One resilience policy, adapted to the four ways of calling a model.

    ``fn`` is the next inner ``generate``; ``open_stream`` opens the next inner stream
    (awaiting it when async). ``stream`` and ``astream`` are generators: they do nothing
    until the consumer asks for the first chunk.
    """

    def describe(self) -> str:
        """Return a short text for the proxy's repr."""
        ...

    def call(self, fn: Callable[..., T], args: Args, kwargs: Kwargs) -> T:
        """Run a sync ``generate`` through the policy."""
        ...

    async def acall(self, fn: Callable[..., Awaitable[T]], args: Args, kwargs: Kwargs) -> T:
        """Run an async ``generate`` through the policy."""
        ...

    def stream(
        self, open_stream: Callable[..., Iterator[Any]], args: Args, kwargs: Kwargs
    ) -> Generator[Any, None, None]:
        """Run a sync stream through the policy."""
        ...

    def astream(
        self,
        open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
        args: Args,
        kwargs: Kwargs,
    ) -> AsyncGenerator[Any, None]:
        """Run an async stream through the policy."""
        ...


def apply_middleware(model: M, /, *middlewares: Middleware) -> M:
    """Wrap *model* in *middlewares*; the **last one listed is the outermost**.

    ``apply_middleware(model, a, b, c)`` is ``c(b(a(model)))``: a request goes through
    ``c`` first and ``a`` last, right before the model::

        request ──► c ──► b ──► a ──► model.generate / model.stream
        result  ◄── c ◄── b ◄── a ◄──

    The result has the model's type for type checkers; at run time it is a proxy with
    the same ``generate`` (and ``stream``, only if *model* has one), each sync or async
    as on *model*, that forwards every other attribute to *model*.

    Args:
        model: A `seawall.Model`: an object with ``generate`` and optionally ``stream``.
        *middlewares: Callables ``model -> model``, such as `as_llm_middleware`'s
            result or a single ``with_*`` option.

    Raises:
        TypeError: *model* has no callable ``generate``, or a middleware is not
            callable; the message names it.

    .. versionadded:: 0.1.0
    """
    check_model("model", model)
    for index, middleware in enumerate(middlewares):
        if not callable(middleware):
            msg = f"middlewares[{index}] must be callable, got {type(middleware).__name__}"
            raise TypeError(msg)
    for middleware in middlewares:
        model = middleware(model)
    return model


def as_llm_middleware(*options: Middleware) -> Middleware:
    """Compose ``with_*`` options into one middleware; the **last one is the outermost**.

    This is the Go guide's composition, with its order::

        model = seawall.apply_middleware(
            model,
            seawall.as_llm_middleware(
                seawall.with_circuit_breaker(breaker),  # innermost
                seawall.with_retry(retrier),
                seawall.with_rate_limit(limiter),  # outermost
            ),
        )

        request ──► rate limit ──► retry ──► circuit breaker ──► model
                    (one token     (re-runs   (records every
                     per request)   what is    attempt)
                                    inside)

    Each request takes one rate-limit token, then the retrier runs the breaker-guarded
    call as often as it takes. Listing them the other way round would take a token per
    attempt and count a whole retried request as one breaker outcome.

    Args:
        *options: ``with_*`` options or any other middlewares.

    Returns:
        One middleware that applies *options* in that order.

    Raises:
        TypeError: An option is not callable; the message names it.

    .. versionadded:: 0.1.0
    """
    for index, option in enumerate(options):
        if not callable(option):
            msg = f"options[{index}] must be callable, got {type(option).__name__}"
            raise TypeError(msg)
    return _Composed(options)


@final
class _Composed:
    """The middleware `as_llm_middleware` returns."""

    __slots__ = ("_options",)

    def __init__(self, options: tuple[Middleware, ...]) -> None:
        self._options = options

    def __call__(self, model: M, /) -> M:
        return apply_middleware(model, *self._options)

    def __repr__(self) -> str:
        return f"as_llm_middleware({', '.join(map(repr, self._options))})"


def check_model(param: str, model: object) -> None:
    """Check that *model* has a callable ``generate`` (and, if present, ``stream``)."""
    generate = getattr(model, "generate", None)
    if not callable(generate):
        msg = f"{param} must have a callable generate() method, got {type(model).__name__}"
        raise TypeError(msg)
    stream = getattr(model, "stream", None)
    if stream is not None and not callable(stream):
        msg = f"{param}.stream must be callable, got {type(stream).__name__}"
        raise TypeError(msg)


def wrap_model(model: M, layer: Layer) -> M:
    """Return *model* wrapped by *layer* (the body of every ``with_*`` middleware)."""
    check_model("model", model)
    # The proxy is not an M, but has M's methods with M's signatures and forwards the
    # rest: that is the promise the TypeVar makes to type checkers.
    return cast("M", _ModelProxy(model, layer))


@final
class _ModelProxy:
    """A model seen through one layer; everything but the model methods is forwarded."""

    __slots__ = ("_seawall_inner", "_seawall_layer", "generate", "stream")

    generate: Callable[..., Any]
    stream: Callable[..., Any]

    def __init__(self, inner: Model, layer: Layer) -> None:
        self._seawall_inner = inner
        self._seawall_layer = layer
        self.generate = _wrap_generate(inner.generate, layer)
        stream = getattr(inner, "stream", None)
        if stream is not None:
            self.stream = _wrap_stream(stream, layer)

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the slots do not hold, including an unset `stream`.
        if name.startswith("_seawall_"):
            raise AttributeError(name)
        return getattr(self._seawall_inner, name)

    def __repr__(self) -> str:
        return f"<{self._seawall_layer.describe()} over {self._seawall_inner!r}>"


def _wrap_generate(fn: Callable[..., Any], layer: Layer) -> Callable[..., Any]:
    wrapper: Callable[..., Any]
    if is_async_callable(fn):

        async def agenerate(*args: Any, **kwargs: Any) -> Any:
            return await layer.acall(fn, args, kwargs)

        wrapper = agenerate
    else:

        def generate(*args: Any, **kwargs: Any) -> Any:
            return layer.call(fn, args, kwargs)

        wrapper = generate
    return functools.update_wrapper(wrapper, fn)


def _wrap_stream(fn: Callable[..., Any], layer: Layer) -> Callable[..., Any]:
    wrapper: Callable[..., Any]
    if inspect.isasyncgenfunction(fn):

        async def open_generator(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return cast("AsyncIterator[Any]", fn(*args, **kwargs))

        async def astream(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
            async with aclosing(layer.astream(open_generator, args, kwargs)) as chunks:
                async for chunk in chunks:
                    yield chunk

        wrapper = astream
    elif is_async_callable(fn):

        async def aopen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            # Lazy: the policies act when the consumer asks for the first chunk.
            return layer.astream(fn, args, kwargs)

        wrapper = aopen
    else:

        def stream(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
            yield from layer.stream(fn, args, kwargs)  # closes it when closed

        wrapper = stream
    return functools.update_wrapper(wrapper, fn)

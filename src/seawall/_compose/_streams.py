"""Stream plumbing shared by the middleware layers: opening, first chunk, closing.

Streams are sync iterators or async iterators. These helpers close whatever they
opened, on every path, and never add a checkpoint of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

import anyio


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator


__all__ = (
    "EMPTY",
    "aclose_iterator",
    "aopen_first",
    "close_iterator",
    "open_first",
)


@final
class _Empty:
    """The first chunk of a stream that ended without any."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<empty stream>"


EMPTY: Final = _Empty()


def close_iterator(iterator: Iterator[Any]) -> None:
    """Close *iterator* if it can be closed (generators, SDK stream objects)."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def aclose_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close *iterator* with ``aclose`` (async generators) or an async ``close`` (SDKs).

    Shielded: cleanup often runs because a cancel scope fired (a timeout, a hedge that
    lost, a caller that gave up), and an SDK stream whose close awaits must still finish
    closing its connection.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        aclose = getattr(iterator, "close", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


def open_first(
    open_stream: Callable[..., Iterator[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Iterator[Any], object]:
    """Open a sync stream and read its first chunk (`EMPTY` if it has none).

    The stream is closed when reading the first chunk fails, so a failed attempt
    leaves no open connection behind.
    """
    iterator = iter(open_stream(*args, **kwargs))
    try:
        first: object = next(iterator, EMPTY)
    except BaseException:
        close_iterator(iterator)
        raise
    return iterator, first


async def aopen_first(
    open_stream: Callable[..., Awaitable[AsyncIterator[Any]]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[AsyncIterator[Any], object]:
    """Open an async stream and read its first chunk (`EMPTY` if it has none).

    The stream is closed when reading the first chunk fails.
    """
    iterator = await open_stream(*args, **kwargs)
    try:
        first: object = await anext(iterator, EMPTY)
    except BaseException:
        await aclose_iterator(iterator)
        raise
    return iterator, first


def relay(
    open_stream: Callable[..., Iterator[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Generator[Any, None, None]:
    """Open a sync stream and yield all of it; close it however the iteration ends.

    Only for sync streams: an async twin would be an async generator nested in another,
    whose early close leaves the inner one to the garbage collector (trio warns).
    """
    iterator = iter(open_stream(*args, **kwargs))
    try:
        yield from iterator
    finally:
        close_iterator(iterator)

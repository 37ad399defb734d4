"""Fallback: substitute values for failures and bad results, sync and async."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from seawall import Fallback, FallbackStatistics, FellBack
from seawall.testing import RecordingHook


def boom(exc: Exception | None = None) -> Any:
    raise exc if exc is not None else ValueError("boom")


async def aboom(exc: Exception | None = None) -> Any:
    await anyio.lowlevel.checkpoint()
    raise exc if exc is not None else ValueError("boom")


class TestConstruction:
    """Options are validated when the policy is built."""

    def test_instantiate_outside_event_loop(self) -> None:
        """A fallback is built without an event loop and used from one later."""
        fallback = Fallback(0)

        async def main() -> int:
            return await fallback.acall(aboom)

        assert anyio.run(main) == 0

    def test_exactly_one_of_value_or_factory(self) -> None:
        """Both or neither of value and factory is a TypeError naming them."""
        with pytest.raises(TypeError, match="value or factory"):
            Fallback()
        with pytest.raises(TypeError, match="value or factory"):
            Fallback(1, factory=repr)

    def test_none_is_a_valid_value(self) -> None:
        """value=None is a fallback value, not "missing"."""
        assert Fallback(None).call(boom) is None

    @pytest.mark.parametrize("param", ["factory", "when", "when_result"])
    def test_callables_checked(self, param: str) -> None:
        """factory, when and when_result must be callable; the error names them."""
        kwargs: dict[str, Any] = {param: 3}
        if param != "factory":
            kwargs["value"] = 0
        with pytest.raises(TypeError, match=param):
            Fallback(**kwargs)

    def test_bad_name_and_hooks(self) -> None:
        """An empty name and a non-callable hook are rejected."""
        with pytest.raises(ValueError, match="name"):
            Fallback(0, name="")
        with pytest.raises(TypeError, match="hooks"):
            Fallback(0, hooks=(1,))  # type: ignore[arg-type]

    def test_repr(self) -> None:
        """The repr shows the name, the source of the value and the counters."""
        assert repr(Fallback(0, name="f")) == "Fallback(name='f', value=..., calls=0, fallbacks=0)"
        assert "factory=" in repr(Fallback(factory=str))


class TestSyncFallback:
    """call() and sync decorated functions."""

    def test_success_passes_through(self) -> None:
        """A successful call's result is returned; no fallback counted."""
        fallback = Fallback(0)
        assert fallback.call(lambda x: x + 1, 1) == 2
        assert fallback.statistics() == FallbackStatistics(name="fallback", calls=1, fallbacks=0)

    def test_value_on_exception(self) -> None:
        """Any Exception falls back to the value by default."""
        assert Fallback("v").call(boom) == "v"

    def test_factory_gets_the_exception(self) -> None:
        """The factory receives the exception that was replaced."""
        error = KeyError("k")
        seen: list[Exception | None] = []

        def factory(exc: Exception | None) -> str:
            seen.append(exc)
            return "f"

        assert Fallback(factory=factory).call(boom, error) == "f"
        assert seen == [error]

    def test_predicate_chooses_exceptions(self) -> None:
        """when() declines an exception: it propagates unchanged."""
        fallback = Fallback(0, when=lambda exc: isinstance(exc, KeyError))
        assert fallback.call(boom, KeyError("k")) == 0
        error = ValueError("v")
        with pytest.raises(ValueError, match="v") as info:
            fallback.call(boom, error)
        assert info.value is error
        assert fallback.statistics().fallbacks == 1

    def test_result_predicate(self) -> None:
        """when_result replaces a bad result; the factory then gets None."""
        seen: list[Exception | None] = []

        def factory(exc: Exception | None) -> int:
            seen.append(exc)
            return -1

        fallback = Fallback(factory=factory, when_result=lambda r: r is None)
        assert fallback.call(lambda: None) == -1
        assert fallback.call(lambda: 5) == 5
        assert seen == [None]

    def test_factory_error_propagates_with_context(self) -> None:
        """A failing factory's exception propagates, chained to the original."""
        original = ValueError("first")

        def factory(exc: Exception | None) -> int:
            raise RuntimeError("factory")

        with pytest.raises(RuntimeError, match="factory") as info:
            Fallback(factory=factory).call(boom, original)
        assert info.value.__context__ is original

    def test_base_exceptions_pass(self) -> None:
        """KeyboardInterrupt is not an Exception: it never falls back."""
        fallback = Fallback(0)
        with pytest.raises(KeyboardInterrupt):
            fallback.call(boom, KeyboardInterrupt())  # type: ignore[arg-type]
        assert fallback.statistics().fallbacks == 0

    def test_async_factory_needs_acall(self) -> None:
        """An async factory cannot serve call() or a sync decorated function."""

        async def factory(exc: Exception | None) -> int:
            return 1

        fallback = Fallback(factory=factory)
        with pytest.raises(TypeError, match="acall"):
            fallback.call(boom)
        with pytest.raises(TypeError, match="async factory"):
            fallback(lambda: 1)

    def test_decorator(self) -> None:
        """A decorated sync function falls back and keeps its metadata."""

        @Fallback([])
        def search(query: str) -> list[str]:
            """Search."""
            raise ConnectionError(query)

        assert search("q") == []
        assert search.__name__ == "search"
        assert search.__doc__ == "Search."

    def test_decorator_rejects_generators(self) -> None:
        """Generator functions and non-callables cannot be decorated."""

        def gen() -> Any:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            Fallback(0)(gen)
        with pytest.raises(TypeError, match="callable"):
            Fallback(0)(3)  # type: ignore[arg-type]

    def test_threads(self) -> None:
        """Counters add up when many threads share one instance."""
        fallback = Fallback(0)

        def work() -> None:
            for i in range(200):
                fallback.call(boom) if i % 2 else fallback.call(int, "1")

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert fallback.statistics() == FallbackStatistics(
            name="fallback", calls=1600, fallbacks=800
        )


@pytest.mark.anyio
class TestAsyncFallback:
    """acall() and coroutine functions, on asyncio and trio."""

    async def test_value_and_success(self) -> None:
        """A failure falls back; a success passes through."""
        fallback = Fallback("v")
        assert await fallback.acall(aboom) == "v"

        async def ok() -> str:
            return "ok"

        assert await fallback.acall(ok) == "ok"

    async def test_async_factory(self) -> None:
        """An async factory is awaited with the exception."""
        error = TimeoutError("slow")

        async def factory(exc: Exception | None) -> str:
            await anyio.lowlevel.checkpoint()
            return f"cached after {exc!r}"

        assert await Fallback(factory=factory).acall(aboom, error) == f"cached after {error!r}"

    async def test_sync_factory_in_acall(self) -> None:
        """A sync factory works in acall too."""
        assert await Fallback(factory=lambda _: 7).acall(aboom) == 7

    async def test_result_predicate(self) -> None:
        """when_result replaces a bad async result."""

        async def empty() -> str:
            return ""

        assert await Fallback("x", when_result=lambda r: r == "").acall(empty) == "x"

    async def test_predicate_declines(self) -> None:
        """when() declining an exception lets it propagate."""
        fallback = Fallback(0, when=lambda _: False)
        with pytest.raises(ValueError, match="boom"):
            await fallback.acall(aboom)

    async def test_cancellation_not_caught(self) -> None:
        """Cancellation propagates; it is not a failure and nothing falls back."""
        fallback = Fallback(0)

        async def hang() -> int:
            await anyio.Event().wait()
            return 1

        with anyio.CancelScope() as scope:
            scope.cancel()
            await fallback.acall(hang)
        assert scope.cancelled_caught
        assert fallback.statistics() == FallbackStatistics(name="fallback", calls=1, fallbacks=0)

    async def test_decorator(self) -> None:
        """A decorated coroutine function falls back, with an async factory."""

        async def factory(exc: Exception | None) -> list[str]:
            return ["cached"]

        @Fallback(factory=factory)
        async def search(query: str) -> list[str]:
            raise ConnectionError(query)

        assert await search("q") == ["cached"]


class TestHooksAndStatistics:
    """FellBack events and counters."""

    def test_fell_back_event(self) -> None:
        """Each fallback reports FellBack with the exception, or None for a result."""
        hook = RecordingHook()
        fallback = Fallback(0, when_result=lambda r: r < 0, hooks=(hook,), name="f")
        error = ValueError("x")
        fallback.call(boom, error)
        fallback.call(lambda: -1)
        fallback.call(lambda: 1)
        assert hook.of_type(FellBack) == [FellBack("f", error), FellBack("f", None)]
        assert fallback.statistics() == FallbackStatistics(name="f", calls=3, fallbacks=2)

    def test_hook_error_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """A raising hook does not change the fallback's answer."""

        def bad(event: object) -> None:
            raise RuntimeError("hook")

        assert Fallback(0, hooks=(bad,)).call(boom) == 0
        assert "hook" in caplog.text

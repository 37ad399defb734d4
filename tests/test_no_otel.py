"""Without opentelemetry installed, the core imports and works, and seawall.otel says why not.

Each test runs a fresh interpreter in which a `sys.meta_path` finder makes every
``opentelemetry`` import fail as if the distribution were not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


BLOCK_OPENTELEMETRY = textwrap.dedent(
    """
    import sys

    class BlockOpenTelemetry:
        '''Fail every opentelemetry import, as if it were not installed.'''

        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockOpenTelemetry())
    for loaded in [m for m in sys.modules if m.split(".")[0] == "opentelemetry"]:
        del sys.modules[loaded]
    """
)


def run(code: str) -> str:
    """Run *code* after the blocking finder; return its stdout (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_OPENTELEMETRY + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_block_works() -> None:
    """The finder really hides opentelemetry (which is installed in this environment)."""
    out = run(
        """
        try:
            import opentelemetry.trace
        except ModuleNotFoundError as exc:
            print("blocked", exc.name)
        """
    )
    assert out.split() == ["blocked", "opentelemetry"]


def test_core_works_without_opentelemetry() -> None:
    """Breaker, retrier and limiter calls, sync and async, with plain hooks."""
    out = run(
        """
        import logging

        import anyio

        import seawall
        from seawall.testing import FakeClock, RecordingHook

        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        log = logging.getLogger("app")
        recording = RecordingHook()

        def log_hook(event):
            log.info("event %s", type(event).__name__)

        hooks = [recording, log_hook]
        if hasattr(seawall, "LoggingHook"):
            hooks.append(seawall.LoggingHook())
        clock = FakeClock()
        breaker = seawall.CircuitBreaker(max_failures=1, clock=clock, hooks=hooks)
        retrier = seawall.Retrier(max_attempts=3, clock=clock, hooks=hooks)
        limiter = seawall.RateLimiter(rate=1, burst=1, clock=clock, hooks=hooks)
        failures = [ConnectionError("reset")]

        def flaky():
            if failures:
                raise failures.pop()
            return "ok"

        assert breaker.call(lambda: 1) == 1
        assert retrier.call(flaky) == "ok"

        @limiter
        def limited():
            return 2

        assert [limited(), limited()] == [2, 2]
        assert not limiter.try_acquire()

        async def main():
            async def work():
                return 3

            assert await breaker.acall(work) == 3
            assert await retrier.acall(work) == 3

        anyio.run(main)
        kinds = {type(event).__name__ for event in recording.events}
        assert {"RetryScheduled", "AcquireWaited", "RateLimited"} <= kinds, kinds
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
        print("loaded:", loaded)
        """
    )
    assert "event RetryScheduled" in out
    assert out.strip().splitlines()[-1] == "loaded: []"


def test_seawall_otel_names_the_extra() -> None:
    """Importing seawall.otel fails with an ImportError that names seawall[otel]."""
    out = run(
        """
        import seawall

        try:
            import seawall.otel
        except ImportError as exc:
            print(type(exc).__name__, "|", exc, "|", type(exc.__cause__).__name__)
        else:
            raise AssertionError("seawall.otel imported without opentelemetry")
        assert "seawall.otel" not in sys.modules
        """
    )
    kind, message, cause = (part.strip() for part in out.split("|"))
    assert kind == "ImportError"
    assert "seawall[otel]" in message
    assert "opentelemetry" in message.lower()
    assert cause == "ModuleNotFoundError"

"""The daemon worker pool behind sync timeouts and sync hedging."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import textwrap
import threading

import pytest

from seawall._threads import DaemonPool, default_workers


TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("TENANT", default="none")


class TestDaemonPool:
    """Futures, reuse, shutdown, and exit with an abandoned call."""

    def test_results_and_exceptions_reach_the_future(self) -> None:
        """A call's result or exception ends up in its future."""
        pool = DaemonPool(2, "test")
        assert pool.submit(lambda x: x * 2, 21).result(timeout=10) == 42
        boom = ValueError("boom")

        def fail() -> None:
            raise boom

        assert pool.submit(fail).exception(timeout=10) is boom
        pool.shutdown()

    def test_threads_are_capped_and_reused(self) -> None:
        """No more than max_workers threads run; idle ones take the next call."""
        pool = DaemonPool(2, "capped")
        gate = threading.Event()
        running: list[int] = []
        lock = threading.Lock()
        peak = [0]

        def work() -> None:
            with lock:
                running.append(1)
                peak[0] = max(peak[0], len(running))
            gate.wait(timeout=10)
            with lock:
                running.pop()

        futures = [pool.submit(work) for _ in range(6)]
        gate.set()
        for future in futures:
            future.result(timeout=10)
        assert peak[0] <= 2
        assert "threads=2" in repr(pool)
        pool.shutdown()

    def test_shutdown_cancels_queued_calls_and_refuses_new_ones(self) -> None:
        """Queued calls are cancelled at shutdown; later submits raise."""
        pool = DaemonPool(1, "closing")
        gate = threading.Event()
        running = pool.submit(gate.wait, 10)
        queued = pool.submit(lambda: "never")
        pool.shutdown()
        assert queued.cancelled()
        gate.set()
        assert running.result(timeout=10) is True
        with pytest.raises(RuntimeError, match="shut down"):
            pool.submit(lambda: None)
        pool.shutdown()  # idempotent

    def test_calls_run_in_a_copy_of_the_submitters_context(self) -> None:
        """A call sees the context variables set when it was submitted, not later ones."""
        pool = DaemonPool(1, "context")
        gate = threading.Event()

        def read_later() -> str:
            gate.wait(10)
            return TENANT.get()

        token = TENANT.set("acme")
        try:
            blocked = pool.submit(read_later)
            TENANT.set("globex")  # after submit: the queued call keeps its copy
            assert TENANT.get() == "globex"
            gate.set()
            assert blocked.result(timeout=10) == "acme"
        finally:
            TENANT.reset(token)
        pool.shutdown()

    def test_a_calls_changes_do_not_leak(self) -> None:
        """What a call sets stays in its copy: not in the caller, not in the next call."""
        pool = DaemonPool(1, "leak")

        def set_tenant() -> str:
            TENANT.set("inside")
            return TENANT.get()

        assert pool.submit(set_tenant).result(timeout=10) == "inside"
        assert TENANT.get() == "none"
        assert pool.submit(TENANT.get).result(timeout=10) == "none"  # same worker thread
        pool.shutdown()

    def test_default_workers(self) -> None:
        """The default size follows ThreadPoolExecutor's rule."""
        assert 5 <= default_workers() <= 32

    @pytest.mark.parametrize("primitive", ["timeout", "hedger"])
    def test_abandoned_call_does_not_block_exit(self, primitive: str) -> None:
        """A process exits even while an abandoned sync call is stuck forever."""
        code = textwrap.dedent(
            f"""
            import threading
            import seawall
            from seawall.testing import FakeClock

            stuck = threading.Event()
            if {primitive!r} == "timeout":
                clock = FakeClock()
                policy = seawall.Timeout(1.0, clock=clock)

                def slow():
                    clock.sleep(2.0)  # slow in virtual time: passes the deadline
                    stuck.wait()

                try:
                    policy.call(slow)
                except seawall.CallTimeoutError:
                    print("abandoned")
            else:
                calls = []

                def attempt():
                    calls.append(1)
                    if len(calls) == 1:
                        stuck.wait()
                    return "hedge"

                print("abandoned" if seawall.Hedger(delay=0).call(attempt) == "hedge" else "?")
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "abandoned"

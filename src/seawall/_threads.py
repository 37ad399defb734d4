"""A worker pool for calls that may be abandoned: its threads never hold up exit.

`concurrent.futures.ThreadPoolExecutor` joins its workers when the interpreter exits, so
one call that a sync timeout or a sync hedger abandoned, and that never returns, would
keep the whole process alive. `DaemonPool` runs calls on daemon threads instead: the
interpreter exits without them. It returns ordinary `concurrent.futures.Future` objects.

Every call runs on the caller's behalf, so it runs in a copy of the submitting thread's
`contextvars` context, taken at submit time (as `asyncio.to_thread` does): context
variables such as an OpenTelemetry current span or a tenant id flow into the worker, and
what the call sets there does not leak back into the caller, nor into the next call the
worker runs.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import itertools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar, final


__all__ = ("DaemonPool", "default_workers")

T = TypeVar("T")

_Work = tuple[
    "concurrent.futures.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


def default_workers() -> int:
    """Return ThreadPoolExecutor's default size: ``min(32, cpu_count + 4)``."""
    return min(32, (os.cpu_count() or 1) + 4)


@final
class DaemonPool:
    """Run calls on up to *max_workers* daemon threads, started on demand and reused.

    Each call runs in a copy of the `contextvars` context of the thread that submitted
    it, taken by `submit`.

    Args:
        max_workers: The most threads at once, >= 1.
        name: A prefix for the threads' names.
    """

    __slots__ = (
        "_closed",
        "_idle",
        "_lock",
        "_max_workers",
        "_name",
        "_numbers",
        "_queue",
        "_threads",
    )

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        # Released by a worker each time it finishes a call and goes back to waiting.
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0
        self._closed = False
        self._numbers = itertools.count(1)

    def __repr__(self) -> str:
        return f"DaemonPool(name={self._name!r}, threads={self._threads}, max={self._max_workers})"

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)`` and return its future.

        The call will run in a copy of the current `contextvars` context, taken here.

        Raises:
            RuntimeError: The pool was shut down.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        # One copy per call: a context can be entered by one thread at a time, and the
        # call's own changes must stay its own.
        context = contextvars.copy_context()
        with self._lock:
            if self._closed:
                msg = f"worker pool {self._name!r} is shut down"
                raise RuntimeError(msg)
            self._queue.put((future, context, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and self._threads < self._max_workers:
                self._threads += 1
                threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{next(self._numbers)}",
                    daemon=True,
                ).start()
        return future

    def shutdown(self, *, cancel_futures: bool = True) -> None:
        """Stop taking calls; cancel those not started yet; never wait for running ones."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        if cancel_futures:
            while True:
                try:
                    work = self._queue.get_nowait()
                except queue.Empty:
                    break
                if work is not None:
                    work[0].cancel()
        for _ in range(threads):
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            future, context, fn, args, kwargs = work
            del work
            if future.set_running_or_notify_cancel():
                try:
                    result = context.run(fn, *args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 -- handed to the future's owner, as ThreadPoolExecutor does
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result
            del future, context, fn, args, kwargs
            self._idle.release()

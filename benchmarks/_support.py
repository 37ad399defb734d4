"""Helpers shared by the benchmark modules.

Every group of benchmarks (``@pytest.mark.benchmark(group=...)``) measures one operation
in several ways, in the same run; by convention each group has a ``plain`` row (the
operation with nothing around it) and a ``passthrough`` row (the same through the
cheapest honest decorator), so that `report.py` can give every row as a ratio to both.

An async call cannot be timed alone without timing the event loop start-up, so every
async benchmark awaits the operation ``BATCH`` times inside one running loop; each row
records how many operations one round makes in ``benchmark.extra_info["calls_per_round"]``
and the reports divide by it, so every figure is per call. Ratios between rows of the
same group are unaffected.

`run.py` also loads this module as a pytest plugin (``-p _support``) in each of the
fresh interpreters it starts: see the hooks at the end.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture


BATCH = 1000
"""Operations per round of an async benchmark."""

TASKS = 10
"""Tasks of a contended async benchmark; each makes ``BATCH // TASKS`` operations a round."""

CALLS_PER_ROUND = "calls_per_round"
"""The ``extra_info`` key that tells the reports how many operations one round makes."""


def bench_async(benchmark: BenchmarkFixture, op: Callable[[], Awaitable[object]]) -> None:
    """Benchmark BATCH sequential awaits of *op* in one asyncio event loop."""

    async def run() -> None:
        for _ in range(BATCH):
            await op()

    _run_rounds(benchmark, run)


def bench_async_built(
    benchmark: BenchmarkFixture, build: Callable[[], Callable[[], Awaitable[object]]]
) -> None:
    """As `bench_async`, for an operation that *build* must make inside the running loop.

    For peers that bind to the running event loop when they are built (hyx).
    """
    ops: list[Callable[[], Awaitable[object]]] = []

    async def run() -> None:
        if not ops:
            ops.append(build())
        op = ops[0]
        for _ in range(BATCH):
            await op()

    _run_rounds(benchmark, run)


def bench_async_rejected(
    benchmark: BenchmarkFixture,
    op: Callable[[], Awaitable[object]],
    error: type[BaseException] | tuple[type[BaseException], ...],
) -> None:
    """Benchmark BATCH sequential awaits of *op*, each of which raises *error*, caught."""

    async def run() -> None:
        for _ in range(BATCH):
            # try/except, not contextlib.suppress: the catch is part of what is measured,
            # and the context manager would cost more than some of the rejections.
            try:  # noqa: SIM105
                await op()
            except error:  # noqa: PERF203
                pass

    _run_rounds(benchmark, run)


def bench_contended(
    benchmark: BenchmarkFixture, op: Callable[[], Awaitable[object]], tasks: int = TASKS
) -> None:
    """Benchmark *tasks* tasks awaiting *op* at the same time, BATCH awaits in all a round.

    Each task makes ``BATCH // tasks`` awaits, so a round is BATCH operations like the
    other async rows; the tasks are created inside the round (their creation is part
    of what is measured, the same for every row of a group).
    """
    each = BATCH // tasks

    async def worker() -> None:
        for _ in range(each):
            await op()

    async def run() -> None:
        await asyncio.gather(*(worker() for _ in range(tasks)))

    _run_rounds(benchmark, run, calls=each * tasks)


def _run_rounds(
    benchmark: BenchmarkFixture, run: Callable[[], Awaitable[None]], calls: int = BATCH
) -> None:
    benchmark.extra_info[CALLS_PER_ROUND] = calls
    loop = asyncio.new_event_loop()
    try:
        benchmark(lambda: loop.run_until_complete(run()))
    finally:
        # Background tasks a peer left on the loop (limits.aio's expiry task, for one).
        pending = asyncio.all_tasks(loop)
        if pending:
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


def passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The cheapest honest decorator: call through, nothing else."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def apassthrough(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The async twin of `passthrough`."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def rejected(
    fn: Callable[[], object], error: type[BaseException] | tuple[type[BaseException], ...]
) -> Callable[[], None]:
    """Return a function that calls *fn*, which raises *error*, and catches it.

    A ``try``/``except`` rather than `contextlib.suppress`: the context manager alone
    costs more than some of the rejections measured with it.
    """

    def call() -> None:
        try:  # noqa: SIM105 -- see the docstring
            fn()
        except error:
            pass

    return call


class Rejection(Exception):  # noqa: N818 -- named for what it stands for in the tables
    """The exception of the bare raise-and-catch rows: raised by class, built in C."""


def raise_rejection() -> None:
    """Raise a new `Rejection`: the plain "operation" of a rejection group."""
    raise Rejection


async def araise_rejection() -> None:
    """The async twin of `raise_rejection`."""
    raise Rejection


def work() -> int:
    """The protected function: as cheap as a call can be."""
    return 1


async def awork() -> int:
    """The async protected function."""
    return 1


def fail() -> int:
    """A protected function that always fails, to trip breakers."""
    raise ConnectionError("down")


async def afail() -> int:
    """The async twin of `fail`."""
    raise ConnectionError("down")


# -- a pytest plugin for run.py (``-p _support``) -------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_generate_machine_info(config: pytest.Config) -> dict[str, str]:  # noqa: ARG001 -- the hook's signature
    """Skip pytest-benchmark's CPU probe in every interpreter: run.py records it once."""
    return {"recorded_by": "benchmarks/run.py"}


@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_generate_commit_info(config: pytest.Config) -> dict[str, str]:  # noqa: ARG001 -- same
    """Skip pytest-benchmark's git calls in every interpreter: run.py records the commit."""
    return {"recorded_by": "benchmarks/run.py"}

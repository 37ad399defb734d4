"""Rate limiter accuracy and fairness on the real clock: many tasks or threads, a few seconds.

Usage: python benchmarks/limiter_accuracy.py [--seconds 3] [--tasks 50] [--threads 8]
       [--backend asyncio|trio|all] [--slack 0.001]

Each worker acquires one token at a time from one shared ``RateLimiter(rate=100,
burst=20)`` for the given duration: tasks on asyncio and on trio, then threads. A
markdown table gives, for each:

* the grants against the ideal ``burst + rate * t``: they must be within 1% of it;
* the worst excess over ``burst + rate * (t_j - t_i)`` of the grants made in any window
  ``[t_i, t_j]`` between two grants (every pair is checked, so no window is missed): it
  must never be positive. A grant's time is read just after ``acquire`` returns, so it
  can be late by the time a task or thread takes to be scheduled again; the verdict
  allows ``--slack`` seconds of that (``rate * slack`` tokens: 0.1 at the defaults, less
  than one grant, so a single grant too many still fails);
* fairness: the largest share of a worker over the smallest, next to the best possible
  with that many grants and workers (``ceil(n / w) / floor(n / w)``).
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from dataclasses import dataclass

import anyio
import anyio.lowlevel

import seawall


RATE = 100.0
BURST = 20
TOLERANCE = 0.01  # grants within 1% of burst + rate * t


@dataclass(frozen=True)
class Result:
    """The grants of one run, checked."""

    workers: str
    seconds: float
    granted: int
    ideal: float
    worst_excess: float
    shares: tuple[int, ...]

    @property
    def accurate(self) -> bool:
        """Whether the grants are within 1% of the ideal."""
        return abs(self.granted - self.ideal) <= TOLERANCE * self.ideal

    def never_above(self, slack: float) -> bool:
        """Whether no window got more than its bound, allowing *slack* seconds of timing."""
        return self.worst_excess <= RATE * slack

    @property
    def fairness(self) -> float:
        """The largest share over the smallest."""
        return max(self.shares) / max(1, min(self.shares))

    @property
    def best_fairness(self) -> float:
        """The best possible largest share over smallest, for this many grants and workers."""
        workers = len(self.shares)
        return math.ceil(self.granted / workers) / max(1, self.granted // workers)


def check(workers: str, grants: list[float], shares: list[int], seconds: float) -> Result:
    """Check the grant times of one run against the token bucket's bound."""
    grants.sort()
    worst = float("-inf")
    # For every pair of grants i <= j, the grants in [t_i, t_j] must be at most
    # burst + rate * (t_j - t_i); scanning each j against every earlier i is exact.
    for j, t_j in enumerate(grants):
        for i in range(j + 1):
            excess = (j - i + 1) - (BURST + RATE * (t_j - grants[i]))
            worst = max(worst, excess)
    return Result(workers, seconds, len(grants), BURST + RATE * seconds, worst, tuple(shares))


async def run_tasks(seconds: float, tasks: int, backend: str, results: list[Result]) -> None:
    """Tasks on the running event loop share one limiter."""
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    grants: list[float] = []
    shares = [0] * tasks
    deadline = time.monotonic() + seconds

    async def worker(index: int) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await limiter.aacquire(1, max_wait=remaining)
            except seawall.RateLimitedError:
                return
            now = time.monotonic()
            if now > deadline:
                return
            grants.append(now)
            shares[index] += 1
            # A real worker does I/O after it gets its token. aacquire does not yield
            # when no wait is needed (like an uncontended asyncio.Lock), so without
            # this the first task would take the whole initial burst by itself.
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for index in range(tasks):
            tg.start_soon(worker, index)
    results.append(check(f"{tasks} tasks ({backend})", grants, shares, seconds))


def run_threads(seconds: float, threads: int) -> Result:
    """Threads share one limiter."""
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    grants: list[float] = []
    shares = [0] * threads
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                limiter.acquire(1, max_wait=remaining)
            except seawall.RateLimitedError:
                return
            now = time.monotonic()
            if now > deadline:
                return
            grants.append(now)
            shares[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return check(f"{threads} threads", grants, shares, seconds)


def row(result: Result, slack: float) -> str:
    """Return one result as a row of the markdown table."""
    return (
        f"| {result.workers} | {result.granted} | {result.ideal:.0f} "
        f"| {result.granted / result.ideal:.2%} | {'yes' if result.accurate else '**no**'} "
        f"| {result.worst_excess:+.3f} tokens "
        f"| {'yes' if result.never_above(slack) else '**no**'} "
        f"| {result.fairness:.2f} ({result.best_fairness:.2f}) |"
    )


def table(results: list[Result], slack: float) -> str:
    """Return the results as a markdown table."""
    header = (
        "| workers | granted | ideal (burst + rate * t) | granted / ideal | within 1% "
        "| worst excess in any window | never above | max/min share (best possible) |"
    )
    lines = [header, "|---|---:|---:|---:|---|---:|---|---:|"]
    lines += [row(result, slack) for result in results]
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    parser.add_argument(
        "--slack", type=float, default=0.001, help="seconds of timing slack per grant time"
    )
    args = parser.parse_args()
    backends = ["asyncio", "trio"] if args.backend == "all" else [args.backend]
    results: list[Result] = []
    for backend in backends:
        anyio.run(run_tasks, args.seconds, args.tasks, backend, results, backend=backend)
    results.append(run_threads(args.seconds, args.threads))
    print(
        f"\n### RateLimiter(rate={RATE:g}, burst={BURST}): {args.seconds:g} s on the real "
        f"clock (timing slack {args.slack * 1e3:g} ms = {RATE * args.slack:g} token)\n"
    )
    print(table(results, args.slack))


if __name__ == "__main__":
    main()

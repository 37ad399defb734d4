"""Rate limiter accuracy on the real clock: many tasks or threads, a few seconds.

Usage: python benchmarks/limiter_accuracy.py [--seconds 3] [--tasks 50] [--threads 8]

Each worker acquires one token at a time from one ``RateLimiter(rate=100, burst=20)``
for the given duration. Reports the grants against the ideal ``burst + rate * t``, the
worst excess over that bound in any window (it must never be positive), and the fairness
between workers (largest share / smallest share).
"""

from __future__ import annotations

import argparse
import threading
import time

import anyio
import anyio.lowlevel

import seawall


RATE = 100.0
BURST = 20


def check(grants: list[float], seconds: float) -> tuple[int, float, float]:
    """Return (granted, ideal, worst excess over burst + rate * window) for sorted grants."""
    grants.sort()
    ideal = BURST + RATE * seconds
    worst = float("-inf")
    # For every pair of grants i <= j, the grants in [t_i, t_j] must be at most
    # burst + rate * (t_j - t_i); scanning each j against every earlier i is exact.
    for j, t_j in enumerate(grants):
        for i in range(j + 1):
            excess = (j - i + 1) - (BURST + RATE * (t_j - grants[i]))
            worst = max(worst, excess)
    return len(grants), ideal, worst


def report(label: str, grants: list[float], shares: list[int], seconds: float) -> None:
    """Print one line of results."""
    granted, ideal, worst = check(grants, seconds)
    print(
        f"{label:>10}: granted {granted} of ideal {ideal:.0f} "
        f"({granted / ideal:.2%}); worst window excess {worst:+.3f} tokens "
        f"(must be <= 0); fairness max/min share {max(shares) / max(1, min(shares)):.2f}"
    )


async def run_tasks(seconds: float, tasks: int) -> None:
    """Tasks on the running event loop share one limiter."""
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    grants: list[float] = []
    shares = [0] * tasks
    started = time.monotonic()
    deadline = started + seconds

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
    report(f"{tasks} tasks", grants, shares, seconds)


def run_threads(seconds: float, threads: int) -> None:
    """Threads share one limiter."""
    limiter = seawall.RateLimiter(rate=RATE, burst=BURST)
    grants: list[float] = []
    shares = [0] * threads
    started = time.monotonic()
    deadline = started + seconds

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
    report(f"{threads} threads", grants, shares, seconds)


def main() -> None:
    """Parse the arguments and run both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    print(f"RateLimiter(rate={RATE:g}, burst={BURST}), {args.seconds:g} s on the real clock")
    anyio.run(run_tasks, args.seconds, args.tasks, backend=args.backend)
    run_threads(args.seconds, args.threads)


if __name__ == "__main__":
    main()

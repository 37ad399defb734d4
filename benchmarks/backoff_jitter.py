"""Brooker's "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015), with seawall.Retrier.

Usage: python benchmarks/backoff_jitter.py [--runs 100] [--clients 10 20 ... 100]
       [--seed 1] [--jobs 2] [--first-backoff brooker|base] [--quick]

The model is the one of the post's simulator (github.com/aws-samples/aws-arch-backoff-simulator),
run in virtual time (`seawall.testing.FakeClock` on asyncio), one task per client:

* N clients start together at t = 0; each updates one shared row once, with optimistic
  concurrency control: it reads the row's version, then sends a write conditional on
  that version. The server accepts the write if nobody wrote since the read (and bumps
  the version), and rejects it otherwise. A rejected client backs off and starts over
  with a new read. The run ends when every client has succeeded.
* Every message (read request, read response, write request, write response) takes an
  independent network delay of |Normal(10 ms, 2 ms)|; the server itself takes no time.
* calls: the writes the server received (what the post counts; every attempt is one
  read and one write, so the requests are twice the calls). time: when the last client
  got its successful answer. Both are averaged over ``--runs`` runs.
* The backoff between attempts is the delay of a real `seawall.Retrier` (its ``async for
  attempt in retrier`` loop sleeps it on the clock), base 5 ms, cap 2 s, with
  ``Jitter.NONE`` (plain exponential), ``FULL``, ``EQUAL`` and ``DECORRELATED``.
  The post's code waits ``min(cap, base * 2 ** n)`` after the n-th failure, n from 1,
  so its first wait before jitter is 10 ms; `seawall.Retrier` waits
  ``initial_delay * multiplier ** (n - 1)``, so ``--first-backoff brooker`` (default)
  uses ``initial_delay = 2 * base`` for the exponential strategies. Decorrelated jitter
  is ``min(cap, uniform(base, 3 * previous))`` in both, from ``previous = base``, so it
  uses ``initial_delay = base``. ``--first-backoff base`` uses ``initial_delay = base``
  everywhere instead.
* Cross-check: the same model written as a plain discrete-event simulation (no seawall,
  no event loop) from the post's backoff formulas, fed with the same random draws in the
  same order, run at the largest N: it must give exactly the same calls and times.

Seeds: run r of N clients draws its network delays and its jitter from two generators
seeded by (seed, N, r), the same for every strategy. The script prints markdown tables
and PASS/FAIL for the post's claims, and exits with 1 if one fails. The default is the
full grid (N = 10 ... 100, 100 runs): about 5 CPU-minutes, so 2 to 4 minutes on the
default two processes; ``--quick`` runs N = 10, 50, 100 with 10 runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import anyio

import seawall
from seawall.testing import FakeClock


BASE = 0.005
CAP = 2.0
NET_MEAN = 0.010
NET_SD = 0.002
MAX_ATTEMPTS = 1_000_000  # "until it succeeds"
STRATEGIES = {
    "none": seawall.Jitter.NONE,
    "full": seawall.Jitter.FULL,
    "equal": seawall.Jitter.EQUAL,
    "decorrelated": seawall.Jitter.DECORRELATED,
}
LABELS = {
    "none": "exponential, no jitter",
    "full": "full jitter",
    "equal": "equal jitter",
    "decorrelated": "decorrelated jitter",
}


class WriteConflictError(Exception):
    """The row changed between this client's read and its write."""


def is_conflict(exc: Exception) -> bool:
    """The retrier's predicate: only a write conflict is retried."""
    return isinstance(exc, WriteConflictError)


def initial_delay(strategy: str, first_backoff: str) -> float:
    """The Retrier's ``initial_delay`` that reproduces the post's schedule (see above)."""
    if first_backoff == "brooker" and strategy != "decorrelated":
        return 2 * BASE
    return BASE


def _generators(seed: int, clients: int, run: int) -> tuple[random.Random, random.Random]:
    """The network and jitter generators of one run."""
    tag = f"{seed}/{clients}/{run}"
    return random.Random(f"net/{tag}"), random.Random(f"jitter/{tag}")


@dataclass
class Row:
    """The one row that every client updates: its version and the writes it received."""

    version: int = 0
    writes: int = 0


async def simulate_run(
    clients: int, strategy: str, seed: int, run: int, first_backoff: str = "brooker"
) -> tuple[int, float]:
    """One run on a fresh virtual clock; return (calls, completion time in seconds)."""
    net_rng, jitter_rng = _generators(seed, clients, run)
    clock = FakeClock()
    retrier = seawall.Retrier(
        max_attempts=MAX_ATTEMPTS,
        initial_delay=initial_delay(strategy, first_backoff),
        max_delay=CAP,
        multiplier=2,
        jitter=STRATEGIES[strategy],
        is_retryable=is_conflict,
        rng=jitter_rng.random,
        clock=clock,
    )
    row = Row()

    def network() -> float:
        return abs(net_rng.normalvariate(NET_MEAN, NET_SD))

    async def client() -> None:
        async for attempt in retrier:
            with attempt:
                await clock.asleep(network())  # the read travels to the server
                seen = row.version
                await clock.asleep(network())  # the version travels back
                await clock.asleep(network())  # the conditional write travels
                row.writes += 1
                accepted = row.version == seen
                if accepted:
                    row.version += 1
                await clock.asleep(network())  # the answer travels back
                if not accepted:
                    raise WriteConflictError

    async with anyio.create_task_group() as task_group:
        for _ in range(clients):
            task_group.start_soon(client)
    assert row.version == clients, "every client succeeded exactly once"
    return row.writes, clock.now()


# Event kinds of the reference simulation: a read or a write reaching the server, its
# answer reaching the client, the end of a client's backoff.
_READ, _READ_DONE, _WRITE, _WRITE_DONE, _BACKOFF_DONE = range(5)


class _ReferenceBackoff:
    """One client's backoff in the reference simulation, written from the post's formulas."""

    __slots__ = ("failures", "low", "previous", "rng", "strategy")

    def __init__(self, strategy: str, low: float, rng: random.Random) -> None:
        self.strategy = strategy
        self.low = low
        self.rng = rng
        self.failures = 0
        self.previous = BASE

    def next(self) -> float:
        """The wait after one more failure."""
        self.failures += 1
        if self.strategy == "decorrelated":
            self.previous = min(CAP, self.rng.uniform(BASE, self.previous * 3))
            return self.previous
        ceiling = min(CAP, self.low * 2.0 ** (self.failures - 1))
        if self.strategy == "none":
            return ceiling
        if self.strategy == "full":
            return self.rng.uniform(0, ceiling)
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def reference_run(
    clients: int, strategy: str, seed: int, run: int, first_backoff: str = "brooker"
) -> tuple[int, float]:
    """The same model as a plain discrete-event simulation: no seawall, no event loop.

    It draws from the same generators, in the same order, as `simulate_run`, so the two
    must agree exactly.
    """
    net_rng, jitter_rng = _generators(seed, clients, run)
    low = initial_delay(strategy, first_backoff)
    backoffs = [_ReferenceBackoff(strategy, low, jitter_rng) for _ in range(clients)]

    def network() -> float:
        return abs(net_rng.normalvariate(NET_MEAN, NET_SD))

    version = writes = 0
    # Events: (time, sequence, kind, client, payload); the sequence breaks ties in the
    # order the events were scheduled, as FakeClock does.
    queue = [(network(), index, _READ, index, 0) for index in range(clients)]
    heapq.heapify(queue)
    sequence = clients
    now = 0.0
    while queue:
        now, _, kind, client, payload = heapq.heappop(queue)
        if kind == _WRITE:
            writes += 1
            accepted = payload == version
            version += accepted
            event = (now + network(), sequence, _WRITE_DONE, client, int(accepted))
        elif kind == _WRITE_DONE:
            if payload:  # accepted: this client is done
                continue
            wait = backoffs[client].next()
            if wait > 0:
                event = (now + wait, sequence, _BACKOFF_DONE, client, 0)
            else:  # a zero wait does not sleep: the read goes out at once
                event = (now + network(), sequence, _READ, client, 0)
        else:
            follows = {_READ: _READ_DONE, _READ_DONE: _WRITE, _BACKOFF_DONE: _READ}[kind]
            data = version if kind == _READ else payload
            event = (now + network(), sequence, follows, client, data)
        sequence += 1
        heapq.heappush(queue, event)
    return writes, now


@dataclass(frozen=True)
class Cell:
    """The averages of one (strategy, N) over its runs."""

    strategy: str
    clients: int
    runs: int
    calls: float
    time: float
    calls_se: float
    time_se: float
    outcomes: tuple[tuple[int, float], ...]


def _summarise(strategy: str, clients: int, outcomes: list[tuple[int, float]]) -> Cell:
    runs = len(outcomes)
    calls = [float(c) for c, _ in outcomes]
    times = [t for _, t in outcomes]

    def mean_se(values: list[float]) -> tuple[float, float]:
        mean = sum(values) / runs
        if runs < 2:
            return mean, math.nan
        variance = sum((v - mean) ** 2 for v in values) / (runs - 1)
        return mean, math.sqrt(variance / runs)

    calls_mean, calls_se = mean_se(calls)
    time_mean, time_se = mean_se(times)
    return Cell(strategy, clients, runs, calls_mean, time_mean, calls_se, time_se, tuple(outcomes))


def run_cell(job: tuple[str, int, int, int, str, bool]) -> Cell:
    """All the runs of one (strategy, N): a top-level function, for the process pool."""
    strategy, clients, runs, seed, first_backoff, reference = job
    if reference:
        outcomes = [
            reference_run(clients, strategy, seed, run, first_backoff) for run in range(runs)
        ]
    else:

        async def all_runs() -> list[tuple[int, float]]:
            return [
                await simulate_run(clients, strategy, seed, run, first_backoff)
                for run in range(runs)
            ]

        outcomes = asyncio.run(all_runs())
    return _summarise(strategy, clients, outcomes)


def run_grid(
    clients: list[int],
    runs: int,
    seed: int,
    first_backoff: str,
    jobs: int,
    *,
    reference: bool = False,
) -> dict[tuple[str, int], Cell]:
    """Every (strategy, N) cell, the biggest N first (they take longest)."""
    work = [
        (strategy, n, runs, seed, first_backoff, reference)
        for n in sorted(clients, reverse=True)
        for strategy in STRATEGIES
    ]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            cells = list(pool.map(run_cell, work))
    else:
        cells = [run_cell(job) for job in work]
    return {(cell.strategy, cell.clients): cell for cell in cells}


def table(cells: dict[tuple[str, int], Cell], clients: list[int], metric: str) -> str:
    """A markdown table of *metric* ("calls" or "time"), one row per N."""
    unit = "calls" if metric == "calls" else "time (ms)"
    lines = [
        f"| clients | {' | '.join(f'{LABELS[s]}: {unit}' for s in STRATEGIES)} |",
        f"|---|{'---|' * len(STRATEGIES)}",
    ]
    for n in sorted(clients):
        row = []
        for strategy in STRATEGIES:
            cell = cells[strategy, n]
            if metric == "calls":
                row.append(f"{cell.calls:,.1f}")
            else:
                row.append(f"{cell.time * 1000:,.0f}")
        lines.append(f"| {n} | {' | '.join(row)} |")
    return "\n".join(lines)


def identical_runs(mine: Cell, reference: Cell) -> int:
    """How many runs the two simulations ended with the same calls and time (to 1 ns)."""
    return sum(
        calls == ref_calls and abs(elapsed - ref_elapsed) < 1e-9
        for (calls, elapsed), (ref_calls, ref_elapsed) in zip(
            mine.outcomes, reference.outcomes, strict=True
        )
    )


def cross_check_table(
    seawall_cells: dict[tuple[str, int], Cell], reference: dict[tuple[str, int], Cell]
) -> str:
    """seawall against the plain discrete-event simulation, run by run."""
    lines = [
        (
            "| strategy | N | calls: seawall | calls: reference | time (ms): seawall "
            "| time (ms): reference | identical runs |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for (strategy, n), ref in reference.items():
        mine = seawall_cells[strategy, n]
        lines.append(
            f"| {LABELS[strategy]} | {n} | {mine.calls:,.1f} | {ref.calls:,.1f} "
            f"| {mine.time * 1000:,.0f} | {ref.time * 1000:,.0f} "
            f"| {identical_runs(mine, ref)} of {mine.runs} |"
        )
    return "\n".join(lines)


def checks(
    cells: dict[tuple[str, int], Cell],
    clients: list[int],
    reference: dict[tuple[str, int], Cell] | None = None,
) -> list[tuple[str, bool]]:
    """The post's claims at the largest N, and the cross-check when *reference* is given."""
    n = max(clients)
    none, full = cells["none", n], cells["full", n]
    jittered = ("full", "equal", "decorrelated")
    slowest = max(jittered, key=lambda s: cells[s, n].time)
    outcome = [
        (
            (
                f"(a) full jitter makes under half the calls of plain exponential at {n} clients "
                f"({full.calls:,.1f} vs {none.calls:,.1f}, ratio {full.calls / none.calls:.2f})"
            ),
            full.calls < none.calls / 2,
        ),
        (
            f"(b) equal jitter is the slowest of the jittered strategies at {n} clients "
            f"(slowest: {LABELS[slowest]}, "
            + ", ".join(f"{s} {cells[s, n].time * 1000:,.0f} ms" for s in jittered)
            + ")",
            slowest == "equal",
        ),
        (
            f"(c) plain exponential is the worst in calls and in time at {n} clients",
            all(none.calls > cells[s, n].calls and none.time > cells[s, n].time for s in jittered),
        ),
    ]
    if reference is not None:
        same = all(identical_runs(cells[key], ref) == ref.runs for key, ref in reference.items())
        outcome.append(
            (
                "(d) cross-check: seawall and the plain event simulation agree on every run",
                same,
            )
        )
    return outcome


def observations(cells: dict[tuple[str, int], Cell], clients: list[int]) -> list[str]:
    """How often each ordering in the post holds across N (reported, not checked)."""
    total = len(clients)

    def count(predicate: Callable[[int], bool]) -> int:
        return sum(bool(predicate(n)) for n in clients)

    equal_slowest = count(
        lambda n: cells["equal", n].time > max(cells["full", n].time, cells["decorrelated", n].time)
    )
    half = count(lambda n: cells["full", n].calls < cells["none", n].calls / 2)
    full_less_work = count(lambda n: cells["full", n].calls < cells["decorrelated", n].calls)
    full_more_time = count(lambda n: cells["full", n].time > cells["decorrelated", n].time)
    equal_more_work = count(lambda n: cells["equal", n].calls > cells["full", n].calls)
    return [
        f"equal jitter the slowest of the jittered: at {equal_slowest} of {total} values of N",
        f"full jitter under half the calls of plain exponential: at {half} of {total}",
        (
            f"equal jitter more calls than full jitter (post: 'slightly more work'): "
            f"at {equal_more_work} of {total}"
        ),
        (
            f"full jitter fewer calls than decorrelated (post: 'less work'): "
            f"at {full_less_work} of {total}"
        ),
        (
            f"full jitter slower than decorrelated (post: 'slightly more time'): "
            f"at {full_more_time} of {total}"
        ),
    ]


def main() -> None:
    """Parse the options, run the grid, print the tables and the checks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per (strategy, N)")
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=list(range(10, 101, 10)),
        help="values of N (default 10 20 ... 100)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of every random draw")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes"
    )
    parser.add_argument(
        "--first-backoff",
        choices=("brooker", "base"),
        default="brooker",
        help="first exponential wait: 2 x base as in the post's code, or base",
    )
    parser.add_argument("--quick", action="store_true", help="N in {10, 50, 100}, 10 runs")
    args = parser.parse_args()
    clients: list[int] = [10, 50, 100] if args.quick else args.clients
    runs = 10 if args.quick else args.runs
    if runs < 1 or args.jobs < 1 or min(clients) < 1:
        parser.error("--runs, --jobs and --clients must be positive")

    print(
        f"# Exponential backoff and jitter (seed {args.seed}, {runs} runs per cell, "
        f"base {BASE * 1000:g} ms, cap {CAP:g} s, first backoff: {args.first_backoff}, "
        f"{args.jobs} process(es))\n"
    )
    started = time.perf_counter()
    cells = run_grid(clients, runs, args.seed, args.first_backoff, args.jobs)
    wall = time.perf_counter() - started
    print("## Work: calls (writes received by the server), mean per run\n")
    print(table(cells, clients, "calls"), end="\n\n")
    print("## Completion time: until the last client succeeds, mean per run\n")
    print(table(cells, clients, "time"), end="\n\n")
    print(f"Wall time: {wall:.1f} s.\n")

    reference = run_grid(
        [max(clients)], runs, args.seed, args.first_backoff, args.jobs, reference=True
    )
    print(f"## Cross-check at N = {max(clients)}: seawall against a plain event simulation\n")
    print("Same random draws: every run must end identically.\n")
    print(cross_check_table(cells, reference), end="\n\n")

    print("## Checks\n")
    failed = False
    for description, passed in checks(cells, clients, reference):
        failed = failed or not passed
        print(f"- {'PASS' if passed else 'FAIL'}: {description}")
    print("\nAcross N (reported, not checked):\n")
    for line in observations(cells, clients):
        print(f"- {line}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""seawall demo: an LLM provider with realistic faults, called bare and through seawall.

A simulated provider answers chat requests with heavy-tailed latency, enforces its own
rate limit with 429s and Retry-After, has bursts of 500s and a 15-second outage. A few
hundred requests arrive over two minutes, many in flight at once. The same arrivals are
sent twice, on a virtual clock (the whole run takes seconds of real time):

1. bare: each request calls the provider once;
2. seawall: ``apply_middleware(provider, as_llm_middleware(...))`` with a retrier, a
   circuit breaker, a hedger, a client-side rate limiter and a timeout per attempt.

It prints a comparison table and, when matplotlib is installed, writes a plot of the
latency distributions to ``demo/out/latency.png``.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import anyio

import seawall
from seawall.testing import FakeClock


REQUESTS = 600
ARRIVAL_RATE = 5.0  # requests per second, Poisson arrivals
PROVIDER_RATE = 8.0  # the provider's own limit, requests per second
OUTAGE = (40.0, 55.0)  # every request fails in this window
BURSTS = ((20.0, 23.0), (80.0, 82.0))  # 60% of requests fail in these windows
BURST_ERROR_RATE = 0.6
STRAGGLER_RATE = 0.03  # this share of answers take seconds instead of a fraction of one


class ProviderError(Exception):
    """An HTTP error from the provider, shaped like an SDK's status error."""

    def __init__(self, status_code: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status_code} {message}")
        self.status_code = status_code
        self.headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}


@dataclass
class Provider:
    """The simulated LLM provider: one ``generate`` coroutine, faults included."""

    clock: FakeClock
    rng: random.Random
    received: int = 0
    rate_limited: int = 0
    during_outage: int = 0
    _full_at: float = -math.inf

    async def generate(self, prompt: str) -> str:
        """Answer *prompt* after a heavy-tailed delay, or fail like a real provider."""
        self.received += 1
        now = self.clock.now()
        retry_after = self._admit(now)
        if retry_after is not None:
            self.rate_limited += 1
            await self.clock.asleep(0.02)
            raise ProviderError(429, "Too Many Requests", retry_after=retry_after)
        if OUTAGE[0] <= now < OUTAGE[1]:
            self.during_outage += 1
            await self.clock.asleep(0.05)
            raise ProviderError(503, "Service Unavailable")
        if any(start <= now < end for start, end in BURSTS) and (
            self.rng.random() < BURST_ERROR_RATE
        ):
            await self.clock.asleep(0.1)
            raise ProviderError(500, "Internal Server Error")
        await self.clock.asleep(self._latency())
        return f"answer to {prompt}"

    def _latency(self) -> float:
        if self.rng.random() < STRAGGLER_RATE:
            return min(30.0, 2.0 * self.rng.paretovariate(1.5))
        return self.rng.lognormvariate(math.log(0.4), 0.35)

    def _admit(self, now: float) -> float | None:
        """Apply the provider's own token bucket; return the wait when it refuses."""
        step = 1.0 / PROVIDER_RATE
        start = max(self._full_at, now)
        if start + step - now > 1.0:
            return math.ceil(start + step - 1.0 - now)
        self._full_at = start + step
        return None


@dataclass
class Run:
    """What one pass over the arrivals saw."""

    label: str
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    failed_fast: int = 0
    provider_requests: int = 0
    during_outage: int = 0
    rate_limited: int = 0
    trips: int = 0
    retries: int = 0
    hedges_launched: int = 0
    hedges_won: int = 0


def arrivals(seed: int) -> list[float]:
    """Return Poisson arrival times of the requests, the same for both runs."""
    rng = random.Random(seed)
    times, now = [], 0.0
    for _ in range(REQUESTS):
        now += rng.expovariate(ARRIVAL_RATE)
        times.append(now)
    return times


def is_outage(exc: Exception) -> bool:
    """Count server errors and timeouts against the provider's health, not 429s."""
    if isinstance(exc, TimeoutError):
        return True
    return getattr(exc, "status_code", 500) >= 500


@dataclass
class Stack:
    """The primitives of the protected run, kept for their statistics."""

    breaker: seawall.CircuitBreaker
    retrier: seawall.Retrier
    hedger: seawall.Hedger


def build_stack(clock: FakeClock, provider: Provider, seed: int) -> tuple[Provider, Stack]:
    """Wrap the provider in the seawall stack; return it and its primitives."""
    breaker = seawall.CircuitBreaker(
        name="provider",
        max_failures=None,
        failure_rate_threshold=0.5,
        window=seawall.TimeWindow(10.0),
        minimum_calls=10,
        timeout=5.0,
        half_open_max=2,
        # A 429 says "slower", not "broken": only server errors and timeouts count.
        is_failure=is_outage,
        clock=clock,
    )
    retrier = seawall.Retrier(
        name="provider-retry",
        max_attempts=4,
        initial_delay=0.25,
        max_delay=2.0,
        # Wait out a 429's Retry-After (1-2 s), but not an open circuit (5 s): fail fast.
        max_retry_after=2.0,
        deadline=20.0,
        clock=clock,
        rng=random.Random(seed + 1).random,
    )
    hedger = seawall.Hedger(
        name="provider-hedge",
        delay=1.0,
        adaptive=seawall.AdaptiveDelay(percentile=0.95, min_samples=20, floor=0.5, ceiling=2.0),
        budget=0.1,
        clock=clock,
    )
    limiter = seawall.RateLimiter(name="client-limit", rate=PROVIDER_RATE, burst=8, clock=clock)
    timeout = seawall.Timeout(8.0, name="attempt-timeout", clock=clock)
    # Applied right to left, as in the Go guide: the last option is the outermost, so a
    # request goes retry -> circuit breaker -> hedge -> rate limit -> timeout -> provider.
    # Every attempt, hedges and retries included, takes a token of the client-side limit.
    protected = seawall.apply_middleware(
        provider,
        seawall.as_llm_middleware(
            seawall.with_timeout(timeout),
            seawall.with_rate_limit(limiter),
            seawall.with_hedge(hedger),
            seawall.with_circuit_breaker(breaker),
            seawall.with_retry(retrier),
        ),
    )
    return protected, Stack(breaker, retrier, hedger)


async def drive(label: str, seed: int, protect: bool) -> Run:
    """Send every request at its arrival time; wait for all of them."""
    clock = FakeClock()
    provider = Provider(clock, random.Random(seed))
    model, stack = build_stack(clock, provider, seed) if protect else (provider, None)
    run = Run(label)

    async def request(index: int, at: float) -> None:
        await clock.asleep(at)
        try:
            await model.generate(f"prompt {index}")
        except seawall.CircuitOpenError:
            run.failed += 1
            run.failed_fast += 1
        except Exception:  # noqa: BLE001 -- a failed request is counted, whatever it was
            run.failed += 1
        else:
            run.ok += 1
            run.latencies.append(clock.now() - at)

    async with anyio.create_task_group() as tg:
        for index, at in enumerate(arrivals(seed)):
            tg.start_soon(request, index, at)
    run.provider_requests = provider.received
    run.rate_limited = provider.rate_limited
    run.during_outage = provider.during_outage
    if stack is not None:
        run.trips = stack.breaker.statistics().trips
        run.retries = stack.retrier.statistics().retries
        hedge_stats = stack.hedger.statistics()
        run.hedges_launched = hedge_stats.hedges_launched
        run.hedges_won = hedge_stats.hedges_won
    return run


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) by the nearest-rank method; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[rank]


def table(runs: list[Run]) -> str:
    """Format the comparison table."""
    width = 14
    lines = [f"{'':34}" + "".join(f"{run.label:>{width}}" for run in runs)]
    lines.append("-" * len(lines[0]))

    def row(name: str, cells: list[str]) -> None:
        lines.append(f"{name:34}" + "".join(f"{cell:>{width}}" for cell in cells))

    row("requests", [str(REQUESTS)] * len(runs))
    row("succeeded", [f"{run.ok} ({run.ok / REQUESTS:.1%})" for run in runs])
    for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
        row(f"latency {name} (successes)", [f"{percentile(r.latencies, q):.2f} s" for r in runs])
    row(
        "extra requests sent to provider",
        [
            f"{r.provider_requests - REQUESTS:+d} ({r.provider_requests / REQUESTS - 1:+.0%})"
            for r in runs
        ],
    )
    row("provider requests in the outage", [str(run.during_outage) for run in runs])
    row("failed fast on an open circuit", [str(run.failed_fast) for run in runs])
    row("429s received", [str(run.rate_limited) for run in runs])
    row("breaker trips", [str(run.trips) for run in runs])
    row("retries", [str(run.retries) for run in runs])
    row("hedges launched / won", [f"{r.hedges_launched} / {r.hedges_won}" for r in runs])
    return "\n".join(lines)


def plot(runs: list[Run], path: Path) -> bool:
    """Write the latency distributions as a PNG; False when matplotlib is missing."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 -- optional dependency

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        ordered = sorted(run.latencies)
        share = [(i + 1) / REQUESTS for i in range(len(ordered))]
        axes.step(ordered, share, where="post", label=f"{run.label} ({run.ok} ok)")
    axes.set_xscale("log")
    axes.set_xlabel("latency of successful requests (virtual seconds, log scale)")
    axes.set_ylabel("share of all requests answered")
    axes.set_title("Simulated LLM provider: bare vs seawall")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


async def main_async(seed: int) -> list[Run]:
    """Run both passes, one after the other."""
    return [await drive("bare", seed, protect=False), await drive("seawall", seed, protect=True)]


def main() -> None:
    """Parse arguments, run, print, plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", type=Path, default=Path(__file__).parent / "out" / "latency.png")
    args = parser.parse_args()
    print(__doc__.split("\n\n")[0])
    print(
        f"\n{REQUESTS} requests at {ARRIVAL_RATE:g}/s; provider limit {PROVIDER_RATE:g}/s "
        f"(429 + Retry-After beyond it); outage {OUTAGE[0]:g}-{OUTAGE[1]:g} s; "
        f"error bursts {', '.join(f'{a:g}-{b:g} s' for a, b in BURSTS)}; "
        f"{STRAGGLER_RATE:.0%} stragglers.\n"
    )
    runs = anyio.run(main_async, args.seed)
    print(table(runs))
    if plot(runs, args.plot):
        print(f"\nLatency plot written to {args.plot}")
    else:
        print("\n(install matplotlib for a latency plot)")


if __name__ == "__main__":
    main()

"""seawall demo: a circuit breaker and a retrier in front of a flaky dependency.

A simulated provider fails now and then (connection resets), and goes down completely
for a while (HTTP 503). The same stream of requests is sent twice, on a virtual clock
so the minute of traffic takes a fraction of a second:

1. bare: every request goes straight to the provider;
2. protected: ``Retrier`` around ``CircuitBreaker`` around the provider.

It prints the breaker's transitions as they happen, then a comparison table.
Run it with ``python demo/basics.py`` where seawall is installed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import seawall
from seawall.testing import FakeClock


REQUESTS = 300
INTERVAL = 0.2  # seconds between requests
OUTAGE = (15.0, 35.0)  # the provider answers 503 to everything in this window
BLIP_RATE = 0.08  # chance of a connection reset outside the outage
LATENCY = 0.05  # seconds per provider call


class ProviderUnavailable(Exception):  # noqa: N818 -- mirrors an HTTP client's error name
    """The provider answered HTTP 503."""

    status_code = 503


@dataclass
class Provider:
    """A dependency with random connection resets and one long outage."""

    clock: FakeClock
    rng: random.Random
    calls: int = 0
    calls_during_outage: int = 0

    def fetch(self, request_id: int) -> str:
        """Answer a request, or fail the way a real provider does."""
        self.calls += 1
        self.clock.sleep(LATENCY)
        now = self.clock.now()
        if OUTAGE[0] <= now < OUTAGE[1]:
            self.calls_during_outage += 1
            raise ProviderUnavailable("503 Service Unavailable")
        if self.rng.random() < BLIP_RATE:
            raise ConnectionResetError("connection reset by peer")
        return f"answer-{request_id}"


@dataclass
class Outcome:
    """What one run of the request stream saw."""

    label: str
    ok: int = 0
    failed: int = 0
    rejected: int = 0
    provider_calls: int = 0
    outage_calls: int = 0
    retries: int = 0
    trips: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def drive(label: str, clock: FakeClock, call: Callable[[int], str], provider: Provider) -> Outcome:
    """Send the request stream through *call* and tally what came back."""
    outcome = Outcome(label)
    for request_id in range(REQUESTS):
        started = clock.now()
        try:
            call(request_id)
        except seawall.CircuitOpenError:
            outcome.rejected += 1
        except Exception as exc:  # noqa: BLE001 -- tallied by type, then reported
            outcome.failed += 1
            kind = type(exc).__name__
            outcome.errors[kind] = outcome.errors.get(kind, 0) + 1
        else:
            outcome.ok += 1
        # The next request arrives INTERVAL after this one started, or at once if late.
        clock.advance(max(0.0, started + INTERVAL - clock.now()))
    outcome.provider_calls = provider.calls
    outcome.outage_calls = provider.calls_during_outage
    return outcome


def run_bare(seed: int) -> Outcome:
    """Send every request straight to the provider."""
    clock = FakeClock()
    provider = Provider(clock, random.Random(seed))
    return drive("bare", clock, provider.fetch, provider)


def run_protected(seed: int) -> tuple[Outcome, list[str]]:
    """Send every request through a retrier, then a circuit breaker, to the provider."""
    clock = FakeClock()
    provider = Provider(clock, random.Random(seed))
    timeline: list[str] = []

    def on_event(event: seawall.Event) -> None:
        if isinstance(event, seawall.CircuitStateChanged):
            timeline.append(
                f"  t={clock.now():6.2f}s  breaker {event.old_state.value:>9} -> "
                f"{event.new_state.value:<9} ({event.reason})"
            )

    breaker = seawall.CircuitBreaker(
        name="provider",
        max_failures=4,
        timeout=3.0,
        half_open_max=1,
        timeout_multiplier=2.0,
        max_timeout=12.0,
        clock=clock,
        hooks=(on_event,),
    )
    retrier = seawall.Retrier(
        name="provider-retry",
        max_attempts=3,
        initial_delay=0.1,
        max_delay=1.0,
        clock=clock,
        rng=random.Random(seed + 1).random,
    )
    outcome = drive("protected", clock, retrier(breaker(provider.fetch)), provider)
    retry_stats = retrier.statistics()
    breaker_stats = breaker.statistics()
    outcome.retries = retry_stats.retries
    outcome.trips = breaker_stats.trips
    return outcome, timeline


def table(rows: list[Outcome]) -> str:
    """Format the comparison table."""
    lines = [
        f"{'':28}" + "".join(f"{row.label:>12}" for row in rows),
        "-" * (28 + 12 * len(rows)),
    ]

    def line(name: str, values: list[str]) -> None:
        lines.append(f"{name:28}" + "".join(f"{value:>12}" for value in values))

    line("requests", [str(REQUESTS) for _ in rows])
    line("succeeded", [f"{r.ok} ({r.ok / REQUESTS:.0%})" for r in rows])
    line("failed with provider error", [str(r.failed) for r in rows])
    line("rejected fast (open)", [str(r.rejected) for r in rows])
    line("calls sent to provider", [str(r.provider_calls) for r in rows])
    line("  of which during outage", [str(r.outage_calls) for r in rows])
    line("retries", [str(r.retries) for r in rows])
    line("breaker trips", [str(r.trips) for r in rows])
    return "\n".join(lines)


def main(seed: int = 2026) -> None:
    """Run both scenarios and print what happened."""
    print(__doc__.split("\n\n")[0])
    print(
        f"\n{REQUESTS} requests, one every {INTERVAL}s; outage from t={OUTAGE[0]:.0f}s "
        f"to t={OUTAGE[1]:.0f}s; {BLIP_RATE:.0%} connection resets otherwise.\n"
    )
    bare = run_bare(seed)
    protected, timeline = run_protected(seed)
    print("Breaker transitions (protected run):")
    print("\n".join(timeline))
    print()
    print(table([bare, protected]))
    saved = bare.outage_calls - protected.outage_calls
    print(
        f"\nThe retrier gave {protected.retries} transiently failed calls a second chance."
        f"\nThe breaker spared the provider {saved} calls during its outage and answered"
        f"\n{protected.rejected} requests at once instead of sending them to a dead dependency."
    )


if __name__ == "__main__":
    main()

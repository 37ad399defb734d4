"""Memory of a KeyedRateLimiter driven by 1,000,000 distinct keys.

Usage: python benchmarks/keyed_memory.py [--keys 1000000]

Each operation takes one token for a new key. With virtual time advancing, buckets
refill and are dropped, so memory stays flat; without it every bucket stays in debt
(the worst case: every key live). Reports tracemalloc's peak traced bytes and the
number of live keys at the end.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import seawall
from seawall.testing import FakeClock


RATE = 100.0  # a bucket that gave one token is full again after 10 ms
BURST = 1.0
STEP = 1e-5  # virtual seconds per operation: about 1,000 buckets are busy at any time


def run(keys: int, step: float) -> tuple[int, int, float]:
    """Drive *keys* distinct keys; return (peak bytes, live keys, seconds)."""
    clock = FakeClock()
    limiter = seawall.KeyedRateLimiter(RATE, BURST, clock=clock)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        for key in range(keys):
            limiter.try_acquire(key)
            if step:
                clock.advance(step)  # not sleep(): it would record every step
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, len(limiter), time.perf_counter() - started


def main() -> None:
    """Print a small markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    print("| scenario | keys | peak MiB | live keys | seconds |")
    print("|---|---:|---:|---:|---:|")
    for label, step in (("time advancing (refills)", STEP), ("time frozen (worst case)", 0.0)):
        peak, live, seconds = run(args.keys, step)
        print(f"| {label} | {args.keys:,} | {peak / 2**20:.1f} | {live:,} | {seconds:.1f} |")


if __name__ == "__main__":
    main()

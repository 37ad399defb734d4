"""Smoke versions of the two published-result simulations in benchmarks/.

benchmarks/tail_at_scale.py (Dean & Barroso's hedged reads, with seawall.Hedger) and
benchmarks/backoff_jitter.py (Brooker's backoff and jitter, with seawall.Retrier), run at
small sizes so that they cannot rot: their structure, and the qualitative results that
hold even with a few reads or runs.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest

import seawall
from seawall.testing import FakeClock


BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"seawall_bench_{name}", BENCHMARKS / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tail() -> ModuleType:
    """benchmarks/tail_at_scale.py as a module."""
    return _load("tail_at_scale")


@pytest.fixture(scope="module")
def jitter() -> ModuleType:
    """benchmarks/backoff_jitter.py as a module."""
    return _load("backoff_jitter")


class TestTailAtScale:
    """Hedged fan-out reads against the paper's setup, at a few reads."""

    def test_calibration_meets_both_targets(self, tail: ModuleType) -> None:
        model = tail.calibrate()
        assert model.survival(0.010) == pytest.approx(0.02, rel=1e-3)
        assert model.read_quantile(0.999) == pytest.approx(1.8, rel=1e-3)
        assert 0 < model.straggler_p < 0.1
        # The hedged prediction is an output of the model, and far below the unhedged one.
        assert model.read_quantile(0.999, 0.010) < model.read_quantile(0.999) / 10

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_read_latencies_follow_the_model(self, tail: ModuleType, backend: str) -> None:
        """Unhedged: the slowest primary. Hedged at 10 ms: the slowest min(L1, 10 ms + L2)."""
        model = tail.calibrate()
        reads = [tail.draw_read(model, 3, read) for read in range(4)]

        async def run() -> list[tuple[float, int, float, int]]:
            clock = FakeClock()
            hedger = seawall.Hedger(delay=0.010, clock=clock)
            out = []
            for draws in reads:
                bare, bare_requests = await tail.hedged_read(clock, None, draws)
                hedged, hedged_requests = await tail.hedged_read(clock, hedger, draws)
                out.append((bare, bare_requests, hedged, hedged_requests))
            return out

        for draws, (bare, bare_requests, hedged, hedged_requests) in zip(
            reads, anyio.run(run, backend=backend), strict=True
        ):
            assert bare == pytest.approx(max(p for p, _ in draws), abs=1e-9)
            assert bare_requests == tail.SERVERS
            expected = max(p if p <= 0.010 else min(p, 0.010 + h) for p, h in draws)
            assert hedged == pytest.approx(expected, abs=1e-9)
            assert hedged_requests == tail.SERVERS + sum(p > 0.010 for p, _ in draws)

    def test_hedging_lowers_the_tail(self, tail: ModuleType) -> None:
        model = tail.calibrate()
        results = tail.run_all(model, tail.SCENARIOS, 10, 1, 1)
        assert list(results) == list(tail.SCENARIOS)
        base = results["no hedge"]
        fixed = results["hedge at 10 ms"]
        adaptive = results["adaptive p95"]
        budgeted = results["adaptive p95, 5% budget"]
        for result in results.values():
            assert len(result.latencies) == 10
        assert base.extra == 0
        assert max(fixed.latencies) < max(base.latencies)
        assert tail.percentile(fixed.latencies, 0.5) < tail.percentile(base.latencies, 0.5)
        assert 0.005 < fixed.extra < 0.04
        assert fixed.hedges_won > 0
        # The p95 hedges earlier than 10 ms, so more often; the budget caps it near 5%.
        assert adaptive.extra > fixed.extra
        assert budgeted.extra <= 0.05 + 10 / (10 * tail.SERVERS)
        assert budgeted.budget_denied > 0

        text = tail.results_table(results, model)
        for label in (*tail.SCENARIOS, "paper, hedge at 10 ms", "p99.9 95% CI"):
            assert label in text
        verdicts = dict(tail.checks(results))
        assert len(verdicts) == 5
        assert sum(verdict is None for verdict in verdicts.values()) == 2  # too few reads

    def test_percentile_and_interval(self, tail: ModuleType) -> None:
        values = [float(v) for v in range(1, 1001)]
        assert tail.percentile(values, 0.5) == 500
        assert tail.percentile(values, 0.999) == 999
        low, high = tail.percentile_ci(values, 0.999)
        assert low < 999 <= high
        assert math.isnan(tail.percentile([], 0.5))

    def test_main_prints_the_report(
        self, tail: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setattr(
            sys, "argv", ["tail_at_scale.py", "--reads", "3", "--seed", "5", "--jobs", "1"]
        )
        with pytest.raises(SystemExit) as exit_info:
            tail.main()
        assert exit_info.value.code in {0, 1}
        out = capsys.readouterr().out
        for heading in ("seed 5", "## Calibration", "## Results", "## Checks", "Wall time"):
            assert heading in out


class TestBackoffJitter:
    """Brooker's OCC clients with seawall.Retrier delays, at a few runs."""

    def test_one_client_writes_once(self, jitter: ModuleType) -> None:
        calls, elapsed = anyio.run(jitter.simulate_run, 1, "full", 1, 0)
        assert calls == 1
        assert 0 < elapsed < 0.2  # four network hops of about 10 ms

    def test_first_backoff_follows_the_post(self, jitter: ModuleType) -> None:
        assert jitter.initial_delay("none", "brooker") == pytest.approx(0.010)
        assert jitter.initial_delay("decorrelated", "brooker") == pytest.approx(0.005)
        assert jitter.initial_delay("full", "base") == pytest.approx(0.005)

    def test_jitter_orderings(self, jitter: ModuleType) -> None:
        cells = jitter.run_grid([20], 5, 1, "brooker", 1)
        none, full, equal = cells["none", 20], cells["full", 20], cells["equal", 20]
        decorrelated = cells["decorrelated", 20]
        for cell in cells.values():
            assert cell.runs == 5
            assert cell.calls >= 20  # every client wrote at least once
        # Full jitter does less work than no jitter; no jitter is the slowest by far.
        assert full.calls < none.calls
        assert none.time > max(full.time, equal.time, decorrelated.time)
        # Equal jitter never waits less than half the backoff: slower than full jitter.
        assert equal.time > full.time

        text = jitter.table(cells, [20], "calls") + jitter.table(cells, [20], "time")
        for label in jitter.LABELS.values():
            assert label in text
        assert len(jitter.checks(cells, [20])) == 3
        assert len(jitter.observations(cells, [20])) == 5

    def test_reference_agrees_with_seawall(self, jitter: ModuleType) -> None:
        """The plain event simulation, fed the same draws, ends every run identically."""
        mine = jitter.run_grid([12], 4, 2, "brooker", 1)
        reference = jitter.run_grid([12], 4, 2, "brooker", 1, reference=True)
        for key, cell in mine.items():
            assert jitter.identical_runs(cell, reference[key]) == 4
        assert "4 of 4" in jitter.cross_check_table(mine, reference)
        assert all(passed for _, passed in jitter.checks(mine, [12], reference)[3:])

    def test_main_prints_the_report(
        self,
        jitter: ModuleType,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        argv = [
            "backoff_jitter.py",
            "--clients",
            "10",
            "20",
            "--runs",
            "3",
            "--seed",
            "4",
            "--jobs",
            "1",
        ]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            jitter.main()
        assert exit_info.value.code in {0, 1}
        out = capsys.readouterr().out
        for heading in ("seed 4", "## Work", "## Completion time", "## Cross-check", "## Checks"):
            assert heading in out

"""The demo's simulation, run in full: the seawall stack must beat the bare calls."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest


DEMO = Path(__file__).parent.parent / "demo" / "llm.py"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    """Import demo/llm.py as a module."""
    spec = importlib.util.spec_from_file_location("seawall_demo_llm", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TestDemo:
    """The LLM demo on its default seed, in virtual time."""

    def test_seawall_beats_bare(self, demo: ModuleType) -> None:
        """More successes, a shorter tail, no 429s and fast failures in the outage."""
        bare, protected = anyio.run(demo.main_async, 7)
        assert protected.ok > bare.ok
        assert demo.percentile(protected.latencies, 0.999) < demo.percentile(bare.latencies, 0.999)
        assert protected.rate_limited == 0 < bare.rate_limited
        assert protected.during_outage < bare.during_outage
        assert protected.failed_fast > 0
        assert protected.trips >= 1
        assert protected.hedges_won > 0
        # Retries and hedges cost little extra load: under 10% more requests.
        assert protected.provider_requests < 1.1 * demo.REQUESTS
        assert bare.ok + bare.failed == protected.ok + protected.failed == demo.REQUESTS

    def test_table_and_plot(self, demo: ModuleType, tmp_path: Path) -> None:
        """The table names every figure; the plot is written exactly when matplotlib exists."""
        runs = anyio.run(demo.main_async, 7)
        text = demo.table(runs)
        for label in ("succeeded", "p50", "p99", "p99.9", "extra requests", "breaker trips"):
            assert label in text
        has_matplotlib = importlib.util.find_spec("matplotlib") is not None
        assert demo.plot(runs, tmp_path / "latency.png") is has_matplotlib
        assert (tmp_path / "latency.png").exists() is has_matplotlib

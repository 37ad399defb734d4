"""Run every benchmark in a fresh interpreter, several times, and report ratios.

Usage: python benchmarks/run.py [-k EXPR] [--repeats N] [--quick] [--out DIR]
(or ``python -m nox -s bench -- [the same options]``).

1. Collects the benchmark node ids (``pytest benchmarks --collect-only -q``, files
   ``benchmarks/bench_*.py``; ``-k`` selects as in pytest).
2. Runs each benchmark alone in a new interpreter (a pytest subprocess writing
   ``--benchmark-json`` to a temporary file), once per repeat; each repeat runs the
   benchmarks in a new shuffled order, so that no row always follows the same one.
3. Aggregates each benchmark over its runs: the median of the per-run medians, the
   minimum of the minimums and the maximum of the maximums, per call (async rows await
   the operation several times a round: see ``_support.py``).
4. Prints, and writes to ``OUT/report.md``, the machine, the versions of seawall and of
   every peer library, the command, a table of the performance targets, and one table
   per group with each row's ratio to ``plain``, to ``passthrough`` and to seawall's row;
   writes the aggregate to ``OUT/aggregate.json`` (``report.py`` re-renders it).
5. Runs ``tests/test_quiet_paths.py`` (no thread, no log record, no zero sleep on the
   success paths) and reports it with the targets.

Exits 1 when a benchmark or the quiet-paths test failed (after writing the report).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _support import CALLS_PER_ROUND
from report import STATS, label, render


ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = "benchmarks"

PEERS = (
    "tenacity",
    "stamina",
    "backoff",
    "pybreaker",
    "circuitbreaker",
    "purgatory",
    "aiolimiter",
    "pyrate-limiter",
    "limits",
    "hyx",
)
TOOLS = ("anyio", "trio", "pytest", "pytest-benchmark", "opentelemetry-api", "opentelemetry-sdk")

# Every pytest run: the benchmark files, no cache, no hypothesis plugin (a second of
# start-up in the dev environment), and _support as a plugin (it skips the CPU probe).
PYTEST_OPTIONS = (
    "-o",
    "python_files=bench_*.py",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "_support",
)

FULL = {"repeats": 3, "min_rounds": 5, "max_time": 0.25}
QUICK = {"repeats": 1, "min_rounds": 3, "max_time": 0.02}

RUN_TIMEOUT = 600.0  # seconds for one benchmark in one interpreter


def _environ() -> dict[str, str]:
    env = dict(os.environ)
    path = str(ROOT / BENCHMARKS)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
    return env


def _pytest(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- this interpreter, running pytest with our arguments
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def collect(selection: str | None) -> list[str]:
    """Return the node ids of the benchmarks, selected by a pytest ``-k`` expression."""
    args = [BENCHMARKS, "--collect-only", "-q", *PYTEST_OPTIONS]
    if selection:
        args += ["-k", selection]
    done = _pytest(*args)
    nodes = [line.strip() for line in done.stdout.splitlines() if "::" in line]
    if done.returncode != 0 or not nodes:
        sys.exit(f"collecting the benchmarks failed:\n{done.stdout}\n{done.stderr}")
    return nodes


def run_one(node: str, options: Sequence[str], workdir: Path) -> dict[str, Any] | str | None:
    """Run one benchmark in a new interpreter.

    Returns its pytest-benchmark record; ``None`` when it was skipped; or the tail of
    pytest's output when it failed.
    """
    out = workdir / "result.json"
    out.unlink(missing_ok=True)
    try:
        done = _pytest(
            node, "-q", *PYTEST_OPTIONS, f"--benchmark-json={out}", *options, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {RUN_TIMEOUT:g} s"
    if done.returncode != 0 or not out.exists():
        return "\n".join((done.stdout + done.stderr).splitlines()[-30:])
    records: list[dict[str, Any]] = json.loads(out.read_text())["benchmarks"]
    return records[0] if records else None


def aggregate_runs(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate the records of one benchmark's runs, per call."""
    first = records[0]
    calls = int(first.get("extra_info", {}).get(CALLS_PER_ROUND, 1))
    runs = [
        {
            **{stat: record["stats"][stat] / calls for stat in STATS},
            "rounds": record["stats"]["rounds"],
        }
        for record in records
    ]
    return {
        "id": first["fullname"],
        "group": first["group"],
        "name": label(first["name"]),
        "calls_per_round": calls,
        "timer": first["options"].get("timer", "perf_counter"),
        "median": statistics.median(run["median"] for run in runs),
        "min": min(run["min"] for run in runs),
        "max": max(run["max"] for run in runs),
        "rounds": sum(run["rounds"] for run in runs),
        "runs": runs,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 -- read-only git queries
            ["git", "--no-optional-locks", *args],  # noqa: S607 -- git from PATH, as a developer runs it
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def environment() -> dict[str, Any]:
    """Describe the machine, the interpreter, the commit and the versions measured."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " with local changes"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "commit": commit,
        "versions": {name: _version(name) for name in ("seawall", *PEERS, *TOOLS)},
    }


def _load() -> str:
    try:
        return " / ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux or macOS
        return "unknown"


def quiet_paths_check() -> tuple[bool, str]:
    """Run tests/test_quiet_paths.py; return whether it passed and pytest's summary line."""
    done = _pytest("tests/test_quiet_paths.py", "-q", "-p", "no:cacheprovider", timeout=RUN_TIMEOUT)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode == 0, (lines[-1].strip("= ") if lines else done.stderr.strip())


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="selection", help="select benchmarks, as pytest -k does")
    parser.add_argument("--repeats", type=int, help="fresh interpreters per benchmark (3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="few rounds, one repeat: a smoke run")
    parser.add_argument("--min-rounds", type=int, help="pytest-benchmark's minimum rounds")
    parser.add_argument("--max-time", type=float, help="pytest-benchmark's seconds per run")
    parser.add_argument("--stat", choices=("median", "min"), default="median")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled orders")
    parser.add_argument("--out", type=Path, default=ROOT / ".benchmarks")
    parser.add_argument(
        "--no-quiet-check", action="store_true", help="do not run tests/test_quiet_paths.py"
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    args = _arguments(argv)
    started = time.monotonic()
    load_start = _load()
    nodes = collect(args.selection)
    options = [
        f"--benchmark-min-rounds={args.min_rounds}",
        f"--benchmark-max-time={args.max_time}",
    ]
    total = len(nodes) * args.repeats
    records: dict[str, list[dict[str, Any]]] = {node: [] for node in nodes}
    failed: dict[str, str] = {}
    skipped: set[str] = set()
    done = 0
    with tempfile.TemporaryDirectory(prefix="seawall-bench-") as workdir:
        for repeat in range(args.repeats):
            order = list(nodes)
            random.Random(args.seed + repeat).shuffle(order)
            for node in order:
                done += 1
                if node in failed:
                    continue
                outcome = run_one(node, options, Path(workdir))
                if isinstance(outcome, str):
                    failed[node] = outcome
                    shown = "FAILED"
                elif outcome is None:
                    skipped.add(node)
                    shown = "skipped"
                else:
                    records[node].append(outcome)
                    calls = outcome.get("extra_info", {}).get(CALLS_PER_ROUND, 1)
                    shown = f"{outcome['stats']['median'] / calls * 1e9:,.0f} ns per call"
                print(f"[{done}/{total}] {node}: {shown}", file=sys.stderr, flush=True)
    aggregate: dict[str, Any] = {
        "format": "seawall-aggregate",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "settings": {
            "repeats": args.repeats,
            "min_rounds": args.min_rounds,
            "max_time": args.max_time,
            "selection": args.selection,
            "seed": args.seed,
        },
        "environment": environment(),
        "load_start": load_start,
        "benchmarks": [
            aggregate_runs(runs) for node, runs in records.items() if runs and node not in failed
        ],
        "failed": failed,
        "skipped": sorted(skipped),
    }
    passed = True
    if not args.no_quiet_check:
        passed, summary = quiet_paths_check()
        aggregate["quiet_paths"] = {"passed": passed, "summary": summary}
    aggregate["load_end"] = _load()
    aggregate["elapsed"] = time.monotonic() - started
    report = render(aggregate, args.stat)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "aggregate.json").write_text(json.dumps(aggregate, indent=1) + "\n")
    (args.out / "report.md").write_text(report)
    print(report)
    print(f"Wrote {args.out / 'report.md'} and {args.out / 'aggregate.json'}.", file=sys.stderr)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())

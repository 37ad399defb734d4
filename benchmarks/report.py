"""Markdown tables of benchmark results: times per call, and ratios within each group.

Usage: python benchmarks/report.py RESULTS.json [--stat median|min]

*RESULTS.json* is either the aggregate that ``benchmarks/run.py`` writes (several fresh
interpreters per benchmark; printed as the whole report, machine and versions included)
or a single pytest-benchmark ``--benchmark-json`` file (the tables only).

Within each benchmark group, every row gets its time per call (median, min and max;
async rows make several awaits per round, see `_support`) and its ratio to the group's
``plain`` row, to its ``passthrough`` row and to its seawall reference row (the first
of `SEAWALL_REFERENCES` present). Ratios are of medians by default; ``--stat min`` uses
the minimums, the figure least disturbed by other load on a busy machine. Then a table
of the performance targets (`TARGETS`), each with its measured ratio.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _support import CALLS_PER_ROUND


STATS = ("median", "min", "max")

# A row's label is its test name without "test_" and without these words, which only
# keep the test names of one module apart.
ROW_PREFIXES = ("async_", "open_", "refused_", "contended_")

# The seawall row each group's "x seawall" column divides by: the first one present.
SEAWALL_REFERENCES = (
    "seawall_try_acquire",
    "seawall_aacquire",
    "seawall_decorator",
    "hooks_off",
    "seawall_acall",
    "seawall_call",
)


@dataclass(frozen=True)
class Target:
    """A performance target: *row* / *baseline* in *group* must stay within *limit*."""

    title: str
    group: str
    row: str
    baseline: str
    limit: float
    strict: bool = False  # "faster than": the ratio must be below the limit


TARGETS = (
    Target(
        "retry decorator success, sync",
        "sync retry success",
        "seawall_decorator",
        "passthrough",
        2.0,
    ),
    Target(
        "retry decorator success, async",
        "async retry success",
        "seawall_decorator",
        "passthrough",
        2.0,
    ),
    Target(
        "breaker success, sync", "sync breaker success", "seawall_decorator", "passthrough", 3.0
    ),
    Target(
        "breaker success, async", "async breaker success", "seawall_decorator", "passthrough", 3.0
    ),
    Target(
        "open-breaker rejection, sync",
        "sync breaker rejection (open)",
        "seawall_decorator",
        "plain",
        2.0,
    ),
    Target(
        "open-breaker rejection, async",
        "async breaker rejection (open)",
        "seawall_decorator",
        "plain",
        2.0,
    ),
    Target(
        "try_acquire, token available",
        "sync limiter, token available",
        "seawall_try_acquire",
        "passthrough",
        2.5,
    ),
    Target(
        "non-waiting async acquire, faster than aiolimiter",
        "async limiter, token available",
        "seawall_aacquire",
        "aiolimiter_acquire",
        1.0,
        strict=True,
    ),
    Target(
        "hedged call, primary answers before the delay",
        "async hedge, primary answers first",
        "seawall_acall",
        "create_task_and_wait",
        1.5,
    ),
)

Row = Mapping[str, Any]


def label(name: str) -> str:
    """Return the row label of a benchmark named *name* (a test name)."""
    label = name.split("[", maxsplit=1)[0].removeprefix("test_")
    changed = True
    while changed:
        changed = False
        for prefix in ROW_PREFIXES:
            if label.startswith(prefix) and len(label) > len(prefix):
                label = label.removeprefix(prefix)
                changed = True
    return label


def from_pytest_benchmark(data: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one pytest-benchmark JSON document to the aggregate form of ``run.py``."""
    rows = []
    for bench in data["benchmarks"]:
        calls = int(bench.get("extra_info", {}).get(CALLS_PER_ROUND, 1))
        stats = bench["stats"]
        per_call = {stat: stats[stat] / calls for stat in STATS}
        rows.append(
            {
                "id": bench["fullname"],
                "group": bench["group"],
                "name": label(bench["name"]),
                "calls_per_round": calls,
                "runs": [{**per_call, "rounds": stats["rounds"]}],
                **per_call,
            }
        )
    return {"benchmarks": rows}


def load(path: Path) -> dict[str, Any]:
    """Read an aggregate written by ``run.py``, or a pytest-benchmark JSON file."""
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") == "seawall-aggregate":
        return data
    return from_pytest_benchmark(data)


def groups(aggregate: Mapping[str, Any]) -> dict[str, dict[str, Row]]:
    """Return the rows by group and by label."""
    result: dict[str, dict[str, Row]] = {}
    for row in aggregate["benchmarks"]:
        result.setdefault(row["group"], {})[row["name"]] = row
    return result


def seawall_reference(rows: Mapping[str, Row]) -> str | None:
    """Return the label of the group's seawall reference row, if it has one."""
    return next((name for name in SEAWALL_REFERENCES if name in rows), None)


def duration(seconds: float) -> str:
    """Format a time per call with three significant digits and a unit."""
    if not math.isfinite(seconds):
        return "-"
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        value = seconds / scale
        if value < 999.5:  # where the next unit takes over
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{seconds:.3g} s"


def ratio(value: float, base: float | None) -> str:
    """Format *value* / *base*, or a dash when there is no base."""
    if not base:
        return "-"
    return f"{value / base:.2f}"


def group_tables(aggregate: Mapping[str, Any], stat: str = "median") -> str:
    """Return one markdown table per group, rows from the fastest to the slowest."""
    lines: list[str] = []
    for group, rows in sorted(groups(aggregate).items()):
        reference = seawall_reference(rows)
        plain = rows["plain"][stat] if "plain" in rows else None
        passthrough = rows["passthrough"][stat] if "passthrough" in rows else None
        seawall = rows[reference][stat] if reference else None
        lines += [f"### {group}", ""]
        if reference:
            lines += [f"x seawall: ratio to `{reference}`.", ""]
        lines += [
            "| row | median | min | max | x plain | x pass-through | x seawall |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in sorted(rows.items(), key=lambda item: item[1][stat]):
            shown = f"**{name}**" if name == reference else name
            lines.append(
                f"| {shown} | {duration(row['median'])} | {duration(row['min'])} "
                f"| {duration(row['max'])} | {ratio(row[stat], plain)} "
                f"| {ratio(row[stat], passthrough)} | {ratio(row[stat], seawall)} |"
            )
        lines.append("")
    return "\n".join(lines)


def target_rows(
    aggregate: Mapping[str, Any], stat: str = "median"
) -> list[tuple[Target, float | None]]:
    """Return each target with its measured ratio (None when a row is missing)."""
    by_group = groups(aggregate)
    measured: list[tuple[Target, float | None]] = []
    for target in TARGETS:
        rows = by_group.get(target.group, {})
        if target.row in rows and target.baseline in rows and rows[target.baseline][stat]:
            measured.append((target, rows[target.row][stat] / rows[target.baseline][stat]))
        else:
            measured.append((target, None))
    return measured


def verdict(target: Target, value: float | None) -> str:
    """Say whether *value* meets *target*, and by how much it misses."""
    if value is None:
        return "not measured"
    met = value < target.limit if target.strict else value <= target.limit
    if met:
        return "met"
    return f"missed by {value / target.limit - 1:.0%}"


def targets_table(
    aggregate: Mapping[str, Any], stat: str = "median", extra: Iterable[Sequence[str]] = ()
) -> str:
    """Return the markdown table of the targets; *extra* rows are appended as given.

    Each target shows its ratio of medians and its ratio of minimums; the verdict is
    on *stat*.
    """
    lines = [
        f"| target | measured | ratio of medians | ratio of mins | limit | verdict ({stat}s) |",
        "|---|---|---:|---:|---:|---|",
    ]
    by_stat = {name: dict(target_rows(aggregate, name)) for name in ("median", "min")}
    for target in TARGETS:
        shown = {
            name: "-" if values[target] is None else f"{values[target]:.2f}"
            for name, values in by_stat.items()
        }
        sign = "<" if target.strict else "≤"
        lines.append(
            f"| {target.title} | `{target.row}` / `{target.baseline}` ({target.group}) "
            f"| {shown['median']} | {shown['min']} | {sign} {target.limit:g} "
            f"| {verdict(target, by_stat[stat][target])} |"
        )
    lines += ["| " + " | ".join(cells) + " |" for cells in extra]
    return "\n".join(lines) + "\n"


def render(aggregate: Mapping[str, Any], stat: str = "median") -> str:
    """Return the whole markdown report of an aggregate written by ``run.py``."""
    env = aggregate["environment"]
    settings = aggregate["settings"]
    lines = [
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {env['cpu']}, {env['cores']} cores |",
        f"| Python | {env['python']} |",
        f"| OS | {env['os']} |",
        f"| commit | {env['commit']} |",
        f"| load average (1/5/15 min) at start | {aggregate['load_start']} |",
        f"| load average (1/5/15 min) at end | {aggregate['load_end']} |",
        f"| date | {aggregate['date']} |",
        f"| command | `{aggregate['command']}` |",
        (
            f"| runs | {settings['repeats']} fresh interpreter(s) per benchmark, "
            f"pytest-benchmark `--benchmark-min-rounds={settings['min_rounds']} "
            f"--benchmark-max-time={settings['max_time']}`; {aggregate['elapsed']:.0f} s in all |"
        ),
        "",
        "| package | version |",
        "|---|---|",
        *(f"| {name} | {version} |" for name, version in env["versions"].items()),
        "",
        "## Targets",
        "",
    ]
    quiet = aggregate.get("quiet_paths")
    extra = []
    if quiet is not None:
        extra.append(
            (
                "no thread started, no log record built, no sleep when the delay is zero",
                "`tests/test_quiet_paths.py`",
                "-",
                "-",
                "-",
                ("met" if quiet["passed"] else "**missed**") + f" ({quiet['summary']})",
            )
        )
    lines += [targets_table(aggregate, stat, extra), f"## Results by group (ratios of {stat}s)", ""]
    lines.append(group_tables(aggregate, stat))
    if aggregate["failed"]:
        lines += ["## Failed benchmarks", ""]
        for node, output in aggregate["failed"].items():
            lines += [f"### `{node}`", "", "```", output, "```", ""]
    if aggregate["skipped"]:
        lines += ["Skipped: " + ", ".join(f"`{node}`" for node in aggregate["skipped"]), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the tables of a results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--stat", choices=("median", "min"), default="median")
    args = parser.parse_args(argv)
    aggregate = load(args.results)
    if "environment" in aggregate:  # written by run.py
        print(render(aggregate, args.stat))
    else:
        print(group_tables(aggregate, args.stat))
        print("### Targets\n")
        print(targets_table(aggregate, args.stat))


if __name__ == "__main__":
    main()

"""Turn a pytest-benchmark JSON file into a table of ratios to the plain call.

Usage: python benchmarks/report.py results.json

Within each benchmark group, the row named ``plain`` is the baseline; every row gets its
median per call and its ratio to that baseline (and to ``passthrough`` when present).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from _support import BATCH


def main(path: str) -> None:
    """Print one table per benchmark group."""
    data = json.loads(Path(path).read_text())
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        median = bench["stats"]["median"]
        if bench["group"].startswith("async"):
            median /= BATCH
        label = bench["name"].split("[")[0].removeprefix("test_").removeprefix("async_")
        groups[bench["group"]][label] = median
    for group, rows in sorted(groups.items()):
        plain = rows.get("plain")
        passthrough = rows.get("passthrough")
        print(f"\n## {group}\n")
        print("| operation | median per call | x plain | x pass-through |")
        print("|---|---:|---:|---:|")
        for label, median in sorted(rows.items(), key=lambda kv: kv[1]):
            to_plain = f"{median / plain:.2f}" if plain else "-"
            to_pass = f"{median / passthrough:.2f}" if passthrough else "-"
            print(f"| {label} | {median * 1e9:,.0f} ns | {to_plain} | {to_pass} |")


if __name__ == "__main__":
    main(sys.argv[1])

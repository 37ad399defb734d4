"""Turn a pytest-benchmark JSON file into tables of ratios to the plain call.

Usage: python benchmarks/report.py results.json

Within each benchmark group, the row named ``plain`` is the baseline. Every row gets its
minimum and median time per call and its ratio to ``plain`` and to ``passthrough`` (when
present). Ratios use the minimum: on a shared machine it is the figure least disturbed
by other load, while the median moves by up to 2x between runs here.
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
    groups: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        scale = BATCH if bench["group"].startswith("async") else 1
        stats = bench["stats"]
        label = bench["name"].split("[")[0].removeprefix("test_").removeprefix("async_")
        groups[bench["group"]][label] = (stats["min"] / scale, stats["median"] / scale)
    for group, rows in sorted(groups.items()):
        plain = rows.get("plain", (0.0, 0.0))[0]
        passthrough = rows.get("passthrough", (0.0, 0.0))[0]
        print(f"\n## {group}\n")
        print("| operation | min per call | median per call | x plain | x pass-through |")
        print("|---|---:|---:|---:|---:|")
        for label, (fastest, median) in sorted(rows.items(), key=lambda kv: kv[1][0]):
            to_plain = f"{fastest / plain:.2f}" if plain else "-"
            to_pass = f"{fastest / passthrough:.2f}" if passthrough else "-"
            print(
                f"| {label} | {fastest * 1e9:,.0f} ns | {median * 1e9:,.0f} ns "
                f"| {to_plain} | {to_pass} |"
            )


if __name__ == "__main__":
    main(sys.argv[1])

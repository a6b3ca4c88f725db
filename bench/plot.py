"""Draw the benchmark's results of one day: throughput and latency per scenario and target.

    python bench/plot.py bench/results 2026-11-29 bench/results/2026-11-29.png

Medians over the day's runs, one bar per target; the figures are those of the
harness's JSON records (``bench.py report`` prints the same as a table).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = [
    ("fanout", "msgs_per_s", "fan-out delivered msgs/s\n(1000 subscribers)", False),
    ("pairs", "msgs_per_s", "pairs relayed msgs/s\n(500 rooms of 2)", False),
    ("connections", "handshakes_per_s", "handshakes/s", False),
    ("ping", "round_trips_per_s", "ping round trips/s", False),
    ("fanout", "p99_ms", "fan-out p99 latency, ms", True),
    ("pairs", "p99_ms", "pairs p99 latency, ms", True),
    ("connections", "rss_kib_per_conn", "KiB per idle connection", True),
    ("ping", "p99_ms", "ping p99 RTT, ms", True),
]


def medians(results: Path, day: str) -> dict[str, dict[tuple[str, str], float]]:
    values: dict[str, dict[tuple[str, str], list[float]]] = {}
    for file in sorted(results.glob(f"{day}-*.json")):
        for record in json.loads(file.read_text()):
            scenarios = record["scenarios"]
            items = scenarios.items() if isinstance(scenarios, dict) else []
            for scenario, figures in items:
                for key, value in figures.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        target = values.setdefault(record["target"], {})
                        target.setdefault((scenario, key), []).append(float(value))
    return {
        target: {key: statistics.median(v) for key, v in figures.items()}
        for target, figures in values.items()
    }


def main() -> None:
    results, day, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    data = medians(results, day)
    targets = sorted(data, key=lambda t: (t != "wsgen", t))
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, (scenario, key, title, lower_is_better) in zip(axes.flat, PANELS, strict=True):
        shown = [(t, data[t][(scenario, key)]) for t in targets if (scenario, key) in data[t]]
        colors = ["tab:green" if t == "wsgen" else "tab:gray" for t, _ in shown]
        bars = ax.bar([t for t, _ in shown], [v for _, v in shown], color=colors)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(title + (" (lower is better)" if lower_is_better else ""), fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle(f"wsgen and its peers, {day}: server on one core, load generator on the other")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()

"""`dormouse history`: which tier serves a query, and how points are shown."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from coordinator.settings import Retention
from coordinator.store.series import Point
from shared.metrics import Kind, Metric

AGGREGATES = ("avg", "min", "max")


def choose_tier(step_s: float, since: float, now: float, retention: Retention) -> str:
    """The coarsest tier whose buckets fit in the step, and which still holds `since`."""
    tier = "raw" if step_s < 60 else "minute" if step_s < 3600 else "hour"
    if tier == "raw" and now - since > retention.raw:
        tier = "minute"
    if tier == "minute" and now - since > retention.minute:
        tier = "hour"
    return tier


def value_of(point: Point, metric: Metric, agg: str) -> float | None:
    """Counters show their increase per step; gauges the chosen aggregate."""
    if metric.kind is Kind.COUNTER:
        return point.agg.delta
    return getattr(point.agg, agg)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(points: Sequence[Point], metric: Metric, agg: str) -> list[dict[str, object]]:
    return [
        {"time": iso(p.ts), "ts": p.ts, "value": value_of(p, metric, agg), "count": p.agg.count}
        for p in points
    ]


def as_csv(table: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["time", "ts", "value", "count"])
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def as_json(table: list[dict[str, object]], metric: Metric, node: str) -> str:
    return json.dumps(
        {"node": node, "metric": metric.name, "unit": metric.unit, "points": table}, indent=2
    )


def as_bars(table: list[dict[str, object]], metric: Metric, width: int = 50) -> str:
    """A horizontal bar per point: readable in any terminal, and in a log."""
    values = [v for r in table if isinstance(v := r["value"], int | float)]
    if not values:
        return "no data"
    top = max(*values, 0.0) or 1.0
    lines = [f"{metric.name} ({metric.unit}), max {top:g}"]
    for row in table:
        value = row["value"]
        length = 0 if not isinstance(value, int | float) else max(0.0, value) / top * width
        bar = "█" * math.floor(length) + ("▌" if length % 1 >= 0.5 else "")
        shown = "-" if value is None else f"{value:.4g}"
        lines.append(f"{row['time']}  {bar:<{width + 1}} {shown}")
    return "\n".join(lines)


def write_png(table: list[dict[str, object]], metric: Metric, node: str, path: str) -> None:
    """A line chart, with matplotlib (the `plot` extra)."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional, heavy: only for --png

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--png needs matplotlib: pip install 'dormouse[plot]'") from None
    times = [datetime.fromtimestamp(float(r["ts"]), UTC) for r in table]  # type: ignore[arg-type]
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(times, [r["value"] for r in table])
    axes.set_title(f"{node}: {metric.name}")
    axes.set_ylabel(metric.unit)
    figure.autofmt_xdate()
    figure.savefig(path, dpi=100)
    plt.close(figure)

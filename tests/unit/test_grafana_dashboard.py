"""The Grafana dashboard only queries metrics the coordinator serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from coordinator.daemon import metrics_http

DASHBOARD = Path(__file__).parents[2] / "configs" / "grafana-dashboard.json"


def served() -> set[str]:
    """Names in metrics_http; counters are exposed with `_total` added."""
    source = Path(metrics_http.__file__).read_text()
    names = set(re.findall(r'"(dormouse_[a-z_]+)"', source))
    counters = re.findall(r'CounterMetricFamily\(\s*"(dormouse_[a-z_]+)"', source)
    return names | {f"{c}_total" for c in counters}


def test_every_panel_queries_a_served_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        used = set(re.findall(r"dormouse_[a-z_]+", expr))
        assert used, expr
        assert used <= served(), f"{expr}: {used - served()}"

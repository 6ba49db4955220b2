"""deploy/grafana/mmr.json plots only metrics mmr exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

# Importing registers every metric, and the gauges read at scrape time.
from shared.metrics import definitions, state  # noqa: F401

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "mmr.json"


def _exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names |= {sample.name for sample in family.samples} | {family.name}
    # Histograms and counters with no samples yet still have their suffixed series.
    for family in list(names):
        names |= {f"{family}_total", f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    return names


def test_every_panel_queries_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported_names()
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"\b((?:media|process)_[a-z_]+)\b", target["expr"]))
            assert used, panel["title"]
            assert used <= exported, (panel["title"], used - exported)


def test_panels_do_not_overlap() -> None:
    cells = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        grid = panel["gridPos"]
        cell = (grid["x"], grid["y"])
        assert cell not in cells, panel["title"]
        cells.add(cell)

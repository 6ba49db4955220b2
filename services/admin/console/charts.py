"""The Usage page's charts, drawn on the server as SVG by pygal, so they show without JavaScript
and need no front-end build. Labels go through pygal's XML writer, which escapes them; the
scripts pygal adds for its tooltips (and the config with the labels they carry) are taken out,
so a chart is only shapes and text."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import pygal
from pygal.etree import etree
from pygal.graph.graph import Graph
from pygal.style import Style

from shared.db.repositories.console import DAY_MS, DatastoreFigures, DayFigures
from shared.db.repositories.usage import UserMediaStat

MAX_POINTS = 120
MIB = 1024 * 1024
STYLE = Style(background="white", plot_background="white", foreground="#333",
              foreground_strong="#111", foreground_subtle="#999", opacity=".85",
              colors=("#2f6fb0", "#e0803a", "#3a9a5b", "#b04a6f", "#7a5cb0", "#8a8a3a"))


def _chart_options(title: str) -> dict[str, object]:
    return {"title": title, "js": [], "style": STYLE, "width": 720, "height": 300,
            "explicit_size": True, "show_legend": False, "disable_xml_declaration": False,
            "no_data_text": "no media yet"}


SVG_SCRIPT = "{http://www.w3.org/2000/svg}script"


def _svg(chart: Graph) -> bytes:
    root = chart.render_tree()
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (SVG_SCRIPT, "script"):
                parent.remove(child)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _day_label(day: int) -> str:
    return datetime.datetime.fromtimestamp(day * DAY_MS / 1000, tz=datetime.UTC).strftime("%Y-%m-%d")


def storage_over_time(days: Sequence[DayFigures]) -> bytes:
    """The bytes of today's media by the day they were stored, summed up (MiB)."""
    chart = pygal.Line(**_chart_options("Storage over time (MiB)"), show_dots=False, fill=True,
                       x_label_rotation=30, show_minor_x_labels=False)
    running, points, labels = 0, [], []
    for figures in days:
        running += figures.size_bytes
        points.append(round(running / MIB, 2))
        labels.append(_day_label(figures.day))
    step = max(1, len(points) // MAX_POINTS)
    kept = list(range(len(points) - 1, -1, -step))[::-1]  # always keep the latest day
    chart.x_labels = [labels[i] for i in kept]
    chart.x_labels_major = chart.x_labels[::max(1, len(kept) // 8)]
    chart.add("MiB", [points[i] for i in kept])
    return _svg(chart)


def uploads_per_day(days: Sequence[DayFigures]) -> bytes:
    chart = pygal.Bar(**_chart_options("Uploads per day (files)"), x_label_rotation=30,
                      show_minor_x_labels=False)
    chart.x_labels = [_day_label(d.day) for d in days]
    chart.x_labels_major = chart.x_labels[::5]
    chart.add("files", [{"value": d.files, "label": f"{round(d.size_bytes / MIB, 2)} MiB"}
                        for d in days])
    return _svg(chart)


def top_users(stats: Sequence[UserMediaStat]) -> bytes:
    chart = pygal.HorizontalBar(**_chart_options("Top users (MiB)"))
    chart.x_labels = [s.user_id for s in reversed(stats)]
    chart.add("MiB", [{"value": round(s.media_length / MIB, 2), "label": f"{s.media_count} files"}
                      for s in reversed(stats)])
    return _svg(chart)


def datastore_split(stores: Sequence[DatastoreFigures]) -> bytes:
    options = _chart_options("By datastore (MiB)") | {"show_legend": True}
    chart = pygal.Pie(**options, inner_radius=0.4)
    for store in stores:
        chart.add(store.datastore_id, [{"value": round(store.size_bytes / MIB, 2),
                                        "label": f"{store.files} files"}])
    return _svg(chart)

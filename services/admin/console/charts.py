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

from shared.db.repositories.console import DAY_MS, DatastoreFigures, DayFigures, UploaderFigures

MAX_POINTS = 120
STYLE = Style(background="white", plot_background="white", foreground="#333",
              foreground_strong="#111", foreground_subtle="#999", opacity=".85",
              colors=("#2f6fb0", "#e0803a", "#3a9a5b", "#b04a6f", "#7a5cb0", "#8a8a3a"))


def _chart_options(title: str) -> dict[str, object]:
    return {"title": title, "js": [], "style": STYLE, "width": 720, "height": 300,
            "explicit_size": True, "show_legend": False, "disable_xml_declaration": False,
            "no_data_text": "no media yet"}


UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024), ("bytes", 1))


def _unit(largest: int) -> tuple[str, int]:
    """The largest unit the biggest figure fills at least once, so small sites draw too."""
    return next(((name, size) for name, size in UNITS if largest >= size), UNITS[-1])


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
    """The bytes of today's media by the day they were stored, summed up."""
    unit, size = _unit(sum(d.size_bytes for d in days))
    chart = pygal.Line(**_chart_options(f"Storage over time ({unit})"), show_dots=len(days) < 3,
                       fill=True, x_label_rotation=30, show_minor_x_labels=False)
    running, points, labels = 0, [], []
    for figures in days:
        running += figures.size_bytes
        points.append(round(running / size, 2))
        labels.append(_day_label(figures.day))
    step = max(1, len(points) // MAX_POINTS)
    kept = list(range(len(points) - 1, -1, -step))[::-1]  # always keep the latest day
    chart.x_labels = [labels[i] for i in kept]
    chart.x_labels_major = chart.x_labels[::max(1, len(kept) // 8)]
    chart.add(unit, [points[i] for i in kept])
    return _svg(chart)


def uploads_per_day(days: Sequence[DayFigures]) -> bytes:
    chart = pygal.Bar(**_chart_options("Uploads per day (files)"), x_label_rotation=30,
                      show_minor_x_labels=False)
    chart.x_labels = [_day_label(d.day) for d in days]
    chart.x_labels_major = chart.x_labels[::5]
    chart.add("files", [{"value": d.files, "label": f"{d.size_bytes} bytes"} for d in days])
    return _svg(chart)


def top_users(stats: Sequence[UploaderFigures]) -> bytes:
    unit, size = _unit(max((s.size_bytes for s in stats), default=0))
    chart = pygal.HorizontalBar(**_chart_options(f"Top users ({unit})"))
    chart.x_labels = [s.user_id for s in reversed(stats)]
    chart.add(unit, [{"value": round(s.size_bytes / size, 2), "label": f"{s.files} files"}
                     for s in reversed(stats)])
    return _svg(chart)


def datastore_split(stores: Sequence[DatastoreFigures]) -> bytes:
    unit, size = _unit(max((s.size_bytes for s in stores), default=0))
    options = _chart_options(f"By datastore ({unit})") | {"show_legend": True}
    chart = pygal.Pie(**options, inner_radius=0.4)
    for store in stores:
        chart.add(store.datastore_id, [{"value": round(store.size_bytes / size, 2),
                                        "label": f"{store.files} files"}])
    return _svg(chart)

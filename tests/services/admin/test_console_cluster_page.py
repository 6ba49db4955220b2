"""The Cluster page's flags, from membership records as processes publish them (the rules are
`shared.cluster.membership`'s; the page shows what they find)."""

from __future__ import annotations

import time
from typing import Any

from services.admin.console.pages import ClusterView
from services.admin.console.rendering import ENVIRONMENT
from shared.cluster.membership import cluster_report


def member(machine_id: int, service: str, version: str, host: str = "node-a") -> dict[str, Any]:
    return {"machine_id": machine_id, "service": service, "version": version, "host": host,
            "pid": 100 + machine_id, "started": time.time() - 60, "instance": f"i{machine_id}",
            "role": "holder", "last_heartbeat": time.time() - 2, "config": "c1",
            "file_datastores": []}


def page(members: list[dict[str, Any]]) -> str:
    report = cluster_report(members)
    view = ClusterView(report["members"], report["problems"], "i1")
    return ENVIRONMENT.get_template("cluster.html").render(
        view=view, now=time.time(), refresh=5, page="cluster", user=None)


def test_version_skew_a_missing_machine_0_and_an_empty_pool_are_flagged() -> None:
    html = page([member(1, "upload", "1.2.0"), member(2, "download", "2.0.0"),
                 member(3, "thumbnail", "1.2.0")])
    assert 'data-kind="no-machine-0"' in html
    assert 'data-kind="version-skew"' in html
    assert 'data-kind="no-process"' in html and "no live process serves preview" in html
    assert html.count("<tr") == 4  # a header and one row per process


def test_a_healthy_cluster_says_so() -> None:
    html = page([member(0, "admin", "1.2.0"), member(1, "upload", "1.2.0"),
                 member(2, "download", "1.2.0"), member(3, "thumbnail", "1.2.0"),
                 member(4, "preview", "1.2.0")])
    assert "No problems" in html and "data-kind" not in html
    assert '<tr class="this">' in html  # the process answering is marked


def test_published_strings_are_escaped() -> None:
    html = page([member(0, "admin", "1.2.0", host="<script>alert(1)</script>")])
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

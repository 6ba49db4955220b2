"""`python -m bench run` works end to end: its plumbing, never its figures (nothing here is timed).

One short row against the embedded default and nginx (no Synapse: it takes a minute to start and
the remote-media and thumbnail rows are what need it), then the JSON has every key the table,
RESULTS.md and `mmr plan`'s capacity model read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.measure import ProcessTree, wrk_script
from bench.report import evaluate, rates_per_core
from bench.workloads import Measurement

REPO_ROOT = Path(__file__).resolve().parents[2]
MEASUREMENT_KEYS = {"row", "target", "requests", "errors", "requests_per_s", "mb_per_s", "p50_ms",
                    "p99_ms", "cpu_ms_per_request", "cpu_ms_per_request_all", "peak_rss_mib",
                    "rss_growth_mib", "client_cpu_ms_per_request", "cpu_cap_used", "note",
                    "ratios"}


def test_one_quick_row_writes_the_json_the_table_is_made_of(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--quick", "--only", "download-10k",
         "--mode", "embedded", "--peers", "nginx", "--duration", "1", "--no-results-md",
         "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(out.read_text())
    assert set(document) == {"meta", "results", "targets", "rates_per_core"}
    assert {"date", "machine", "versions", "command", "seconds", "settings", "rows"} <= set(
        document["meta"])
    by_target = {m["target"]: m for m in document["results"]}
    assert set(by_target) == {"mmr-embedded", "nginx"}
    for measurement in by_target.values():
        assert set(measurement) == MEASUREMENT_KEYS
        assert measurement["row"] == "download-10k"
        assert measurement["requests"] > 0
        assert measurement["errors"] == 0
        assert measurement["cpu_ms_per_request"] is not None
        assert measurement["client_cpu_ms_per_request"] is not None
    assert set(by_target["mmr-embedded"]["ratios"]) == {"nginx"}
    assert document["rates_per_core"]["download"]["from"] == "mmr-embedded"
    assert "download-10k" in done.stdout and "req/s" in done.stdout


def test_a_process_tree_counts_its_children_also_once_they_exited() -> None:
    # The child burns well over 0.2 s of CPU; the parent itself spends a few hundredths.
    script = ("import subprocess, sys, time\n"
              "subprocess.run([sys.executable, '-c', 'sum(range(3 * 10**7))'])\n"
              "print('reaped', flush=True)\n"
              "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "reaped"
        assert ProcessTree((parent.pid,)).cpu_seconds() >= 0.2
    finally:
        parent.kill()
        parent.wait()


def test_the_lua_script_makes_bodies_and_paths_distinct() -> None:
    script = wrk_script(["/a"], {"Authorization": "Bearer x"}, unique=True, method="POST",
                        body_bytes=1024)
    assert 'string.rep("m", 992)' in script
    assert 'wrk.headers["Authorization"] = "Bearer x"' in script
    assert '"-" .. tostring(tid or 0)' in script


def test_rates_per_core_weigh_the_rows_of_a_pool_and_prefer_the_cluster() -> None:
    results = [Measurement("download-10k", "mmr-embedded", cpu_ms_per_request=1.0),
               Measurement("download-10k", "mmr-cluster", cpu_ms_per_request=2.0),
               Measurement("download-1m", "mmr-cluster", cpu_ms_per_request=4.0),
               Measurement("upload-1m", "mmr-embedded", cpu_ms_per_request=5.0)]
    rates = rates_per_core(results)
    # download: (0.4 * 2 + 0.5 * 4) / 0.9 ms -> 1000 / that per second
    assert rates["download"]["from"] == "mmr-cluster"
    assert rates["download"]["requests_per_s_per_core"] == round(1000 / (2.8 / 0.9), 1)
    assert rates["upload"] == {"requests_per_s_per_core": 200.0, "cpu_ms_per_request": 5.0,
                               "from": "mmr-embedded", "rows": ["upload-1m"]}


def test_the_targets_behind_nginx_read_the_accel_cluster_and_the_capped_workers() -> None:
    results = [Measurement("download-1m", "mmr-cluster-accel", requests_per_s=800.0,
                           cpu_ms_per_request=0.3, cpu_ms_per_request_all=1.2),
               Measurement("download-1m", "mmr-cluster", requests_per_s=400.0,
                           cpu_ms_per_request=1.8, cpu_ms_per_request_all=4.3),
               Measurement("download-1m", "mmr-embedded", requests_per_s=850.0,
                           cpu_ms_per_request=1.2, cpu_ms_per_request_all=1.2),
               Measurement("download-1m", "nginx", requests_per_s=2000.0,
                           cpu_ms_per_request_all=0.5),
               Measurement("download-1m", "synapse", requests_per_s=280.0,
                           cpu_ms_per_request_all=4.0),
               Measurement("download-workers", "mmr-workers-1-capped", requests_per_s=1000.0,
                           cpu_cap_used=0.97),
               Measurement("download-workers", "mmr-workers-2-capped", requests_per_s=1900.0,
                           cpu_cap_used=0.95)]
    checks = {(c["row"], c["what"]): c for c in evaluate(results)}
    assert checks[("download-1m", "cluster+accel (S3) req/s ÷ nginx static's")]["value"] == 0.4
    pool = checks[("download-1m", "cluster+accel (S3) download-pool CPU/req ÷ Synapse's")]
    assert pool["value"] == 0.3 / 4.0 and pool["met"] is True
    everything = checks[("download-1m",
                         "cluster+accel (S3) CPU all/req (pool + nginx + SeaweedFS) ÷ Synapse's")]
    assert everything["value"] == 1.2 / 4.0 and everything["met"] is None
    assert checks[("download-1m", "cluster download-pool CPU/req ÷ embedded's")]["value"] == 1.5
    assert checks[("download-1m", "cluster CPU all/req (pool + nginx + SeaweedFS) ÷ "
                                  "embedded's")]["met"] is False
    workers = checks[("download-workers", "--workers 2 req/s ÷ --workers 1's, each process capped")]
    assert workers["value"] == 1.9 and workers["met"] is True
    assert checks[("download-workers", "the capped runs' lowest share of their cap used")][
        "value"] == 0.95

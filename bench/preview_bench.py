"""URL previews per second, cold (every URL new) and cached, for mmr and a Synapse peer.

    .venv/bin/python bench/preview_bench.py [--urls 200] [--concurrency 8] [--skip-synapse]

Everything runs on loopback in one go, so the figures compare within this run only:
* a fixture site (`python -m http.server`, its own process) serving an OpenGraph page whose
  og:image is a ~40 KB PNG; query strings make each URL distinct without changing the page;
* mmr embedded default (`mmr serve --config`, SQLite, files, in-process coordination);
* an mmr cluster: admin (machine 0) plus two preview processes on PostgreSQL, Redis and SeaweedFS
  S3, the client alternating between the two preview processes;
* Synapse (the peer) with URL previews on and 127.0.0.1 allowed.

Cold: N new URLs, each a page fetch, extraction and an image fetch and store. Cached: the same N
URLs asked again (three rounds). The ratio column is mmr / Synapse for the same workload.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.rig import HOST, SECRET, mmr_cluster, mmr_embedded  # noqa: E402
from tests.infra.http_server import free_port  # noqa: E402

PREVIEW_PATH = "/_matrix/client/v1/media/preview_url"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>Benchmark page</title>
<meta property="og:title" content="A benchmark article about media repositories">
<meta property="og:description" content="{description}">
<meta property="og:type" content="article"><meta property="og:site_name" content="Bench">
<meta property="og:image" content="/image.png">
</head><body>{body}</body></html>"""


@dataclass
class Target:
    name: str
    urls: list[str]   # preview endpoints, used round-robin
    token: str
    host: str | None = None


def write_site(root: Path) -> None:
    paragraph = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 12 + "</p>"
    (root / "og.html").write_text(PAGE.format(description="A realistic page for previews. " * 4,
                                              body=paragraph * 40))
    buffer = io.BytesIO()
    Image.effect_noise((200, 120), 64).convert("RGB").save(buffer, "PNG")
    (root / "image.png").write_bytes(buffer.getvalue())


@contextmanager
def fixture_site(root: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/og.html", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


PREVIEW_SECTIONS = {
    "urlPreviews": {"allowedNetworks": ["127.0.0.1/32"], "disallowedNetworks": [], "numWorkers": 64},
}


@contextmanager
def embedded_target(work: Path) -> Iterator[Target]:
    with mmr_embedded(work, PREVIEW_SECTIONS) as process:
        yield Target("mmr embedded", [f"{process.url}{PREVIEW_PATH}"], SECRET, HOST)


@contextmanager
def cluster_target(work: Path, stack: ExitStack) -> Iterator[Target]:
    with mmr_cluster(work, stack, "preview", PREVIEW_SECTIONS) as processes:
        yield Target("mmr cluster (2 preview procs)",
                     [f"{p.url}{PREVIEW_PATH}" for p in processes], SECRET, HOST)


def ensure_synapse_previews() -> None:
    """Synapse's URL previews need its `url-preview` extra in the peer's venv."""
    from tests.infra.synapse import synapse_python

    python = str(synapse_python())
    if subprocess.run([python, "-c", "import bs4"], capture_output=True).returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", "beautifulsoup4>=4.13.0"], check=True)


@contextmanager
def synapse_peer(work: Path) -> Iterator[Target]:
    from tests.infra.synapse import start_synapse

    ensure_synapse_previews()
    server = start_synapse(work / "synapse", extra_config={
        "url_preview_enabled": True,
        "url_preview_ip_range_blacklist": ["10.0.0.0/8"],
        "url_preview_ip_range_whitelist": ["127.0.0.1"],
    })
    try:
        user = server.register_user("bench")
        yield Target("synapse", [f"{server.client_url}{PREVIEW_PATH}"], user.access_token)
    finally:
        server.stop()


async def run_round(target: Target, page_urls: Sequence[str], concurrency: int) -> float:
    """Preview every URL once; return previews per second. Any failure stops the benchmark."""
    headers = {"Authorization": f"Bearer {target.token}"}
    if target.host:
        headers["Host"] = target.host
    queue = list(enumerate(page_urls))
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while queue:
                index, page_url = queue.pop()
                endpoint = target.urls[index % len(target.urls)]
                response = await client.get(endpoint, params={"url": page_url})
                if response.status_code != 200 or "og:image" not in response.json():
                    raise RuntimeError(f"{target.name}: {response.status_code} {response.text[:200]}")

        started_at = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(page_urls) / (time.perf_counter() - started_at)


async def measure(target: Target, site: str, count: int, concurrency: int) -> tuple[float, float]:
    run = uuid.uuid4().hex[:8]
    await run_round(target, [f"{site}/og.html?warm={run}-{i}" for i in range(concurrency)], concurrency)
    urls = [f"{site}/og.html?n={run}-{i}" for i in range(count)]
    cold = await run_round(target, urls, concurrency)
    cached = max([await run_round(target, urls, concurrency) for _ in range(3)])
    return cold, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-synapse", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()

    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="preview-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        (work / "site").mkdir()
        write_site(work / "site")
        site = stack.enter_context(fixture_site(work / "site"))
        makers = [lambda: embedded_target(work)]
        if not args.skip_cluster:
            makers.append(lambda: cluster_target(work, stack))
        if not args.skip_synapse:
            makers.append(lambda: synapse_peer(work))
        for make in makers:
            with make() as target:
                results[target.name] = asyncio.run(measure(target, site, args.urls, args.concurrency))
                print(f"measured {target.name}", file=sys.stderr)

    peer = results.get("synapse")
    print(f"URL previews per second ({args.urls} URLs, concurrency {args.concurrency}, loopback)")
    print(f"{'target':32} {'cold/s':>9} {'cached/s':>9} {'cold x peer':>12} {'cached x peer':>14}")
    for name, (cold, cached) in results.items():
        ratios = (f"{cold / peer[0]:>12.2f} {cached / peer[1]:>14.2f}" if peer else "")
        print(f"{name:32} {cold:>9.1f} {cached:>9.1f} {ratios}")


if __name__ == "__main__":
    main()

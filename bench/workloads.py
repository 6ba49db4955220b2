"""The rows of the benchmark: one function per workload, run against each target that has it.

Every row returns a `Measurement` per target with the same fields, so one table holds them all.
Load comes from wrk wherever a row is a stream of requests (GETs, and the 1 MiB uploads through a
Lua script that makes every body distinct); rows made of a few slow requests (cold thumbnails,
first fetches, the 1 GiB transfers) use httpx one request at a time. Server CPU is read from
/proc before and after (`ProcessTree`, children included).
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench.measure import (
    MIB,
    CpuCap,
    PeakSampler,
    ProcessTree,
    cpu_of,
    percentile,
    rss_of,
    run_wrk,
)
from bench.targets import Target

UPLOAD = "/_matrix/media/v3/upload"
DOWNLOAD = "/_matrix/client/v1/media/download"
THUMBNAIL = "/_matrix/client/v1/media/thumbnail"
PREVIEW = "/_matrix/client/v1/media/preview_url"
SIZES = {"crop": (96, 96, "crop"), "scale": (800, 600, "scale")}
FILES_PER_SIZE = 16


@dataclass
class Settings:
    """How long and how much: `--quick` shrinks everything, `--duration` sets wrk's seconds."""

    seconds: float = 10.0
    cold_count: int = 8
    remote_count: int = 10
    big_mib: int = 1024
    warmup: bool = True

    @classmethod
    def quick(cls) -> Settings:
        return cls(seconds=3.0, cold_count=3, remote_count=4, big_mib=256, warmup=False)


@dataclass
class Measurement:
    row: str
    target: str
    requests: int = 0
    errors: int = 0
    requests_per_s: float | None = None
    mb_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_ms_per_request: float | None = None  # the serving pool's processes
    cpu_ms_per_request_all: float | None = None  # plus ingress and object store
    peak_rss_mib: float | None = None
    rss_growth_mib: float | None = None  # peak above idle (the 1 GiB rows)
    client_cpu_ms_per_request: float | None = None  # wrk's: the client load a request took
    cpu_cap_used: float | None = None  # capped rows: the share of their CPU cap the pool used
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    name: str
    pool: str
    kinds: tuple[str, ...]  # target names it runs against (prefix match on "mmr")
    run: Callable[[Target, Settings], Measurement]
    about: str


class Meter:
    """CPU of a target's pool and of everything it runs, between start and stop."""

    def __init__(self, target: Target, pool: str) -> None:
        self.service = target.service(pool)
        self.all = target.everything()

    def __enter__(self) -> Meter:
        self.sampler = PeakSampler(self.service).__enter__()
        self.cpu_service = cpu_of(self.service)
        self.cpu_all = cpu_of(self.all)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_service = cpu_of(self.service) - self.cpu_service
        self.cpu_all = cpu_of(self.all) - self.cpu_all
        self.sampler.__exit__()

    def fill(self, m: Measurement, requests: int) -> Measurement:
        if requests:
            m.cpu_ms_per_request = self.cpu_service / requests * 1000
            m.cpu_ms_per_request_all = self.cpu_all / requests * 1000
        m.peak_rss_mib = self.sampler.peak / MIB
        return m


# --- preparing media ----------------------------------------------------------------------------


def client(target: Target, timeout: float = 600) -> httpx.Client:
    return httpx.Client(base_url=target.url, headers=target.headers(), timeout=timeout)


def upload(target: Target, body: bytes, content_type: str = "application/octet-stream") -> str:
    with client(target) as http:
        response = http.post(UPLOAD, content=body, headers={"Content-Type": content_type})
    if response.status_code != 200:
        raise RuntimeError(f"{target.name}: upload {response.status_code} {response.text[:300]}")
    return str(response.json()["content_uri"]).rsplit("/", 1)[1]


def stored_files(target: Target, size: int) -> list[str]:
    """Paths of FILES_PER_SIZE distinct files of `size` bytes on `target`, made once."""
    key = f"files-{size}"
    if key not in target.state:
        block = os.urandom(size)
        paths = []
        for _ in range(FILES_PER_SIZE):
            body = uuid.uuid4().bytes + block[16:]
            if target.static_dir is not None:
                name = uuid.uuid4().hex
                (target.static_dir / name).write_bytes(body)
                paths.append(f"/{name}")
            else:
                paths.append(f"{DOWNLOAD}/{target.server_name}/{upload(target, body)}")
        target.state[key] = paths
    return list(target.state[key])


def wrk_row(row: str, target: Target, pool: str, settings: Settings, paths: list[str], *,
            connections: int, unique: bool = False, method: str = "GET",
            body_bytes: int = 0, warmup: bool | None = None) -> Measurement:
    headers = target.headers()
    if body_bytes:
        headers["Content-Type"] = "application/octet-stream"
    if settings.warmup if warmup is None else warmup:
        run_wrk(target.url, paths, headers, connections=connections, seconds=1, unique=unique,
                method=method, body_bytes=body_bytes)
    with Meter(target, pool) as meter:
        result = run_wrk(target.url, paths, headers, connections=connections,
                         seconds=settings.seconds, unique=unique, method=method,
                         body_bytes=body_bytes)
    m = Measurement(row, target.name, requests=result.requests, errors=result.errors,
                    requests_per_s=result.per_second, p50_ms=result.p50_ms, p99_ms=result.p99_ms)
    if result.requests:
        m.client_cpu_ms_per_request = result.client_cpu_seconds / result.requests * 1000
    # wrk counts the bytes it received: for uploads, the bodies it sent are what moved.
    m.mb_per_s = (body_bytes * result.requests / result.seconds / 1e6
                  if body_bytes and result.seconds else result.mb_per_second)
    if result.errors:
        m.note = f"{result.errors} errors"
    return meter.fill(m, result.requests)


def timed_requests(row: str, target: Target, pool: str,
                   requests: list[Callable[[httpx.Client], httpx.Response]]) -> Measurement:
    """Requests one after another on one connection: latency of each, CPU over all."""
    latencies: list[float] = []
    errors = 0
    size = 0
    with client(target) as http, Meter(target, pool) as meter:
        for send in requests:
            started = time.perf_counter()
            response = send(http)
            latencies.append(time.perf_counter() - started)
            size += len(response.content)
            if response.status_code != 200:
                errors += 1
    m = Measurement(row, target.name, requests=len(latencies), errors=errors,
                    requests_per_s=len(latencies) / sum(latencies),
                    mb_per_s=size / sum(latencies) / 1e6,
                    p50_ms=percentile(latencies, 0.5) * 1000,
                    p99_ms=percentile(latencies, 0.99) * 1000)
    if errors:
        m.note = f"{errors} non-200"
    return meter.fill(m, len(latencies))


def getters(paths: list[str]) -> list[Callable[[httpx.Client], httpx.Response]]:
    def getter(path: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda http: http.get(path)
    return [getter(path) for path in paths]


# --- downloads and uploads ----------------------------------------------------------------------


def download_10k(target: Target, settings: Settings) -> Measurement:
    return wrk_row("download-10k", target, "download", settings,
                   stored_files_of(target, 10 * 1024), connections=32)


def download_1m(target: Target, settings: Settings) -> Measurement:
    return wrk_row("download-1m", target, "download", settings, stored_files_of(target, MIB),
                   connections=16)


CAPPED_WEIGHT = 8  # times the default CPU weight, for the capped download-workers runs


def download_workers(target: Target, settings: Settings) -> Measurement:
    """10 KiB downloads (CPU-bound in the service) through nginx to one or two processes of
    `mmr serve download --workers N`, each process capped at `cpu_cap` of a core when the
    target says so (bench/README.md: "per unit of client load")."""
    cap = target.state.get("cpu_cap")
    if not cap:
        return _download_workers(target, settings)
    pids = [pid for tree in target.service("download") for pid in tree.pids()]
    # The client (this process: wrk starts in its cgroup) and nginx are weighted too, not
    # capped: so that other work on the machine starving them does not hold the capped
    # processes below their caps.
    around = [os.getpid(), *(pid for tree in target.extra for pid in tree.pids())]
    with CpuCap(pids, cap, weight=CAPPED_WEIGHT), CpuCap(around, None, weight=CAPPED_WEIGHT):
        m = _download_workers(target, settings)
    # The cap is the limit only if the processes got it: on a machine busy with other work
    # they get less, and then the ratio says little. CPU of the measured run over its budget.
    if m.cpu_ms_per_request is not None and m.requests_per_s:
        cores = m.cpu_ms_per_request * m.requests_per_s / 1000
        m.cpu_cap_used = cores / (cap * int(target.state.get("workers", 1)))
        m.note = (m.note + "; " if m.note else "") + (
            f"{cap:g} core/process, {m.cpu_cap_used:.0%} of it used")
    return m


def _download_workers(target: Target, settings: Settings) -> Measurement:
    # Always warmed up, --quick too: each worker process meets its first requests cold (token
    # checks, database connections), and twice as many processes pay that twice.
    return wrk_row("download-workers", target, "download", settings,
                   stored_files_of(target, 10 * 1024), connections=32, warmup=True)


def media_home(target: Target) -> Target:
    """Where `target`'s media is stored: the download pools started beside the cluster (accel,
    --workers) serve the cluster's media, uploaded once through the cluster."""
    source = target.state.get("files-from")
    return source if isinstance(source, Target) else target


def stored_files_of(target: Target, size: int) -> list[str]:
    return stored_files(media_home(target), size)


def upload_1m(target: Target, settings: Settings) -> Measurement:
    return wrk_row("upload-1m", target, "upload", settings, [UPLOAD], connections=8,
                   method="POST", body_bytes=MIB)


# --- images and thumbnails ----------------------------------------------------------------------


def photo(width: int = 4000, height: int = 3000) -> bytes:
    """A photo-like 12-megapixel JPEG (about 3 MB): smooth shapes, gradients, fine grain."""
    from PIL import Image, ImageDraw, ImageFilter

    base = Image.effect_noise((width // 40, height // 40), 90).convert("RGB")
    base = base.resize((width, height), Image.Resampling.BICUBIC).filter(
        ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(base)
    for i in range(40):
        x, y = (i * 997) % width, (i * 613) % height
        draw.ellipse((x, y, x + 300 + i * 7, y + 200 + i * 5),
                     fill=(i * 6 % 256, 255 - i * 5 % 256, i * 11 % 256))
    grain = Image.effect_noise((width, height), 20).convert("RGB")
    image = Image.blend(base.filter(ImageFilter.GaussianBlur(2)), grain, 0.2)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


_PHOTO: list[bytes] = []


def variant() -> bytes:
    """The same pixels under different bytes: a unique JPEG comment after the SOI marker."""
    if not _PHOTO:
        _PHOTO.append(photo())
    jpeg = _PHOTO[0]
    comment = uuid.uuid4().hex.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def thumbnail_path(target: Target, media_id: str, size: str) -> str:
    width, height, method = SIZES[size]
    # type=image/jpeg is Synapse's own parameter; mmr makes JPEG of an opaque source anyway.
    return (f"{THUMBNAIL}/{target.server_name}/{media_id}?width={width}&height={height}"
            f"&method={method}&type=image/jpeg")


def thumb_first(target: Target, settings: Settings) -> Measurement:
    """The first thumbnail after a start: the photo is uploaded, the thumbnail pool's process
    restarted and waited for (/readyz), then the one thumbnail is timed. A target without a
    restart (Synapse) is timed as it is, which the note says."""
    media = upload(target, variant(), "image/jpeg")
    if target.restart is not None:
        target.restart(target, "thumbnail")
    path = thumbnail_path(target, media, "crop")
    m = timed_requests("thumb-first", target, "thumbnail", [lambda http: http.get(path)])
    if target.restart is None:
        m.note = (m.note + "; " if m.note else "") + "not restarted"
    return m


def upload_photo(target: Target, settings: Settings) -> Measurement:
    """4000x3000 JPEG uploads one at a time; they are the cold rows' sources afterwards."""
    media: list[str] = []

    def send(http: httpx.Client) -> httpx.Response:
        response = http.post(UPLOAD, content=variant(), headers={"Content-Type": "image/jpeg"})
        if response.status_code == 200:
            media.append(str(response.json()["content_uri"]).rsplit("/", 1)[1])
        return response

    variant()  # make the photo before the clock starts
    m = timed_requests("upload-photo", target, "upload", [send] * settings.cold_count)
    target.state["photos"] = media
    return m


def photos(target: Target, count: int) -> list[str]:
    if "photos" not in target.state:
        target.state["photos"] = [upload(target, variant(), "image/jpeg") for _ in range(count)]
    return list(target.state["photos"])


def thumb_cold(size: str) -> Callable[[Target, Settings], Measurement]:
    def run(target: Target, settings: Settings) -> Measurement:
        paths = [thumbnail_path(target, media, size)
                 for media in photos(target, settings.cold_count)]
        return timed_requests(f"thumb-cold-{size}", target, "thumbnail", getters(paths))
    return run


def thumb_warm(size: str) -> Callable[[Target, Settings], Measurement]:
    def run(target: Target, settings: Settings) -> Measurement:
        path = thumbnail_path(target, photos(target, settings.cold_count)[0], size)
        with client(target) as http:
            http.get(path)  # made and cached before the clock starts
        return wrk_row(f"thumb-warm-{size}", target, "thumbnail", settings, [path],
                       connections=16)
    return run


# --- URL previews -------------------------------------------------------------------------------

FIXTURE_SITE: dict[str, str] = {}  # "url" -> base URL of the fixture page's server


def preview_path(page: str) -> str:
    from urllib.parse import quote

    return f"{PREVIEW}?url={quote(page, safe='')}"


def preview_cold(target: Target, settings: Settings) -> Measurement:
    """Every request a URL never seen: a page fetch, extraction and an og:image fetch+store."""
    page = f"{FIXTURE_SITE['url']}/og.html?cold={uuid.uuid4().hex[:8]}"
    # wrk appends -<thread>-<count> to the path: to the end of the encoded page URL.
    return wrk_row("preview-cold", target, "preview", settings, [preview_path(page)],
                   connections=8, unique=True)


def preview_cached(target: Target, settings: Settings) -> Measurement:
    pages = [f"{FIXTURE_SITE['url']}/og.html?cached={uuid.uuid4().hex[:8]}-{i}" for i in range(16)]
    paths = [preview_path(page) for page in pages]
    with client(target) as http:
        for path in paths:
            response = http.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{target.name}: preview {response.status_code} "
                                   f"{response.text[:300]}")
    return wrk_row("preview-cached", target, "preview", settings, paths, connections=8)


def write_fixture_site(root: Any) -> None:
    from PIL import Image

    paragraph = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 12 + "</p>"
    (root / "og.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>Benchmark page</title>
<meta property="og:title" content="A benchmark article about media repositories">
<meta property="og:description" content="{'A realistic page for previews. ' * 4}">
<meta property="og:type" content="article"><meta property="og:site_name" content="Bench">
<meta property="og:image" content="/image.png">
</head><body>{paragraph * 40}</body></html>""")
    buffer = io.BytesIO()
    Image.effect_noise((200, 120), 64).convert("RGB").save(buffer, "PNG")
    (root / "image.png").write_bytes(buffer.getvalue())


# --- remote media -------------------------------------------------------------------------------

REMOTE: dict[str, Target] = {}  # "remote" -> the Synapse holding the media


def remote_media(target: Target, count: int) -> list[str]:
    """`count` 100 KiB files uploaded to the remote for this target alone (first fetches)."""
    key = "remote-media"
    if key not in target.state:
        remote = REMOTE["remote"]
        block = os.urandom(100 * 1024)
        target.state[key] = [
            f"{DOWNLOAD}/{remote.server_name}/{upload(remote, uuid.uuid4().bytes + block[16:])}"
            for _ in range(count)]
    return list(target.state[key])


def remote_first(target: Target, settings: Settings) -> Measurement:
    paths = remote_media(target, settings.remote_count)
    return timed_requests("remote-first", target, "download", getters(paths))


def remote_cached(target: Target, settings: Settings) -> Measurement:
    paths = remote_media(target, settings.remote_count)
    with client(target) as http:
        for path in paths:
            http.get(path)
    return wrk_row("remote-cached", target, "download", settings, paths, connections=16)


# --- 1 GiB --------------------------------------------------------------------------------------


async def _streamed_body(size: int) -> AsyncIterator[bytes]:
    block = bytearray(os.urandom(MIB))
    sent = 0
    while sent < size:
        block[:16] = uuid.uuid4().bytes  # no two MiB alike
        chunk = bytes(block[: min(MIB, size - sent)])
        sent += len(chunk)
        yield chunk


def _idle_rss(trees: list[ProcessTree]) -> int:
    return int(statistics.median(rss_of(trees) for _ in range(5)))


def big_upload(target: Target, settings: Settings) -> Measurement:
    size = settings.big_mib * MIB
    trees = target.service("upload")
    idle = _idle_rss(trees)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(base_url=target.url, headers=target.headers(),
                                     timeout=3600) as http:
            return await http.post(UPLOAD, content=_streamed_body(size), headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(size)})

    with Meter(target, "upload") as meter:
        started = time.perf_counter()
        response = asyncio.run(send())
        elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{target.name}: big upload {response.status_code} {response.text[:300]}")
    target.state["big"] = str(response.json()["content_uri"]).rsplit("/", 1)[1]
    m = Measurement("upload-1g", target.name, requests=1, requests_per_s=1 / elapsed,
                    mb_per_s=size / elapsed / 1e6, p50_ms=elapsed * 1000, p99_ms=elapsed * 1000,
                    note=f"{settings.big_mib} MiB")
    meter.fill(m, 1)
    m.rss_growth_mib = (meter.sampler.peak - idle) / MIB
    return m


def big_download(target: Target, settings: Settings) -> Measurement:
    home = media_home(target)
    if "big" not in home.state:
        big_upload(home, settings)
    size = settings.big_mib * MIB
    trees = target.service("download")
    idle = _idle_rss(trees)
    path = f"{DOWNLOAD}/{target.server_name}/{home.state['big']}"
    received = 0
    with Meter(target, "download") as meter, client(target, 3600) as http:
        started = time.perf_counter()
        with http.stream("GET", path) as response:
            for chunk in response.iter_raw(MIB):
                received += len(chunk)
        elapsed = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"{target.name}: big download gave {received} of {size} bytes")
    m = Measurement("download-1g", target.name, requests=1, requests_per_s=1 / elapsed,
                    mb_per_s=size / elapsed / 1e6, p50_ms=elapsed * 1000, p99_ms=elapsed * 1000,
                    note=f"{settings.big_mib} MiB")
    meter.fill(m, 1)
    m.rss_growth_mib = (meter.sampler.peak - idle) / MIB
    return m


# --- the table of rows --------------------------------------------------------------------------

MMR = ("mmr-embedded", "mmr-cluster")
# The download rows also run against the cluster with downloads.accelRedirect on, its media in
# S3 (SeaweedFS, as the cluster's) and in a file datastore.
MMR_DOWNLOAD = (*MMR, "mmr-cluster-accel", "mmr-cluster-accel-file")
BYTES_PEERS = ("synapse", "nginx")
ROWS: tuple[Row, ...] = (
    Row("download-10k", "download", (*MMR_DOWNLOAD, *BYTES_PEERS), download_10k,
        "GET of 16 stored 10 KiB files, wrk 32 connections"),
    Row("download-1m", "download", (*MMR_DOWNLOAD, *BYTES_PEERS), download_1m,
        "GET of 16 stored 1 MiB files, wrk 16 connections"),
    Row("download-workers", "download", ("mmr-workers-1", "mmr-workers-2", "mmr-workers-1-capped",
                                         "mmr-workers-2-capped"), download_workers,
        "10 KiB GETs through nginx to `mmr serve download --workers 1`, then --workers 2; "
        "wrk 32 connections; again with each process capped at a fraction of a core"),
    Row("upload-1m", "upload", (*MMR, "synapse"), upload_1m,
        "POST of distinct 1 MiB bodies, wrk 8 connections"),
    Row("thumb-first", "thumbnail", (*MMR, "synapse-dynamic"), thumb_first,
        "the first thumbnail (96x96 crop of a 12 MP JPEG uploaded before) after the thumbnail "
        "process is restarted and ready"),
    Row("upload-photo", "upload", (*MMR, "synapse", "synapse-dynamic"), upload_photo,
        "POST of a 4000x3000 JPEG, one at a time (Synapse makes its default sizes inside it)"),
    Row("thumb-cold-crop", "thumbnail", (*MMR, "synapse", "synapse-dynamic"), thumb_cold("crop"),
        "first 96x96 crop of each uploaded photo, one at a time"),
    Row("thumb-cold-scale", "thumbnail", (*MMR, "synapse", "synapse-dynamic"), thumb_cold("scale"),
        "first 800x600 scale of each uploaded photo, one at a time"),
    Row("thumb-warm-crop", "thumbnail", (*MMR, "synapse", "synapse-dynamic"), thumb_warm("crop"),
        "the same 96x96 crop again, wrk 16 connections"),
    Row("thumb-warm-scale", "thumbnail", (*MMR, "synapse", "synapse-dynamic"), thumb_warm("scale"),
        "the same 800x600 scale again, wrk 16 connections"),
    Row("preview-cold", "preview", (*MMR, "synapse"), preview_cold,
        "preview_url of a URL never seen (fixture page + og:image on loopback), wrk 8"),
    Row("preview-cached", "preview", (*MMR, "synapse"), preview_cached,
        "preview_url of 16 URLs previewed before, wrk 8"),
    Row("remote-first", "download", (*MMR, "synapse"), remote_first,
        "first download of 100 KiB media held by a remote Synapse (federation), one at a time"),
    Row("remote-cached", "download", (*MMR, "synapse"), remote_cached,
        "the same remote media again, wrk 16 connections"),
    Row("upload-1g", "upload", (*MMR, "synapse"), big_upload,
        "one 1 GiB streamed upload (256 MiB with --quick); RSS growth of the upload pool"),
    Row("download-1g", "download", (*MMR_DOWNLOAD, "synapse"), big_download,
        "one 1 GiB download of it, read as it comes; RSS growth of the download pool"),
)
ROW_NAMES = tuple(row.name for row in ROWS)

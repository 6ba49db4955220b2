"""URL preview pipeline: screen the URL, answer from the cache, else fetch once cluster-wide.

No FastAPI here: routes parse HTTP and call `run` with plain values.

When asked to preview a URL:
1. Previews must be enabled.
2. The URL must be http(s) with a host, and not on the URL deny list (403).
3. The cache (`url_previews`) is asked for (url, language, hour bucket of `ts`); a hit, including
   a cached failure, is the answer on every preview process.
4. Otherwise one process in the cluster fetches it for the current hour (singleflight): a known
   oEmbed provider, else the page itself (HTML -> og keys, oEmbed discovery; a direct image ->
   the image), the og:image re-hosted as the requester's media. Every connection is checked
   against the IP policy at connect time (see `fetch`). The outcome is stored, failures too.
5. A cached failure is raised again as the Matrix error it was.

Each process also keeps the answers it gave lately as ready JSON bytes (`PreviewContext.answers`),
keyed like the cache (by the URL as asked): a stored outcome never changes, so a repeat is
answered without a lookup, a decode or an encode. Steps 1 and 2 still run for every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Self

import httpx
import orjson

from services.preview import fetch, html, oembed
from services.preview.images import store_image
from services.preview.safety import check_allowed, parse_preview_url
from shared.config import MmrConfig, UrlPreviewsConfig
from shared.coordination.singleflight import singleflight
from shared.db.repositories.previews import MAX_LANGUAGE_LENGTH, CachedPreview, get_preview, insert_preview
from shared.expiring_lru import ExpiringLru
from shared.matrix.errors import MatrixError, NotFound, Unrecognized
from shared.metrics import record as metrics
from shared.runtime import Runtime

HOUR_MS = 3_600_000
MEMO_SECONDS = 3600.0
"""How long an outcome stays in the coordinator's cache in front of the database: about as long
as its hour bucket is the one asked for."""
ANSWER_SECONDS = MEMO_SECONDS
"""How long a process answers from its own copy: no longer than the coordinator's, so that an
outcome the purge has deleted (`urlPreviews.expireAfterDays`) is gone here too about as soon."""
MAX_ANSWERS = 4096
"""Answers kept per process (each is a preview's JSON, a few hundred bytes to a few KiB)."""


@dataclass(frozen=True)
class PreviewRequest:
    server_name: str
    user_id: str
    url: str
    ts: int | None
    language: str | None


@dataclass(frozen=True)
class _Job:
    """One fetch: what to get, for whom, with which rules."""

    url: httpx.URL
    language: str
    server_name: str
    user_id: str
    settings: fetch.FetchSettings
    limits: html.TextLimits
    use_oembed: bool


def hour_bucket(ts_ms: int) -> int:
    return ts_ms - ts_ms % HOUR_MS


def _now_ms() -> int:
    return int(time.time() * 1000)


def _cache_key(url: str, language: str, bucket_ts: int) -> str:
    digest = hashlib.sha256(json.dumps([url, language]).encode()).hexdigest()
    return f"preview:{digest}:{bucket_ts}"


async def _lookup(rt: Runtime, url: str, language: str, bucket_ts: int) -> CachedPreview | None:
    found = await _stored_outcome(rt, url, language, bucket_ts)
    if found is not None:
        metrics.url_preview(rt, "cached", ok=found.preview is not None)
    return found


async def _stored_outcome(rt: Runtime, url: str, language: str, bucket_ts: int) -> CachedPreview | None:
    """The stored outcome: the coordinator's cache first (Redis, or this process's memory), then
    the database. An outcome never changes once stored, so the copies cannot disagree."""
    key = _cache_key(url, language, bucket_ts)
    cached = await rt.coordinator.cache_get(key)
    if cached is not None:
        return CachedPreview.from_bytes(cached)
    async with rt.sessions() as session:
        stored = await get_preview(session, url, language, bucket_ts)
    if stored is not None:
        await rt.coordinator.cache_set(key, stored.to_bytes(), MEMO_SECONDS)
    return stored


async def _store(rt: Runtime, url: str, language: str, bucket_ts: int, outcome: CachedPreview) -> None:
    async with rt.sessions() as session:
        await insert_preview(session, url, language, bucket_ts, outcome, _now_ms())
        await session.commit()
    await rt.coordinator.cache_set(_cache_key(url, language, bucket_ts), outcome.to_bytes(), MEMO_SECONDS)


async def run(rt: Runtime, req: PreviewRequest) -> bytes:
    """The preview's JSON body, or the Matrix error it is."""
    request_config = rt.request_config
    config = request_config.url_previews
    # Step 1: previews must be enabled.
    if not config.enabled:
        raise Unrecognized("URL previews are disabled on this server")
    context = rt.part(PreviewContext)
    settings = context.settings_for(request_config)
    language = (req.language or config.default_language).strip()[:MAX_LANGUAGE_LENGTH]
    now = _now_ms()
    asked_bucket = hour_bucket(min(req.ts or now, now))  # a future `ts` means now
    answer_key = (req.url, language, asked_bucket)
    answer = context.answers.get(answer_key)
    if answer is not None:
        # Step 2 again, under the settings of this request (a reload may have changed them).
        if answer.screened_by is not settings:
            check_allowed(answer.url, settings.deny_list, settings.allowed_ports)
            answer.screened_by = settings
        metrics.url_preview(rt, "cached", ok=answer.error is None)
        return answer.body_or_raise()
    # Step 2: screen the URL before any lookup or fetch.
    url = parse_preview_url(req.url)
    check_allowed(url, settings.deny_list, settings.allowed_ports)
    current_bucket = hour_bucket(now)
    outcome, bucket = await _outcome(rt, req, url, language, asked_bucket, current_bucket, settings)
    # An hour with nothing stored is answered with the current hour's outcome, but only until
    # that hour ends: then the same request gets a fresh one.
    lasts = ANSWER_SECONDS if bucket == asked_bucket else (bucket + HOUR_MS - now) / 1000
    answer = _Answer.of(outcome, url, settings)
    context.answers.put(answer_key, answer, lasts)
    # Step 5: a stored failure is that failure again.
    return answer.body_or_raise()


async def _outcome(
    rt: Runtime, req: PreviewRequest, url: httpx.URL, language: str, asked_bucket: int,
    current_bucket: int, settings: fetch.FetchSettings,
) -> tuple[CachedPreview, int]:
    """Steps 3 and 4: the stored outcome for the hour asked about, else the current hour's
    (fetched now unless stored already); with the hour bucket it is stored under."""
    config = rt.request_config.url_previews
    key = str(url)
    # (For the current hour the singleflight below does this lookup itself.)
    outcome = None if asked_bucket == current_bucket else await _lookup(rt, key, language, asked_bucket)
    if outcome is not None:
        return outcome, asked_bucket
    # Step 4: fetch once cluster-wide for the current hour, storing the outcome.
    job = _Job(
        url=url, language=language, server_name=req.server_name, user_id=req.user_id,
        settings=settings, use_oembed=config.o_embed,
        limits=html.TextLimits(config.num_title_words, config.max_title_length,
                               config.num_words, config.max_length),
    )

    async def compute() -> CachedPreview:
        result = await _generate_outcome(rt, job)
        await _store(rt, key, language, current_bucket, result)
        metrics.url_preview(rt, "fetched", ok=result.preview is not None)
        return result

    found = await singleflight(
        rt.coordinator,
        _cache_key(key, language, current_bucket),
        compute=compute,
        lookup=lambda: _lookup(rt, key, language, current_bucket),
        wait_seconds=4 * settings.timeout_seconds + 30,
    )
    return found, current_bucket


@dataclass
class _Answer:
    """An outcome as this process answers it: the JSON body, or the error to raise."""

    url: httpx.URL
    body: bytes
    error: MatrixError | None
    # The settings whose deny list and ports last let this URL through.
    screened_by: fetch.FetchSettings

    @classmethod
    def of(cls, outcome: CachedPreview, url: httpx.URL, settings: fetch.FetchSettings) -> _Answer:
        if outcome.preview is not None:
            return cls(url, orjson.dumps(outcome.preview), None, settings)
        error = (outcome.error_status or 502, outcome.error_code or "M_UNKNOWN",
                 outcome.error_message or "")
        return cls(url, b"", MatrixError(*error), settings)

    def body_or_raise(self) -> bytes:
        if self.error is not None:
            # A fresh exception each time: a raised one carries its traceback along.
            raise MatrixError(self.error.status, self.error.errcode, self.error.error)
        return self.body


@dataclass
class PreviewContext:
    """What the preview service holds for its lifetime (`rt.part(PreviewContext)`)."""

    # Built once per `urlPreviews` section: parsing networks and loading CA certificates is not
    # free. Keyed by the section they were built from: a per-domain file has its own, and a
    # SIGHUP reload replaces them (the section is kept alongside, so its id is not reused).
    built: dict[int, tuple[UrlPreviewsConfig, fetch.FetchSettings]]
    # At most `urlPreviews.numWorkers` fetches at once in this process (a restart changes it).
    workers: asyncio.Semaphore
    # (url as asked, language, hour bucket) -> the answer given.
    answers: ExpiringLru[tuple[str, str, int], _Answer]

    @classmethod
    def build(cls, rt: Runtime) -> Self:
        return cls({}, asyncio.Semaphore(rt.config.url_previews.num_workers),
                   ExpiringLru(MAX_ANSWERS))

    def settings_for(self, config: MmrConfig) -> fetch.FetchSettings:
        """The settings of the request's `urlPreviews` (its homeserver's, the running file's)."""
        found = self.built.get(id(config.url_previews))
        if found is None or found[0] is not config.url_previews:
            if len(self.built) > 64:  # reloads leave old sections behind
                self.built.clear()
            found = self.built[id(config.url_previews)] = (config.url_previews,
                                                           fetch.build_settings(config))
        return found[1]

    async def close(self) -> None:
        return None


async def _generate_outcome(rt: Runtime, job: _Job) -> CachedPreview:
    """The preview, or the Matrix error it ended in (both are cached)."""
    try:
        async with rt.part(PreviewContext).workers:
            return CachedPreview(preview=await _generate(rt, job))
    except MatrixError as exc:
        return CachedPreview(error_status=exc.status, error_code=exc.errcode, error_message=exc.error)
    except TimeoutError:
        return CachedPreview(error_status=502, error_code="M_UNKNOWN",
                             error_message="Timed out fetching the URL")


async def _generate(rt: Runtime, job: _Job) -> dict[str, Any]:
    async with fetch.make_client(rt, job.settings, job.language) as client:
        # Step 4a: a known oEmbed provider describes the page best.
        if job.use_oembed:
            endpoint = oembed.provider_request_url(str(job.url), oembed.bundled_endpoints())
            found = await _oembed(client, job, endpoint) if endpoint else None
            if found is not None:
                return await _with_image(rt, client, job, found.fields, found.image_url)
        # Step 4b: the page itself.
        async with fetch.deadline(job.settings), fetch.open_url(
            client, job.url, job.settings, fetch.HTML_ACCEPT
        ) as response:
            content_type = fetch.media_type(response)
            if fetch.is_file_preview_type(content_type, job.settings):
                return await _rehost(rt, job, response, content_type)
            if content_type not in fetch.HTML_TYPES:
                # Refused on the headers alone: the body (a video, an archive) is never read.
                raise NotFound(f"No preview is available for content of type {content_type or 'unknown'}")
            body = await fetch.read_capped(response, job.settings.max_bytes)
            charset, page_url = fetch.header_charset(response), str(response.url)
        # Step 4c: og keys from the HTML (parsing a large page must not stall the event loop).
        page, oembed_url = await asyncio.to_thread(_extract, body, charset, page_url, job)
        # Step 4d: a page's own oEmbed endpoint refines what the HTML said.
        fields, image_url = page.fields, page.image_url
        if oembed_url:
            found = await _oembed(client, job, httpx.URL(oembed_url))
            if found is not None:
                fields = {**fields, **found.fields}
                image_url = found.image_url or image_url
        # Step 4e: the image, re-hosted as the requester's media.
        return await _with_image(rt, client, job, fields, image_url)


def _extract(
    body: bytes, charset: str | None, page_url: str, job: _Job
) -> tuple[html.HtmlPreview, str | None]:
    soup = html.parse_html(html.decode_html(body, charset))
    found = html.extract(soup, page_url, job.limits)
    return found, html.oembed_link(soup, page_url) if job.use_oembed else None


async def _oembed(client: httpx.AsyncClient, job: _Job, endpoint: httpx.URL) -> oembed.OEmbedPreview | None:
    """An oEmbed answer mapped to og keys; any failure just means no oEmbed (the page still counts)."""
    try:
        async with fetch.deadline(job.settings), fetch.open_url(
            client, endpoint, job.settings, "application/json"
        ) as response:
            body = await fetch.read_capped(response, job.settings.max_bytes)
            answered_from = str(response.url)
        return oembed.to_preview(json.loads(body), job.limits, answered_from)
    except (MatrixError, TimeoutError, ValueError):
        return None


async def _with_image(
    rt: Runtime, client: httpx.AsyncClient, job: _Job, fields: dict[str, str], image_url: str | None
) -> dict[str, Any]:
    """`fields` plus the og:image keys, when the image could be fetched and stored.

    A failing image does not fail the preview: it just has no image.
    """
    preview: dict[str, Any] = dict(fields)
    if not image_url:
        return preview
    try:
        url = httpx.URL(image_url).copy_with(fragment=None)
        async with fetch.deadline(job.settings), fetch.open_url(
            client, url, job.settings, "image/*"
        ) as response:
            content_type = fetch.media_type(response)
            if not content_type.startswith("image/"):
                return preview
            preview.update(await _rehost(rt, job, response, content_type))
    except (MatrixError, TimeoutError, httpx.InvalidURL):
        pass
    return preview


async def _rehost(rt: Runtime, job: _Job, response: httpx.Response, content_type: str) -> dict[str, Any]:
    """Store the response body (an image) as local media owned by the requester; its og keys."""
    spooled = await fetch.spool_capped(rt, response, job.settings.max_bytes)
    async with spooled:
        return await store_image(rt, spooled, content_type, job.server_name, job.user_id,
                                 _filename(response.url))


def _filename(url: httpx.URL) -> str | None:
    name = url.path.rsplit("/", 1)[-1]
    return name or None

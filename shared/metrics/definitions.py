"""Every metric mmr exports, in one place (names follow matrix-media-repo's `media_` prefix).

The process-wide default registry is used, so `/metrics` also shows the client library's
process and Python collectors (CPU, memory, open files, GC).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

IDS = ("service", "machine_id")

# Warm answers (thumbnails from memory) take well under a millisecond; uploads can take minutes.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0)
GENERATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "media_http_requests_total", "HTTP requests answered, by route template and status.",
    (*IDS, "method", "route", "status"),
)
HTTP_DURATION = Histogram(
    "media_http_request_duration_seconds",
    "Time from a request's arrival until its answer (body included) was handed to the server.",
    (*IDS, "method", "route", "status"), buckets=HTTP_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "media_http_requests_in_flight", "HTTP requests being answered right now.", IDS,
)

UPLOADS = Counter(
    "media_uploads_total", "Local media stored (uploads and re-hosted preview images).", IDS,
)
UPLOADED_BYTES = Counter(
    "media_uploaded_bytes_total", "Bytes of local media stored (before deduplication).", IDS,
)

DOWNLOADS = Counter(
    "media_downloads_total", "Media bodies served to clients and servers (not HEAD, 304, 307).",
    (*IDS, "origin"),
)
DOWNLOADED_BYTES = Counter(
    "media_downloaded_bytes_total", "Media bytes sent to clients and servers.", (*IDS, "origin"),
)

REMOTE_FETCHES = Counter(
    "media_remote_fetches_total", "Fetches of remote media over federation, by outcome.",
    (*IDS, "outcome"),
)
REMOTE_FETCHED_BYTES = Counter(
    "media_remote_fetched_bytes_total", "Bytes of remote media fetched and stored.", IDS,
)

THUMBNAILS_GENERATED = Counter(
    "media_thumbnails_generated_total", "Thumbnails made by this process, by outcome.",
    (*IDS, "outcome"),
)
THUMBNAIL_GENERATION = Histogram(
    "media_thumbnail_generation_seconds",
    "Time to make and store one thumbnail (source read, worker job, storage, record).",
    IDS, buckets=GENERATION_BUCKETS,
)
THUMBNAILS_SERVED = Counter(
    "media_thumbnails_served_total",
    "Stored thumbnails answered (from storage or its in-memory copy; placeholders not counted).",
    IDS,
)

URL_PREVIEWS = Counter(
    "media_url_previews_total",
    "URL preview outcomes: fetched by this process, or found already stored (cached).",
    (*IDS, "source", "outcome"),
)

RATE_LIMITED = Counter(
    "media_rate_limited_total", "Requests refused with 429 by a rate limit, by bucket.",
    (*IDS, "bucket"),
)

DEPENDENCY_ERRORS = Counter(
    "media_dependency_errors_total",
    "Errors from PostgreSQL, Redis or S3 that reached a request's error handler or a readiness "
    "check, by dependency (database, redis, s3, other) and exception type.",
    (*IDS, "dependency", "kind"),
)

# Lock waits run from an uncontended microsecond up to the longest lock wait (a minute).
LOCK_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0, 60.0)

LOCK_WAIT = Histogram(
    "media_lock_wait_seconds",
    "Time from asking for a cluster lock until it was held (or refused), by lock kind (its name "
    "up to the first ':'; singleflight locks as 'sf:<kind>') and outcome.",
    (*IDS, "lock", "outcome"), buckets=LOCK_WAIT_BUCKETS,
)

TASKS_FINISHED = Counter(
    "media_tasks_finished_total", "Background tasks this process finished, by task name and outcome.",
    (*IDS, "task", "outcome"),
)

# Lease state, task progress and queue depths are gauges read at scrape time from what the
# process holds (shared.metrics.state), not set here.

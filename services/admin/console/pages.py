"""What each console page shows, and what its buttons do: the admin API's own functions
(cluster report, tasks, usage figures, quarantine, pin, purge, transfer), never a copy of them.

Access follows the admin API: the Cluster and Tasks pages and starting tasks are for global
admins; Usage and Media also for local admins, limited to their own homeserver's media.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from services.admin.attributes_api import set_media_purpose
from services.admin.cluster import read_cluster
from services.admin.datastores_api import start_transfer
from services.admin.purge_api import purge_one, purge_params, remote_selector
from services.admin.purging import PURGE_TASK
from services.admin.quarantine_api import quarantine_one
from services.admin.selection import count, parse_mxc
from shared.auth.admin import AdminCaller, require_quarantine_admin
from shared.auth.tokens import cache_get_quietly, cache_set_quietly
from shared.db.repositories.attributes import get_purpose
from shared.db.repositories.console import (
    DAY_MS,
    DatastoreFigures,
    DayFigures,
    MediaDetails,
    UploaderFigures,
    media_details,
    media_of_user,
    recent_tasks,
    remote_usage,
    thumbnail_usage,
    top_uploaders,
    usage_by_day_and_datastore,
    user_totals,
)
from shared.db.repositories.datastore_objects import SizeEstimate, size_estimate
from shared.db.repositories.tasks import TaskRecord
from shared.db.repositories.thumbnails import ThumbnailRecord, list_thumbnails
from shared.db.repositories.usage import server_usage
from shared.matrix.errors import Forbidden, InvalidParam, MatrixError, NotFound
from shared.runtime import Runtime
from shared.tasks.schedule import create_task

FINISHED_TASKS_SHOWN = 50
TOP_USERS = 10
USER_MEDIA_SHOWN = 100
UPLOAD_DAYS = 30
USAGE_CACHE_SECONDS = 60

# -- Cluster ----------------------------------------------------------------------------------


@dataclass
class ClusterView:
    members: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    this_instance: str | None = None
    unavailable: str | None = None


async def cluster_view(rt: Runtime) -> ClusterView:
    try:
        report = await read_cluster(rt)
    except MatrixError as exc:
        return ClusterView(unavailable=exc.error)
    return ClusterView(report["members"], report["problems"],
                       report["this_process"].get("instance"))


# -- Tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    task: TaskRecord

    @property
    def percent(self) -> int:
        if self.task.is_finished and not self.task.error:
            return 100
        total = self.task.total or 0
        return min(100, int(self.task.done * 100 / total)) if total else 0

    @property
    def state(self) -> str:
        if not self.task.is_finished:
            return "running"
        return "failed" if self.task.error else "finished"


async def task_rows(rt: Runtime) -> list[TaskRow]:
    async with rt.sessions() as session:
        return [TaskRow(t) for t in await recent_tasks(session, FINISHED_TASKS_SHOWN)]


def parse_day(text: str) -> int:
    """`YYYY-MM-DD` (a date input's value) as ms since the epoch at 00:00 UTC."""
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidParam(f"not a date (YYYY-MM-DD): {text!r}") from None
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp() * 1000)


async def remote_purge_count(rt: Runtime, before_ts: int) -> int:
    """How many remote media a purge before `before_ts` would forget (shown before it starts)."""
    return await count(rt, remote_selector(rt, before_ts))


async def start_remote_purge(rt: Runtime, caller: AdminCaller, before_ts: int) -> TaskRecord:
    return await create_task(rt, PURGE_TASK, purge_params(remote_selector(rt, before_ts)),
                             created_by=caller.user_id)


def datastore_ids(rt: Runtime) -> list[str]:
    return [store.id for store in rt.datastores.all()]


async def transfer_estimate(rt: Runtime, source_id: str, before_ts: int) -> SizeEstimate:
    if source_id not in datastore_ids(rt):
        raise NotFound("No datastore with that ID is configured")
    async with rt.sessions() as session:
        return await size_estimate(session, source_id, before_ts)


async def start_datastore_transfer(rt: Runtime, caller: AdminCaller, source_id: str, target_id: str,
                                   before_ts: int) -> int:
    async with rt.sessions() as session:
        answer = await start_transfer(rt, session, caller, source_id, target_id, before_ts)
    return int(answer["task_id"])


# -- Usage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerFigures:
    name: str
    media_bytes: int
    media_files: int
    thumbnail_bytes: int
    thumbnail_files: int


@dataclass(frozen=True)
class UsageSnapshot:
    """One homeserver's figures, read in three passes and kept `USAGE_CACHE_SECONDS` in the
    coordinator's cache, so the page and its four charts (five requests) share them."""

    server: str
    read_ts: int
    totals: ServerFigures
    days: list[DayFigures]
    datastores: list[DatastoreFigures]
    top_users: list[UploaderFigures]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> UsageSnapshot:
        data = json.loads(raw)
        return cls(data["server"], data["read_ts"], ServerFigures(**data["totals"]),
                   [DayFigures(**d) for d in data["days"]],
                   [DatastoreFigures(**d) for d in data["datastores"]],
                   [UploaderFigures(**u) for u in data["top_users"]])


@dataclass
class UsageView:
    snapshot: UsageSnapshot
    servers: list[ServerFigures]
    remote: tuple[int, int] | None  # (bytes, files) of cached remote media: global admins only

    @property
    def server(self) -> str:
        return self.snapshot.server


def usage_servers(rt: Runtime, caller: AdminCaller) -> list[str]:
    """The homeservers whose usage the caller may see."""
    if caller.is_global_admin:
        return [hs.name for hs in rt.config.homeservers]
    return [caller.homeserver.name]


def chosen_server(rt: Runtime, caller: AdminCaller, asked: str | None) -> str:
    allowed = usage_servers(rt, caller)
    if asked is None or asked == "":
        return caller.homeserver.name if caller.homeserver.name in allowed else allowed[0]
    if asked not in allowed:
        raise Forbidden("You may only see the usage of your own homeserver")
    return asked


async def _read_snapshot(rt: Runtime, server: str) -> UsageSnapshot:
    async with rt.sessions() as session:
        cells = await usage_by_day_and_datastore(session, server)
        thumbnails = await thumbnail_usage(session, server)
        top = await top_uploaders(session, server, TOP_USERS)
    days: dict[int, list[int]] = {}
    stores: dict[str, list[int]] = {}
    for cell in cells:
        for figures in (days.setdefault(cell.day, [0, 0]), stores.setdefault(cell.datastore_id, [0, 0])):
            figures[0] += cell.size_bytes
            figures[1] += cell.files
    totals = ServerFigures(server, sum(c.size_bytes for c in cells), sum(c.files for c in cells),
                           *thumbnails)
    return UsageSnapshot(server, int(time.time() * 1000), totals,
                         [DayFigures(d, *days[d]) for d in sorted(days)],
                         [DatastoreFigures(k, *stores[k]) for k in sorted(stores)], top)


async def usage_snapshot(rt: Runtime, server: str) -> UsageSnapshot:
    # Keyed by database too: one Redis may serve several deployments (and test runs).
    database = hashlib.sha256(rt.config.database.url.encode()).hexdigest()[:16]
    key = f"console-usage:{database}:{server}"
    cached = await cache_get_quietly(rt.coordinator, key)
    if cached is not None:
        return UsageSnapshot.from_json(cached)
    snapshot = await _read_snapshot(rt, server)
    await cache_set_quietly(rt.coordinator, key, snapshot.to_json(), USAGE_CACHE_SECONDS)
    return snapshot


async def usage_view(rt: Runtime, caller: AdminCaller, server: str) -> UsageView:
    snapshot = await usage_snapshot(rt, server)
    servers = []
    async with rt.sessions() as session:
        for name in usage_servers(rt, caller):
            servers.append(snapshot.totals if name == server
                           else ServerFigures(name, *await server_usage(session, name)))
        remote = (await remote_usage(session, [hs.name for hs in rt.config.homeservers])
                  if caller.is_global_admin else None)
    return UsageView(snapshot, servers, remote)


def last_days(snapshot: UsageSnapshot, days: int = UPLOAD_DAYS) -> list[DayFigures]:
    """The last `days` days, each present (a day without uploads is zero)."""
    today = snapshot.read_ts // DAY_MS
    found = {d.day: d for d in snapshot.days}
    return [found.get(day, DayFigures(day, 0, 0)) for day in range(today - days + 1, today + 1)]


# -- Media ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaItem:
    details: MediaDetails
    purpose: str
    thumbnails: list[ThumbnailRecord]

    @property
    def pinned(self) -> bool:
        return self.purpose == "pinned"


@dataclass
class MediaLookup:
    query: str
    item: MediaItem | None = None
    user_media: list[MediaDetails] | None = None
    user_totals: tuple[int, int] | None = None  # (bytes, files) of the user looked up
    message: str | None = None


def _server_of_user(user_id: str) -> str | None:
    local, sep, server = user_id.partition(":")
    return server if local.startswith("@") and sep and server else None


async def media_item(rt: Runtime, caller: AdminCaller, origin: str, media_id: str) -> MediaItem:
    caller.require_server(origin)
    async with rt.sessions() as session:
        details = await media_details(session, origin, media_id)
        if details is None:
            raise NotFound(f"mxc://{origin}/{media_id} is not known here")
        purpose = await get_purpose(session, origin, media_id)
        thumbnails = await list_thumbnails(session, origin, media_id)
    return MediaItem(details, purpose, thumbnails)


async def look_up(rt: Runtime, caller: AdminCaller, query: str) -> MediaLookup:
    """An `mxc://` URI's item, or a user's newest media."""
    query = query.strip()
    lookup = MediaLookup(query)
    if not query:
        return lookup
    mxc = parse_mxc(query)
    if mxc is not None:
        try:
            lookup.item = await media_item(rt, caller, *mxc)
        except MatrixError as exc:
            lookup.message = exc.error
        return lookup
    server = _server_of_user(query)
    if server is None:
        lookup.message = "Enter an mxc:// URI or a user ID (@user:server)"
    elif not caller.may_act_on(server):
        lookup.message = "You may only look up users of your own homeserver"
    else:
        async with rt.sessions() as session:
            lookup.user_media = await media_of_user(session, query, USER_MEDIA_SHOWN)
            lookup.user_totals = await user_totals(session, query)
    return lookup


ACTIONS = ("quarantine", "unquarantine", "pin", "unpin", "purge")


async def act_on_media(rt: Runtime, caller: AdminCaller, action: str, origin: str,
                       media_id: str) -> None:
    """Do one media button's action with the admin API's own function."""
    if action in ("quarantine", "unquarantine"):
        await require_quarantine_admin(caller, rt)
        await quarantine_one(rt, caller, origin, media_id, action == "quarantine")
    elif action in ("pin", "unpin"):
        async with rt.sessions() as session:
            await set_media_purpose(session, caller, origin, media_id,
                                    "pinned" if action == "pin" else "none")
    elif action == "purge":
        await purge_one(rt, caller, origin, media_id)
    else:
        raise NotFound(f"unknown action {action!r}")

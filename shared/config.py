"""The one typed configuration model, loaded from matrix-media-repo style YAML.

Section and key names follow MMR's `media-repo.yaml` (camelCase), so an operator can reuse their
file. The model is read once at start and passed in; nothing here is a global.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

from shared.coordination.connect import cluster_url, sentinel_url
from shared.net.special_ranges import default_denied_networks

DEFAULT_SHARED_SECRET = "ReplaceMe"
# Marks a key matrix-media-repo defines that mmr accepts but does not act on (yet): listed by
# `unused_keys` and logged once at start, never an error.
UNUSED: JsonDict = {"mmrUnused": True}
# MMR's (logrus) level names -> ours.
_LOG_LEVELS = {"trace": "debug", "warn": "warning", "fatal": "error", "panic": "error"}


class Section(BaseModel):
    """Base for every config section: camelCase keys, unknown keys rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RepoConfig(Section):
    bind_address: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    json_logs: bool = False
    # MMR's "-" (and empty) means no log files, only stderr.
    log_directory: str | None = None
    log_colors: bool = False
    # A line per request (uvicorn's access lines): off by default, since writing one costs more
    # CPU than serving a small cached download; logLevel debug turns them on too.
    access_log: bool = False
    trust_any_forwarded_address: bool = False
    trusted_proxies: list[str] = Field(default_factory=list)
    use_forwarded_host: bool = True
    freeze_unauthenticated_media: bool = True
    accept_query_access_token: bool = False
    temp_path: str | None = None
    # Request heads are bounded where the bytes arrive (414/431 as Matrix JSON); each line is
    # counted with its line ending. deploy/nginx uses the same numbers.
    max_request_line_bytes: int = Field(8192, ge=256)
    max_header_bytes: int = Field(8192, ge=256)
    max_request_head_bytes: int = Field(16384, ge=512)
    # A head must arrive whole within this time of the connection opening (or of the previous
    # answer): a client dripping a header a byte at a time holds a connection for no more.
    # nginx's client_header_timeout in deploy/nginx is the same.
    request_head_timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _mmr_log_level(cls, value: object) -> object:
        return _LOG_LEVELS.get(value, value) if isinstance(value, str) else value

    @field_validator("log_directory")
    @classmethod
    def _no_log_files(cls, value: str | None) -> str | None:
        return None if value in ("", "-") else value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        # Checked at start: a typo here would otherwise surface on every request's IP lookup.
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value


class PoolConfig(Section):
    max_connections: int = Field(25, ge=1)
    max_idle_connections: int = Field(5, ge=0)


class DatabaseConfig(Section):
    postgres: str | None = None
    sqlite: str | None = None
    pool: PoolConfig = Field(default_factory=PoolConfig)
    schema_wait_seconds: float = Field(120.0, ge=0)

    @property
    def url(self) -> str:
        """The SQLAlchemy async URL (psycopg 3 for PostgreSQL, aiosqlite for SQLite)."""
        if self.postgres:
            scheme, sep, rest = self.postgres.partition("://")
            if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
                raise ValueError("database.postgres must be a postgres:// URL")
            return f"postgresql+psycopg://{rest}"
        return f"sqlite+aiosqlite:///{self.sqlite or 'mmr.db'}"


class HomeserverConfig(Section):
    name: str
    cs_api: str = Field(alias="csApi")
    # MMR's circuit breaker on the homeserver's client-server API: that many consecutive
    # failed token checks stop asking it for a minute.
    backoff_at: int = Field(10, ge=1)
    admin_api_kind: Literal["synapse", "dendrite", "matrix"] = "matrix"
    signing_key_path: str | None = None
    uploads: UploadsOverride | None = None

    @field_validator("signing_key_path")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class SharedSecretAuthConfig(Section):
    enabled: bool = False
    token: str = DEFAULT_SHARED_SECRET


class AppserviceNamespace(Section):
    regex: str


class AppserviceConfig(Section):
    id: str
    as_token: str
    sender_user_id: str
    user_namespaces: list[AppserviceNamespace] = Field(default_factory=list)


class AccessTokensConfig(Section):
    max_cache_time_seconds: int = Field(30, ge=0)
    use_local_appservice_config: bool = False
    appservices: list[AppserviceConfig] = Field(default_factory=list)


DatastoreKind = Literal["local_media", "remote_media", "thumbnails", "archives", "all"]


class FileDatastoreOpts(Section):
    path: str


class S3DatastoreOpts(Section):
    endpoint: str
    bucket_name: str
    access_key_id: str = ""
    access_secret: str = ""
    region: str = ""
    ssl: bool = True
    path_style: bool = True
    storage_class: str | None = "STANDARD"
    temp_path: str | None = Field(None, json_schema_extra=UNUSED)
    public_base_url: str | None = None
    redirect_when_cached: bool = Field(False, json_schema_extra=UNUSED)
    prefix_length: int = Field(0, json_schema_extra=UNUSED)
    multipart_uploads: bool = True


class DatastoreConfig(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["file", "s3"]
    for_kinds: list[DatastoreKind] = Field(default_factory=lambda: list[DatastoreKind](["all"]))
    opts: dict[str, Any] = Field(default_factory=dict)

    def file_opts(self) -> FileDatastoreOpts:
        return FileDatastoreOpts.model_validate(self.opts)

    def s3_opts(self) -> S3DatastoreOpts:
        return S3DatastoreOpts.model_validate(self.opts)


class QuotaUserConfig(Section):
    glob: str
    max_bytes: int = Field(0, ge=0)
    max_pending: int = Field(0, ge=0)
    max_files: int = Field(0, ge=0)


class QuotasConfig(Section):
    enabled: bool = False
    users: list[QuotaUserConfig] = Field(default_factory=list)


class UploadsConfig(Section):
    max_bytes: int = Field(104857600, ge=0)
    min_bytes: int = Field(0, ge=0)
    reported_max_bytes: int = Field(0, ge=-1)
    max_pending: int = Field(5, ge=0)
    max_age_seconds: int = Field(86400, ge=1)
    quotas: QuotasConfig = Field(default_factory=QuotasConfig)
    allowed_types: list[str] = Field(default_factory=lambda: ["*/*"])
    denied_types: list[str] = Field(default_factory=list)
    rate_per_second: float = Field(0, ge=0)
    rate_burst: int = Field(10, ge=1)


class UploadsOverride(Section):
    """Per-homeserver overrides of `uploads`: only the keys given replace the global ones."""

    max_bytes: int | None = Field(None, ge=0)
    min_bytes: int | None = Field(None, ge=0)
    reported_max_bytes: int | None = Field(None, ge=-1)
    max_pending: int | None = Field(None, ge=0)
    max_age_seconds: int | None = Field(None, ge=1)
    quotas: QuotasConfig | None = None
    allowed_types: list[str] | None = None
    denied_types: list[str] | None = None


class AccelRedirectConfig(Section):
    """`downloads.accelRedirect`: once a download is authorised, nginx sends the bytes.

    The service answers a full-body GET with the media's headers, an empty body and
    `X-Accel-Redirect` to an internal nginx location (deploy/nginx): `fileLocation` +
    `<datastore id>/<key>` for file datastores (nginx aliases each datastore's directory), and
    `s3Location` + `<scheme>/<host>/<path>?<presigned query>` for S3 datastores (nginx proxies
    to that presigned GET). HEAD, range requests and 304s stay the service's own answers.
    Only behind an nginx with those locations: a client would get an empty body otherwise.
    """

    enabled: bool = False
    file_location: str = "/_mmr_internal/file/"
    s3_location: str = "/_mmr_internal/s3/"
    # How long a presigned S3 URL handed to nginx stays valid (nginx uses it at once).
    s3_url_seconds: int = Field(60, ge=1, le=3600)


class DownloadsConfig(Section):
    max_bytes: int = Field(104857600, ge=0)
    # MMR's pool of remote-download goroutines; fetches here are async tasks, one per request.
    num_workers: int = Field(10, ge=1, json_schema_extra=UNUSED)
    failure_cache_minutes: int = Field(15, ge=0)
    expire_after_days: int = Field(0, ge=0)
    default_range_chunk_size_bytes: int = Field(10485760, ge=1)
    # How often each download process writes the media `last_access_ts` it has batched up.
    access_flush_seconds: float = Field(5, gt=0)
    accel_redirect: AccelRedirectConfig = Field(default_factory=AccelRedirectConfig)


class ThumbnailSize(Section):
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    method: Literal["crop", "scale"] | None = None


def _default_thumbnail_sizes() -> list[ThumbnailSize]:
    return [
        ThumbnailSize(width=32, height=32, method="crop"),
        ThumbnailSize(width=96, height=96, method="crop"),
        ThumbnailSize(width=320, height=240, method="scale"),
        ThumbnailSize(width=640, height=480, method="scale"),
        ThumbnailSize(width=800, height=600, method="scale"),
    ]


class ThumbnailsConfig(Section):
    max_source_bytes: int = Field(10485760, ge=0)
    max_animate_size_bytes: int = Field(10485760, ge=0)
    max_pixels: int = Field(32_000_000, ge=1)
    num_workers: int = Field(2, ge=1)
    sizes: list[ThumbnailSize] = Field(default_factory=_default_thumbnail_sizes)
    dynamic_sizing: bool = False
    types: list[str] = Field(
        default_factory=lambda: [
            "image/jpeg", "image/jpg", "image/png", "image/apng", "image/gif", "image/webp",
            "image/bmp", "image/tiff", "image/heif", "image/heic", "image/avif",
            "video/mp4", "video/webm", "video/quicktime",
            "audio/mpeg", "audio/ogg", "audio/flac", "audio/mp4",
        ]
    )
    allow_animated: bool = True
    default_animated: bool = False
    still_frame: float = Field(0.5, ge=0, le=1)
    expire_after_days: int = Field(0, ge=0)
    pregenerate: bool = False
    worker_timeout_seconds: float = Field(30, gt=0)
    worker_memory_bytes: int = Field(1024 * 1024 * 1024, ge=0)


class UrlPreviewsConfig(Section):
    enabled: bool = True
    num_words: int = Field(50, ge=1)
    max_length: int = Field(200, ge=1)
    num_title_words: int = Field(30, ge=1)
    max_title_length: int = Field(150, ge=1)
    max_page_size_bytes: int = Field(10485760, ge=1)
    file_preview_types: list[str] = Field(default_factory=lambda: ["image/*"])
    preview_unsafe_certificates: bool = False
    # Every IANA special-purpose range (shared/net/special_ranges.py); embedded IPv4 is unwrapped.
    disallowed_networks: list[str] = Field(default_factory=default_denied_networks)
    allowed_networks: list[str] = Field(default_factory=lambda: ["0.0.0.0/0", "::/0"])
    url_deny_list: list[str] = Field(default_factory=list)
    default_language: str = "en-US,en"
    user_agent: str = "matrix-media-repo (mmr; +https://matrix.org) link preview bot"
    o_embed: bool = Field(False, alias="oEmbed")
    num_workers: int = Field(10, ge=1)
    expire_after_days: int = Field(0, ge=0)
    max_redirects: int = Field(5, ge=0)
    # Ports previews may fetch from (also on redirects); empty means any port.
    allowed_ports: list[int] = Field(default_factory=list)


class DownloadBucketConfig(Section):
    capacity_bytes: int = Field(524288000, ge=0)
    drain_bytes_per_minute: int = Field(5242880, ge=1)
    overflow_limit_bytes: int = Field(104857600, ge=0)


class RateLimitBuckets(Section):
    downloads: DownloadBucketConfig = Field(default_factory=DownloadBucketConfig)


class RateLimitConfig(Section):
    enabled: bool = True
    requests_per_second: float = Field(5, gt=0)
    burst: int = Field(10, ge=1)
    buckets: RateLimitBuckets = Field(default_factory=RateLimitBuckets)


class TimeoutsConfig(Section):
    url_preview_timeout_seconds: float = Field(10, gt=0)
    federation_timeout_seconds: float = Field(120, gt=0)
    client_server_timeout_seconds: float = Field(30, gt=0)


class MetricsConfig(Section):
    enabled: bool = False
    bind_address: str = "localhost"
    port: int = Field(9000, ge=1, le=65535)


class FederationConfig(Section):
    backoff_at: int = Field(20, ge=1)
    ignored_hosts: list[str] = Field(default_factory=list)
    denied_networks: list[str] = Field(default_factory=default_denied_networks)
    allowed_networks: list[str] = Field(default_factory=list)
    trusted_key_servers: list[str] = Field(default_factory=list)
    verify_tls: bool = True
    # A PEM bundle to trust for federation TLS (e.g. a private CA) instead of the system's.
    ca_file: str | None = None
    well_known_cache_hours: float = Field(24, gt=0, le=48)


class IdenticonsConfig(Section):
    enabled: bool = True


class PluginConfig(Section):
    exec: str
    config: dict[str, Any] = Field(default_factory=dict)


class SentryConfig(Section):
    enabled: bool = False
    dsn: str = ""
    environment: str = ""
    debug: bool = False


class TasksConfig(Section):
    num_workers: int = Field(5, ge=1)


class PgoConfig(Section):
    enabled: bool = False
    submit_url: str = ""
    submit_key: str = ""


class Msc2246Config(Section):
    """Async uploads as an unstable feature (older MMR): here they are Matrix 1.7's, always on."""

    enabled: bool = True
    async_upload_expiry_secs: int = Field(60, ge=1)


class FeatureSupportConfig(Section):
    """MMR's switches for unstable features; current MMR defines none, older ones these."""

    # Async uploads are Matrix 1.7's here and always on: an old `enabled: false` must not
    # switch a spec feature off.
    msc2246: Msc2246Config = Field(default_factory=Msc2246Config, alias="MSC2246",
                                   json_schema_extra=UNUSED)
    # Blurhashes (MSC2448) and IPFS were dropped from MMR; accepted so old files load.
    msc2448: dict[str, Any] | None = Field(None, alias="MSC2448", json_schema_extra=UNUSED)
    ipfs: dict[str, Any] | None = Field(None, alias="IPFS", json_schema_extra=UNUSED)


class QuarantineConfig(Section):
    replace_thumbnails: bool = True
    replace_downloads: bool = False
    thumbnail_path: str = ""
    allow_local_admins: bool = True


class ArchivingConfig(Section):
    """Exports and imports of a user's or a server's media (MMR's v2 archives)."""

    enabled: bool = True
    self_service: bool = False
    target_bytes_per_part: int = Field(209715200, ge=1)


class RedisShard(Section):
    name: str
    addr: str


class RedisSentinel(Section):
    """A Sentinel-managed Redis: the sentinels are asked for the master, again after a failover."""

    master_name: str = Field(min_length=1)
    addresses: list[str] = Field(min_length=1)  # host:port of each sentinel
    password: str | None = None  # the sentinels' own (requirepass), if any; redis.password is the master's


class RedisConfig(Section):
    enabled: bool = False
    database_number: int = Field(0, ge=0)
    shards: list[RedisShard] = Field(default_factory=list)
    url: str | None = None
    password: str | None = None
    sentinel: RedisSentinel | None = None
    # A Redis Cluster: `shards` (or `url`) name some of its nodes; the client learns the rest.
    cluster: bool = False

    @model_validator(mode="after")
    def _one_redis(self) -> Self:
        if not self.enabled:
            # Redis off: the shards are never used (MMR's sample lists three), so they may stay.
            return self
        # matrix-media-repo hashes keys over a ring of shards itself; mmr talks to one Redis:
        # a server, a Sentinel-managed master, or a Redis Cluster (which shards by slot).
        # Refuse rather than silently use the first shard.
        if len(self.shards) > 1 and not self.cluster:
            raise ValueError(
                f"redis.shards: {len(self.shards)} shards given, but mmr uses one Redis: list one "
                "shard, set redis.url to a single server, redis.sentinel for a replicated one, or "
                "redis.cluster: true if the shards are nodes of one Redis Cluster")
        if self.sentinel is not None and (self.url or self.shards or self.cluster):
            raise ValueError("redis.sentinel names the Redis to use: leave redis.url, redis.shards "
                             "and redis.cluster out")
        if self.cluster and self.database_number != 0:
            raise ValueError("redis.cluster: a Redis Cluster has only database 0; set "
                             "redis.databaseNumber to 0")
        return self

    @property
    def effective_url(self) -> str | None:
        """The URL to connect to, or None when Redis is off (in-process coordination)."""
        if not self.enabled:
            return None
        if self.sentinel is not None:
            return sentinel_url(self.sentinel.addresses, self.sentinel.master_name,
                                self.database_number, self.password, self.sentinel.password)
        if self.cluster:
            nodes = [shard.addr for shard in self.shards]
            password = self.password
            if self.url:
                parts = urlsplit(self.url)
                nodes.append(parts.netloc.rpartition("@")[2])
                password = password or parts.password
            if not nodes:
                raise ValueError("redis.cluster is true but neither redis.url nor redis.shards is set")
            return cluster_url(nodes, password)
        if self.url:
            return self.url
        if not self.shards:
            raise ValueError("redis.enabled is true but neither redis.url nor redis.shards is set")
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.shards[0].addr}/{self.database_number}"


# Per-service MACHINE_ID ranges for `MACHINE_ID=auto`, as deploy/k8s assigns them by hand.
DEFAULT_MACHINE_ID_RANGES = {
    "upload": "16-127", "download": "128-255", "thumbnail": "256-511", "preview": "512-767",
}


class ClusterConfig(Section):
    """Machine-ID leases and membership (see shared/cluster/)."""

    lease_seconds: float = Field(30, ge=1)
    # How often each process renews its lease and membership; 0 means a third of leaseSeconds.
    heartbeat_seconds: float = Field(0, ge=0)
    machine_id_ranges: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MACHINE_ID_RANGES))

    @field_validator("machine_id_ranges")
    @classmethod
    def _valid_ranges(cls, value: dict[str, str]) -> dict[str, str]:
        for service, text in value.items():
            first, sep, last = text.partition("-")
            if not (sep and first.strip().isascii() and first.strip().isdigit()
                    and last.strip().isascii() and last.strip().isdigit()):
                raise ValueError(f"{service}: a range is written FIRST-LAST, e.g. 16-127")
            if not 1 <= int(first) <= int(last) <= 1023:
                raise ValueError(f"{service}: {text} must lie within 1-1023 (0 is machine 0's)")
        return value

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    def machine_id_range(self, service: str) -> range | None:
        text = self.machine_id_ranges.get(service)
        if text is None:
            return None
        first, _, last = text.partition("-")
        return range(int(first), int(last) + 1)


class OrphanSweepConfig(Section):
    """Machine 0's removal of stored objects no row references (shared/media/orphans.py)."""

    enabled: bool = True
    grace_hours: float = Field(6, ge=0)       # objects younger than this are never judged
    interval_hours: float = Field(24, gt=0)   # a round at start, then every interval
    dry_run: bool = False                     # count only; the task's result says what it found


class MmrConfig(Section):
    """The whole configuration file."""

    repo: RepoConfig = Field(default_factory=RepoConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    homeservers: list[HomeserverConfig] = Field(default_factory=list)
    access_tokens: AccessTokensConfig = Field(default_factory=AccessTokensConfig)
    admins: list[str] = Field(default_factory=list)
    shared_secret_auth: SharedSecretAuthConfig = Field(default_factory=SharedSecretAuthConfig)
    datastores: list[DatastoreConfig] = Field(default_factory=list)
    uploads: UploadsConfig = Field(default_factory=UploadsConfig)
    downloads: DownloadsConfig = Field(default_factory=DownloadsConfig)
    thumbnails: ThumbnailsConfig = Field(default_factory=ThumbnailsConfig)
    url_previews: UrlPreviewsConfig = Field(default_factory=UrlPreviewsConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    federation: FederationConfig = Field(default_factory=FederationConfig)
    quarantine: QuarantineConfig = Field(default_factory=QuarantineConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    orphan_sweep: OrphanSweepConfig = Field(default_factory=OrphanSweepConfig)
    archiving: ArchivingConfig = Field(default_factory=ArchivingConfig)
    identicons: IdenticonsConfig = Field(default_factory=IdenticonsConfig)
    feature_support: FeatureSupportConfig = Field(default_factory=FeatureSupportConfig)
    plugins: list[PluginConfig] = Field(default_factory=list, json_schema_extra=UNUSED)
    sentry: SentryConfig = Field(default_factory=SentryConfig, json_schema_extra=UNUSED)
    tasks: TasksConfig = Field(default_factory=TasksConfig, json_schema_extra=UNUSED)
    pgo: PgoConfig = Field(default_factory=PgoConfig, json_schema_extra=UNUSED)
    # Per-domain files by homeserver name (never a key of the main file).
    _domains: dict[str, DomainConfig] = PrivateAttr(default_factory=dict)
    # Homeserver name -> this config with its per-domain file's sections over the main file's.
    _domain_configs: dict[str, MmrConfig] = PrivateAttr(default_factory=dict)

    @property
    def domains(self) -> dict[str, DomainConfig]:
        return self._domains

    @property
    def domain_configs(self) -> dict[str, MmrConfig]:
        return self._domain_configs

    def for_domain(self, server_name: str) -> MmrConfig:
        """The config as homeserver `server_name` sees it: the sections its per-domain file sets
        (`DOMAIN_SECTIONS`) layered over the main file's; this config for any other name."""
        if not self._domain_configs:
            return self
        hs = self.homeserver(server_name)
        return self._domain_configs.get(hs.name, self) if hs is not None else self

    def unused_keys(self) -> list[str]:
        """What the files set that mmr accepts and ignores, per-domain files included."""
        found = unused_keys(self)
        if len(self.redis.shards) > 1 and not self.redis.enabled:
            found.append("redis.shards (redis.enabled is false; when on, more than one is refused "
                         "unless redis.cluster is true)")
        for name, domain in sorted(self._domains.items()):
            found += [f"{key} (per-domain file of {name})" for key in unused_keys(domain)]
        return found

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, value: object) -> object:
        # `featureSupport:` with only comments under it (as in MMR's sample) is YAML null.
        if isinstance(value, dict):
            return {key: section for key, section in value.items() if section is not None}
        return value

    @field_validator("datastores")
    @classmethod
    def _unique_datastore_ids(cls, value: list[DatastoreConfig]) -> list[DatastoreConfig]:
        ids = [d.id for d in value]
        if len(ids) != len(set(ids)):
            raise ValueError("datastore ids must be unique")
        for store in value:
            store.file_opts() if store.type == "file" else store.s3_opts()
        return value

    def homeserver(self, name: str) -> HomeserverConfig | None:
        """The homeserver entry for a server name, or None.

        Matched case-insensitively, as DNS matches host names (`LOCALHOST` is `localhost`); the
        port, when there is one, is digits, so lowering the whole name is the same thing.
        """
        wanted = name.lower()
        for hs in self.homeservers:
            if hs.name.lower() == wanted:
                return hs
        return None

    def uploads_for(self, server_name: str) -> UploadsConfig:
        """The `uploads` section with that homeserver's overrides applied."""
        hs = self.homeserver(server_name)
        if hs is None or hs.uploads is None:
            return self.uploads
        overrides = hs.uploads.model_dump(exclude_none=True)
        return self.uploads.model_copy(update=overrides)


class DomainDownloadsConfig(Section):
    max_bytes: int = Field(104857600, ge=0)
    failure_cache_minutes: int = Field(15, ge=0)
    default_range_chunk_size_bytes: int = Field(10485760, ge=1)


# The keys of one homeserver's own entry, as a per-domain file may set them.
HOMESERVER_KEYS = ("csApi", "backoffAt", "adminApiKind", "signingKeyPath")


# What a per-domain file may set besides its homeserver entry's keys and `uploads` (which become
# that `homeservers` entry): matrix-media-repo's DomainRepoConfig. Those acting here, layered
# over the main file's for requests to that homeserver (`MmrConfig.for_domain`), by MMR key:
DOMAIN_SECTIONS = ("downloads", "thumbnails", "urlPreviews", "identicons", "quarantine",
                   "accessTokens", "archiving")
# Sections only the main file may set.
GLOBAL_ONLY_SECTIONS = ("repo", "homeservers", "admins", "database", "rateLimit", "metrics",
                        "sharedSecretAuth", "federation", "plugins", "sentry", "redis", "tasks",
                        "pgo", "cluster", "orphanSweep")
# Keys global in matrix-media-repo even inside a section a per-domain file may set.
GLOBAL_ONLY_KEYS = {"thumbnails": ("numWorkers", "expireAfterDays"),
                    "urlPreviews": ("numWorkers", "expireAfterDays")}


class DomainConfig(Section):
    """A per-domain file (MMR): a top-level `homeserver:` naming the homeserver, its entry's
    keys, and sections layered over the main file's for that homeserver only.

    Its entry's keys and `uploads` become that `homeservers` entry; the `DOMAIN_SECTIONS` act
    for requests to that homeserver; `datastores`, `timeouts` and `featureSupport` are checked
    and listed as unused (the main file's apply to every homeserver). A global-only section or
    key is refused, saying so.
    """

    homeserver: str
    name: str | None = None
    cs_api: str | None = Field(None, alias="csApi")
    backoff_at: int | None = Field(None, ge=1)
    admin_api_kind: Literal["synapse", "dendrite", "matrix"] | None = None
    signing_key_path: str | None = None
    uploads: UploadsOverride | None = None
    datastores: list[DatastoreConfig] | None = Field(None, json_schema_extra=UNUSED)
    archiving: ArchivingConfig | None = None
    identicons: IdenticonsConfig | None = None
    quarantine: QuarantineConfig | None = None
    timeouts: TimeoutsConfig | None = Field(None, json_schema_extra=UNUSED)
    feature_support: FeatureSupportConfig | None = Field(None, json_schema_extra=UNUSED)
    access_tokens: AccessTokensConfig | None = None
    downloads: DomainDownloadsConfig | None = None
    thumbnails: ThumbnailsConfig | None = None
    url_previews: UrlPreviewsConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_global_only_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        for key in value:
            if key in GLOBAL_ONLY_SECTIONS:
                raise ValueError(f"{key}: global only, not allowed in a per-domain file (set it "
                                 "in the main config)")
        for section, keys in GLOBAL_ONLY_KEYS.items():
            given = value.get(section)
            for key in keys:
                if isinstance(given, Mapping) and key in given:
                    raise ValueError(f"{section}.{key}: global only, not allowed in a per-domain "
                                     "file (set it in the main config)")
        return value


def _is_unused(model: BaseModel, name: str) -> bool:
    extra = type(model).model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("mmrUnused"))


def unused_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """Every key set in the file that mmr accepts but does not act on, as dotted paths."""
    found: list[str] = []
    for name in sorted(model.model_fields_set):
        field = type(model).model_fields[name]
        path = f"{prefix}{field.alias or name}"
        value = getattr(model, name)
        if _is_unused(model, name):
            found.append(path)
            continue
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            where = path if index is None else f"{path}[{index}]"
            if isinstance(item, BaseModel):
                found += unused_keys(item, where + ".")
            if isinstance(item, DatastoreConfig) and item.type == "s3":
                found += unused_keys(item.s3_opts(), where + ".opts.")
    return found


class ConfigError(Exception):
    """The configuration is invalid; the message names each bad key."""


# Settings an operator keeps out of the shared YAML file: secrets, and what differs per process
# of one host (the metrics port). Env var -> (section, key) in the config.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "MMR_DATABASE_POSTGRES": ("database", "postgres"),
    "MMR_SHARED_SECRET": ("sharedSecretAuth", "token"),
    "MMR_REDIS_URL": ("redis", "url"),
    "MMR_REDIS_PASSWORD": ("redis", "password"),
    "MMR_METRICS_PORT": ("metrics", "port"),
}


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def _config_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    return [path]


def read_config_layers(path: Path) -> tuple[dict[str, Any], list[tuple[Path, dict[str, Any]]]]:
    """The main config (a file, or a directory's YAML files merged in sorted order) and the
    per-domain files (top-level `homeserver:`), each kept apart as MMR does."""
    merged: dict[str, Any] = {}
    domains: list[tuple[Path, dict[str, Any]]] = []
    for file in _config_files(path):
        data = _read_yaml(file)
        if isinstance(data.get("homeserver"), str):
            domains.append((file, data))
        else:
            merged = _deep_merge(merged, data)
    return merged, domains


def _parse_domain(file: Path, raw: Mapping[str, Any]) -> DomainConfig:
    try:
        return DomainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{file}: {line}" for line in
                                    format_validation_error(exc).splitlines())) from exc


def _layer_domain(raw: dict[str, Any], domain: DomainConfig, layer: Mapping[str, Any]) -> dict[str, Any]:
    """That homeserver's entry with the file's entry keys and `uploads` over it (made when the
    main config has none, as MMR does)."""
    entries = [dict(hs) for hs in raw.get("homeservers") or [] if isinstance(hs, Mapping)]
    entry = next((hs for hs in entries if hs.get("name") == domain.homeserver), None)
    if entry is None:
        entry = {"name": domain.homeserver}
        entries.append(entry)
    for key in HOMESERVER_KEYS:
        if key in layer:
            entry[key] = layer[key]
    if isinstance(layer.get("uploads"), Mapping):
        entry["uploads"] = _deep_merge(dict(entry.get("uploads") or {}), layer["uploads"])
    return {**raw, "homeservers": entries}


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            raw = _deep_merge(raw, {section: {key: env[var]}})
    for index, store in enumerate(raw.get("datastores") or []):
        prefix = f"MMR_DATASTORE_{str(store.get('id', index)).upper().replace('-', '_')}_"
        for key in ("accessKeyId", "accessSecret"):
            var = prefix + key.upper()
            if env.get(var) and isinstance(store, dict):
                store.setdefault("opts", {})[key] = env[var]
    return raw


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the key path as written in the YAML file."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        else:
            lines.append(f"{where}: {err['msg']}")
    return "\n".join(lines)


def parse_config(raw: Mapping[str, Any]) -> MmrConfig:
    """Validate an already-read mapping; raise ConfigError naming every bad key."""
    try:
        return MmrConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


def load_config(path: Path, env: Mapping[str, str] | None = None) -> MmrConfig:
    """Read, merge, apply environment secrets and per-domain files, and validate the
    configuration at `path`."""
    raw, layers = read_config_layers(path)
    raw = _apply_env_overrides(raw, os.environ if env is None else env)
    domains = {}
    for file, layer in layers:
        domain = _parse_domain(file, layer)
        raw = _layer_domain(raw, domain, layer)
        domains[domain.homeserver] = domain
    config = parse_config(raw)
    config.domains.update(domains)
    for file, layer in layers:
        name = str(layer["homeserver"])
        sections = {key: layer[key] for key in DOMAIN_SECTIONS if isinstance(layer.get(key), Mapping)}
        if sections:
            hs = config.homeserver(name)
            config.domain_configs[hs.name if hs else name] = _domain_config(config, raw, sections, file)
    return config


def section_field(alias: str) -> str:
    """The `MmrConfig` field of a section's MMR key (`urlPreviews` -> `url_previews`)."""
    return next(name for name, field in MmrConfig.model_fields.items()
                if (field.alias or name) == alias)


def _domain_config(config: MmrConfig, raw: Mapping[str, Any], sections: Mapping[str, Any],
                   file: Path) -> MmrConfig:
    """`config` with each of `sections` deep-merged over the main file's."""
    updates: dict[str, Any] = {}
    for alias, values in sections.items():
        name = section_field(alias)
        merged = _deep_merge(dict(raw.get(alias) or {}), values)
        section_type = type(getattr(config, name))
        try:
            updates[name] = section_type.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError("\n".join(f"{file}: {alias}.{line}" for line in
                                        format_validation_error(exc).splitlines())) from exc
    return config.model_copy(update=updates)


def config_path_from_env(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """`--config` wins, then `MMR_CONFIG`, then MMR's own `REPO_CONFIG`."""
    env = os.environ if env is None else env
    value = cli_value or env.get("MMR_CONFIG") or env.get("REPO_CONFIG")
    return Path(value) if value else None


HomeserverConfig.model_rebuild()

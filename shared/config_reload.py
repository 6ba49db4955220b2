"""Reloading the config file on SIGHUP: what may change in a running process changes, the rest
is reported as needing a restart.

Safe keys are the ones every request reads afresh from `Runtime.config`: upload limits and
quotas (also per homeserver), rate limits, the token cache's lifetime, URL preview settings and
the download limits. Every reload also flushes the process's token cache: a token check
cached before it is asked of the homeserver again. Anything else (listeners, database, Redis,
datastores, homeservers, worker pools...) keeps its value until the process restarts, and each
such key is named in the log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.config import (
    DOMAIN_SECTIONS,
    ConfigError,
    MmrConfig,
    load_config,
    parse_config,
    section_field,
)

log = logging.getLogger(__name__)

# Keys, with everything under them (MMR key names), a running process takes over from a reloaded file.
SAFE_PREFIXES = (
    "uploads",
    "rateLimit",
    "accessTokens.maxCacheTimeSeconds",
    "urlPreviews",
    "downloads.maxBytes",
    "downloads.failureCacheMinutes",
    "downloads.defaultRangeChunkSizeBytes",
    "homeservers[].uploads",
)
# Read once when a process starts, so they need a restart even inside a safe section.
RESTART_ONLY = ("urlPreviews.numWorkers",)


@dataclass(frozen=True)
class ReloadResult:
    config: MmrConfig  # the config to run on from now
    applied: list[str]  # keys whose new value is in force
    needs_restart: list[str]  # keys that changed in the file but keep their old value


def _generic(path: str) -> str:
    """`homeservers[2].uploads.maxBytes` -> `homeservers[].uploads.maxBytes`."""
    head, sep, rest = path.partition("[")
    return f"{head}[]{rest.partition(']')[2]}" if sep else path


def is_safe(path: str) -> bool:
    generic = _generic(path)
    if any(generic == key or generic.startswith(key + ".") for key in RESTART_ONLY):
        return False
    return any(generic == key or generic.startswith(key + ".") for key in SAFE_PREFIXES)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Leaf paths whose values differ; `homeservers` entries are compared one by one."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    path = prefix.rstrip(".")
    if path == "homeservers" and isinstance(old, list) and isinstance(new, list) and (
        [hs.get("name") for hs in old] == [hs.get("name") for hs in new]
    ):
        found = []
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            found += changed_keys(before, after, f"homeservers[{index}].")
        return found
    return [] if old == new else [path]


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.replace("[", ".[").split(".")
    node: Any = tree
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    node[parts[-1]] = value


def _get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.replace("[", ".[").split("."):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


def merge_reloaded(current: MmrConfig, reloaded: MmrConfig) -> ReloadResult:
    """`current` with the safe keys of `reloaded` taken over."""
    before = current.model_dump(by_alias=True)
    after = reloaded.model_dump(by_alias=True)
    changed = changed_keys(before, after)
    applied = [key for key in changed if is_safe(key)]
    merged_tree = current.model_dump(by_alias=True, exclude_unset=False)
    for key in applied:
        _set(merged_tree, key, _get(after, key))
    merged = parse_config(merged_tree) if applied else current
    if applied:
        merged.domains.update(current.domains)
        merged.domain_configs.update(_domain_configs(current, reloaded, merged))
    return ReloadResult(merged, applied, [key for key in changed if not is_safe(key)])


# Per-domain sections whose reloaded values (per-domain file and main file) take effect; every
# key read from them per request is a safe one. The other per-domain sections keep their values.
DOMAIN_RELOADED = ("downloads", "urlPreviews")


def _domain_configs(current: MmrConfig, reloaded: MmrConfig,
                    merged: MmrConfig) -> dict[str, MmrConfig]:
    """Each homeserver's per-domain view of `merged`."""
    found = {}
    for name in sorted(set(current.domain_configs) | set(reloaded.domain_configs)):
        before = current.domain_configs.get(name, current)
        after = reloaded.domain_configs.get(name, reloaded)
        updates = {}
        for alias in DOMAIN_SECTIONS:
            field = section_field(alias)
            updates[field] = getattr(after if alias in DOMAIN_RELOADED else before, field)
        found[name] = merged.model_copy(update=updates)
    return found


def reload_file(current: MmrConfig, path: Path) -> ReloadResult:
    """Read `path` again and merge it; ConfigError (naming the keys) when it is invalid."""
    return merge_reloaded(current, load_config(path))


def _reload_and_log(app: FastAPI, path: Path) -> None:
    runtime = app.state.runtime
    try:
        result = reload_file(runtime.config, path)
    except ConfigError as exc:
        log.error("SIGHUP: %s is invalid, keeping the running config:\n%s", path, exc)
        return
    runtime.config = result.config
    # Cached token checks were answered under the old file (its admins, appservices, cache
    # lifetime): none is believed from now on in this process, neither its own copies nor
    # Redis entries written before now.
    runtime.token_cache_flushed_at = time.time()
    runtime.local_tokens.clear()
    if result.applied:
        log.info("SIGHUP: reloaded %s: applied %s", path, ", ".join(result.applied))
    else:
        log.info("SIGHUP: reloaded %s: nothing that can change at run time changed", path)
    if result.needs_restart:
        log.warning("SIGHUP: changed but needs a restart: %s", ", ".join(result.needs_restart))


def reload_on_sighup(app: FastAPI, path: Path) -> None:
    """Wrap `app`'s lifespan so that, while it runs, SIGHUP reloads `path` into its runtime.

    Only in the main thread (where a process's signals arrive); elsewhere nothing is installed.
    """
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        context: AbstractAsyncContextManager[Any] = inner(application)
        async with context as state:
            loop = asyncio.get_running_loop()
            try:
                loop.add_signal_handler(signal.SIGHUP, _reload_and_log, application, path)
                installed = True
            except (RuntimeError, ValueError):  # not the main thread
                installed = False
            try:
                yield state
            finally:
                if installed:
                    loop.remove_signal_handler(signal.SIGHUP)

    app.router.lifespan_context = lifespan

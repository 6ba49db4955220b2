"""The embedded default: every service in one process, SQLite, a file datastore, no Redis."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import APIRouter

from mmr.services import service_module
from shared.config import MmrConfig, parse_config
from shared.services import SERVICES
from shared.web.app import StartHook

TOKEN_FILE = "shared-secret-token"


def admin_token(data_dir: Path) -> str:
    """The shared-secret admin token, generated once and kept in the data folder."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def embedded_config(data_dir: Path, server_name: str, homeserver_url: str | None) -> MmrConfig:
    data_dir.mkdir(parents=True, exist_ok=True)
    return parse_config({
        "repo": {"tempPath": str(data_dir / "tmp")},
        "database": {"sqlite": str(data_dir / "mmr.db")},
        "homeservers": [{"name": server_name, "csApi": homeserver_url or ""}],
        "sharedSecretAuth": {"enabled": True, "token": admin_token(data_dir)},
        "datastores": [
            {"id": "local", "type": "file", "forKinds": ["all"],
             "opts": {"path": str(data_dir / "media")}},
        ],
        "rateLimit": {"enabled": False},
    })


def all_routers() -> list[APIRouter]:
    """Every service's routes, in one app (the embedded process is all services at once)."""
    routers: list[APIRouter] = []
    for name in SERVICES:
        routers.extend(service_module(name).ROUTERS)
    return routers


def all_start_hooks() -> list[StartHook]:
    """Every service's start hooks (background tasks: the embedded process is machine 0)."""
    hooks: list[StartHook] = []
    for name in SERVICES:
        hooks.extend(getattr(service_module(name), "START_HOOKS", []))
    return hooks

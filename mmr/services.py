"""Finding a service's app by its name (the names are `shared.services.SERVICES`)."""

from __future__ import annotations

import importlib
from types import ModuleType

from shared.services import SERVICES


class StartupError(Exception):
    """The process cannot start; the message says why and how to fix it."""


def check_service_name(name: str) -> None:
    if name not in SERVICES:
        raise StartupError(f"unknown service {name!r}: choose one of {', '.join(SERVICES)}")


def service_module(name: str) -> ModuleType:
    """`services.<name>.app`: its `create_app`, `ROUTERS` and (optional) `START_HOOKS`."""
    check_service_name(name)
    return importlib.import_module(f"services.{name}.app")

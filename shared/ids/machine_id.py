"""Resolving and validating MACHINE_ID.

matrix-media-repo silently falls back to 0 on a bad value, which gives two machines the same ID
and lets non-admin processes run background tasks. We refuse to start instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from shared.ids.snowflake import MAX_MACHINE_ID

ENV_VAR = "MACHINE_ID"
BACKGROUND_MACHINE_ID = 0
AUTO = "auto"
"""`MACHINE_ID=auto`: lease the first free ID of the service's range (`cluster.machineIdRanges`)."""


class MachineIdError(Exception):
    """MACHINE_ID is missing or invalid for this service; the message says how to fix it."""


def parse_machine_id(value: str) -> int:
    text = value.strip()
    # str.isdigit() accepts any Unicode digit ("٣", "²"): only ASCII 0-9 is a machine ID.
    if not text or not text.isascii() or not text.isdigit():
        raise MachineIdError(
            f"MACHINE_ID must be an integer from 0 to {MAX_MACHINE_ID}, got {value!r}"
        )
    number = int(text)
    if number > MAX_MACHINE_ID:
        raise MachineIdError(f"MACHINE_ID must be an integer from 0 to {MAX_MACHINE_ID}, got {number}")
    return number


def resolve_machine_id(service: str, env: Mapping[str, str] | None = None) -> int | None:
    """The machine ID this process runs as; None for `MACHINE_ID=auto` (leased at start).

    The admin service and the embedded default are machine 0 when MACHINE_ID is unset (only
    machine 0 runs background tasks). Every other service must be given a unique non-zero ID,
    or `auto`.
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_VAR)
    runs_background = service in ("admin", "embedded")
    if raw is not None and raw.strip().lower() == AUTO:
        if runs_background:
            raise MachineIdError(
                f"the {service} service is always MACHINE_ID 0 (never handed out automatically): "
                "leave MACHINE_ID unset or set it to 0"
            )
        return None
    if raw is None:
        if runs_background:
            return BACKGROUND_MACHINE_ID
        raise MachineIdError(
            f"the {service} service needs MACHINE_ID set to a unique integer 1..{MAX_MACHINE_ID} "
            "or `auto` (machine 0 is the admin service, which runs background tasks)"
        )
    machine_id = parse_machine_id(raw)
    if runs_background and machine_id != BACKGROUND_MACHINE_ID:
        raise MachineIdError(f"the {service} service runs background tasks and must be MACHINE_ID 0")
    if not runs_background and machine_id == BACKGROUND_MACHINE_ID:
        raise MachineIdError(
            f"the {service} service cannot be MACHINE_ID 0: machine 0 is the admin service, "
            f"give it a unique integer 1..{MAX_MACHINE_ID}"
        )
    return machine_id

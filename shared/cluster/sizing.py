"""How many processes a deployment needs: matrix-media-repo's rule of thumb beside a model.

MMR's documentation suggests one instance per 500 homeservers served. The model instead sizes
each pool from a peak load per homeserver and a rate one core sustains, each process using one
core (`mmr serve SERVICE --workers N`), at a target utilisation that leaves headroom for bursts.
Both come from `capacity.json` next to this module: the rates per core are written by the
benchmark (`python -m bench run`, from each pool's server CPU per request), the loads are the
traffic assumption docs/CAPACITY.md explains. Every one of them can be given on the command line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import DEFAULT_MACHINE_ID_RANGES
from shared.services import POOLS

MMR_HOMESERVERS_PER_INSTANCE = 500
CAPACITY_MODEL_PATH = Path(__file__).with_name("capacity.json")


def load_capacity_model(path: Path = CAPACITY_MODEL_PATH) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(path.read_text())
    return model


_MODEL = load_capacity_model()
# Requests per second one homeserver sends at peak (docs/CAPACITY.md: where they come from).
DEFAULT_LOAD_PER_HOMESERVER: dict[str, float] = {
    pool: float(_MODEL["load_per_homeserver"][pool]) for pool in POOLS}
# Requests per second one core sustains, as the benchmark last measured them.
DEFAULT_RATE_PER_CORE: dict[str, float] = {
    pool: float(_MODEL["rate_per_core"][pool]) for pool in POOLS}
TARGET_UTILISATION = float(_MODEL["utilisation"])
MIN_REPLICAS = 2  # one process may restart while another serves


@dataclass(frozen=True)
class PoolPlan:
    service: str
    load: float
    replicas: int
    machine_ids: str
    capacity: int

    @property
    def fits(self) -> bool:
        return self.replicas <= self.capacity


def mmr_rule_of_thumb(homeservers: int) -> int:
    return max(1, math.ceil(homeservers / MMR_HOMESERVERS_PER_INSTANCE))


def plan_pools(
    homeservers: int,
    load_per_homeserver: dict[str, float] | None = None,
    rate_per_core: dict[str, float] | None = None,
    utilisation: float = TARGET_UTILISATION,
) -> list[PoolPlan]:
    loads = {**DEFAULT_LOAD_PER_HOMESERVER, **(load_per_homeserver or {})}
    rates = {**DEFAULT_RATE_PER_CORE, **(rate_per_core or {})}
    plans = []
    for service in POOLS:
        load = homeservers * loads[service]
        replicas = max(MIN_REPLICAS, math.ceil(load / (rates[service] * utilisation)))
        first, _, last = DEFAULT_MACHINE_ID_RANGES[service].partition("-")
        plans.append(PoolPlan(service, load, replicas, DEFAULT_MACHINE_ID_RANGES[service],
                              int(last) - int(first) + 1))
    return plans


def homeservers_per_core(
    load_per_homeserver: dict[str, float] | None = None,
    rate_per_core: dict[str, float] | None = None,
    utilisation: float = TARGET_UTILISATION,
) -> float:
    """Homeservers one core carries at `utilisation` when it serves every pool (the embedded
    default, or one process of each pool sharing a core): the sum of each pool's core seconds
    per second per homeserver, inverted."""
    loads = {**DEFAULT_LOAD_PER_HOMESERVER, **(load_per_homeserver or {})}
    rates = {**DEFAULT_RATE_PER_CORE, **(rate_per_core or {})}
    core_seconds = sum(loads[pool] / rates[pool] for pool in POOLS)
    return utilisation / core_seconds

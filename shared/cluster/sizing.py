"""How many processes a deployment needs: matrix-media-repo's rule of thumb beside a model.

MMR's documentation suggests one instance per 500 homeservers served. The model instead sizes
each pool from a peak load per homeserver and a rate one core sustains, each process using one
core (`mmr serve SERVICE --workers N`), at a target utilisation that leaves headroom for bursts.
The default rates are placeholders to replace with your own figures (the `bench/` scripts
measure them on your hardware); every one of them can be given on the command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.config import DEFAULT_MACHINE_ID_RANGES

MMR_HOMESERVERS_PER_INSTANCE = 500
POOLS = ("upload", "download", "thumbnail", "preview")
# Requests per second one homeserver sends at peak (placeholders: replace with your traffic).
DEFAULT_LOAD_PER_HOMESERVER = {"upload": 0.002, "download": 0.05, "thumbnail": 0.05, "preview": 0.005}
# Requests per second one core sustains (placeholders: replace with bench/ figures).
DEFAULT_RATE_PER_CORE = {"upload": 40.0, "download": 300.0, "thumbnail": 60.0, "preview": 20.0}
TARGET_UTILISATION = 0.6
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

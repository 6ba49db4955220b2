"""`mmr plan --homeservers N`: matrix-media-repo's rule of thumb beside the per-pool model."""

from __future__ import annotations

import pytest

from shared.cluster.sizing import mmr_rule_of_thumb, plan_pools
from tests.infra.processes import run_mmr


@pytest.mark.parametrize(("homeservers", "instances"), [(1, 1), (500, 1), (501, 2), (1736, 4)])
def test_one_instance_per_500_homeservers_rounded_up(homeservers: int, instances: int) -> None:
    assert mmr_rule_of_thumb(homeservers) == instances


def test_the_model_grows_a_pool_with_its_load_and_never_below_two() -> None:
    small = {p.service: p.replicas for p in plan_pools(10)}
    assert small == {"upload": 2, "download": 2, "thumbnail": 2, "preview": 2}
    big = {p.service: p for p in plan_pools(100_000, rate_per_core={"thumbnail": 50})}
    assert big["thumbnail"].replicas == 167  # 5000 req/s / (50 * 0.6)
    assert big["thumbnail"].fits  # 256 IDs in its range


def test_the_command_prints_both_and_the_machine_id_ranges() -> None:
    result = run_mmr(["plan", "--homeservers", "1736", "--rate-per-core", "thumbnail=60"])
    assert result.returncode == 0, result.stderr
    assert "4 instance(s) for 1736 homeservers" in result.stdout
    for pool, ids in (("upload", "16-127"), ("download", "128-255"), ("thumbnail", "256-511"),
                      ("preview", "512-767")):
        line = next(line for line in result.stdout.splitlines() if f" {pool} " in line)
        assert ids in line
    assert run_mmr(["plan", "--homeservers", "5", "--rate-per-core", "bogus=1"]).returncode == 2

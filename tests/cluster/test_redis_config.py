"""`redis.shards`: matrix-media-repo hashes keys over several; mmr refuses more than one."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, parse_config


def test_several_redis_shards_are_refused_not_silently_reduced_to_one() -> None:
    shards = [{"name": "a", "addr": "r1:6379"}, {"name": "b", "addr": "r2:6379"}]
    with pytest.raises(ConfigError, match=r"redis.shards: .*2 shards given, but mmr uses one Redis"):
        parse_config({"redis": {"enabled": True, "shards": shards}})
    one = parse_config({"redis": {"enabled": True, "shards": shards[:1]}})
    assert one.redis.effective_url == "redis://r1:6379/0"

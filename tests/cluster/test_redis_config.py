"""`redis.shards`: matrix-media-repo hashes keys over several; mmr refuses more than one unless
they are nodes of one Redis Cluster; `redis.sentinel` names a Sentinel-managed master."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, parse_config
from shared.coordination.connect import parse_sentinel_url


def test_several_redis_shards_are_refused_not_silently_reduced_to_one() -> None:
    shards = [{"name": "a", "addr": "r1:6379"}, {"name": "b", "addr": "r2:6379"}]
    with pytest.raises(ConfigError, match=r"redis.shards: .*2 shards given, but mmr uses one Redis"):
        parse_config({"redis": {"enabled": True, "shards": shards}})
    one = parse_config({"redis": {"enabled": True, "shards": shards[:1]}})
    assert one.redis.effective_url == "redis://r1:6379/0"


def test_shards_of_a_redis_cluster_are_its_startup_nodes() -> None:
    shards = [{"name": "a", "addr": "r1:6379"}, {"name": "b", "addr": "r2:6379"}]
    config = parse_config({"redis": {"enabled": True, "cluster": True, "shards": shards,
                                     "password": "pw"}})
    assert config.redis.effective_url == "redis+cluster://:pw@r1:6379,r2:6379"
    from_url = parse_config({"redis": {"enabled": True, "cluster": True, "url": "redis://:s@r3:7000/0"}})
    assert from_url.redis.effective_url == "redis+cluster://:s@r3:7000"
    with pytest.raises(ConfigError, match="only database 0"):
        parse_config({"redis": {"enabled": True, "cluster": True, "shards": shards, "databaseNumber": 2}})


def test_a_sentinel_names_the_master_and_excludes_the_other_ways() -> None:
    sentinel = {"masterName": "media", "addresses": ["s1:26379", "s2:26379"], "password": "sp"}
    config = parse_config({"redis": {"enabled": True, "sentinel": sentinel, "password": "mp",
                                     "databaseNumber": 3}})
    url = config.redis.effective_url
    assert url == "redis+sentinel://:mp@s1:26379,s2:26379/media/3?sentinel_password=sp"
    target = parse_sentinel_url(url)
    assert (target.addresses, target.master_name, target.db, target.password,
            target.sentinel_password) == ([("s1", 26379), ("s2", 26379)], "media", 3, "mp", "sp")
    with pytest.raises(ConfigError, match=r"redis\.sentinel names the Redis to use"):
        parse_config({"redis": {"enabled": True, "sentinel": sentinel, "url": "redis://x:6379/0"}})

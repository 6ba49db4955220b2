"""matrix-media-repo's config files load unchanged; what mmr ignores is named, not fatal.

`mmr_upstream/` holds MMR's own sample and test template, copied unchanged (see its README).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shared.config import ConfigError, config_path_from_env, load_config, parse_config
from shared.config_reload import merge_reloaded
from tests.infra.processes import run_mmr

UPSTREAM = Path(__file__).parent / "mmr_upstream"
SAMPLE = UPSTREAM / "config.sample.yaml"


def test_mmr_sample_config_passes_config_check_unchanged() -> None:
    result = run_mmr(["config", "check", str(SAMPLE)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_mmr_sample_config_is_acted_on_with_its_own_values() -> None:
    config = load_config(SAMPLE, env={})
    assert config.uploads.min_bytes == 100
    assert config.uploads.max_age_seconds == 1800
    assert config.downloads.failure_cache_minutes == 5
    assert config.rate_limit.requests_per_second == 1
    assert config.identicons.enabled is True
    assert config.archiving.target_bytes_per_part == 209715200
    assert [(s.width, s.height) for s in config.thumbnails.sizes][4] == (768, 240)
    assert config.homeservers[0].backoff_at == 10
    assert config.repo.log_directory == "logs"


def test_mmr_sample_config_lists_exactly_what_mmr_ignores() -> None:
    unused = load_config(SAMPLE, env={}).unused_keys()
    assert unused == [
        "datastores[1].opts.tempPath", "downloads.numWorkers", "pgo", "plugins", "sentry", "tasks",
        "redis.shards (redis.enabled is false; when on, more than one is refused unless "
        "redis.cluster is true)",
    ]


def test_unused_keys_are_logged_once_at_start_never_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mmr.embedded import all_routers
    from shared.web.app import make_app
    from tests.conftest import embedded_raw_config
    from tests.infra.http_server import ServerThread

    raw = embedded_raw_config(tmp_path, plugins=[{"exec": "/bin/true"}],
                              sentry={"enabled": True, "dsn": "https://x@example.org/1"})
    with caplog.at_level(logging.WARNING, logger="shared.runtime"), ServerThread(
        make_app("embedded", all_routers(), config=parse_config(raw))
    ):
        pass
    lines = [r.getMessage() for r in caplog.records if "not used by mmr" in r.getMessage()]
    assert len(lines) == 1
    assert "plugins" in lines[0] and "sentry" in lines[0]


def test_a_key_neither_project_defines_is_still_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"identicons\.colour: unknown key"):
        parse_config({"identicons": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"featureSupport\.MSC9999: unknown key"):
        parse_config({"featureSupport": {"MSC9999": {"enabled": True}}})
    with pytest.raises(ConfigError, match=r"featureSupport\.MSC2246\.enable: unknown key"):
        parse_config({"featureSupport": {"MSC2246": {"enable": False}}})
    with pytest.raises(ConfigError, match=r"sentri: unknown key"):
        parse_config({"sentri": {}})


def test_older_mmr_feature_switches_load_and_are_listed() -> None:
    config = parse_config({"featureSupport": {
        "MSC2246": {"enabled": False, "asyncUploadExpirySecs": 30},
        "MSC2448": {"enabled": True, "thumbWidth": 64}}})
    assert config.unused_keys() == ["featureSupport.MSC2246", "featureSupport.MSC2448"]


def test_mmr_log_levels_and_no_log_directory() -> None:
    config = parse_config({"repo": {"logLevel": "warn", "logDirectory": "-"}})
    assert config.repo.log_level == "warning"
    assert config.repo.log_directory is None
    assert parse_config({"repo": {"logLevel": "trace"}}).repo.log_level == "debug"


def test_repo_config_names_the_file_as_for_mmr() -> None:
    assert config_path_from_env(None, {"REPO_CONFIG": "/etc/mmr.yaml"}) == Path("/etc/mmr.yaml")
    assert config_path_from_env(None, {"REPO_CONFIG": "/a", "MMR_CONFIG": "/b"}) == Path("/b")
    assert config_path_from_env("/c", {"REPO_CONFIG": "/a"}) == Path("/c")


MAIN = """
homeservers:
  - name: example.org
    csApi: https://matrix.example.org
uploads: {maxBytes: 1000, minBytes: 1}
"""


def test_a_per_domain_file_layers_over_the_main_config_and_its_homeserver(tmp_path: Path) -> None:
    (tmp_path / "00-main.yaml").write_text(MAIN)
    (tmp_path / "10-example.yaml").write_text(
        "homeserver: example.org\nsigningKeyPath: /keys/example.key\nbackoffAt: 3\n"
        "uploads: {maxBytes: 50}\nthumbnails: {maxPixels: 5}\n"
    )
    (tmp_path / "20-other.yaml").write_text(
        "homeserver: other.example\ncsApi: https://hs.other.example\n"
    )
    config = load_config(tmp_path, env={})
    example = config.homeserver("example.org")
    assert example is not None
    assert (example.cs_api, example.signing_key_path, example.backoff_at) == (
        "https://matrix.example.org", "/keys/example.key", 3)
    assert config.uploads_for("example.org").max_bytes == 50
    assert config.uploads_for("example.org").min_bytes == 1
    assert config.uploads.max_bytes == 1000  # the main config is untouched
    other = config.homeserver("other.example")
    assert other is not None and other.cs_api == "https://hs.other.example"
    assert config.uploads_for("other.example").max_bytes == 1000
    # Its thumbnails act for requests to example.org only.
    assert config.for_domain("example.org").thumbnails.max_pixels == 5
    assert config.for_domain("EXAMPLE.org").thumbnails.max_pixels == 5
    assert config.for_domain("other.example").thumbnails.max_pixels == config.thumbnails.max_pixels
    assert config.thumbnails.max_pixels != 5
    assert config.unused_keys() == []


def test_a_bad_key_in_a_per_domain_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "00-main.yaml").write_text(MAIN)
    (tmp_path / "10-example.yaml").write_text("homeserver: example.org\nuplods: {}\n")
    with pytest.raises(ConfigError, match=r"10-example\.yaml: uplods: unknown key"):
        load_config(tmp_path, env={})


def test_a_reload_applies_safe_keys_and_names_the_rest() -> None:
    before = parse_config({"homeservers": [{"name": "a", "csApi": "https://a"}],
                           "repo": {"port": 8000}, "uploads": {"maxBytes": 10}})
    after = parse_config({"homeservers": [{"name": "a", "csApi": "https://b",
                                           "uploads": {"maxBytes": 5}}],
                          "repo": {"port": 9000}, "uploads": {"maxBytes": 20},
                          "rateLimit": {"requestsPerSecond": 2},
                          "accessTokens": {"maxCacheTimeSeconds": 7},
                          "urlPreviews": {"numWords": 3, "numWorkers": 2}})
    result = merge_reloaded(before, after)
    assert sorted(result.applied) == [
        "accessTokens.maxCacheTimeSeconds", "homeservers[0].uploads", "rateLimit.requestsPerSecond",
        "uploads.maxBytes", "urlPreviews.numWords"]
    assert sorted(result.needs_restart) == [
        "homeservers[0].csApi", "repo.port", "urlPreviews.numWorkers"]
    config = result.config
    assert config.uploads.max_bytes == 20 and config.uploads_for("a").max_bytes == 5
    assert config.rate_limit.requests_per_second == 2
    assert config.url_previews.num_words == 3 and config.url_previews.num_workers == 10
    assert config.repo.port == 8000 and config.homeservers[0].cs_api == "https://a"

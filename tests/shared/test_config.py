"""The config file: MMR's keys, clear errors naming the key, directory merge, env secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import ConfigError, config_path_from_env, load_config, parse_config

MMR_STYLE = """
repo:
  bindAddress: 0.0.0.0
  port: 8000
database:
  postgres: postgres://mmr:pw@db/mmr?sslmode=disable
homeservers:
  - name: example.org
    csApi: https://matrix.example.org
    adminApiKind: synapse
admins: ["@alice:example.org"]
sharedSecretAuth: {enabled: true, token: s3cret}
datastores:
  - id: s3
    type: s3
    forKinds: [thumbnails, remote_media, local_media, archives]
    opts: {endpoint: s3.example.org, bucketName: media, accessKeyId: a, accessSecret: b}
uploads: {maxBytes: 1000, minBytes: 1}
downloads: {failureCacheMinutes: 5}
thumbnails: {maxPixels: 1000}
urlPreviews: {enabled: false}
redis: {enabled: true, shards: [{name: one, addr: "redis:6379"}]}
rateLimit: {enabled: true, requestsPerSecond: 1, burst: 10}
timeouts: {urlPreviewTimeoutSeconds: 5}
metrics: {enabled: false}
federation: {backoffAt: 10}
quarantine: {replaceThumbnails: false}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_mmr_style_file_loads_with_its_own_key_names(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "media-repo.yaml", MMR_STYLE), env={})
    assert config.homeservers[0].cs_api == "https://matrix.example.org"
    assert config.datastores[0].s3_opts().bucket_name == "media"
    assert config.uploads.max_bytes == 1000
    assert config.database.url == "postgresql+psycopg://mmr:pw@db/mmr?sslmode=disable"
    assert config.redis.effective_url == "redis://redis:6379/0"


def test_an_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"uploads\.maxByte: unknown key"):
        parse_config({"uploads": {"maxByte": 5}})


def test_a_bad_value_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"homeservers\.0\.csApi: Field required"):
        parse_config({"homeservers": [{"name": "a"}]})
    with pytest.raises(ConfigError, match=r"repo\.port"):
        parse_config({"repo": {"port": "eighty"}})
    with pytest.raises(ConfigError, match=r"datastores\.0\.type"):
        parse_config({"datastores": [{"id": "x", "type": "ftp"}]})


def test_bad_datastore_opts_are_reported() -> None:
    with pytest.raises(ConfigError, match="bucketName"):
        parse_config({"datastores": [{"id": "x", "type": "s3", "opts": {"endpoint": "e"}}]})


def test_a_directory_merges_its_files_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "10-base.yaml", "uploads: {maxBytes: 10, minBytes: 2}\n")
    write(tmp_path / "20-override.yaml", "uploads: {maxBytes: 20}\n")
    config = load_config(tmp_path, env={})
    assert (config.uploads.max_bytes, config.uploads.min_bytes) == (20, 2)


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", MMR_STYLE)
    env = {"MMR_SHARED_SECRET": "from-env", "MMR_DATABASE_POSTGRES": "postgres://x@y/z",
           "MMR_DATASTORE_S3_ACCESSSECRET": "env-secret", "MMR_METRICS_PORT": "9107"}
    config = load_config(path, env=env)
    assert config.metrics.port == 9107
    assert config.shared_secret_auth.token == "from-env"
    assert config.database.postgres == "postgres://x@y/z"
    assert config.datastores[0].s3_opts().access_secret == "env-secret"


def test_per_homeserver_upload_overrides() -> None:
    config = parse_config({"uploads": {"maxBytes": 100, "minBytes": 3}, "homeservers": [
        {"name": "a.example", "csApi": "http://a", "uploads": {"maxBytes": 5}}]})
    assert config.uploads_for("a.example").max_bytes == 5
    assert config.uploads_for("a.example").min_bytes == 3
    assert config.uploads_for("b.example").max_bytes == 100


def test_config_path_comes_from_flag_then_environment() -> None:
    assert config_path_from_env("a.yaml", env={"MMR_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert config_path_from_env(None, env={"MMR_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert config_path_from_env(None, env={}) is None


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmr", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_config_check_command(tmp_path: Path) -> None:
    good = run_check(write(tmp_path / "good.yaml", MMR_STYLE))
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout
    bad = run_check(write(tmp_path / "bad.yaml", "repo: {colour: blue}\nuploads: {maxBytes: -1}\n"))
    assert bad.returncode == 1
    assert "repo.colour: unknown key" in bad.stderr
    assert "uploads.maxBytes" in bad.stderr

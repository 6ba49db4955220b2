"""Per-domain files act as matrix-media-repo's do: their `downloads`, `thumbnails`,
`urlPreviews`, `identicons`, `quarantine`, `accessTokens` and `archiving` sections are layered
over the main file's for requests to that homeserver only; what MMR keeps global is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from mmr.embedded import all_routers
from shared.config import ConfigError, load_config
from shared.config_reload import merge_reloaded
from shared.web.app import make_app
from tests.conftest import SERVER_NAME, TEST_SECRET, embedded_raw_config
from tests.infra.http_server import ServerThread

OTHER = "other.example"


def _write(folder: Path, data_dir: Path) -> Path:
    raw = embedded_raw_config(data_dir)
    raw["homeservers"] = [{"name": SERVER_NAME, "csApi": ""}, {"name": OTHER, "csApi": ""}]
    raw["identicons"] = {"enabled": True}
    folder.mkdir(exist_ok=True)
    (folder / "00-main.yaml").write_text(yaml.safe_dump(raw))
    (folder / "10-other.yaml").write_text(yaml.safe_dump({
        "homeserver": OTHER, "identicons": {"enabled": False},
        "urlPreviews": {"enabled": False}, "downloads": {"maxBytes": 1234},
        "thumbnails": {"maxPixels": 64}, "accessTokens": {"maxCacheTimeSeconds": 0},
    }))
    return folder


@pytest.fixture
def two_domains(tmp_path: Path) -> Iterator[str]:
    config = load_config(_write(tmp_path / "config", tmp_path), env={})
    with ServerThread(make_app("embedded", all_routers(), config=config)) as server:
        yield server.url


def _get(url: str, path: str, host: str) -> httpx.Response:
    return httpx.get(url + path, timeout=30,
                     headers={"Host": host, "Authorization": f"Bearer {TEST_SECRET}"})


def test_sections_of_a_per_domain_file_act_for_its_homeserver_only(two_domains: str) -> None:
    identicon = "/_matrix/media/r0/identicon/seed?width=32&height=32"
    assert _get(two_domains, identicon, SERVER_NAME).status_code == 200
    assert _get(two_domains, identicon, OTHER).status_code == 404
    preview = "/_matrix/client/v1/media/preview_url?url=http%3A%2F%2F127.0.0.1%3A9%2F"
    # Enabled here (refused for the address, not as a disabled feature); disabled there.
    assert _get(two_domains, preview, SERVER_NAME).json()["errcode"] != "M_UNRECOGNIZED"
    disabled = _get(two_domains, preview, OTHER)
    assert (disabled.status_code, disabled.json()["errcode"]) == (404, "M_UNRECOGNIZED")


def test_the_layered_sections_keep_the_main_files_other_keys(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "config", tmp_path), env={})
    other = config.for_domain(OTHER)
    assert other.downloads.max_bytes == 1234
    assert other.downloads.failure_cache_minutes == config.downloads.failure_cache_minutes
    assert other.thumbnails.max_pixels == 64
    assert other.thumbnails.sizes == config.thumbnails.sizes
    assert other.access_tokens.max_cache_time_seconds == 0
    assert config.for_domain(SERVER_NAME) is config
    assert config.downloads.max_bytes != 1234
    # A reload carries the per-domain view over, with the reloaded per-domain downloads.
    folder = tmp_path / "config"
    layer = yaml.safe_load((folder / "10-other.yaml").read_text())
    layer["downloads"]["maxBytes"] = 999
    (folder / "10-other.yaml").write_text(yaml.safe_dump(layer))
    main = yaml.safe_load((folder / "00-main.yaml").read_text())
    main["uploads"] = {"maxBytes": 4321}
    (folder / "00-main.yaml").write_text(yaml.safe_dump(main))
    reloaded = merge_reloaded(config, load_config(folder, env={})).config
    assert reloaded.for_domain(OTHER).downloads.max_bytes == 999
    assert reloaded.for_domain(OTHER).uploads.max_bytes == 4321
    assert reloaded.for_domain(OTHER).thumbnails.max_pixels == 64


@pytest.mark.parametrize(("layer", "message"), [
    ("database: {sqlite: x.db}", r"database: global only, not allowed in a per-domain file"),
    ("rateLimit: {enabled: false}", r"rateLimit: global only"),
    ("thumbnails: {numWorkers: 4}", r"thumbnails\.numWorkers: global only"),
    ("urlPreviews: {expireAfterDays: 4}", r"urlPreviews\.expireAfterDays: global only"),
    ("downloads: {numWorkers: 4}", r"downloads\.numWorkers: unknown key"),
    ("thumbnails: {maxPixels: many}", r"10-other\.yaml: .*maxPixels"),
])
def test_what_mmr_keeps_global_is_refused_in_a_per_domain_file(
    tmp_path: Path, layer: str, message: str
) -> None:
    folder = _write(tmp_path / "config", tmp_path)
    (folder / "10-other.yaml").write_text(f"homeserver: {OTHER}\n{layer}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(folder, env={})

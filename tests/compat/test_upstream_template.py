"""matrix-media-repo's own test template, rendered with this suite's PostgreSQL, Redis and S3 as
MMR's test suite renders it, starts an mmr cluster node that uploads and serves media.

The template's S3 credentials are MMR's test values; the operator's way to keep real ones out of
the file, `MMR_DATASTORE_<ID>_ACCESSKEYID` / `..._ACCESSSECRET`, supplies SeaweedFS's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from signedjson.key import generate_signing_key, write_signing_keys

from shared.config import MmrConfig, load_config
from tests.conftest import SERVER_NAME, TEST_SECRET, serve_all
from tests.infra.seaweedfs import S3Server

TEMPLATE = Path(__file__).parent / "mmr_upstream" / "mmr.config.yaml"
BUCKET = "mybucket"  # the template's


@dataclass(frozen=True)
class Homeserver:
    ServerName: str
    ClientServerApiUrl: str
    SigningKeyPath: str


def render(template: str, values: dict[str, str], homeservers: list[Homeserver]) -> str:
    """The two Go template forms the file uses: `{{.Name}}` and one `{{range .Homeservers}}`."""
    def fill(text: str, source: object) -> str:
        return re.sub(r"\{\{\.(\w+)\}\}", lambda m: str(getattr(source, m.group(1))), text)

    def expand(match: re.Match[str]) -> str:
        return "".join(fill(match.group(1), hs) for hs in homeservers)

    text = re.sub(r"\{\{range \.Homeservers\}\}(.*?)\{\{end\}\}", expand, template, flags=re.S)
    return re.sub(r"\{\{\.(\w+)\}\}", lambda m: values[m.group(1)], text)


def rendered_config(tmp_path: Path, pg_url: str, redis_url: str, s3: S3Server) -> MmrConfig:
    key_path = tmp_path / "localhost.signing.key"
    with key_path.open("w") as handle:
        write_signing_keys(handle, [generate_signing_key("a1")])
    redis = urlsplit(redis_url)
    text = render(TEMPLATE.read_text(), {
        "PgConnectionString": pg_url,
        "RedisAddr": f"{redis.hostname}:{redis.port}",
        "S3Endpoint": urlsplit(s3.endpoint).netloc,
    }, [Homeserver(SERVER_NAME, "", str(key_path))])
    path = tmp_path / "media-repo.yaml"
    path.write_text(text)
    return load_config(path, env={
        "MMR_DATASTORE_S3_INTERNAL_ACCESSKEYID": s3.access_key,
        "MMR_DATASTORE_S3_INTERNAL_ACCESSSECRET": s3.secret_key,
        # The shared-secret token lets the test act without a homeserver's whoami.
        "MMR_SHARED_SECRET": TEST_SECRET,
    })


@pytest.fixture
def template_node(
    tmp_path: Path, pg_url: str, redis_url: str, s3_server: S3Server
) -> Iterator[str]:
    existing = {b["Name"] for b in s3_server.client().list_buckets().get("Buckets", [])}
    if BUCKET not in existing:
        s3_server.client().create_bucket(Bucket=BUCKET)
    config = rendered_config(tmp_path, pg_url, redis_url, s3_server)
    config = config.model_copy(update={"shared_secret_auth": config.shared_secret_auth.model_copy(
        update={"enabled": True})})
    with serve_all(config) as server:
        yield server.url


def test_the_rendered_template_is_a_valid_cluster_config(
    tmp_path: Path, pg_url: str, redis_url: str, s3_server: S3Server
) -> None:
    config = rendered_config(tmp_path, pg_url, redis_url, s3_server)
    assert config.redis.effective_url is not None
    assert config.datastores[0].s3_opts().ssl is False
    assert config.repo.log_directory is None  # "-": no log files
    assert config.unused_keys() == ["datastores[0].opts.tempPath"]


async def test_a_node_started_from_the_template_uploads_and_serves(template_node: str) -> None:
    headers = {"Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"}
    async with httpx.AsyncClient(base_url=template_node, headers=headers, timeout=30) as client:
        body = b"m" * 4096  # the template keeps MMR's 100-byte uploads.minBytes default
        uploaded = await client.post("/_matrix/media/v3/upload", content=body,
                                     headers={"Content-Type": "text/plain"})
        assert uploaded.status_code == 200, uploaded.text
        mxc = uploaded.json()["content_uri"].removeprefix("mxc://")
        downloaded = await client.get(f"/_matrix/client/v1/media/download/{mxc}")
        assert downloaded.status_code == 200
        assert downloaded.content == body

"""A cluster on PostgreSQL, Redis and S3: each service process exports its own metrics, labelled
with its service and machine ID, on its own port."""

from __future__ import annotations

from pathlib import Path

from services.download.app import create_app as create_download_app
from services.upload.app import create_app as create_upload_app
from shared.config import MmrConfig, parse_config
from shared.db.migrate import run_migrations
from tests.conftest import cluster_raw_config, new_bucket
from tests.infra.http_server import ServerThread, free_ports
from tests.infra.seaweedfs import S3Server
from tests.services.upload.helpers import DOWNLOAD, media_path, unique_bytes, upload
from tests.shared.metrics.conftest import MeteredMmr, metrics_section


async def test_upload_and_download_processes_label_their_own_metrics(
    tmp_path: Path, pg_url: str, redis_url: str, s3_server: S3Server
) -> None:
    bucket = new_bucket(s3_server)
    upload_port, download_port = free_ports(2)

    def config_with_metrics_on(port: int) -> MmrConfig:
        """One config file per process here: processes on one host need their own metrics.port."""
        return parse_config(cluster_raw_config(tmp_path, pg_url, redis_url, s3_server, bucket,
                                               metrics=metrics_section(port)))

    uploads_config = config_with_metrics_on(upload_port)
    downloads_config = config_with_metrics_on(download_port)
    run_migrations(uploads_config.database.url)  # machine 0's job; these are machines 1 and 2
    data = unique_bytes(70_000)
    with ServerThread(create_upload_app(uploads_config, machine_id=1)) as uploads, \
            ServerThread(create_download_app(downloads_config, machine_id=2)) as downloads:
        uploader = MeteredMmr(uploads.url, uploads_config, tmp_path, upload_port)
        downloader = MeteredMmr(downloads.url, downloads_config, tmp_path, download_port)
        up_before, down_before = uploader.scrape(), downloader.scrape()
        async with uploader.client() as client:
            mxc = (await upload(client, data)).json()["content_uri"]
        async with downloader.client() as client:
            assert (await client.get(f"{DOWNLOAD}/{media_path(mxc)}")).content == data
        up_after, down_after = uploader.scrape(), downloader.scrape()

    upload_ids = {"service": "upload", "machine_id": "1"}
    download_ids = {"service": "download", "machine_id": "2"}
    assert up_after.delta(up_before, "media_uploaded_bytes_total", **upload_ids) == len(data)
    assert down_after.delta(down_before, "media_downloaded_bytes_total", **download_ids,
                            origin="local") == len(data)
    assert down_after.delta(
        down_before, "media_http_requests_total", **download_ids, method="GET", status="200",
        route="/_matrix/client/v1/media/download/{server_name}/{media_id}") == 1
    assert up_after.delta(up_before, "media_http_requests_total", **upload_ids, method="POST",
                          route="/_matrix/media/v3/upload", status="200") == 1

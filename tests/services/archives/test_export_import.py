"""Export and import over HTTP in matrix-media-repo's v2 format: what MMR writes imports here
with the same IDs, bytes, types, names and uploaders, and what we write reads as MMR's format."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from shared.db.models import MediaRow
from shared.media.orphans import sweep_orphans
from tests.conftest import RunningMmr
from tests.services.archives.helpers import ADMIN, USER, USER_TOKEN, Nodes, upload, wait_task
from tests.shared.archive.mmr_format import MmrItem, build_mmr_archive, read_archive

FILES = [
    (b"\x89PNG\r\n\x1a\n" + b"p" * 50_000, "image/png", "photo.png"),
    (b"plain words " * 3000, "text/plain", "notes.txt"),
    (bytes(range(256)) * 300, "application/octet-stream", "blob.bin"),
    (b"tiny", "text/plain", "t\u00e9l\u00e9.txt"),
]
PART_BYTES = 60_000


async def export_parts(client: httpx.AsyncClient, export_id: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    meta = await client.get(f"{ADMIN}/export/{export_id}/metadata")
    assert meta.status_code == 200, meta.text
    parts = {}
    for part in meta.json()["parts"]:
        answer = await client.get(f"{ADMIN}/export/{export_id}/part/{part['index']}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/gzip"
        assert len(answer.content) == part["size"]
        parts[part["name"]] = answer.content
    return meta.json(), parts


async def export_of(node: RunningMmr, entity_path: str) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    async with node.client() as client:
        started = await client.post(f"{ADMIN}/{entity_path}/export")
        assert started.status_code == 200, started.text
        body = started.json()
        task = await wait_task(client, body["task_id"])
        assert task["error_message"] == "" and task["task_name"] == "export_data", task
        meta, parts = await export_parts(client, body["export_id"])
    return body["export_id"], meta, parts


async def test_a_user_export_holds_every_item_of_theirs_in_mmr_format(nodes: Nodes, runtime_for: Any) -> None:
    config = nodes.config(archiving={"targetBytesPerPart": PART_BYTES})
    node = nodes.serve(config)
    ids = [await upload(node, data, ctype, name) for data, ctype, name in FILES]
    other = await upload(node, b"someone else's", "text/plain", "x.txt", user_id="@bridge_carol:localhost")
    export_id, meta, parts = await export_of(node, f"user/{USER}")
    # Machine 0's orphan sweep (no grace) leaves stored parts alone: they are no media objects.
    swept = await sweep_orphans(await runtime_for(config), grace_seconds=0)
    assert swept["orphans"] == 0
    assert (await export_parts(node.client(), export_id))[1] == parts

    assert meta["entity"] == USER
    names = [p["name"] for p in meta["parts"]]
    assert names[-1] == "export-manifest.tgz"
    assert names[:-1] == [f"export-part-{n}.tgz" for n in range(1, len(names))]
    assert len(names) >= 3, "50 KB + 36 KB + 77 KB at 60 KB a part spread over several parts"
    archive = read_archive(parts)
    assert archive.manifest["version"] == 2 and archive.manifest["entity_id"] == USER
    media = archive.manifest["media"]
    assert set(media) == {f"mxc://localhost/{i}" for i in ids}
    assert f"mxc://localhost/{other}" not in media
    for media_id, (data, ctype, name) in zip(ids, FILES, strict=True):
        entry = media[f"mxc://localhost/{media_id}"]
        assert entry["file_name"].startswith(f"localhost__{media_id}")
        assert archive.members[entry["file_name"]] == data
        assert (entry["name"], entry["content_type"], entry["uploader"]) == (name, ctype, USER)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size_bytes"] == len(data)
    assert "localhost__" in archive.index_html

    async with node.client(token=None) as anyone:
        view = await anyone.get(f"{ADMIN}/export/{export_id}/view")
        assert view.status_code == 200 and "export-part-1.tgz" in view.text
        assert (await anyone.delete(f"{ADMIN}/export/{export_id}")).json() == {}
        assert (await anyone.get(f"{ADMIN}/export/{export_id}/metadata")).status_code == 404
        assert (await anyone.get(f"{ADMIN}/export/{export_id}/part/1")).status_code == 404


async def downloaded(node: RunningMmr, media_id: str) -> httpx.Response:
    async with node.client() as client:
        return await client.get(f"/_matrix/client/v1/media/download/localhost/{media_id}")


async def run_import(node: RunningMmr, paths: list[Path]) -> dict[str, Any]:
    async with node.client() as client:
        first = await client.post(f"{ADMIN}/import", content=paths[0].read_bytes())
        assert first.status_code == 200, first.text
        import_id = first.json()["import_id"]
        for path in paths[1:]:
            answer = await client.post(f"{ADMIN}/import/{import_id}/part", content=path.read_bytes())
            assert answer.status_code in (200, 404), answer.text  # 404: already complete
        close = await client.post(f"{ADMIN}/import/{import_id}/close")
        assert close.status_code in (200, 404), close.text
        task = await wait_task(client, first.json()["task_id"])
    assert task["error_message"] == "", task
    return dict(task["result"])


async def test_an_archive_written_as_mmr_writes_it_imports_with_the_same_media(
    nodes: Nodes, tmp_path: Path, runtime_for: Any
) -> None:
    config = nodes.config()
    node = nodes.serve(config)
    items = [MmrItem("localhost", f"imported{n}AAAAAAAAAAAAAAAAAAAA", data, ctype, name, "@dave:localhost",
                     1_600_000_000_000 + n, ".dat") for n, (data, ctype, name) in enumerate(FILES)]
    stranger = MmrItem("localhost", "strangerAAAAAAAAAAAAAAAAAAA", b"not ours", "text/plain", "s.txt",
                       "@eve:elsewhere.example", 1, ".txt")
    paths = build_mmr_archive(tmp_path / "mmr-export", "localhost", [*items, stranger], part_size=40_000)
    # The manifest comes last, as MMR's tooling sends it; parts before it wait for it.
    result = await run_import(node, paths)
    assert result["imported"] == len(items)
    assert result["skipped"] == ["mxc://localhost/strangerAAAAAAAAAAAAAAAAAAA"]

    for item in items:
        answer = await downloaded(node, item.media_id)
        assert answer.status_code == 200, answer.text
        assert answer.content == item.data
        assert answer.headers["content-type"].startswith(item.content_type)
    rt = await runtime_for(config)
    async with rt.sessions() as session:
        rows = {r.media_id: r for r in (await session.scalars(select(MediaRow))).all()}
    for item in items:
        row = rows[item.media_id]
        assert (row.origin, row.user_id, row.upload_name, row.content_type) == (
            "localhost", "@dave:localhost", item.name, item.content_type)
    assert stranger.media_id not in rows


async def test_our_export_imports_into_another_server_unchanged(nodes: Nodes, tmp_path: Path) -> None:
    source = nodes.serve(nodes.config(archiving={"targetBytesPerPart": PART_BYTES}))
    ids = [await upload(source, data, ctype, name) for data, ctype, name in FILES]
    _, meta, parts = await export_of(source, "server/localhost")
    folder = tmp_path / "ours"
    folder.mkdir()
    paths = []
    for part in meta["parts"]:
        (folder / part["name"]).write_bytes(parts[part["name"]])
        paths.append(folder / part["name"])
    target = nodes.serve(nodes.config())
    result = await run_import(target, paths)
    assert result["imported"] == len(ids)
    for media_id, (data, _, name) in zip(ids, FILES, strict=True):
        answer = await downloaded(target, media_id)
        assert answer.content == data
        assert "filename" in answer.headers["content-disposition"], name


async def test_who_may_export_and_import(nodes: Nodes) -> None:
    node = nodes.serve(nodes.config())
    async with node.client(token=USER_TOKEN) as user, node.client(token=None) as anonymous:
        for path in (f"user/{USER}/export", "server/localhost/export", "import"):
            refused = await user.post(f"{ADMIN}/{path}")
            assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN"), path
            assert (await anonymous.post(f"{ADMIN}/{path}")).status_code == 401, path
        assert (await user.post(f"{ADMIN}/import/someid/part")).status_code == 403
        assert (await user.post(f"{ADMIN}/import/someid/close")).status_code == 403
        assert (await anonymous.get(f"{ADMIN}/export/nosuchexport/metadata")).status_code == 404


async def test_self_service_lets_a_user_export_only_their_own_media(nodes: Nodes) -> None:
    node = nodes.serve(nodes.config(archiving={"selfService": True}))
    await upload(node, b"mine", "text/plain", "mine.txt")
    async with node.client(token=USER_TOKEN) as user:
        own = await user.post(f"{ADMIN}/user/{USER}/export")
        assert own.status_code == 200, own.text
        other = await user.post(f"{ADMIN}/user/@bridge_carol:localhost/export")
        assert (other.status_code, other.json()["errcode"]) == (403, "M_FORBIDDEN")
        server = await user.post(f"{ADMIN}/server/localhost/export")
        assert server.status_code == 403
    async with node.client() as admin:
        task = await wait_task(admin, own.json()["task_id"])
    assert task["result"]["media"] == 1


async def test_archiving_disabled_refuses_every_archive_route(nodes: Nodes) -> None:
    node = nodes.serve(nodes.config(archiving={"enabled": False}))
    async with node.client() as admin:
        for method, path in (("POST", f"user/{USER}/export"), ("POST", "server/localhost/export"),
                             ("POST", "import"), ("GET", "export/abc/metadata"),
                             ("GET", "export/abc/view"), ("GET", "export/abc/part/1"),
                             ("DELETE", "export/abc")):
            answer = await admin.request(method, f"{ADMIN}/{path}")
            assert answer.status_code == 400, (path, answer.text)
            assert "archiving is not enabled" in answer.json()["error"]


async def test_a_part_that_is_no_archive_fails_the_import_naming_the_part(nodes: Nodes) -> None:
    node = nodes.serve(nodes.config())
    async with node.client() as client:
        first = await client.post(f"{ADMIN}/import", content=b"not a tgz at all")
        assert first.status_code == 200, first.text
        task = await wait_task(client, first.json()["task_id"])
    assert task["error_message"].startswith("ArchiveFormatError: part 1 of the import: "), task
    assert "not a gzip'd tar" in task["error_message"]

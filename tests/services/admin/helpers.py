"""Small helpers of the admin tests."""

from __future__ import annotations

import uuid

from tests.infra.synapse import RegisteredUser, SynapseServer


def room_with_media(synapse: SynapseServer, owner: RegisteredUser, mxcs: list[str]) -> str:
    """A new room on `synapse` with one `m.image` event per mxc URI; its room ID."""
    with synapse.client(owner.access_token) as http:
        room = http.post("/_matrix/client/v3/createRoom", json={"preset": "private_chat"})
        assert room.status_code == 200, room.text
        room_id = str(room.json()["room_id"])
        for mxc in mxcs:
            sent = http.put(
                f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{uuid.uuid4().hex}",
                json={"msgtype": "m.image", "body": "picture.png", "url": mxc})
            assert sent.status_code == 200, sent.text
    return room_id


def png(seed: int, size: int = 64) -> bytes:
    """A small PNG, different for each seed."""
    import io

    from PIL import Image

    image = Image.new("RGB", (size, size), (seed % 256, (seed // 256) % 256, 77))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()

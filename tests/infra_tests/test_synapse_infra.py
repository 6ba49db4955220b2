"""The Synapse test peers behave like the homeserver and federation peer other tests rely on."""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

import httpx
import pytest
from signedjson.key import encode_verify_key_base64, get_verify_key, read_signing_keys
from signedjson.sign import verify_signed_json

from tests.infra.synapse import SynapseServer, _run_or_raise
from tests.infra.synapse_fixtures import BRIDGE_APPSERVICE, SynapseFactory


def whoami(server: SynapseServer, token: str, **params: str) -> httpx.Response:
    with server.client(token) as http:
        return http.get("/_matrix/client/v3/account/whoami", params=params)


def test_a_registered_users_token_passes_whoami(synapse_homeserver: SynapseServer) -> None:
    user = synapse_homeserver.register_user("alice")

    response = whoami(synapse_homeserver, user.access_token)

    assert response.status_code == 200
    assert response.json()["user_id"] == "@alice:localhost" == user.user_id
    assert response.json()["device_id"] == user.device_id
    assert response.json().get("is_guest", False) is False


def test_registering_a_taken_localpart_logs_the_same_user_in_again(
    synapse_homeserver: SynapseServer,
) -> None:
    first = synapse_homeserver.register_user("dave")

    again = synapse_homeserver.register_user("dave")

    assert again.user_id == first.user_id
    assert again.access_token != first.access_token
    assert whoami(synapse_homeserver, again.access_token).json()["user_id"] == first.user_id


def test_an_admin_registration_makes_a_server_admin(synapse_homeserver: SynapseServer) -> None:
    admin = synapse_homeserver.register_user("root", admin=True)

    with synapse_homeserver.client(admin.access_token) as http:
        response = http.get(f"/_synapse/admin/v2/users/{admin.user_id}")

    assert response.status_code == 200
    assert response.json()["admin"] is True


def test_an_unknown_token_is_refused(synapse_homeserver: SynapseServer) -> None:
    response = whoami(synapse_homeserver, "not-a-token")

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"


def test_a_guest_token_says_it_is_a_guest(synapse_homeserver: SynapseServer) -> None:
    guest = synapse_homeserver.register_guest()

    response = whoami(synapse_homeserver, guest.access_token)

    assert response.status_code == 200
    assert response.json()["user_id"] == guest.user_id
    assert response.json()["is_guest"] is True


def test_the_appservice_acts_as_a_user_in_its_namespace(
    synapse_homeserver: SynapseServer,
) -> None:
    alice = synapse_homeserver.register_appservice_user(BRIDGE_APPSERVICE, "bridge_alice")

    response = whoami(synapse_homeserver, BRIDGE_APPSERVICE.as_token, user_id=alice)

    assert alice == "@bridge_alice:localhost"
    assert response.status_code == 200
    assert response.json()["user_id"] == alice
    # Registering again is harmless: fixtures of several test folders may do it.
    assert synapse_homeserver.register_appservice_user(BRIDGE_APPSERVICE, "bridge_alice") == alice


def test_the_appservice_cannot_act_outside_its_namespace(
    synapse_homeserver: SynapseServer,
) -> None:
    synapse_homeserver.register_user("carol")

    response = whoami(synapse_homeserver, BRIDGE_APPSERVICE.as_token, user_id="@carol:localhost")

    assert response.status_code == 403


def test_upload_stores_media_and_the_access_log_counts_it(
    synapse_homeserver: SynapseServer,
) -> None:
    user = synapse_homeserver.register_user("uploader")
    before = synapse_homeserver.count_requests("/_matrix/client/v1/media/download/")

    mxc = synapse_homeserver.upload(user.access_token, b"hello synapse", "text/plain", "h.txt")
    with synapse_homeserver.client(user.access_token) as http:
        response = http.get(f"/_matrix/client/v1/media/download/{mxc.removeprefix('mxc://')}")

    assert mxc.startswith("mxc://localhost/")
    assert response.status_code == 200
    assert response.content == b"hello synapse"
    assert synapse_homeserver.wait_for_requests(
        "/_matrix/client/v1/media/download/", at_least=before + 1
    ) == before + 1


@pytest.fixture(scope="module")
def tls_peers(synapse_factory: SynapseFactory) -> tuple[SynapseServer, SynapseServer]:
    return synapse_factory(federation_tls=True), synapse_factory(federation_tls=True)


def test_a_tls_peer_is_named_by_its_federation_address(
    tls_peers: tuple[SynapseServer, SynapseServer],
) -> None:
    peer, _ = tls_peers
    assert peer.federation_url is not None

    assert peer.server_name == urlsplit(peer.federation_url).netloc
    assert peer.server_name.startswith("127.0.0.1:")


def test_a_tls_peer_serves_its_signing_key_over_tls(
    tls_peers: tuple[SynapseServer, SynapseServer],
) -> None:
    peer, _ = tls_peers
    assert peer.federation_url is not None
    (signing_key,) = read_signing_keys(peer.signing_key_path.read_text().splitlines())
    verify_key = get_verify_key(signing_key)
    key_id = f"{signing_key.alg}:{signing_key.version}"

    # Verified against the peer's own certificate: real TLS, not verify=False.
    response = httpx.get(f"{peer.federation_url}/_matrix/key/v2/server",
                         verify=peer.ssl_context(), timeout=30)

    assert response.status_code == 200
    keys = response.json()
    assert keys["server_name"] == peer.server_name
    assert keys["verify_keys"][key_id]["key"] == encode_verify_key_base64(verify_key)
    verify_signed_json(keys, peer.server_name, verify_key)


def test_tls_peers_fetch_media_from_each_other_over_federation(
    tls_peers: tuple[SynapseServer, SynapseServer],
) -> None:
    origin, fetcher = tls_peers
    owner = origin.register_user("owner")
    reader = fetcher.register_user("reader")
    mxc = origin.upload(owner.access_token, b"remote bytes", "application/octet-stream")
    federation_download = "/_matrix/federation/v1/media/download/"

    with fetcher.client(reader.access_token) as http:
        response = http.get(f"/_matrix/client/v1/media/download/{mxc.removeprefix('mxc://')}")

    assert response.status_code == 200, response.text
    assert response.content == b"remote bytes"
    assert origin.wait_for_requests(federation_download, at_least=1) == 1
    assert fetcher.count_requests(federation_download) == 0


def test_options_apply_and_stop_ends_the_server(synapse_factory: SynapseFactory) -> None:
    server = synapse_factory(server_name="stop.test", extra_config={"max_upload_size": "1K"})
    user = server.register_user("bob")
    port = int(urlsplit(server.client_url).port or 0)

    with server.client(user.access_token) as http:
        too_large = http.post("/_matrix/media/v3/upload", content=b"x" * 2048,
                              headers={"Content-Type": "application/octet-stream"})
    server.stop()

    assert user.user_id == "@bob:stop.test"
    assert too_large.status_code == 413
    assert server.process is not None and server.process.returncode is not None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    server.stop()  # idempotent: the factory's teardown calls it again


def test_a_failed_install_step_raises_with_its_output_tail() -> None:
    failing = [sys.executable, "-c", "print('no matching distribution'); raise SystemExit(1)"]

    with pytest.raises(RuntimeError, match="no matching distribution"):
        _run_or_raise(failing, "pip install matrix-synapse")

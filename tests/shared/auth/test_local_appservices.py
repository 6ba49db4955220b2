"""Appservice tokens from local config act as their users without asking the homeserver."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from shared.auth.appservices import local_appservice_user
from shared.config import AccessTokensConfig, parse_config
from shared.db.models import MediaRow
from shared.matrix.errors import Forbidden
from tests.conftest import RunningMmr, embedded_raw_config, serve_all

APPSERVICE = {"id": "bridge", "asToken": "as-secret", "senderUserId": "@bridgebot:localhost",
              "userNamespaces": [{"regex": "@bridge_.*:localhost"}]}


def tokens_config(enabled: bool = True) -> AccessTokensConfig:
    return parse_config({"accessTokens": {"useLocalAppserviceConfig": enabled,
                                          "appservices": [APPSERVICE]}}).access_tokens


def test_the_token_acts_as_a_user_in_its_namespace() -> None:
    assert local_appservice_user(tokens_config(), "as-secret", "@bridge_alice:localhost") == \
        "@bridge_alice:localhost"


def test_without_user_id_the_token_is_its_sender() -> None:
    assert local_appservice_user(tokens_config(), "as-secret", None) == "@bridgebot:localhost"


def test_a_user_outside_the_namespace_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        local_appservice_user(tokens_config(), "as-secret", "@alice:localhost")
    with pytest.raises(Forbidden):
        local_appservice_user(tokens_config(), "as-secret", "@bridge_alice:localhost.evil")


def test_other_tokens_and_the_switch_off_fall_through_to_the_homeserver() -> None:
    assert local_appservice_user(tokens_config(), "someone-else", None) is None
    assert local_appservice_user(tokens_config(enabled=False), "as-secret", None) is None


async def test_an_upload_with_a_local_appservice_token_is_owned_by_its_user(
    tmp_path: Path, runtime_for: object
) -> None:
    # No csApi: any whoami call would fail, so success proves no homeserver was asked.
    config = parse_config(embedded_raw_config(tmp_path, accessTokens={
        "useLocalAppserviceConfig": True, "appservices": [APPSERVICE]}))
    with serve_all(config) as server:
        node = RunningMmr(server.url, config, tmp_path)
        async with node.client(token="as-secret") as client:
            ok = await client.post("/_matrix/media/v3/upload", content=b"bridged bytes",
                                   params={"user_id": "@bridge_alice:localhost"})
            refused = await client.post("/_matrix/media/v3/upload", content=b"bridged bytes",
                                        params={"user_id": "@alice:localhost"})
    assert ok.status_code == 200, ok.text
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    runtime = await runtime_for(config)  # type: ignore[operator]
    media_id = ok.json()["content_uri"].rsplit("/", 1)[1]
    async with runtime.sessions() as session:
        owner = (await session.execute(select(MediaRow.user_id).where(
            MediaRow.media_id == media_id))).scalar()
    assert owner == "@bridge_alice:localhost"

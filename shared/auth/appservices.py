"""Appservice tokens resolved from local config (`accessTokens.useLocalAppserviceConfig`).

With it on, a bridge's `as_token` is recognised without asking the homeserver: the request acts
as `?user_id=` when that user is in one of the appservice's namespaces, else as its sender.
"""

from __future__ import annotations

import hmac
import re

from shared.config import AccessTokensConfig, AppserviceConfig
from shared.matrix.errors import Forbidden


def _find_appservice(config: AccessTokensConfig, token: str) -> AppserviceConfig | None:
    for appservice in config.appservices:
        if hmac.compare_digest(appservice.as_token.encode(), token.encode()):
            return appservice
    return None


def _in_namespace(appservice: AppserviceConfig, user_id: str) -> bool:
    if user_id == appservice.sender_user_id:
        return True
    return any(re.fullmatch(ns.regex, user_id) for ns in appservice.user_namespaces)


def local_appservice_user(config: AccessTokensConfig, token: str, as_user_id: str | None) -> str | None:
    """The user a configured appservice token acts as; None when the token is no such token.

    Raises Forbidden when the appservice asks to act as a user outside its namespaces, as the
    homeserver's whoami would.
    """
    if not config.use_local_appservice_config:
        return None
    appservice = _find_appservice(config, token)
    if appservice is None:
        return None
    if as_user_id is None:
        return appservice.sender_user_id
    if not _in_namespace(appservice, as_user_id):
        raise Forbidden("This access token may not act as that user")
    return as_user_id

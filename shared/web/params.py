"""Query parameters read by hand, for the lean routes that skip FastAPI's dependency solving
(`services.download.routes`): the same values and the same Matrix errors as a declared
`int`/`bool` parameter would give."""

from __future__ import annotations

from collections.abc import Mapping

from shared.matrix.errors import InvalidParam

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidParam(f"Invalid parameter {name}: Input should be a valid integer") from None


def bool_param(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidParam(f"Invalid parameter {name}: Input should be a valid boolean")

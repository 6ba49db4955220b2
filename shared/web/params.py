"""Query parameters read by hand, for the lean routes that skip FastAPI's dependency solving
(downloads, thumbnails) and the admin API's paging: the same values and the same Matrix errors
as a declared `int`/`bool` parameter would give, and bounded integers that a database column or
an image size can hold."""

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


def bounded_int_param(
    query: Mapping[str, str], name: str, minimum: int, maximum: int
) -> int | None:
    """An ASCII decimal from `minimum` to `maximum` (`'²'.isdigit()` is true too; the length is
    checked first because int() of thousands of digits is slow, then refused by Python)."""
    raw = query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(maximum))
            and minimum <= int(raw) <= maximum):
        raise InvalidParam(f"Invalid parameter {name}: must be an integer from {minimum} to "
                           f"{maximum}")
    return int(raw)


def optional_bool_param(query: Mapping[str, str], name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidParam(f"Invalid parameter {name}: Input should be a valid boolean")


def bool_param(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = optional_bool_param(query, name)
    return default if value is None else value

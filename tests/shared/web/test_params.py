"""Query parameters the lean routes and the admin API read by hand: FastAPI's spellings of
booleans, and integers bounded by what a column or an image size can hold."""

from __future__ import annotations

import pytest

from shared.matrix.errors import InvalidParam
from shared.web.params import bool_param, bounded_int_param, int_param, optional_bool_param


@pytest.mark.parametrize("raw", ["true", "True", "1", "yes", "on", " t "])
def test_true_has_fastapis_spellings(raw: str) -> None:
    assert optional_bool_param({"x": raw}, "x") is True
    assert bool_param({"x": raw}, "x", False) is True


@pytest.mark.parametrize("raw", ["false", "0", "no", "off", "F"])
def test_false_has_fastapis_spellings(raw: str) -> None:
    assert optional_bool_param({"x": raw}, "x") is False


def test_an_absent_boolean_is_none_or_the_default() -> None:
    assert optional_bool_param({}, "x") is None
    assert bool_param({}, "x", True) is True


@pytest.mark.parametrize("raw", ["", "maybe", "2", "truee"])
def test_other_booleans_are_refused(raw: str) -> None:
    with pytest.raises(InvalidParam, match="x"):
        optional_bool_param({"x": raw}, "x")


def test_bounded_integers_hold_their_range() -> None:
    assert bounded_int_param({"w": "96"}, "w", 1, 2**31 - 1) == 96
    assert bounded_int_param({}, "w", 1, 10) is None


@pytest.mark.parametrize("raw", ["0", "11", "-1", "+5", " 5", "²", "٣", "1e3", "9" * 5000])
def test_bounded_integers_refuse_what_is_out_of_range_or_not_ascii_digits(raw: str) -> None:
    with pytest.raises(InvalidParam, match="must be an integer from 1 to 10"):
        bounded_int_param({"w": raw}, "w", 1, 10)


def test_plain_integers_read_as_a_declared_int_would() -> None:
    assert int_param({"t": " -5 "}, "t") == -5
    with pytest.raises(InvalidParam, match="valid integer"):
        int_param({"t": "x"}, "t")

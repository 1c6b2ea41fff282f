"""Values PostgreSQL cannot store are field errors at the edge, not database errors later."""

from __future__ import annotations

import attrs
import pytest

from cinema.convert import structure
from cinema.errors import FieldError, ValidationFailed


@attrs.frozen
class Thing:
    name: str
    count: int = 0


def field_errors(body):
    with pytest.raises(ValidationFailed) as caught:
        structure(body, Thing)
    return caught.value.errors


def test_text_with_nul_is_a_field_error():
    assert field_errors({"name": "a\x00b"}) == (FieldError("name", "must not contain the NUL character (U+0000)"),)


@pytest.mark.parametrize("count", [2**63, -(2**63) - 1])
def test_integers_past_64_bits_are_field_errors(count):
    assert field_errors({"name": "x", "count": count}) == (FieldError("count", "must be a 64-bit integer"),)


def test_64_bit_bounds_and_ordinary_text_are_accepted():
    assert structure({"name": "é ✓", "count": 2**63 - 1}, Thing) == Thing("é ✓", 2**63 - 1)
    assert structure({"name": "x", "count": -(2**63)}, Thing).count == -(2**63)


def test_wrong_types_keep_their_messages():
    assert field_errors({"name": 1, "count": True}) == (
        FieldError("name", "must be a string"),
        FieldError("count", "must be an integer"),
    )

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


def test_a_nested_item_that_is_not_an_object_is_a_field_error_not_a_crash():
    from cinema.models import MovieCreate

    with pytest.raises(ValidationFailed) as caught:
        structure({"title": "Heat", "credits": [[None, None], "actor"]}, MovieCreate)
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("credits[0]", "must be an object"),
        ("credits[1]", "must be an object"),
    ]


@pytest.mark.parametrize("value", [{}, "12", 3])
def test_a_list_field_takes_only_an_array(value):
    from cinema.models import MovieCreate

    with pytest.raises(ValidationFailed) as caught:
        structure({"title": "Heat", "genre_ids": value}, MovieCreate)
    assert [(e.field, e.message) for e in caught.value.errors] == [("genre_ids", "must be an array")]


def test_an_integer_written_as_a_float_is_an_integer_as_json_schema_says():
    from cinema.models import ShotPatch

    assert structure({"position": 7.0}, ShotPatch).position == 7
    with pytest.raises(ValidationFailed):
        structure({"position": 7.5}, ShotPatch)
    with pytest.raises(ValidationFailed):
        structure({"position": True}, ShotPatch)
    with pytest.raises(ValidationFailed):  # what orjson makes of -9223372036854775809
        structure({"position": -9.223372036854776e18}, ShotPatch)


def test_a_mapping_field_given_something_else_is_a_field_error():
    from cinema.db.commands import UpsertBody

    for data in ("text", 5, [1], None):
        with pytest.raises(ValidationFailed) as failed:
            structure({"source": "imdb", "external_id": "tt1", "data": data}, UpsertBody)
        assert [(e.field, e.message) for e in failed.value.errors] == [("data", "must be an object")]

"""Query parameters of lists: whatever a client sends is a 400 or a page, never a database error."""

from __future__ import annotations

import base64
import json

import pytest

from cinema.db.pages import SortKey, encode_cursor, page_query
from cinema.errors import BadRequest

SORTS = {"id": SortKey("t.id", int), "name": SortKey("t.name", str)}


def forged(*parts):
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("limit", ["²", "٣", "0", "101", "-1", "1.5", ""])
def test_limit_must_be_ascii_digits_from_1_to_100(limit):
    with pytest.raises(BadRequest) as caught:
        page_query({"limit": limit}, SORTS)
    assert caught.value.errors[0].field == "limit"


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("id", forged("id", 1, 2**63)),  # row id past bigint
        ("id", forged("id", -(2**63) - 1, 1)),  # sort key past bigint
        ("name", forged("name", "a\x00b", 1)),  # text PostgreSQL cannot take
        ("name", forged("name", "a", 1.0)),
        ("name", forged("id", 1, 1)),
    ],
)
def test_forged_cursors_are_400(sort, cursor):
    with pytest.raises(BadRequest) as caught:
        page_query({"sort": sort, "cursor": cursor}, SORTS)
    assert caught.value.errors[0].field == "cursor"


def test_a_real_cursor_round_trips():
    query = page_query({"sort": "-name", "limit": "5", "cursor": encode_cursor("-name", "Drama", 7)}, SORTS)
    assert (query.sort, query.limit, query.after) == ("-name", 5, ("Drama", 7))

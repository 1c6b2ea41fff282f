"""Keyset pagination shared by every list endpoint.

A page is read with `WHERE (sort_key, id) > (last_key, last_id) ORDER BY sort_key, id`,
which an index on the sort key serves at any depth, and which stays stable when rows are
inserted meanwhile (an offset would shift). The cursor is opaque to clients: base64url of
`[sort, key, id]` for the last row, so it carries the sort it was made for.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import attrs
import orjson

from cinema.errors import BadRequest, FieldError


@attrs.frozen
class SortKey:
    """A sortable field: its SQL expression and the Python type of its cursor value."""

    expr: str
    type: type


@attrs.frozen
class PageQuery:
    sort: str = "id"  # a field name, "-field" for descending
    limit: int = 20
    after: tuple[Any, int] | None = None  # (sort key, id) of the last row of the previous page

    @property
    def field(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


@attrs.frozen
class Page:
    items: Sequence[str]  # JSON documents, rendered by PostgreSQL
    next_cursor: str | None

    def render(self) -> bytes:
        cursor = orjson.dumps(self.next_cursor)
        return b'{"items":[' + ",".join(self.items).encode() + b'],"next_cursor":' + cursor + b"}"


def encode_cursor(sort: str, key: Any, row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort, key, row_id])).decode().rstrip("=")


def page_query(params: Mapping[str, str], sorts: Mapping[str, SortKey]) -> PageQuery:
    """Parse `limit`, `sort` and `cursor`; anything off is a 400 naming the parameter."""
    errors = []
    limit = 20
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            errors.append(FieldError("limit", "must be an integer from 1 to 100"))
        else:
            limit = int(raw_limit)
    sort = params.get("sort", "id")
    if sort.removeprefix("-") not in sorts:
        errors.append(FieldError("sort", "must be one of " + ", ".join(sorted(sorts)) + " (prefix - to descend)"))
    after = None
    if "cursor" in params and not errors:
        after = _decode_cursor(params["cursor"], sort, sorts[sort.removeprefix("-")])
        if after is None:
            errors.append(FieldError("cursor", "is not a cursor of this list with this sort"))
    if errors:
        raise BadRequest("Invalid query parameters.", errors=errors)
    return PageQuery(sort=sort, limit=limit, after=after)


def page_ident(query: PageQuery) -> str:
    """A page's identity as a cache key: its sort, size and position (same page, same string)."""
    after = "" if query.after is None else orjson.dumps(query.after).decode()
    return f"{query.sort}:{query.limit}:{after}"


def _decode_cursor(cursor: str, sort: str, key: SortKey) -> tuple[Any, int] | None:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not (isinstance(decoded, list) and len(decoded) == 3 and decoded[0] == sort):
        return None
    value, row_id = decoded[1], decoded[2]
    if type(row_id) is not int or (value is not None and type(value) is not key.type):
        return None
    return value, row_id


@lru_cache(maxsize=512)
def keyset_clauses(expr: str, id_expr: str, descending: bool, has_cursor: bool, first_param: int) -> tuple[str, str]:
    """The WHERE condition ("true" on the first page) and the ORDER BY ... LIMIT clause.

    Parameters: `$first_param` is the limit, then the cursor's key and id when `has_cursor`.
    """
    direction, compare = ("DESC", "<") if descending else ("ASC", ">")
    order = f"ORDER BY {expr} {direction}, {id_expr} {direction} LIMIT ${first_param}"
    if not has_cursor:
        return "true", order
    return f"({expr}, {id_expr}) {compare} (${first_param + 1}, ${first_param + 2})", order


def keyset_params(query: PageQuery) -> list[Any]:
    # One row more than the limit tells whether a next page exists.
    return [query.limit + 1] if query.after is None else [query.limit + 1, *query.after]


def make_page(query: PageQuery, rows: Sequence[Sequence[Any]]) -> Page:
    """Rows are (key, id, doc), one more than the limit when a next page exists."""
    items = [row[2] for row in rows[: query.limit]]
    if len(rows) <= query.limit:
        return Page(items, None)
    last = rows[query.limit - 1]
    return Page(items, encode_cursor(query.sort, last[0], last[1]))

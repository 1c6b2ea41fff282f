"""Keyset pagination shared by every list endpoint.

A page is read with `WHERE (sort_key, id) > (last_key, last_id) ORDER BY sort_key, id`,
which an index on the sort key serves at any depth, and which stays stable when rows are
inserted meanwhile (an offset would shift). The cursor is opaque to clients: base64url of
`[sort, key, id]` for the last row, so it carries the sort it was made for.

A nullable column sorts through a key expression that never is null
(`coalesce(birth_date, 'infinity')`), with an index on that expression: a row
comparison with a null in it is null, so rows with a null key would be skipped.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import asyncpg
import attrs
import orjson

from cinema.errors import BadRequest, FieldError


@attrs.frozen
class SortKey:
    """A sortable field: its SQL expression and the Python type of its values (int, str, date, datetime)."""

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


BAD_CURSOR = FieldError("cursor", "is not a cursor of this list with this sort")


def page_query(params: Mapping[str, str], sorts: Mapping[str, SortKey], default_sort: str = "id") -> PageQuery:
    """Parse `limit`, `sort` (`default_sort` when absent) and `cursor`; anything off is a 400 naming the parameter."""
    errors = []
    limit = 20
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 100:  # not "²"
            errors.append(FieldError("limit", "must be an integer from 1 to 100"))
        else:
            limit = int(raw_limit)
    sort = params.get("sort", default_sort)
    if sort.removeprefix("-") not in sorts:
        errors.append(FieldError("sort", "must be one of " + ", ".join(sorted(sorts)) + " (prefix - to descend)"))
    after = None
    if "cursor" in params and not errors:
        after = _decode_cursor(params["cursor"], sort, sorts[sort.removeprefix("-")])
        if after is None:
            errors.append(BAD_CURSOR)
    if errors:
        raise BadRequest("Invalid query parameters.", errors=errors)
    return PageQuery(sort=sort, limit=limit, after=after)


# JSON has no dates: orjson writes date and timestamp keys as ISO 8601 text, read back here.
_FROM_TEXT: dict[type, Any] = {dt.date: dt.date.fromisoformat, dt.datetime: dt.datetime.fromisoformat}


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
    if type(row_id) is not int:
        return None
    if not (_storable(value) and _storable(row_id)):
        return None
    if value is None or type(value) is key.type:
        return value, row_id
    parse = _FROM_TEXT.get(key.type)
    if parse is None or type(value) is not str:
        return None
    try:
        parsed = parse(value)
    except ValueError:
        return None
    if isinstance(parsed, dt.datetime) and parsed.tzinfo is None:
        return None  # a timestamptz key is always written with its offset
    return parsed, row_id


def _storable(value: Any) -> bool:
    """Whether PostgreSQL accepts the value as a parameter (a forged cursor could hold any JSON)."""
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        return "\x00" not in value
    return True


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


@lru_cache(maxsize=512)
def _page_sql(template: str, expr: str, id_expr: str, descending: bool, has_cursor: bool) -> str:
    where, order = keyset_clauses(expr, id_expr, descending, has_cursor, 1)
    return template.format(key=expr, where=where, order=order)


async def fetch_page(
    conn: asyncpg.Connection, template: str, sorts: Mapping[str, SortKey], id_expr: str, query: PageQuery
) -> Page:
    """Run a list query for one page.

    `template` selects `{key} AS key, <id>, <document>` and has `{where}` and `{order}`
    slots; the SQL for each sort and direction is built once.
    """
    sql = _page_sql(template, sorts[query.field].expr, id_expr, query.descending, query.after is not None)
    try:
        rows = await conn.fetch(sql, *keyset_params(query))
    except asyncpg.DataError:
        if query.after is None:
            raise
        # A forged cursor can hold a key its column cannot take (beyond bigint, a NUL in text).
        raise BadRequest("Invalid query parameters.", errors=[BAD_CURSOR]) from None
    return make_page(query, rows)

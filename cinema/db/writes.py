"""The decisions every aggregate's writes share; the SQL itself stays in the aggregate's module.

- A batch is inserted by one statement; a duplicate within the batch or a violated
  constraint names the item that caused it (`[3].name`) when the client sent an array.
- Patch and delete lock the row first and check `If-Match` against exactly the document
  GET returns, so a stale tag can never overwrite a newer change.
- A change that changes nothing writes no event (caches stay valid); a real one carries
  the movies whose representation embeds the entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from cinema.db.integrity import to_domain_error, violated_value
from cinema.db.outbox import NewEvent
from cinema.errors import Conflict, DomainError, FieldError, NotFound
from cinema.etags import IfMatch, check_if_match

# An item's unique values: (field, value as its unique index compares it, e.g. lower(name)).
UniqueKeys = Sequence[tuple[str, str]]

Created = list[tuple[int, str]]  # (id, document) per item, in the items' order


async def insert_batch(
    conn: asyncpg.Connection,
    kind: str,
    sql: str,
    args: Sequence[Any],
    keys: Sequence[UniqueKeys],
    *,
    bulk: bool,
) -> tuple[Created, list[NewEvent]]:
    """Run `sql` (one INSERT ... RETURNING document, id for the batch) and emit `<kind>.created` events.

    `keys` holds each item's unique values; with `bulk`, errors name the item ("[3].name").
    """
    _check_unique_in_batch(keys)
    try:
        rows = await conn.fetch(sql, *args)
    except asyncpg.IntegrityConstraintViolationError as exc:
        error = to_domain_error(exc)
        raise (_locate(error, violated_value(exc), keys) if bulk else error) from None
    created = [(row["id"], row[0]) for row in rows]
    return created, [NewEvent(f"{kind}.created", entity_id, doc) for entity_id, doc in created]


def _check_unique_in_batch(keys: Sequence[UniqueKeys]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, item in enumerate(keys):
        for field, value in item:
            first = seen.setdefault((field, value), i)
            if first != i:
                raise Conflict(
                    f"Items {first} and {i} have the same {field}.",
                    errors=[FieldError(f"[{i}].{field}", f"the same {field} as item {first}")],
                )


def _locate(error: DomainError, value: str | None, keys: Sequence[UniqueKeys]) -> DomainError:
    """Prefix a batch insert's error with the index of the item holding the violated value."""
    fields = {e.field for e in error.errors}
    for i, item in enumerate(keys):
        if any(field in fields and v == value for field, v in item):
            return error.prefixed(f"[{i}]")
    return error


async def lock_row(conn: asyncpg.Connection, kind: str, sql: str, entity_id: int, if_match: IfMatch | None) -> Any:
    """The row `sql` selects `FOR UPDATE` (the document first); 404 when absent, 412 when If-Match is stale."""
    row = await conn.fetchrow(sql, entity_id)
    if row is None:
        raise NotFound(f"{kind.capitalize()} {entity_id} does not exist.")
    check_if_match(row[0], if_match)
    return row


async def update_row(conn: asyncpg.Connection, sql: str, *args: Any) -> str:
    """Run an UPDATE ... RETURNING document; a violated constraint is the client's 409 or 422."""
    try:
        doc: str = await conn.fetchval(sql, *args)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise to_domain_error(exc) from None
    return doc


async def updated(
    conn: asyncpg.Connection, kind: str, entity_id: int, before: str, after: str, movies_sql: str
) -> tuple[str, list[NewEvent]]:
    """The `<kind>.updated` event, unless the document did not change; `movies_sql` selects the affected movie ids."""
    if after == before:
        return after, []
    movies = await conn.fetchval(movies_sql, entity_id)
    return after, [NewEvent(f"{kind}.updated", entity_id, after, tuple(movies))]


async def delete_row(
    conn: asyncpg.Connection, kind: str, sql: str, entity_id: int, affected_movie_ids: Sequence[int]
) -> tuple[None, list[NewEvent]]:
    """Run the DELETE; the caller read the affected movies before it (a cascade would remove the links)."""
    try:
        await conn.execute(sql, entity_id)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise to_domain_error(exc) from None
    return None, [NewEvent(f"{kind}.deleted", entity_id, None, tuple(affected_movie_ids))]

"""A movie's credits one at a time, and a person's credits (the filmography).

Credits belong to the movie's aggregate: each write locks the movie first (see
cinema.db.movies) and emits the credit's event, then `movie.updated` with the movie's
new document.
"""

from __future__ import annotations

import asyncpg

from cinema.db.integrity import to_domain_error
from cinema.db.movies import (
    CREDIT_JSON,
    SUMMARY_COLUMNS,
    References,
    check_credits,
    check_references,
    lock_movie,
    page_sql,
)
from cinema.db.movies import movie_updated as movie_updated_event
from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, keyset_params, make_page
from cinema.errors import NotFound
from cinema.etags import IfMatch, check_if_match
from cinema.models import UNSET, CreditCreate, CreditPatch

GET_CREDIT = f"SELECT {CREDIT_JSON} FROM credits c WHERE c.id = $2 AND c.movie_id = $1"


async def get_credit(conn: asyncpg.Connection, movie_id: int, credit_id: int) -> str:
    doc: str | None = await conn.fetchval(GET_CREDIT, movie_id, credit_id)
    if doc is None:
        raise NotFound(f"Movie {movie_id} has no credit {credit_id}.")
    return doc


# Absent, the position is after the movie's last credit (kept within integer range).
INSERT_CREDIT = f"""
INSERT INTO credits AS c (movie_id, person_id, role, character, position)
VALUES ($1, $2, $3, $4, coalesce($5, (
    SELECT least(coalesce(max(o.position)::bigint + 1, 0), 2147483647) FROM credits o WHERE o.movie_id = $1
)))
RETURNING c.id, {CREDIT_JSON}
"""


async def add_credit(
    conn: asyncpg.Connection, movie_id: int, credit: CreditCreate
) -> tuple[tuple[int, str], list[NewEvent]]:
    await lock_movie(conn, movie_id)
    check_credits([credit], path=None)
    await _check_person(conn, credit.person_id)
    try:
        row = await conn.fetchrow(
            INSERT_CREDIT, movie_id, credit.person_id, credit.role, credit.character, credit.position
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise to_domain_error(exc) from None
    credit_id, doc = row
    return (credit_id, doc), [
        NewEvent("credit.created", credit_id, doc, (movie_id,)),
        await movie_updated_event(conn, movie_id),
    ]


async def _check_person(conn: asyncpg.Connection, person_id: int) -> None:
    refs = References()
    refs.persons.append((person_id, "person_id"))
    await check_references(conn, refs)


LOCK_CREDIT = "SELECT person_id, role, character FROM credits WHERE id = $2 AND movie_id = $1 FOR UPDATE"
UPDATE_CREDIT = f"""
UPDATE credits c SET person_id = $3, role = $4, character = $5, position = coalesce($6, c.position)
WHERE c.id = $2 AND c.movie_id = $1
RETURNING {CREDIT_JSON}
"""


async def patch_credit(
    conn: asyncpg.Connection, movie_id: int, credit_id: int, patch: CreditPatch, if_match: IfMatch | None
) -> tuple[str, list[NewEvent]]:
    await lock_movie(conn, movie_id)
    row = await conn.fetchrow(LOCK_CREDIT, movie_id, credit_id)
    if row is None:
        raise NotFound(f"Movie {movie_id} has no credit {credit_id}.")
    current = await get_credit(conn, movie_id, credit_id)
    check_if_match(current, if_match)
    merged = CreditCreate(
        person_id=row["person_id"] if patch.person_id is UNSET else patch.person_id,
        role=row["role"] if patch.role is UNSET else patch.role,
        character=row["character"] if patch.character is UNSET else patch.character,
        position=None if patch.position is UNSET else patch.position,
    )
    check_credits([merged], path=None)
    if merged.person_id != row["person_id"]:
        await _check_person(conn, merged.person_id)
    try:
        doc = await conn.fetchval(
            UPDATE_CREDIT, movie_id, credit_id, merged.person_id, merged.role, merged.character, merged.position
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise to_domain_error(exc) from None
    if doc == current:
        return doc, []
    return doc, [NewEvent("credit.updated", credit_id, doc, (movie_id,)), await movie_updated_event(conn, movie_id)]


DELETE_CREDIT = "DELETE FROM credits WHERE id = $2 AND movie_id = $1"


async def delete_credit(
    conn: asyncpg.Connection, movie_id: int, credit_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    await lock_movie(conn, movie_id)
    check_if_match(await get_credit(conn, movie_id, credit_id), if_match)
    await conn.execute(DELETE_CREDIT, movie_id, credit_id)
    return None, [NewEvent("credit.deleted", credit_id, None, (movie_id,)), await movie_updated_event(conn, movie_id)]


# -- filmography ---------------------------------------------------------------------

# Served by credits_person_idx (person_id, role, movie_id); a person has few credits,
# so sorting them after the lookup is cheap.
PERSON_CREDIT_SORTS = {
    "id": SortKey("c.id", int),
    "release_year": SortKey("coalesce(m.release_year, 0)", int),
    "title": SortKey("lower(m.title)", str),
}
PERSON_CREDIT_JSON = f"""(SELECT row_to_json(d) FROM (SELECT c.id,
(SELECT row_to_json(s) FROM (SELECT {SUMMARY_COLUMNS}) s) AS movie, c.role, c.character, c.position) d)::text"""
LIST_PERSON_CREDITS = (
    "SELECT {key} AS key, c.id, "
    + PERSON_CREDIT_JSON
    + " FROM credits c JOIN movies m ON m.id = c.movie_id WHERE c.person_id = $1 AND {where} {order}"
)
PERSON_EXISTS = "SELECT EXISTS (SELECT FROM persons WHERE id = $1)"


async def list_person_credits(conn: asyncpg.Connection, person_id: int, query: PageQuery) -> Page:
    """A page of the person's credits, each with its movie's summary (a second statement only when empty)."""
    key = PERSON_CREDIT_SORTS[query.field].expr
    sql = page_sql(LIST_PERSON_CREDITS, key, "c.id", query.descending, query.after is not None, 2)
    rows = await conn.fetch(sql, person_id, *keyset_params(query))
    if not rows and not await conn.fetchval(PERSON_EXISTS, person_id):
        raise NotFound(f"Person {person_id} does not exist.")
    return make_page(query, rows)

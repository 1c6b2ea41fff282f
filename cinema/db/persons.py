"""Persons: their SQL and the decisions of their writes (slugs, dates, credits, preconditions, events).

`photo_url` is never written here: the photo upload sets it. A person who has credits
cannot be deleted (the foreign key restricts it; the API says how many credits are in the way).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import asyncpg

from cinema.db.integrity import CONSTRAINTS
from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, fetch_page
from cinema.db.slugs import free_slugs
from cinema.db.writes import Created, delete_row, insert_batch, lock_row, update_row, updated
from cinema.errors import Conflict, FieldError, NotFound, ValidationFailed
from cinema.etags import IfMatch
from cinema.models import UNSET, PersonCreate, PersonPatch

PERSON_JSON = """(SELECT row_to_json(d) FROM (
    SELECT p.id, p.slug, p.full_name, p.birth_date, p.death_date, p.biography, p.photo_url,
    p.photo_images AS images, p.created_at, p.updated_at
) d)::text"""

SORTS = {
    "id": SortKey("p.id", int),
    "full_name": SortKey("p.full_name", str),
    # Never null, so the keyset comparison holds for persons without a birth date (they come
    # last ascending); persons_birth_date_idx is on this very expression. asyncpg reads
    # 'infinity' as date.max, which no stored date can be (cinema.convert refuses it).
    "birth_date": SortKey("coalesce(p.birth_date, 'infinity'::date)", dt.date),
    "created_at": SortKey("p.created_at", dt.datetime),
}

GET_PERSON = f"SELECT {PERSON_JSON} FROM persons p WHERE p.id = $1"


async def get_person(conn: asyncpg.Connection, person_id: int) -> str:
    doc: str | None = await conn.fetchval(GET_PERSON, person_id)
    if doc is None:
        raise NotFound(f"Person {person_id} does not exist.")
    return doc


LIST_PERSONS = "SELECT {key} AS key, p.id, " + PERSON_JSON + " FROM persons p WHERE {where} {order}"


async def list_persons(conn: asyncpg.Connection, query: PageQuery) -> Page:
    return await fetch_page(conn, LIST_PERSONS, SORTS, "p.id", query)


_DATES_RULE = CONSTRAINTS["persons_death_after_birth"]


def _check_dates(pairs: Iterable[tuple[dt.date | None, dt.date | None]], bulk: bool) -> None:
    """422 on death_date for every (birth, death) pair out of order, before the database's check."""
    field = _DATES_RULE.field
    errors = [
        FieldError(f"[{i}].{field}" if bulk else field, _DATES_RULE.message)
        for i, (birth, death) in enumerate(pairs)
        if birth is not None and death is not None and death < birth
    ]
    if errors:
        raise ValidationFailed(f"{field} {_DATES_RULE.message}.", errors=errors)


INSERT_PERSONS = f"""
INSERT INTO persons AS p (full_name, slug, birth_date, death_date, biography)
SELECT full_name, slug, birth_date, death_date, biography
FROM unnest($1::text[], $2::text[], $3::date[], $4::date[], $5::text[])
    WITH ORDINALITY AS i(full_name, slug, birth_date, death_date, biography, n)
ORDER BY n
RETURNING {PERSON_JSON}, p.id
"""


async def create_persons(
    conn: asyncpg.Connection, items: Sequence[PersonCreate], bulk: bool = False
) -> tuple[Created, list[NewEvent]]:
    """Insert all items in one statement; returns (id, document) pairs in the items' order."""
    _check_dates(((item.birth_date, item.death_date) for item in items), bulk)
    slugs = await free_slugs(conn, "persons", [(item.slug, item.full_name) for item in items])
    columns = (
        [item.full_name for item in items],
        slugs,
        [item.birth_date for item in items],
        [item.death_date for item in items],
        [item.biography for item in items],
    )
    keys = [(("slug", slug),) for slug in slugs]
    return await insert_batch(conn, "person", INSERT_PERSONS, columns, keys, bulk=bulk)


EDITABLE = ("full_name", "slug", "birth_date", "death_date", "biography")
LOCK_PERSON = f"SELECT {PERSON_JSON}, {', '.join(EDITABLE)} FROM persons p WHERE p.id = $1 FOR UPDATE"
MOVIES_OF_PERSON = (
    "SELECT coalesce(array_agg(DISTINCT movie_id ORDER BY movie_id), '{}') FROM credits WHERE person_id = $1"
)
UPDATE_PERSON = f"""
UPDATE persons p SET full_name = $2, slug = $3, birth_date = $4, death_date = $5, biography = $6
WHERE p.id = $1
RETURNING {PERSON_JSON}
"""


async def patch_person(
    conn: asyncpg.Connection, person_id: int, patch: PersonPatch, if_match: IfMatch | None
) -> tuple[str, list[NewEvent]]:
    row = await lock_row(conn, "person", LOCK_PERSON, person_id, if_match)
    before = {name: row[name] for name in EDITABLE}
    after = {name: before[name] if getattr(patch, name) is UNSET else getattr(patch, name) for name in EDITABLE}
    # Against the stored value of the date the patch leaves alone.
    _check_dates([(after["birth_date"], after["death_date"])], bulk=False)
    if after == before:
        return row[0], []  # no UPDATE: the trigger would move updated_at for nothing
    doc = await update_row(conn, UPDATE_PERSON, person_id, *(after[name] for name in EDITABLE))
    return await updated(conn, "person", person_id, row[0], doc, MOVIES_OF_PERSON)


COUNT_CREDITS = "SELECT count(*) FROM credits WHERE person_id = $1"
DELETE_PERSON = "DELETE FROM persons WHERE id = $1"


async def delete_person(
    conn: asyncpg.Connection, person_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    # The row lock makes the count exact: adding a credit takes a key-share lock on the
    # person, which waits for this transaction, and then fails on the foreign key.
    await lock_row(conn, "person", LOCK_PERSON, person_id, if_match)
    credits = await conn.fetchval(COUNT_CREDITS, person_id)
    if credits:
        noun = "credit" if credits == 1 else "credits"
        raise Conflict(
            f"Person {person_id} has {credits} {noun}; remove them from their movies before deleting the person."
        )
    # No movie embeds a person without credits, so the event affects none.
    return await delete_row(conn, "person", DELETE_PERSON, person_id, ())

"""Countries: their SQL and the decisions of their writes (slugs, preconditions, events)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, fetch_page
from cinema.db.slugs import free_slugs
from cinema.db.writes import Created, delete_row, insert_batch, lock_row, update_row, updated
from cinema.errors import NotFound
from cinema.etags import IfMatch
from cinema.models import UNSET, CountryCreate, CountryPatch

COUNTRY_JSON = "(SELECT row_to_json(d) FROM (SELECT c.id, c.code, c.slug, c.name) d)::text"

SORTS = {
    "id": SortKey("c.id", int),
    "code": SortKey("c.code", str),
    "name": SortKey("c.name", str),
    "slug": SortKey("c.slug", str),
}

GET_COUNTRY = f"SELECT {COUNTRY_JSON} FROM countries c WHERE c.id = $1"


async def get_country(conn: asyncpg.Connection, country_id: int) -> str:
    doc: str | None = await conn.fetchval(GET_COUNTRY, country_id)
    if doc is None:
        raise NotFound(f"Country {country_id} does not exist.")
    return doc


LIST_COUNTRIES = "SELECT {key} AS key, c.id, " + COUNTRY_JSON + " FROM countries c WHERE {where} {order}"


async def list_countries(conn: asyncpg.Connection, query: PageQuery) -> Page:
    return await fetch_page(conn, LIST_COUNTRIES, SORTS, "c.id", query)


INSERT_COUNTRIES = f"""
INSERT INTO countries AS c (code, name, slug)
SELECT code, name, slug FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS i(code, name, slug, n)
ORDER BY n
RETURNING {COUNTRY_JSON}, c.id
"""


async def create_countries(
    conn: asyncpg.Connection, items: Sequence[CountryCreate], bulk: bool = False
) -> tuple[Created, list[NewEvent]]:
    """Insert all items in one statement; returns (id, document) pairs in the items' order."""
    slugs = await free_slugs(conn, "countries", [(item.slug, item.name) for item in items])
    keys = [
        (("code", item.code), ("name", item.name.lower()), ("slug", slug))
        for item, slug in zip(items, slugs, strict=True)
    ]
    columns = ([item.code for item in items], [item.name for item in items], slugs)
    return await insert_batch(conn, "country", INSERT_COUNTRIES, columns, keys, bulk=bulk)


LOCK_COUNTRY = f"SELECT {COUNTRY_JSON} FROM countries c WHERE c.id = $1 FOR UPDATE"
MOVIES_OF_COUNTRY = (
    "SELECT coalesce(array_agg(movie_id ORDER BY movie_id), '{}') FROM movie_countries WHERE country_id = $1"
)
UPDATE_COUNTRY = f"""
UPDATE countries c SET code = coalesce($2, c.code), name = coalesce($3, c.name), slug = coalesce($4, c.slug)
WHERE c.id = $1
RETURNING {COUNTRY_JSON}
"""


async def patch_country(
    conn: asyncpg.Connection, country_id: int, patch: CountryPatch, if_match: IfMatch | None
) -> tuple[str, list[NewEvent]]:
    [current] = await lock_row(conn, "country", LOCK_COUNTRY, country_id, if_match)
    code = None if patch.code is UNSET else patch.code
    name = None if patch.name is UNSET else patch.name
    slug = None if patch.slug is UNSET else patch.slug
    doc = await update_row(conn, UPDATE_COUNTRY, country_id, code, name, slug)
    return await updated(conn, "country", country_id, current, doc, MOVIES_OF_COUNTRY)


DELETE_COUNTRY = "DELETE FROM countries WHERE id = $1"


async def delete_country(
    conn: asyncpg.Connection, country_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    await lock_row(conn, "country", LOCK_COUNTRY, country_id, if_match)
    movies = await conn.fetchval(MOVIES_OF_COUNTRY, country_id)  # before the cascade removes the links
    return await delete_row(conn, "country", DELETE_COUNTRY, country_id, movies)

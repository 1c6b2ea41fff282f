"""Genres: their SQL and the decisions of their writes (slugs, preconditions, events)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from cinema.db.commands import inserting, replacing
from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, fetch_page
from cinema.db.slugs import free_slugs
from cinema.db.writes import Created, delete_row, insert_batch, lock_row, update_row, updated
from cinema.errors import NotFound
from cinema.etags import IfMatch
from cinema.models import UNSET, GenreCreate, GenrePatch

# row_to_json keeps the declared key order and renders compactly (json_build_object adds spaces).
GENRE_JSON = "(SELECT row_to_json(d) FROM (SELECT g.id, g.slug, g.name) d)::text"

SORTS = {
    "id": SortKey("g.id", int),
    "name": SortKey("g.name", str),
    "slug": SortKey("g.slug", str),
}

GET_GENRE = f"SELECT {GENRE_JSON} FROM genres g WHERE g.id = $1"


async def get_genre(conn: asyncpg.Connection, genre_id: int) -> str:
    doc: str | None = await conn.fetchval(GET_GENRE, genre_id)
    if doc is None:
        raise NotFound(f"Genre {genre_id} does not exist.")
    return doc


LIST_GENRES = "SELECT {key} AS key, g.id, " + GENRE_JSON + " FROM genres g WHERE {where} {order}"


async def list_genres(conn: asyncpg.Connection, query: PageQuery) -> Page:
    return await fetch_page(conn, LIST_GENRES, SORTS, "g.id", query)


INSERT_GENRES = f"""
INSERT INTO genres AS g (name, slug)
SELECT name, slug FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(name, slug, n) ORDER BY n
RETURNING {GENRE_JSON}, g.id
"""


async def create_genres(
    conn: asyncpg.Connection, items: Sequence[GenreCreate], bulk: bool = False
) -> tuple[Created, list[NewEvent]]:
    """Insert all items in one statement; returns (id, document) pairs in the items' order."""
    slugs = await free_slugs(conn, "genres", [(item.slug, item.name) for item in items])
    keys = [(("name", item.name.lower()), ("slug", slug)) for item, slug in zip(items, slugs, strict=True)]
    names = [item.name for item in items]
    return await insert_batch(conn, "genre", INSERT_GENRES, (names, slugs), keys, bulk=bulk)


LOCK_GENRE = f"SELECT {GENRE_JSON} FROM genres g WHERE g.id = $1 FOR UPDATE"
MOVIES_OF_GENRE = "SELECT coalesce(array_agg(movie_id ORDER BY movie_id), '{}') FROM movie_genres WHERE genre_id = $1"
UPDATE_GENRE = f"""
UPDATE genres g SET name = coalesce($2, g.name), slug = coalesce($3, g.slug)
WHERE g.id = $1
RETURNING {GENRE_JSON}
"""


async def patch_genre(
    conn: asyncpg.Connection, genre_id: int, patch: GenrePatch, if_match: IfMatch | None
) -> tuple[str, list[NewEvent]]:
    [current] = await lock_row(conn, "genre", LOCK_GENRE, genre_id, if_match)
    name = None if patch.name is UNSET else patch.name
    slug = None if patch.slug is UNSET else patch.slug
    doc = await update_row(conn, UPDATE_GENRE, genre_id, name, slug)
    return await updated(conn, "genre", genre_id, current, doc, MOVIES_OF_GENRE)


DELETE_GENRE = "DELETE FROM genres WHERE id = $1"


async def delete_genre(
    conn: asyncpg.Connection, genre_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    await lock_row(conn, "genre", LOCK_GENRE, genre_id, if_match)
    movies = await conn.fetchval(MOVIES_OF_GENRE, genre_id)  # before the cascade removes the links
    return await delete_row(conn, "genre", DELETE_GENRE, genre_id, movies)


# -- commands from other systems (cinema/db/commands.py) -----------------------------


insert_genres = inserting(create_genres)
replace_genre = replacing(patch_genre, GenrePatch)

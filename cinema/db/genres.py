"""Genres: their SQL and the decisions of their writes (slugs, preconditions, events)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from cinema.db.integrity import to_domain_error, violated_value
from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, keyset_clauses, keyset_params, make_page
from cinema.db.slugs import free_slugs
from cinema.errors import Conflict, DomainError, FieldError, NotFound
from cinema.etags import check_if_match
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
    key = SORTS[query.field]
    where, order = keyset_clauses(key.expr, "g.id", query.descending, query.after is not None, 1)
    rows = await conn.fetch(LIST_GENRES.format(key=key.expr, where=where, order=order), *keyset_params(query))
    return make_page(query, rows)


INSERT_GENRES = f"""
INSERT INTO genres AS g (name, slug)
SELECT name, slug FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(name, slug, n) ORDER BY n
RETURNING {GENRE_JSON}, g.id
"""


async def create_genres(
    conn: asyncpg.Connection, items: Sequence[GenreCreate]
) -> tuple[list[tuple[int, str]], list[NewEvent]]:
    """Insert all items in one statement; returns (id, document) pairs in the items' order.

    Errors name the item's index when there are several ("[3].name").
    """
    _check_unique_in_batch(items)
    slugs = await free_slugs(conn, "genres", [(item.slug, item.name) for item in items])
    try:
        rows = await conn.fetch(INSERT_GENRES, [item.name for item in items], slugs)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise _locate(to_domain_error(exc), exc, items, slugs) from None
    created = [(row["id"], row[0]) for row in rows]
    return created, [NewEvent("genre.created", genre_id, doc) for genre_id, doc in created]


def _check_unique_in_batch(items: Sequence[GenreCreate]) -> None:
    seen: dict[object, int] = {}
    for i, item in enumerate(items):
        for field, value in (("name", item.name.lower()), ("slug", item.slug)):
            if value is None:
                continue
            if (field, value) in seen:
                first = seen[(field, value)]
                raise Conflict(
                    f"Items {first} and {i} have the same {field}.",
                    errors=[FieldError(f"[{i}].{field}", f"the same {field} as item {first}")],
                )
            seen[(field, value)] = i


def _locate(
    error: DomainError,
    exc: asyncpg.IntegrityConstraintViolationError,
    items: Sequence[GenreCreate],
    slugs: Sequence[str],
) -> DomainError:
    """Prefix a bulk insert's error with the index of the item that caused it."""
    if len(items) == 1:
        return error
    value = (violated_value(exc) or "").lower()
    for i, (item, slug) in enumerate(zip(items, slugs, strict=True)):
        if value in (item.name.lower(), slug):
            return error.prefixed(f"[{i}]")
    return error


LOCK_GENRE = f"SELECT {GENRE_JSON} FROM genres g WHERE g.id = $1 FOR UPDATE"
MOVIES_OF_GENRE = "SELECT coalesce(array_agg(movie_id ORDER BY movie_id), '{}') FROM movie_genres WHERE genre_id = $1"
UPDATE_GENRE = f"""
UPDATE genres g SET name = coalesce($2, g.name), slug = coalesce($3, g.slug)
WHERE g.id = $1
RETURNING {GENRE_JSON}
"""


async def patch_genre(
    conn: asyncpg.Connection, genre_id: int, patch: GenrePatch, if_match: str | None
) -> tuple[str, list[NewEvent]]:
    current = await conn.fetchval(LOCK_GENRE, genre_id)
    if current is None:
        raise NotFound(f"Genre {genre_id} does not exist.")
    check_if_match(current, if_match)
    name = None if patch.name is UNSET else patch.name
    slug = None if patch.slug is UNSET else patch.slug
    try:
        doc = await conn.fetchval(UPDATE_GENRE, genre_id, name, slug)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise to_domain_error(exc) from None
    if doc == current:
        return doc, []  # nothing changed: no event, caches stay valid
    movies = await conn.fetchval(MOVIES_OF_GENRE, genre_id)
    return doc, [NewEvent("genre.updated", genre_id, doc, tuple(movies))]


DELETE_GENRE = "DELETE FROM genres WHERE id = $1"


async def delete_genre(conn: asyncpg.Connection, genre_id: int, if_match: str | None) -> tuple[None, list[NewEvent]]:
    current = await conn.fetchval(LOCK_GENRE, genre_id)
    if current is None:
        raise NotFound(f"Genre {genre_id} does not exist.")
    check_if_match(current, if_match)
    movies = await conn.fetchval(MOVIES_OF_GENRE, genre_id)  # before the cascade removes the links
    await conn.execute(DELETE_GENRE, genre_id)
    return None, [NewEvent("genre.deleted", genre_id, None, tuple(movies))]


# -- commands from other systems (cinema/db/commands.py) -----------------------------


async def insert_genres(conn: asyncpg.Connection, items: Sequence[GenreCreate]) -> tuple[list[int], list[NewEvent]]:
    created, events = await create_genres(conn, items)
    return [genre_id for genre_id, _ in created], events


async def replace_genre(conn: asyncpg.Connection, genre_id: int, item: GenreCreate) -> tuple[str, list[NewEvent]]:
    """An upsert of a known genre: its fields as the source sends them; no slug keeps the current one."""
    patch = GenrePatch(name=item.name, slug=UNSET if item.slug is None else item.slug)
    return await patch_genre(conn, genre_id, patch, None)

"""Shots: a movie's stills. Their metadata is read and edited here; images come by upload.

Shots belong to the movie's aggregate: each write locks the movie first (see
cinema.db.movies) and emits the shot's event, then `movie.updated` with the movie's new
document.
"""

from __future__ import annotations

import asyncpg

from cinema.db.movies import SHOT_JSON, given, lock_movie, movie_updated, page_sql
from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, keyset_params, make_page
from cinema.errors import NotFound
from cinema.etags import IfMatch, check_if_match
from cinema.models import UNSET, ShotPatch

# Both served by shots_movie_position_idx (movie_id, position, id) or the primary key.
SORTS = {
    "position": SortKey("s.position", int),
    "id": SortKey("s.id", int),
}
DEFAULT_SORT = "position"

LIST_SHOTS = "SELECT {key} AS key, s.id, " + SHOT_JSON + " FROM shots s WHERE s.movie_id = $1 AND {where} {order}"
MOVIE_EXISTS = "SELECT EXISTS (SELECT FROM movies WHERE id = $1)"


async def list_shots(conn: asyncpg.Connection, movie_id: int, query: PageQuery) -> Page:
    """A page of the movie's shots (a second statement only when empty, to tell an unknown movie)."""
    sql = page_sql(LIST_SHOTS, SORTS[query.field].expr, "s.id", query.descending, query.after is not None, 2)
    rows = await conn.fetch(sql, movie_id, *keyset_params(query))
    if not rows and not await conn.fetchval(MOVIE_EXISTS, movie_id):
        raise NotFound(f"Movie {movie_id} does not exist.")
    return make_page(query, rows)


GET_SHOT = f"SELECT {SHOT_JSON} FROM shots s WHERE s.id = $1"


async def get_shot(conn: asyncpg.Connection, shot_id: int) -> str:
    doc: str | None = await conn.fetchval(GET_SHOT, shot_id)
    if doc is None:
        raise NotFound(f"Shot {shot_id} does not exist.")
    return doc


MOVIE_OF_SHOT = "SELECT movie_id FROM shots WHERE id = $1"


async def _lock_movie_of(conn: asyncpg.Connection, shot_id: int) -> tuple[int, str]:
    """Lock the shot's movie, then read the shot: (movie id, shot document)."""
    movie_id = await conn.fetchval(MOVIE_OF_SHOT, shot_id)
    if movie_id is None:
        raise NotFound(f"Shot {shot_id} does not exist.")
    await lock_movie(conn, movie_id)
    return movie_id, await get_shot(conn, shot_id)  # it may have gone while we waited for the lock


UPDATE_SHOT = f"""
UPDATE shots s SET caption = CASE WHEN $2 THEN $3 ELSE s.caption END, position = coalesce($4, s.position)
WHERE s.id = $1
RETURNING {SHOT_JSON}
"""


async def patch_shot(
    conn: asyncpg.Connection, shot_id: int, patch: ShotPatch, if_match: IfMatch | None
) -> tuple[str, list[NewEvent]]:
    movie_id, current = await _lock_movie_of(conn, shot_id)
    check_if_match(current, if_match)
    doc = await conn.fetchval(
        UPDATE_SHOT, shot_id, patch.caption is not UNSET, given(patch.caption), given(patch.position)
    )
    if doc == current:
        return doc, []
    return doc, [NewEvent("shot.updated", shot_id, doc, (movie_id,)), await movie_updated(conn, movie_id)]


DELETE_SHOT = "DELETE FROM shots WHERE id = $1"


async def delete_shot(conn: asyncpg.Connection, shot_id: int, if_match: IfMatch | None) -> tuple[None, list[NewEvent]]:
    movie_id, current = await _lock_movie_of(conn, shot_id)
    check_if_match(current, if_match)
    await conn.execute(DELETE_SHOT, shot_id)
    return None, [NewEvent("shot.deleted", shot_id, None, (movie_id,)), await movie_updated(conn, movie_id)]

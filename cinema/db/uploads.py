"""Uploads: recording an accepted image, claiming it, and putting its URL on the resource.

An upload is a row, `pending` until the uploader actor has stored its objects. The uploader
claims the row with `FOR UPDATE SKIP LOCKED` and holds that lock in a transaction until the end:
the same transaction sets the URL on the movie, person or shot, marks the upload done and
appends the resource's events. A crash anywhere before the commit leaves the row pending and
unlocked (PostgreSQL rolls back a dead connection's transaction), to be resumed; a second
worker never gets a row that another one holds or finished.

Images are part of their owner's aggregate: writes lock the movie (a poster, a shot) or the
person (a photo) first, like every other write to them (cinema.db.movies).
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import attrs
import orjson

from cinema.db.movies import SHOT_JSON, get_movie, lock_movie, movie_updated
from cinema.db.outbox import NewEvent
from cinema.db.persons import LOCK_PERSON, MOVIES_OF_PERSON, get_person
from cinema.db.writes import lock_row
from cinema.errors import NotFound
from cinema.etags import IfMatch, check_if_match
from cinema.images import Format, original_key, owner_prefix

UPLOAD_JSON = """(SELECT row_to_json(d) FROM (
    SELECT u.id, u.status, u.kind,
        CASE u.kind WHEN 'photo' THEN '/api/v1/persons/' WHEN 'shot' THEN '/api/v1/shots/' ELSE '/api/v1/movies/' END
            || u.entity_id AS resource,
        u.url, u.images, u.error, u.created_at, u.finished_at
) d)::text"""


@attrs.frozen
class NewUpload:
    """An image received and checked by the HTTP layer, waiting in its spool file."""

    kind: str  # poster, photo, shot
    entity_id: int  # the movie (poster, and a new shot's movie) or the person (photo)
    fmt: Format
    width: int
    height: int
    size: int
    sha256: str
    spool_path: str
    node: str
    caption: str | None = None  # a new shot's


INSERT_UPLOAD = f"""
INSERT INTO uploads AS u (kind, entity_id, content_type, width, height, size, key, spool_path, node)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING u.id, {UPLOAD_JSON}
"""
INSERT_SHOT = f"""
INSERT INTO shots AS s (movie_id, caption, position)
VALUES ($1, $2, (SELECT coalesce(max(position) + 1, 0) FROM shots WHERE movie_id = $1))
RETURNING s.id, {SHOT_JSON}
"""


async def record_upload(
    conn: asyncpg.Connection, new: NewUpload, if_match: IfMatch | None
) -> tuple[tuple[int, str], list[NewEvent]]:
    """The pending row (and, for a shot, the shot itself, without its image yet): (upload id, document)."""
    events: list[NewEvent] = []
    entity_id, movie_id = new.entity_id, new.entity_id
    if new.kind == "photo":
        await lock_row(conn, "person", LOCK_PERSON, new.entity_id, if_match)
    else:
        await lock_movie(conn, new.entity_id)
        if if_match is not None:
            check_if_match(await get_movie(conn, new.entity_id), if_match)
    if new.kind == "shot":
        entity_id, shot = await conn.fetchrow(INSERT_SHOT, movie_id, new.caption)
        events += [NewEvent("shot.created", entity_id, shot, (movie_id,)), await movie_updated(conn, movie_id)]
    key = original_key(owner_prefix(new.kind, entity_id, movie_id), new.sha256, new.fmt)
    upload_id, doc = await conn.fetchrow(
        INSERT_UPLOAD,
        new.kind,
        entity_id,
        new.fmt.content_type,
        new.width,
        new.height,
        new.size,
        key,
        new.spool_path,
        new.node,
    )
    return (upload_id, doc), events


GET_UPLOAD = f"SELECT {UPLOAD_JSON} FROM uploads u WHERE u.id = $1"


async def get_upload(conn: asyncpg.Connection, upload_id: int) -> str:
    doc: str | None = await conn.fetchval(GET_UPLOAD, upload_id)
    if doc is None:
        raise NotFound(f"Upload {upload_id} does not exist.")
    return doc


# -- the uploader's side ---------------------------------------------------------------


@attrs.frozen
class Claimed:
    id: int
    kind: str
    entity_id: int
    content_type: str
    key: str
    spool_path: str
    attempts: int


# Held until the caller's transaction ends. SKIP LOCKED: a row another worker holds is not
# waited for, it is simply not this worker's; `pending` re-checked on the latest version,
# so a row finished meanwhile is not claimed either.
CLAIM = """
SELECT id, kind, entity_id, content_type, key, spool_path, attempts FROM uploads
WHERE id = $1 AND status = 'pending' AND node = $2 AND next_attempt_at <= now()
FOR UPDATE SKIP LOCKED
"""


async def claim(conn: asyncpg.Connection, upload_id: int, node: str) -> Claimed | None:
    row = await conn.fetchrow(CLAIM, upload_id, node)
    return None if row is None else Claimed(**dict(row))


DUE_UPLOADS = """
SELECT id FROM uploads WHERE status = 'pending' AND node = $1 AND next_attempt_at <= now()
ORDER BY id LIMIT $2
FOR UPDATE SKIP LOCKED
"""


async def due_uploads(conn: asyncpg.Connection, node: str, limit: int) -> list[int]:
    """Pending uploads of this host that nobody holds and whose time has come (oldest first)."""
    async with conn.transaction():
        return [row[0] for row in await conn.fetch(DUE_UPLOADS, node, limit)]


NEXT_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM uploads WHERE status = 'pending' AND node = $1
"""


async def seconds_until_due(conn: asyncpg.Connection, node: str) -> float | None:
    """Until the next pending upload of this host is due (negative: overdue); None when there is none."""
    seconds = await conn.fetchval(NEXT_DUE, node)
    return None if seconds is None else float(seconds)


RETRY_LATER = """
UPDATE uploads SET attempts = attempts + 1, error = $3, next_attempt_at = now() + make_interval(secs => $2)
WHERE id = $1
"""


async def retry_later(conn: asyncpg.Connection, upload_id: int, delay: float, reason: str) -> None:
    """Still pending; `error` shows why the last attempt failed until one succeeds."""
    await conn.execute(RETRY_LATER, upload_id, delay, reason)


FAIL = "UPDATE uploads SET status = 'failed', error = $2, finished_at = clock_timestamp() WHERE id = $1"


async def fail(conn: asyncpg.Connection, upload_id: int, reason: str) -> None:
    await conn.execute(FAIL, upload_id, reason)


# Stored and set on the resource, but `done` only once the commit's events have reached this
# process's cache (see `mark_done`): until then it is not due again for FINISH_GRACE seconds, so
# no other worker takes it up, while a crash in between still gets it resumed (and finished).
STORED = """
UPDATE uploads SET url = $2, images = $3::json, error = NULL, next_attempt_at = now() + make_interval(secs => $4)
WHERE id = $1
"""
FINISH_GRACE = 60.0
DONE = "UPDATE uploads SET status = 'done', finished_at = clock_timestamp() WHERE id = $1 AND status = 'pending'"


async def mark_done(conn: asyncpg.Connection, upload_id: int) -> None:
    """After the commit and its hooks: a client that then reads `done` reads the new image everywhere
    on this process (read-your-writes, as for the catalog's writes)."""
    await conn.execute(DONE, upload_id)


SET_POSTER = """
UPDATE movies SET poster_url = $2, poster_key = $3, poster_images = $4::json
WHERE id = $1 AND poster_key IS DISTINCT FROM $3
"""
SET_PHOTO = """
UPDATE persons SET photo_url = $2, photo_key = $3, photo_images = $4::json
WHERE id = $1 AND photo_key IS DISTINCT FROM $3
"""
SET_SHOT_IMAGE = "UPDATE shots SET image_url = $2, image_key = $3, images = $4::json WHERE id = $1"
CURRENT_KEY = {
    "poster": "SELECT poster_key FROM movies WHERE id = $1",
    "photo": "SELECT photo_key FROM persons WHERE id = $1",
    "shot": "SELECT image_key FROM shots WHERE id = $1",
}
MOVIE_OF_SHOT = "SELECT movie_id FROM shots WHERE id = $1"
LOCK_SHOT = "SELECT true FROM shots WHERE id = $1 FOR UPDATE"
GET_SHOT = f"SELECT {SHOT_JSON} FROM shots s WHERE s.id = $1"


async def complete(
    conn: asyncpg.Connection, upload: Claimed, url: str, images: Mapping[str, str]
) -> tuple[str | None, list[NewEvent]]:
    """Put the stored image on its resource (`mark_done` follows the commit): (the key it replaced, events).

    NotFound when the resource was deleted meanwhile (the caller fails the upload). The same
    image again (same key) changes nothing and writes no event.
    """
    rendered = orjson.dumps(dict(images)).decode()
    replaced, events = await _set_image(conn, upload.kind, upload.entity_id, url, upload.key, rendered, upload.id)
    await conn.execute(STORED, upload.id, url, rendered, FINISH_GRACE)
    return replaced, events


class Superseded(Exception):
    """A later upload of the same image slot finished first: this one must not overwrite it."""

    def __init__(self, later: int) -> None:
        super().__init__(f"Upload {later}, sent later, replaced this image first.")


# Run after the resource's lock, so that two uploads of one slot decide in turn.
LATER_DONE = """
SELECT max(id) FROM uploads
WHERE kind = $1 AND entity_id = $2 AND id > $3 AND url IS NOT NULL AND status <> 'failed'
"""


async def _set_image(
    conn: asyncpg.Connection,
    kind: str,
    entity_id: int,
    url: str | None,
    key: str | None,
    images: str | None,
    upload_id: int | None = None,
) -> tuple[str | None, list[NewEvent]]:
    """Set (or, with None, remove) the image of the locked-first resource; (the key it had, events).

    With `upload_id`, Superseded when a later upload of the same slot is already done.
    """

    async def check_latest() -> None:
        if upload_id is not None and (later := await conn.fetchval(LATER_DONE, kind, entity_id, upload_id)):
            raise Superseded(later)

    if kind == "poster":
        await lock_movie(conn, entity_id)
        await check_latest()
        before = await conn.fetchval(CURRENT_KEY[kind], entity_id)
        if before == key:
            return None, []
        await conn.execute(SET_POSTER, entity_id, url, key, images)
        return before, [NewEvent("movie.updated", entity_id, await get_movie(conn, entity_id))]
    if kind == "photo":
        await lock_row(conn, "person", LOCK_PERSON, entity_id, None)
        await check_latest()
        before = await conn.fetchval(CURRENT_KEY[kind], entity_id)
        if before == key:
            return None, []
        await conn.execute(SET_PHOTO, entity_id, url, key, images)
        movies = tuple(await conn.fetchval(MOVIES_OF_PERSON, entity_id))
        return before, [NewEvent("person.updated", entity_id, await get_person(conn, entity_id), movies)]
    movie_id = await conn.fetchval(MOVIE_OF_SHOT, entity_id)
    if movie_id is None:
        raise NotFound(f"Shot {entity_id} does not exist.")
    await lock_movie(conn, movie_id)
    if not await conn.fetchval(LOCK_SHOT, entity_id):  # deleted while we waited for the movie
        raise NotFound(f"Shot {entity_id} does not exist.")
    before = await conn.fetchval(CURRENT_KEY[kind], entity_id)
    if before == key:
        return None, []
    await conn.execute(SET_SHOT_IMAGE, entity_id, url, key, images)
    shot = await conn.fetchval(GET_SHOT, entity_id)
    return before, [NewEvent("shot.updated", entity_id, shot, (movie_id,)), await movie_updated(conn, movie_id)]


async def remove_image(
    conn: asyncpg.Connection, kind: str, entity_id: int, if_match: IfMatch | None
) -> tuple[str | None, list[NewEvent]]:
    """DELETE of a poster or photo: the key it had (None: there was none, nothing changed)."""
    if if_match is not None:
        if kind == "poster":
            await lock_movie(conn, entity_id)
            check_if_match(await get_movie(conn, entity_id), if_match)
        else:
            await lock_row(conn, "person", LOCK_PERSON, entity_id, if_match)
    return await _set_image(conn, kind, entity_id, None, None, None)


# A key lives under its owner's prefix, so no other resource can refer to it: only the resource
# itself (the same image set again) or an upload still pending with it. The partial index covers those rows.
KEY_PENDING = "SELECT EXISTS (SELECT FROM uploads WHERE status = 'pending' AND key = $1 AND id <> $2)"


async def key_in_use(conn: asyncpg.Connection, upload: Claimed, key: str) -> bool:
    """Whether an image the upload replaced (or could not set) must be kept all the same."""
    if await conn.fetchval(CURRENT_KEY[upload.kind], upload.entity_id) == key:
        return True
    return bool(await conn.fetchval(KEY_PENDING, key, upload.id))


# -- the sweep's side ----------------------------------------------------------------------

REFERENCED_KEYS = """
SELECT poster_key FROM movies WHERE poster_key IS NOT NULL
UNION ALL SELECT photo_key FROM persons WHERE photo_key IS NOT NULL
UNION ALL SELECT image_key FROM shots WHERE image_key IS NOT NULL
UNION ALL SELECT key FROM uploads WHERE status = 'pending'
"""


async def referenced_keys(conn: asyncpg.Connection) -> list[str]:
    """The originals that rows refer to, and those of uploads still in flight (not to be swept)."""
    return [row[0] for row in await conn.fetch(REFERENCED_KEYS)]


PENDING_SPOOLS = "SELECT spool_path FROM uploads WHERE status = 'pending' AND node = $1"


async def pending_spools(conn: asyncpg.Connection, node: str) -> set[str]:
    return {row[0] for row in await conn.fetch(PENDING_SPOOLS, node)}

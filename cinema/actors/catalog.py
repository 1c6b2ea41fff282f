"""The catalog actor: owns the connection pool, every SQL write and the catalog's reads.

One message is one transaction. A write returns its result and the events it produced;
the actor appends those events to the outbox last in the same transaction, and publishes
them on the in-process bus only after the commit, so nothing downstream ever hears of a
change that did not happen. Database errors become domain errors here: a violated
constraint is a 4xx (cinema.db.integrity), a database that is down is a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import attrs
import structlog

from cinema.actors.base import Actor
from cinema.bus.local import LocalBus
from cinema.db import commands, genres
from cinema.db.outbox import NewEvent, append_events
from cinema.db.pages import PageQuery
from cinema.errors import DomainError, Unavailable
from cinema.models import GenreCreate, GenrePatch

log = structlog.get_logger("cinema.catalog")

R = TypeVar("R")

# Errors that mean "the database cannot serve now", not "the request is wrong".
DATABASE_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
)
# Errors after which the same transaction, run again, will most likely succeed.
RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
ATTEMPTS = 3


# -- messages ----------------------------------------------------------------------


@attrs.frozen
class CheckReady:
    """Answers with the ids of the applied migrations among `expected` missing ones."""

    expected: tuple[str, ...]


@attrs.frozen
class ListGenres:
    query: PageQuery


@attrs.frozen
class GetGenre:
    id: int


@attrs.frozen
class CreateGenres:
    items: tuple[GenreCreate, ...]


@attrs.frozen
class PatchGenre:
    id: int
    patch: GenrePatch
    if_match: str | None = None


@attrs.frozen
class DeleteGenre:
    id: int
    if_match: str | None = None


@attrs.frozen
class ApplyCommands:
    """Commands from other systems (cinema/bus/commands.py), in order, in one transaction.

    Answers with one `Applied` or `Rejected` per command; raises `CommandRejected` when a
    command failed in the database (the transaction is lost: apply the rest again without it,
    or ungrouped when it does not say which).
    """

    commands: tuple[commands.Command, ...]
    grouped: bool = True  # creations of one kind in a row are inserted together


# -- the actor ---------------------------------------------------------------------


class CatalogActor(Actor):
    expected_errors = (DomainError, commands.CommandRejected)

    def __init__(self, pool: asyncpg.Pool, bus: LocalBus, origin: str = "", **options: Any) -> None:
        # As many messages at once as there are connections: more would only queue on the pool.
        options.setdefault("concurrency", pool.get_max_size())
        super().__init__("catalog", **options)
        self.pool = pool
        self.bus = bus
        self.origin = origin  # names this app instance in commit notifications (cinema/bus/remote.py)

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetGenre(id=genre_id):
                return await self._read(genres.get_genre, genre_id)
            case ListGenres(query=query):
                return await self._read(genres.list_genres, query)
            case CreateGenres(items=items):
                return await self._write(genres.create_genres, items)
            case PatchGenre(id=genre_id, patch=patch, if_match=if_match):
                return await self._write(genres.patch_genre, genre_id, patch, if_match)
            case DeleteGenre(id=genre_id, if_match=if_match):
                return await self._write(genres.delete_genre, genre_id, if_match)
            case ApplyCommands(commands=batch, grouped=grouped):
                return await self._write(commands.apply_commands, batch, grouped)
            case CheckReady(expected=expected):
                return await self._read(_missing_migrations, expected)
            case _:
                return await super().handle(msg)

    async def _read(self, query: Callable[..., Awaitable[R]], *args: Any) -> R:
        try:
            async with self.pool.acquire() as conn:
                return await query(conn, *args)
        except DATABASE_DOWN as exc:
            raise _unavailable(exc) from exc

    async def _write(self, change: Callable[..., Awaitable[tuple[R, Sequence[NewEvent]]]], *args: Any) -> R:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    result, new_events = await change(conn, *args)
                    events = await append_events(conn, new_events, self.origin)
            except RETRYABLE:
                if attempt == ATTEMPTS:
                    raise
                log.info("catalog_write_retried", attempt=attempt)
                continue
            except DATABASE_DOWN as exc:
                raise _unavailable(exc) from exc
            for event in events:
                self.bus.publish(event)
            return result
        raise AssertionError("unreachable")


def _unavailable(exc: BaseException) -> Unavailable:
    log.warning("database_unavailable", error=repr(exc))
    return Unavailable("The database is not reachable right now; retry shortly.", retry_after=2)


MISSING_MIGRATIONS = """
SELECT coalesce(array_agg(id), '{}') FROM unnest($1::text[]) AS id
WHERE id NOT IN (SELECT migration_id FROM _yoyo_migration)
"""


async def _missing_migrations(conn: asyncpg.Connection, expected: tuple[str, ...]) -> list[str]:
    try:
        return list(await conn.fetchval(MISSING_MIGRATIONS, list(expected)))
    except asyncpg.UndefinedTableError:  # nothing applied yet
        return list(expected)

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
from typing import Any, Literal, TypeVar

import asyncpg
import attrs
import structlog

from cinema.actors.base import Actor
from cinema.bus.local import LocalBus
from cinema.db import commands, countries, credits, genres, movies, persons, shots, uploads
from cinema.db.catalog import get_catalog_id
from cinema.db.movies import MovieFilter
from cinema.db.outbox import NewEvent, append_events, list_changes
from cinema.db.pages import PageQuery
from cinema.errors import DomainError, Unavailable
from cinema.etags import IfMatch
from cinema.models import (
    CountryCreate,
    CountryPatch,
    CreditCreate,
    CreditPatch,
    GenreCreate,
    GenrePatch,
    MovieCreate,
    MoviePatch,
    PersonCreate,
    PersonPatch,
    ShotPatch,
)

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
    # asyncpg lost track of a connection the server ended under it (a statement timed out while
    # the server closed the session): "cannot switch to state ..."; the connection is gone.
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.IdleInTransactionSessionTimeoutError,  # the server ended a transaction its client left idle
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
class GetCatalogId:
    """Answers with the catalog's id as the database has it now (readiness compares it with the one in use)."""


@attrs.frozen
class ListChanges:
    after: int  # the last seq the client has seen
    limit: int


@attrs.frozen
class ListGenres:
    query: PageQuery


@attrs.frozen
class GetGenre:
    id: int


@attrs.frozen
class CreateGenres:
    items: tuple[GenreCreate, ...]
    bulk: bool = False  # the client sent an array: errors name the item ("[0].name")


@attrs.frozen
class PatchGenre:
    id: int
    patch: GenrePatch
    if_match: IfMatch | None = None


@attrs.frozen
class DeleteGenre:
    id: int
    if_match: IfMatch | None = None


@attrs.frozen
class ListCountries:
    query: PageQuery


@attrs.frozen
class GetCountry:
    id: int


@attrs.frozen
class CreateCountries:
    items: tuple[CountryCreate, ...]
    bulk: bool = False


@attrs.frozen
class PatchCountry:
    id: int
    patch: CountryPatch
    if_match: IfMatch | None = None


@attrs.frozen
class DeleteCountry:
    id: int
    if_match: IfMatch | None = None


@attrs.frozen
class ListPersons:
    query: PageQuery


@attrs.frozen
class GetPerson:
    id: int


@attrs.frozen
class CreatePersons:
    items: tuple[PersonCreate, ...]
    bulk: bool = False


@attrs.frozen
class PatchPerson:
    id: int
    patch: PersonPatch
    if_match: IfMatch | None = None


@attrs.frozen
class DeletePerson:
    id: int
    if_match: IfMatch | None = None


@attrs.frozen
class ListMovies:
    filter: MovieFilter
    query: PageQuery


@attrs.frozen
class GetMovie:
    id: int


@attrs.frozen
class CreateMovies:
    items: tuple[MovieCreate, ...]
    bulk: bool = False  # the client sent an array: errors name the item ("[0].title")


@attrs.frozen
class PatchMovie:
    id: int
    patch: MoviePatch
    if_match: IfMatch | None = None


@attrs.frozen
class DeleteMovie:
    id: int
    if_match: IfMatch | None = None


@attrs.frozen
class LinkMovie:
    """Add a genre or a country (`kind`) to a movie."""

    kind: Literal["genre", "country"]
    movie_id: int
    target_id: int
    if_match: IfMatch | None = None


@attrs.frozen
class UnlinkMovie:
    kind: Literal["genre", "country"]
    movie_id: int
    target_id: int
    if_match: IfMatch | None = None


@attrs.frozen
class AddCredit:
    movie_id: int
    credit: CreditCreate


@attrs.frozen
class GetCredit:
    movie_id: int
    credit_id: int


@attrs.frozen
class PatchCredit:
    movie_id: int
    credit_id: int
    patch: CreditPatch
    if_match: IfMatch | None = None


@attrs.frozen
class DeleteCredit:
    movie_id: int
    credit_id: int
    if_match: IfMatch | None = None


@attrs.frozen
class ListPersonCredits:
    person_id: int
    query: PageQuery


@attrs.frozen
class ListShots:
    movie_id: int
    query: PageQuery


@attrs.frozen
class GetShot:
    id: int


@attrs.frozen
class PatchShot:
    id: int
    patch: ShotPatch
    if_match: IfMatch | None = None


@attrs.frozen
class DeleteShot:
    id: int
    if_match: IfMatch | None = None


@attrs.frozen
class RecordUpload:
    """An image received and checked (cinema.http.uploads): answers (upload id, upload document)."""

    upload: uploads.NewUpload
    if_match: IfMatch | None = None


@attrs.frozen
class GetUpload:
    id: int


@attrs.frozen
class RemoveImage:
    """Take the poster (`kind` poster, a movie) or photo (a person) off; answers the key it had, or None."""

    kind: Literal["poster", "photo"]
    entity_id: int
    if_match: IfMatch | None = None


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
            case CreateGenres(items=items, bulk=bulk):
                return await self._write(genres.create_genres, items, bulk)
            case PatchGenre(id=genre_id, patch=patch, if_match=if_match):
                return await self._write(genres.patch_genre, genre_id, patch, if_match)
            case DeleteGenre(id=genre_id, if_match=if_match):
                return await self._write(genres.delete_genre, genre_id, if_match)
            case GetCountry(id=country_id):
                return await self._read(countries.get_country, country_id)
            case ListCountries(query=query):
                return await self._read(countries.list_countries, query)
            case CreateCountries(items=items, bulk=bulk):
                return await self._write(countries.create_countries, items, bulk)
            case PatchCountry(id=country_id, patch=patch, if_match=if_match):
                return await self._write(countries.patch_country, country_id, patch, if_match)
            case DeleteCountry(id=country_id, if_match=if_match):
                return await self._write(countries.delete_country, country_id, if_match)
            case GetPerson(id=person_id):
                return await self._read(persons.get_person, person_id)
            case ListPersons(query=query):
                return await self._read(persons.list_persons, query)
            case CreatePersons(items=items, bulk=bulk):
                return await self._write(persons.create_persons, items, bulk)
            case PatchPerson(id=person_id, patch=patch, if_match=if_match):
                return await self._write(persons.patch_person, person_id, patch, if_match)
            case DeletePerson(id=person_id, if_match=if_match):
                return await self._write(persons.delete_person, person_id, if_match)
            case ListChanges(after=after, limit=limit):
                return await self._read(list_changes, after, limit)
            case GetMovie(id=movie_id):
                return await self._read(movies.get_movie, movie_id)
            case ListMovies(filter=movie_filter, query=query):
                return await self._read(movies.list_movies, movie_filter, query)
            case CreateMovies(items=items, bulk=bulk):
                return await self._write(movies.create_movies, items, bulk)
            case PatchMovie(id=movie_id, patch=patch, if_match=if_match):
                return await self._write(movies.patch_movie, movie_id, patch, if_match)
            case DeleteMovie(id=movie_id, if_match=if_match):
                return await self._write(movies.delete_movie, movie_id, if_match)
            case LinkMovie(kind=kind, movie_id=movie_id, target_id=target_id, if_match=if_match):
                return await self._write(movies.link, kind, movie_id, target_id, if_match)
            case UnlinkMovie(kind=kind, movie_id=movie_id, target_id=target_id, if_match=if_match):
                return await self._write(movies.unlink, kind, movie_id, target_id, if_match)
            case GetCredit(movie_id=movie_id, credit_id=credit_id):
                return await self._read(credits.get_credit, movie_id, credit_id)
            case AddCredit(movie_id=movie_id, credit=credit):
                return await self._write(credits.add_credit, movie_id, credit)
            case PatchCredit(movie_id=movie_id, credit_id=credit_id, patch=patch, if_match=if_match):
                return await self._write(credits.patch_credit, movie_id, credit_id, patch, if_match)
            case DeleteCredit(movie_id=movie_id, credit_id=credit_id, if_match=if_match):
                return await self._write(credits.delete_credit, movie_id, credit_id, if_match)
            case ListPersonCredits(person_id=person_id, query=query):
                return await self._read(credits.list_person_credits, person_id, query)
            case ListShots(movie_id=movie_id, query=query):
                return await self._read(shots.list_shots, movie_id, query)
            case GetShot(id=shot_id):
                return await self._read(shots.get_shot, shot_id)
            case PatchShot(id=shot_id, patch=patch, if_match=if_match):
                return await self._write(shots.patch_shot, shot_id, patch, if_match)
            case DeleteShot(id=shot_id, if_match=if_match):
                return await self._write(shots.delete_shot, shot_id, if_match)
            case RecordUpload(upload=new, if_match=if_match):
                return await self._write(uploads.record_upload, new, if_match)
            case GetUpload(id=upload_id):
                return await self._read(uploads.get_upload, upload_id)
            case RemoveImage(kind=kind, entity_id=entity_id, if_match=if_match):
                return await self._write(uploads.remove_image, kind, entity_id, if_match)
            case ApplyCommands(commands=batch, grouped=grouped):
                return await self._write(commands.apply_commands, batch, grouped)
            case CheckReady(expected=expected):
                return await self._read(_missing_migrations, expected)
            case GetCatalogId():
                return await self._read(get_catalog_id)
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
            await self.bus.committed(events)  # the cache has dropped what they change when this returns
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

"""What the movie, credit and shot tests share: referenced rows, a movie factory, a statement log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import attrs
import pytest

from cinema.http.keys import CATALOG

MOVIES = "/api/v1/movies"


@attrs.frozen
class Refs:
    """Ids of the rows the tests refer to."""

    drama: int
    crime: int
    comedy: int
    us: int
    fr: int
    pacino: int
    de_niro: int
    mann: int


@pytest.fixture
async def refs(db: asyncpg.Connection) -> Refs:
    genres = await db.fetch(
        "INSERT INTO genres (slug, name) VALUES ('drama', 'Drama'), ('crime', 'Crime'), ('comedy', 'Comedy')"
        " RETURNING id"
    )
    countries = await db.fetch(
        "INSERT INTO countries (code, slug, name) VALUES ('US', 'united-states', 'United States'),"
        " ('FR', 'france', 'France') RETURNING id"
    )
    persons = await db.fetch(
        "INSERT INTO persons (slug, full_name) VALUES ('al-pacino', 'Al Pacino'),"
        " ('robert-de-niro', 'Robert De Niro'), ('michael-mann', 'Michael Mann') RETURNING id"
    )
    return Refs(*(r["id"] for r in [*genres, *countries, *persons]))


async def create_movie(client: Any, title: str = "Heat", **fields: Any) -> dict[str, Any]:
    resp = await client.post(MOVIES, json={"title": title, **fields})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def add_shot(db: asyncpg.Connection, movie_id: int, caption: str | None = None, position: int = 0) -> int:
    """Shots arrive by upload (not part of these endpoints): the tests insert their rows."""
    return await db.fetchval(
        "INSERT INTO shots (movie_id, caption, position) VALUES ($1, $2, $3) RETURNING id", movie_id, caption, position
    )


async def events(db: asyncpg.Connection, after: int = 0) -> list[tuple[str, int]]:
    rows = await db.fetch("SELECT type, entity_id FROM outbox WHERE seq > $1 ORDER BY seq", after)
    return [(r["type"], r["entity_id"]) for r in rows]


async def last_seq(db: asyncpg.Connection) -> int:
    return await db.fetchval("SELECT coalesce(max(seq), 0) FROM outbox")


class LoggedPool:
    """The catalog's pool, recording every statement run on a connection it lends.

    asyncpg's query loggers are called soon after each statement (`loop.call_soon`), so
    they have all run by the time the HTTP response that needed them has been read.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements: list[str] = []

    def _record(self, query: asyncpg.connection.LoggedQuery) -> None:
        self.statements.append(query.query)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            conn.add_query_logger(self._record)
            try:
                yield conn
            finally:
                conn.remove_query_logger(self._record)

    def take(self) -> list[str]:
        """The statements recorded since the last call."""
        taken, self.statements = self.statements, []
        return taken


@pytest.fixture
def statements(client: Any, app: Any, monkeypatch: pytest.MonkeyPatch) -> LoggedPool:
    """Every statement the catalog actor runs from now on (after the app has started)."""
    logged = LoggedPool(app[CATALOG].pool)
    monkeypatch.setattr(app[CATALOG], "pool", logged)
    return logged

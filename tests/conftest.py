"""Shared fixtures: a real PostgreSQL (configured or embedded), a fresh database per session.

`CINEMA_TEST_DATABASE_URL` names a server to test against (its database is only used to
create and drop `cinema_test_<random>`); without it the suite starts the embedded server,
so `make test` works on a machine with no PostgreSQL. A test whose service cannot be
reached is skipped with the reason, or fails when `CINEMA_REQUIRE_SERVICES=1` (CI).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cinema.app import create_app
from cinema.db.embedded import embedded_postgres
from cinema.db.migrate import apply_migrations
from cinema.settings import Settings

REQUIRE_SERVICES = os.environ.get("CINEMA_REQUIRE_SERVICES") == "1"

# Every table the service writes; emptied before each test that uses the database.
TABLES = (
    "external_ids, outbox, shots, credits, movie_countries, movie_genres, movies, persons, countries, genres,"
    " search_positions, search_documents, search_terms"
)


def service_unavailable(reason: str) -> None:
    """Skip the test, or fail it when the environment promises every service (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN of a maintenance database on a running server."""
    configured = os.environ.get("CINEMA_TEST_DATABASE_URL")
    if configured:
        try:
            psycopg.connect(configured, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            service_unavailable(f"PostgreSQL at CINEMA_TEST_DATABASE_URL is unreachable: {exc}")
        yield configured
        return
    with embedded_postgres(tmp_path_factory.mktemp("pg"), database="postgres") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    name = f"cinema_test_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(postgres_server, name)
    try:
        apply_migrations(dsn)
        yield dsn
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, emptied first (ids restart at 1)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def settings(database_url: str, tmp_path: os.PathLike[str]) -> Settings:
    return Settings(database_url=database_url, migrate_on_start=False, data_dir=tmp_path, ask_timeout=5)


@pytest.fixture
async def app(settings: Settings, db: asyncpg.Connection) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client, app: web.Application) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(app)


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Wait until `check()` holds (for state that has no event to await), failing after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.002)

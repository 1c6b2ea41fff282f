"""Shared fixtures: a real PostgreSQL (configured or embedded), a fresh database per session.

`CINEMA_TEST_DATABASE_URL` names a server to test against (its database is only used to
create and drop `cinema_test_<random>`); without it the suite starts the embedded server,
so `make test` works on a machine with no PostgreSQL. A test whose service cannot be
reached is skipped with the reason, or fails when `CINEMA_REQUIRE_SERVICES=1` (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import attrs
import coredis
import psycopg
import pytest
import sentry_sdk
from aiohttp import web
from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from cinema import telemetry
from cinema.app import create_app
from cinema.db.embedded import embedded_postgres
from cinema.db.migrate import apply_migrations
from cinema.settings import Settings, redact_url

REQUIRE_SERVICES = os.environ.get("CINEMA_REQUIRE_SERVICES") == "1"

# moto's S3 server and the storage backends' settings, for the upload and storage tests.
pytest_plugins = ["tests.storage_support"]

# Every table the service writes; emptied before each test that uses the database.
TABLES = (
    "external_ids, outbox, shots, credits, movie_countries, movie_genres, movies, persons, countries, genres, "
    "processed_commands, search_positions, search_documents, search_terms, uploads"
)


def service_unavailable(reason: str) -> None:
    """Skip the test, or fail it when the environment promises every service (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def embedded_data_dir() -> Iterator[Path]:
    """A data folder for an embedded server, outside pytest's temp tree.

    The embedded server runs as another user when the tests run as root, so it needs the
    folder's parents to be traversable; pytest resets its own root to mode 0700 whenever a
    session starts, which would cut off a server started by a concurrent session.
    """
    path = Path(tempfile.mkdtemp(prefix="cinema-test-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A DSN of a maintenance database on a running server."""
    configured = os.environ.get("CINEMA_TEST_DATABASE_URL")
    if configured:
        try:
            psycopg.connect(configured, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            service_unavailable(f"PostgreSQL at CINEMA_TEST_DATABASE_URL is unreachable: {exc}")
        yield configured
        return
    with embedded_data_dir() as data_dir, embedded_postgres(data_dir, database="postgres") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def amqp_server() -> str:
    """The URL of a RabbitMQ broker: `CINEMA_TEST_AMQP_URL`, or the local one. Tests share it with
    other test sessions, so each test declares exchanges and queues under names of its own."""
    url = os.environ.get("CINEMA_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=5).close()
    except OSError as exc:
        service_unavailable(f"RabbitMQ at {redact_url(url)} is unreachable: {exc}")
    return url


@contextlib.contextmanager
def fresh_database(postgres_server: str) -> Iterator[str]:
    """A new, migrated database on the server, dropped at the end."""
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


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    with fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def other_database_url(postgres_server: str) -> Iterator[str]:
    """A second database, for tests of two catalogs side by side (connect with `emptied`)."""
    with fresh_database(postgres_server) as dsn:
        yield dsn


@contextlib.asynccontextmanager
async def emptied(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database at `dsn`, emptied first (ids restart at 1)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, emptied first (ids restart at 1)."""
    async with emptied(database_url) as conn:
        yield conn


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


# -- Redis ---------------------------------------------------------------------------


def _redis_reachable(url: str) -> str | None:
    """None when a Redis answers PING at `url`, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return str(exc)
    return None if reply.startswith((b"+PONG", b"-NOAUTH")) else f"unexpected reply {reply!r}"


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis the tests share (`CINEMA_TEST_REDIS_URL`, default the local one)."""
    url = os.environ.get("CINEMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    problem = _redis_reachable(url)
    if problem is not None:
        service_unavailable(f"Redis at {url} is unreachable: {problem}")
    return url


@pytest.fixture
async def redis_prefix(redis_server_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own (sessions run at once share the Redis); its keys are deleted after."""
    prefix = f"cinema_test_{secrets.token_hex(4)}"
    yield prefix
    await delete_keys(redis_server_url, prefix)


async def delete_keys(url: str, prefix: str) -> None:
    client = coredis.Redis.from_url(url)
    async with client:  # entered and left in this one task, as coredis 6 requires
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(keys)


@pytest.fixture
def cache_settings(settings: Settings, redis_server_url: str, redis_prefix: str) -> Settings:
    """The test settings with the shared Redis layer on."""
    # A healthy Redis is slow now and then on a loaded CI machine (the first connection loads the
    # scripts): a generous timeout keeps these tests about coherence, not about latency. The
    # failure tests set their own.
    return attrs.evolve(
        settings, redis_url=redis_server_url, redis_prefix=redis_prefix, redis_retry=0.05, redis_timeout=2.0
    )


@pytest.fixture(params=["in-process", "redis"])
def cache_layers(request: pytest.FixtureRequest) -> str:
    """Run the test with the in-process cache layer alone, then with Redis behind it."""
    return str(request.param)


@pytest.fixture
def layered_settings(request: pytest.FixtureRequest, cache_layers: str, settings: Settings) -> Settings:
    return request.getfixturevalue("cache_settings") if cache_layers == "redis" else settings


class RedisProcess:
    """A redis-server of the test's own, to stop, pause and restart mid-test."""

    def __init__(self, directory: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _redis_reachable(self.url) is not None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """Stop answering, keeping the data: a hung or unreachable Redis."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_process(tmp_path: os.PathLike[str]) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server is not installed")
    server = RedisProcess(str(tmp_path))
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.resume()
            server.kill()


@contextlib.contextmanager
def memory_tracing(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Tracing on through `provider`, into memory, for apps created meanwhile."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install_tracing(provider)
    try:
        yield exporter
    finally:
        telemetry.uninstall_tracing()
        provider.shutdown()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for apps created in the test (the edge decides when it is built)."""
    with memory_tracing(TracerProvider()) as exporter:
        yield exporter


SENTRY_DSN = "https://public@sentry.invalid/1"


class SentryRecorder(Transport):
    """A local Sentry transport: keeps the events the SDK would send."""

    def __init__(self) -> None:
        super().__init__({"dsn": SENTRY_DSN})
        self.events: list[dict[str, object]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry(monkeypatch: pytest.MonkeyPatch) -> Iterator[SentryRecorder]:
    """Sentry on, reporting into memory."""
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    recorder = SentryRecorder()
    assert telemetry.configure_errors(Settings(sentry_dsn=SENTRY_DSN), transport=recorder)
    try:
        yield recorder
    finally:
        telemetry.close_errors()
        sentry_sdk.get_client().close()

"""`create_app(settings)`: the whole application, its resources started in dependency order.

Each resource is one async-generator `cleanup_ctx`; aiohttp runs them in order at start-up
and unwinds them in reverse at shutdown, so a start-up that fails half-way stops exactly
what had started.

    OpenAPI document -> database (embedded server when CINEMA_DATABASE_URL is unset)
    -> migrations -> pool -> the catalog's id -> the edge's guard (rate limiter, token keys)
    -> remote events (other instances' commits and index announcements onto the local bus)
    -> Redis (when configured) -> search backend -> object storage (S3 or local files) -> actors
    (catalog, the cache that reads through it, the indexer, the uploader) -> live search dispatcher
    -> RabbitMQ (when CINEMA_AMQP_URL is set): broker connection -> outbox relay -> command consumer
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import structlog
from aiohttp import web

from cinema.actors.base import Actor
from cinema.actors.cache import CacheActor
from cinema.actors.catalog import CatalogActor
from cinema.actors.indexer import IndexerActor, MatchLive
from cinema.actors.system import ActorSystem
from cinema.actors.uploader import UploaderActor, spool_dir
from cinema.bus.amqp import Broker, Topology
from cinema.bus.commands import CommandConsumer
from cinema.bus.local import LocalBus
from cinema.bus.relay import OutboxRelay
from cinema.bus.remote import RemoteEvents
from cinema.cache.kinds import KINDS
from cinema.cache.shared import SharedStore
from cinema.db.catalog import get_catalog_id
from cinema.db.embedded import embedded_postgres
from cinema.db.migrate import apply_migrations_async, migration_ids
from cinema.db.pool import SESSION, create_pool
from cinema.http import (
    changes,
    countries,
    credits,
    genres,
    health,
    metrics,
    movies,
    openapi,
    persons,
    search,
    search_stream,
    shots,
    uploads,
)
from cinema.http.edge import add_routes
from cinema.http.keys import (
    ACTORS,
    BROKER,
    BUS,
    CACHE,
    CATALOG,
    CATALOG_ID,
    COMMAND_CONSUMER,
    DSN,
    INDEXER,
    LIVE_SEARCH,
    MIGRATIONS,
    ORIGIN,
    POOL,
    RATE_LIMITER,
    RELAY,
    REMOTE_EVENTS,
    ROUTE_METRICS,
    SEARCH_BACKEND,
    SETTINGS,
    SHARED_CACHE,
    STORAGE,
    STREAM_CLIENTS,
    UPLOADER,
    VERIFIER,
)
from cinema.search.configured import open_backend
from cinema.search.live import INDEXED_CHANNEL, Clients, Indexed, LiveSearch
from cinema.settings import Settings, parse_ttls
from cinema.storage import open_storage

log = structlog.get_logger("cinema.app")

# Seconds a stopping relay gets to mark what the broker confirmed (else those go out again).
RELAY_GRACE = 2.0


def create_app(settings: Settings, *, on_fatal: Callable[[Actor], None] | None = None) -> web.Application:
    """Build the application. `on_fatal` runs when an actor exhausts its restarts (serve exits then)."""
    # Request lines and headers are bounded as they are parsed, before any handler runs.
    limits = {
        "max_line_size": settings.max_header_bytes,
        "max_field_size": settings.max_header_bytes,
        "max_headers": settings.max_headers,
    }
    app = web.Application(client_max_size=settings.max_json_bytes, handler_args=limits)
    app[SETTINGS] = settings
    app[BUS] = LocalBus()
    app[MIGRATIONS] = tuple(migration_ids())
    app[ORIGIN] = secrets.token_hex(8)
    app[STREAM_CLIENTS] = Clients()
    app.cleanup_ctx.append(openapi.document_ctx)  # first: an undocumented route fails before anything starts
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(catalog_id_ctx)
    app.cleanup_ctx.append(guard_ctx)
    app.cleanup_ctx.append(remote_events_ctx)
    app.cleanup_ctx.append(shared_cache_ctx)
    app.cleanup_ctx.append(search_backend_ctx)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(_actors_ctx(on_fatal))
    app.cleanup_ctx.append(live_search_ctx)
    app.cleanup_ctx.append(broker_ctx)
    app.cleanup_ctx.append(relay_ctx)
    app.cleanup_ctx.append(command_consumer_ctx)
    tables = [
        health,
        genres,
        countries,
        persons,
        movies,
        credits,
        shots,
        uploads,
        changes,
        search,
        search_stream,
        openapi,
    ]
    route_metrics = None
    if settings.metrics:
        tables.append(metrics)
        route_metrics = app[ROUTE_METRICS] = []
    add_routes(app, settings, (module.routes for module in tables), route_metrics)
    # Before connections are closed at shutdown: websockets get a close frame, not a timeout.
    app.on_shutdown.append(close_streams)
    return app


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The configured server, or an embedded one for as long as the app runs; then migrations."""
    settings = app[SETTINGS]
    if settings.database_url is not None:
        app[DSN] = settings.database_url
        await _migrate(app)
        yield
        return
    embedded = embedded_postgres(settings.data_dir)
    app[DSN] = await asyncio.to_thread(embedded.__enter__)
    try:
        await _migrate(app)
        yield
    finally:
        await asyncio.to_thread(embedded.__exit__, None, None, None)


async def _migrate(app: web.Application) -> None:
    if app[SETTINGS].migrate_on_start:
        await apply_migrations_async(app[DSN])


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await create_pool(app[DSN], settings.db_pool_size, settings.db_statement_timeout)
    app[POOL] = pool
    try:
        yield
    finally:
        await pool.close()


async def catalog_id_ctx(app: web.Application) -> AsyncIterator[None]:
    """Read once: what this process keeps outside the database (cache, index, tags) is named by it."""
    async with app[POOL].acquire() as conn:
        try:
            app[CATALOG_ID] = await get_catalog_id(conn)
        except asyncpg.UndefinedTableError:
            # Not migrated yet (a migrate job still to run): a provisional id shares nothing with
            # anyone, and readiness stays 503, asking for a restart, until the process has the real one.
            app[CATALOG_ID] = uuid.uuid4()
            log.warning("catalog_id_unknown", reason="the schema is not migrated yet; restart after migrating")
    yield


async def guard_ctx(app: web.Application) -> AsyncIterator[None]:
    """The edge's rate limiter (its Redis client) and token verifier (its JWKS fetches)."""
    limiter, verifier = app.get(RATE_LIMITER), app.get(VERIFIER)
    if limiter is not None:
        await limiter.start()
    try:
        yield
    finally:
        if limiter is not None:
            await limiter.stop()
        if verifier is not None:
            await verifier.close()


async def remote_events_ctx(app: web.Application) -> AsyncIterator[None]:
    feed = RemoteEvents(
        app[DSN],
        app[BUS],
        app[ORIGIN],
        channels={INDEXED_CHANNEL: Indexed.from_payload},
        statement_timeout=app[SETTINGS].db_statement_timeout,
    )
    app[REMOTE_EVENTS] = feed
    feed.start()
    try:
        yield
    finally:
        await feed.stop()


async def shared_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis layer of the cache, when a Redis is configured (no connection is made yet)."""
    settings = app[SETTINGS]
    if settings.redis_url is None or not settings.cache_enabled:
        yield
        return
    store = SharedStore(
        settings.redis_url,
        settings.redis_prefix,
        app[CATALOG_ID].hex,
        cache_ttls(settings),
        timeout=settings.redis_timeout,
        retry=settings.redis_retry,
    )
    await store.start()
    app[SHARED_CACHE] = store
    try:
        yield
    finally:
        await store.stop()


def cache_ttls(settings: Settings) -> dict[str, float]:
    """Each kind's TTL: its default, or the CINEMA_CACHE_TTLS override."""
    return {name: kind.ttl for name, kind in KINDS.items()} | parse_ttls(settings.cache_ttls)


async def search_backend_ctx(app: web.Application) -> AsyncIterator[None]:
    """The backend object; the indexer creates the index itself (and retries while the backend is down)."""
    backend = open_backend(app[SETTINGS], app[POOL], app[CATALOG_ID])
    app[SEARCH_BACKEND] = backend
    try:
        yield
    finally:
        await backend.close()


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bucket's client (S3) or the media folder (local), and the folder request bodies spool to."""
    settings = app[SETTINGS]
    spool_dir(settings).mkdir(parents=True, exist_ok=True)
    async with open_storage(settings) as storage:
        app[STORAGE] = storage
        yield


def _actors_ctx(on_fatal: Callable[[Actor], None] | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def actors_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        options = {"mailbox_size": settings.mailbox_size, "ask_timeout": settings.ask_timeout}
        async with ActorSystem(on_failure=on_fatal, shutdown_timeout=settings.shutdown_timeout) as system:
            app[ACTORS] = system
            app[CATALOG] = system.spawn(CatalogActor(app[POOL], app[BUS], app[ORIGIN], **options))
            if settings.cache_enabled:
                cache = CacheActor(
                    app[CATALOG],
                    app[BUS],
                    KINDS.values(),
                    cache_ttls(settings),
                    max_entries=settings.cache_entries,
                    max_bytes=settings.cache_bytes,
                    shared=app.get(SHARED_CACHE),
                    etag_key=app[CATALOG_ID].bytes,
                    **options,
                )
                app[CACHE] = system.spawn(cache)
            app[INDEXER] = system.spawn(
                IndexerActor(
                    app[DSN],
                    app[SEARCH_BACKEND],
                    app[BUS],
                    app[ORIGIN],
                    batch_size=settings.search_batch_size,
                    flush_delay=settings.search_flush_delay,
                    poll_interval=settings.search_poll_interval,
                    statement_timeout=settings.db_statement_timeout,
                    concurrency=settings.db_pool_size,
                    **options,
                )
            )
            app[UPLOADER] = system.spawn(
                UploaderActor(
                    app[DSN], app[STORAGE], app[BUS], settings, app[ORIGIN], server_settings=SESSION, **options
                )
            )
            yield

    return actors_ctx


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connects in the background: a broker that is down delays nothing (readiness says degraded)."""
    url = app[SETTINGS].amqp_url
    if url is None:
        yield
        return
    broker = Broker(url)
    app[BROKER] = broker
    broker.start()
    try:
        yield
    finally:
        await broker.stop()


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.amqp_url is None:
        yield
        return
    relay = OutboxRelay(
        app[DSN],
        app[BUS],
        app[BROKER],
        Topology(settings.amqp_prefix),
        batch_size=settings.relay_batch_size,
        poll_interval=settings.relay_poll_interval,
        retention_hours=settings.outbox_retention_hours,
        dedup_hours=settings.command_dedup_hours,
        statement_timeout=settings.db_statement_timeout,
    )
    app[RELAY] = relay
    relay.start()
    try:
        yield
    finally:
        await relay.stop(grace=RELAY_GRACE)


async def command_consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.amqp_url is None:
        yield
        return
    consumer = CommandConsumer(
        app[BROKER], app[CATALOG], Topology(settings.amqp_prefix), prefetch=settings.amqp_prefetch
    )
    app[COMMAND_CONSUMER] = consumer
    consumer.start()
    try:
        yield
    finally:
        await consumer.stop()


async def live_search_ctx(app: web.Application) -> AsyncIterator[None]:
    live = LiveSearch(app[BUS], lambda queries, first, last: app[INDEXER].ask(MatchLive(tuple(queries), first, last)))
    app[LIVE_SEARCH] = live
    live.start()
    try:
        yield
    finally:
        await live.stop()


async def close_streams(app: web.Application) -> None:
    await app[STREAM_CLIENTS].close_all()

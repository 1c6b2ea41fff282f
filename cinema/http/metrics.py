"""`GET /metrics`: the process's metrics in the Prometheus text format (rendered by aioprometheus).

Values are read at the scrape from where they are kept (route counters, actor stats, the
cache's, the relay's, the indexer's and the command consumer's counters, the pool), copied
into a fresh aioprometheus registry and rendered. A process reports itself only: with several
workers each one also serves this on its own port (`CINEMA_METRICS_PORT` + its index, see
cinema/serve.py) and Prometheus scrapes every port; `sum()` over the `instance` label gives the
service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import asyncpg
import structlog
from aiohttp import web
from aioprometheus import histogram as aioprometheus_histogram
from aioprometheus.collectors import Counter, Gauge, Registry
from aioprometheus.collectors import Histogram as PrometheusHistogram
from aioprometheus.renderer import render

from cinema.http.keys import (
    ACTORS,
    CACHE,
    COMMAND_CONSUMER,
    INDEXER,
    LIVE_SEARCH,
    POOL,
    RELAY,
    ROUTE_METRICS,
    SHARED_CACHE,
    STREAM_CLIENTS,
    UPLOADER,
)
from cinema.http.spec import Raw, describe
from cinema.metrics import Histogram

log = structlog.get_logger("cinema.metrics")

routes = web.RouteTableDef()

BACKLOG_TIMEOUT = 1.0  # seconds the scrape waits for the outbox backlog count
COUNT_BACKLOG = "SELECT count(*) FROM outbox WHERE published_at IS NULL"

Labels = dict[str, str]


@routes.get("/metrics")
@describe(
    "This process's metrics in the Prometheus text format",
    tag="operations",
    response=Raw(("text/plain",), {"type": "string"}),
)
async def metrics(request: web.Request) -> web.Response:
    return await metrics_response(request.app, request)


async def metrics_response(app: web.Application, request: web.Request) -> web.Response:
    """The metrics of `app` (the main application, also when served on the metrics port)."""
    registry = await collect(app)
    body, headers = render(registry, request.headers.getall("Accept", []))
    return web.Response(body=body, headers=headers)


async def collect(app: web.Application) -> Registry:
    registry = Registry()
    out = _Families(registry)
    _http(out, app)
    _actors(out, app)
    _cache(out, app)
    _pool(out, app)
    await _relay(out, app)
    _indexer(out, app)
    _commands(out, app)
    uploader = app.get(UPLOADER)
    out.counter(
        "cinema_uploads_total",
        "Uploads this process finished, by status (done, failed), and transient storage errors retried.",
        [] if uploader is None else [({"status": status}, n) for status, n in uploader.outcomes.items()],
    )
    clients = app[STREAM_CLIENTS]
    out.gauge("cinema_websocket_connections", "Open streaming-search websockets.", [({}, len(clients.open))])
    out.counter(
        "cinema_websocket_dropped_total",
        "Streaming-search clients disconnected for not reading.",
        [({}, clients.dropped)],
    )
    live = app.get(LIVE_SEARCH)
    out.gauge("cinema_live_queries", "Live search queries open on this process.", [({}, len(live or ()))])
    return registry


class _Families:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, series: Iterable[tuple[Labels, float]]) -> None:
        collector = Counter(name, doc, registry=self.registry)
        for labels, value in series:
            collector.set(labels, value)

    def gauge(self, name: str, doc: str, series: Iterable[tuple[Labels, float]]) -> None:
        collector = Gauge(name, doc, registry=self.registry)
        for labels, value in series:
            collector.set(labels, value)

    def histogram(self, name: str, doc: str, series: Iterable[tuple[Labels, Histogram]]) -> None:
        collector: PrometheusHistogram | None = None
        for labels, source in series:
            if collector is None:
                collector = PrometheusHistogram(name, doc, registry=self.registry, buckets=source.bounds)
            value = aioprometheus_histogram.Histogram(*source.bounds)
            total = 0
            for bound, count in zip(value.buckets, source.counts, strict=True):
                total += count
                value.buckets[bound] = total
            value.observations = total
            value.sum = source.sum
            collector.set_value(labels, value)
        if collector is None:  # no series yet: the family is still there, empty
            PrometheusHistogram(name, doc, registry=self.registry)


def _http(out: _Families, app: web.Application) -> None:
    routes_ = app.get(ROUTE_METRICS, [])
    out.counter(
        "cinema_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
        (
            ({"route": r.route, "method": r.method, "status": str(status)}, count)
            for r in routes_
            for status, count in r.statuses.items()
        ),
    )
    out.histogram(
        "cinema_http_request_duration_seconds",
        "Time from a request's arrival at the edge to its response, by route template and method.",
        (({"route": r.route, "method": r.method}, r.latency) for r in routes_ if r.statuses),
    )
    out.gauge(
        "cinema_http_requests_in_flight",
        "HTTP requests being served, by route template and method.",
        (({"route": r.route, "method": r.method}, r.in_flight) for r in routes_ if r.statuses or r.in_flight),
    )


def _actors(out: _Families, app: web.Application) -> None:
    system = app.get(ACTORS)
    actors = [] if system is None else system.actors
    stats = [(actor, actor.stats()) for actor in actors]
    out.gauge("cinema_actor_mailbox_messages", "Messages waiting in an actor's mailbox.", _per(stats, "mailbox"))
    out.gauge("cinema_actor_mailbox_capacity", "Capacity of an actor's mailbox.", _per(stats, "mailbox_size"))
    out.gauge("cinema_actor_messages_in_flight", "Messages an actor is handling now.", _per(stats, "in_flight"))
    out.counter("cinema_actor_restarts_total", "Restarts of an actor's loop after a crash.", _per(stats, "restarts"))
    kinds = [(actor.name, kind.__name__, counts) for actor in actors for kind, counts in actor.kinds.items()]
    out.counter(
        "cinema_actor_messages_handled_total",
        "Messages an actor handled (answers included), by kind of message.",
        (({"actor": name, "kind": kind}, counts.handled) for name, kind, counts in kinds),
    )
    out.counter(
        "cinema_actor_messages_failed_total",
        "Messages whose handling raised an unexpected error, by kind of message.",
        (({"actor": name, "kind": kind}, counts.failed) for name, kind, counts in kinds),
    )
    out.histogram(
        "cinema_actor_message_duration_seconds",
        "Time an actor took to handle a message.",
        (({"actor": actor.name}, actor.latency) for actor in actors),
    )


def _per(stats: Iterable[tuple[object, object]], field: str) -> list[tuple[Labels, float]]:
    return [({"actor": getattr(s, "name")}, getattr(s, field)) for _, s in stats]  # noqa: B009


def _cache(out: _Families, app: web.Application) -> None:
    cache = app.get(CACHE)
    hits: list[tuple[Labels, float]] = []
    misses: list[tuple[Labels, float]] = []
    invalidations: list[tuple[Labels, float]] = []
    errors: list[tuple[Labels, float]] = []
    size: list[tuple[Labels, float]] = []
    if cache is not None:
        s = cache.cache_stats()
        memory, redis = {"layer": "memory"}, {"layer": "redis"}
        hits.append((memory, s.hits))
        # What the in-process layer could not answer went to the actor: joined another read,
        # found in Redis, or read from the catalog.
        misses.append((memory, s.joined + s.shared_hits + s.misses))
        invalidations.append((memory, s.invalidations))
        size += [({"unit": "entries"}, s.entries), ({"unit": "bytes"}, s.bytes)]
        if SHARED_CACHE in app:
            hits.append((redis, s.shared_hits))
            misses.append((redis, s.misses))
            invalidations.append((redis, s.invalidations))
            errors.append((redis, s.errors))
        out.counter("cinema_cache_flushes_total", "Whole-cache drops after missed events.", [({}, s.flushes)])
        out.counter("cinema_cache_refused_total", "Stores refused because a write changed the key.", [({}, s.refused)])
    out.counter("cinema_cache_hits_total", "Cached reads answered, by layer.", hits)
    out.counter("cinema_cache_misses_total", "Cached reads a layer could not answer, by layer.", misses)
    out.counter("cinema_cache_invalidations_total", "Cache counters bumped by events, by layer.", invalidations)
    out.counter("cinema_cache_errors_total", "Failed operations of a cache layer (Redis).", errors)
    out.gauge("cinema_cache_size", "Size of the in-process cache layer.", size)


def _pool(out: _Families, app: web.Application) -> None:
    pool = app.get(POOL)
    if pool is None:
        return
    size = pool.get_size()
    out.gauge("cinema_db_pool_connections", "Open connections of the database pool.", [({}, size)])
    out.gauge("cinema_db_pool_connections_in_use", "Pooled connections lent out.", [({}, size - pool.get_idle_size())])
    out.gauge("cinema_db_pool_max_connections", "Most connections the pool opens.", [({}, pool.get_max_size())])


async def _relay(out: _Families, app: web.Application) -> None:
    relay = app.get(RELAY)
    leading = relay is not None and relay.leading.is_set()
    backlog: list[tuple[Labels, float]] = []
    if leading:
        # Only the leader reports it: every process sees the same table, and a sum over the
        # processes must not count it twice.
        try:
            async with asyncio.timeout(BACKLOG_TIMEOUT):
                backlog.append(({}, await app[POOL].fetchval(COUNT_BACKLOG)))
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("metrics_backlog_unavailable", error=repr(exc))
    out.gauge("cinema_outbox_backlog", "Committed events not yet confirmed by RabbitMQ (the relay leader).", backlog)
    out.gauge("cinema_relay_leader", "1 on the process relaying the outbox.", [({}, int(leading))])
    out.counter(
        "cinema_relay_published_total",
        "Events confirmed by RabbitMQ and marked published.",
        [({}, relay.published)] if relay is not None else [],
    )
    out.histogram(
        "cinema_relay_lag_seconds",
        "Seconds from an event's commit to the broker's confirm.",
        [({}, relay.lag)] if relay is not None else [],
    )


def _indexer(out: _Families, app: web.Application) -> None:
    indexer = app.get(INDEXER)
    if indexer is None:
        return
    stats = indexer.indexer_stats()
    out.gauge("cinema_indexer_leader", "1 on the process indexing the outbox.", [({}, int(stats.leader))])
    out.counter("cinema_indexer_events_total", "Events made searchable.", [({}, stats.events)])
    out.counter(
        "cinema_indexer_failed_flushes_total", "Index writes that failed (retried).", [({}, stats.failed_flushes)]
    )
    lag: list[tuple[Labels, float]] = [] if stats.lag_ms_last is None else [({}, stats.lag_ms_last / 1000)]
    out.gauge("cinema_indexer_lag_last_seconds", "Index lag of the last event indexed.", lag)
    out.histogram(
        "cinema_indexer_lag_seconds",
        "Seconds from an event's commit to its batch being searchable.",
        [({}, indexer.lag)],
    )
    out.histogram("cinema_indexer_batch_events", "Events per indexer batch.", [({}, indexer.batch_sizes)])


def _commands(out: _Families, app: web.Application) -> None:
    consumer = app.get(COMMAND_CONSUMER)
    out.counter(
        "cinema_amqp_commands_consumed_total",
        "Commands received from RabbitMQ.",
        [({}, consumer.consumed)] if consumer is not None else [],
    )
    out.counter(
        "cinema_amqp_commands_acked_total",
        "Commands acknowledged (applied, recognised as redeliveries, or dead-lettered).",
        [({}, consumer.acked)] if consumer is not None else [],
    )
    out.counter(
        "cinema_amqp_commands_dead_lettered_total",
        "Commands dead-lettered, by reason (the problem type).",
        [] if consumer is None else [({"reason": slug}, n) for slug, n in consumer.dead_lettered.items()],
    )

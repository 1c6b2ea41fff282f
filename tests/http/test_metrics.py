"""GET /metrics: every family, with values that match the traffic the test made."""

from __future__ import annotations

import attrs
import pytest

from cinema.app import create_app
from cinema.http.keys import INDEXER, POOL
from tests.conftest import eventually
from tests.http.movie_support import MOVIES, create_movie
from tests.http.test_search_stream import STREAM, frames_until_done
from tests.http.test_uploads import accepted
from tests.prometheus import scrape
from tests.storage_support import finished, png

# Every family the service exports, whatever is configured (the dashboard and the README name these).
FAMILIES = {
    "cinema_http_requests_total": "counter",
    "cinema_http_request_duration_seconds": "histogram",
    "cinema_http_requests_in_flight": "gauge",
    "cinema_actor_mailbox_messages": "gauge",
    "cinema_actor_mailbox_capacity": "gauge",
    "cinema_actor_messages_in_flight": "gauge",
    "cinema_actor_messages_handled_total": "counter",
    "cinema_actor_messages_failed_total": "counter",
    "cinema_actor_message_duration_seconds": "histogram",
    "cinema_actor_restarts_total": "counter",
    "cinema_cache_hits_total": "counter",
    "cinema_cache_misses_total": "counter",
    "cinema_cache_invalidations_total": "counter",
    "cinema_cache_errors_total": "counter",
    "cinema_cache_flushes_total": "counter",
    "cinema_cache_refused_total": "counter",
    "cinema_cache_size": "gauge",
    "cinema_db_pool_connections": "gauge",
    "cinema_db_pool_connections_in_use": "gauge",
    "cinema_db_pool_max_connections": "gauge",
    "cinema_outbox_backlog": "gauge",
    "cinema_relay_leader": "gauge",
    "cinema_relay_published_total": "counter",
    "cinema_relay_lag_seconds": "histogram",
    "cinema_indexer_leader": "gauge",
    "cinema_indexer_events_total": "counter",
    "cinema_indexer_failed_flushes_total": "counter",
    "cinema_indexer_lag_last_seconds": "gauge",
    "cinema_indexer_lag_seconds": "histogram",
    "cinema_indexer_batch_events": "histogram",
    "cinema_amqp_commands_consumed_total": "counter",
    "cinema_amqp_commands_acked_total": "counter",
    "cinema_amqp_commands_dead_lettered_total": "counter",
    "cinema_websocket_connections": "gauge",
    "cinema_websocket_dropped_total": "counter",
    "cinema_live_queries": "gauge",
    "cinema_uploads_total": "counter",
}
GENRE = "/api/v1/genres/{id}"


async def test_every_family_is_exported_with_its_type(client):
    metrics = await scrape(client)
    assert metrics.types == FAMILIES


async def test_requests_are_counted_by_route_template_method_and_status(client):
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    for _ in range(5):
        assert (await client.get(f"/api/v1/genres/{genre['id']}")).status == 200
    for _ in range(2):
        assert (await client.get("/api/v1/genres/999")).status == 404
    assert (await client.get("/no/such/path")).status == 404

    metrics = await scrape(client)
    assert metrics.value("cinema_http_requests_total", route=GENRE, method="GET", status=200) == 5
    assert metrics.value("cinema_http_requests_total", route=GENRE, method="GET", status=404) == 2
    assert metrics.value("cinema_http_requests_total", route="/api/v1/genres", method="POST", status=201) == 1
    assert metrics.value("cinema_http_requests_total", route="unmatched", method="*", status=404) == 1
    # Never the raw path: a label per id would be a series per movie.
    assert all(labels.get("route") != "/api/v1/genres/1" for _, labels, _ in metrics.samples)
    assert metrics.value("cinema_http_request_duration_seconds_count", route=GENRE, method="GET") == 7
    assert metrics.value("cinema_http_request_duration_seconds_bucket", route=GENRE, method="GET", le="+Inf") == 7
    assert 0 < metrics.value("cinema_http_request_duration_seconds_sum", route=GENRE, method="GET") < 7 * 5
    assert metrics.value("cinema_http_requests_in_flight", route=GENRE, method="GET") == 0
    # The scrape in progress is the one request in flight, and its own count comes after it.
    assert metrics.value("cinema_http_requests_in_flight", route="/metrics", method="GET") == 1
    assert (await scrape(client)).value("cinema_http_requests_total", route="/metrics", status=200) == 1


async def test_actor_messages_are_counted_by_kind(client):
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    assert (await client.get(f"/api/v1/genres/{genre['id']}")).status == 200
    assert (await client.get("/api/v1/genres/999")).status == 404  # an answer, not a failure

    metrics = await scrape(client)
    handled = "cinema_actor_messages_handled_total"
    assert metrics.value(handled, actor="catalog", kind="CreateGenres") == 1
    assert metrics.value(handled, actor="catalog", kind="GetGenre") == 2
    assert metrics.value(handled, actor="cache", kind="Fetch") == 2
    assert metrics.value("cinema_actor_messages_failed_total", actor="catalog", kind="GetGenre") == 0
    assert metrics.value("cinema_actor_message_duration_seconds_count", actor="catalog") >= 3
    for actor in ("catalog", "cache", "indexer"):
        assert metrics.value("cinema_actor_mailbox_messages", actor=actor) == 0
        assert metrics.value("cinema_actor_mailbox_capacity", actor=actor) == 1000
        assert metrics.value("cinema_actor_restarts_total", actor=actor) == 0


async def test_cache_hits_and_misses_of_the_in_process_layer(client):
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    for _ in range(4):
        assert (await client.get(f"/api/v1/genres/{genre['id']}")).status == 200
    assert (await client.patch(f"/api/v1/genres/{genre['id']}", json={"name": "Dramas"})).status == 200

    metrics = await scrape(client)
    assert metrics.value("cinema_cache_misses_total", layer="memory") == 1
    assert metrics.value("cinema_cache_hits_total", layer="memory") == 3
    assert metrics.value("cinema_cache_invalidations_total", layer="memory") >= 1
    assert metrics.get("cinema_cache_hits_total", layer="redis") is None  # no Redis configured
    assert metrics.value("cinema_cache_size", unit="entries") == 0  # the patch dropped it


async def test_cache_layers_with_redis(aiohttp_client, cache_settings, db):
    client = await aiohttp_client(create_app(cache_settings))
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    assert (await client.get(f"/api/v1/genres/{genre['id']}")).status == 200
    # A second process, with its own in-process layer, finds the entry in Redis.
    other = await aiohttp_client(create_app(cache_settings))
    assert (await other.get(f"/api/v1/genres/{genre['id']}")).status == 200

    first, second = await scrape(client), await scrape(other)
    assert first.value("cinema_cache_misses_total", layer="redis") == 1
    assert first.value("cinema_cache_hits_total", layer="redis") == 0
    assert second.value("cinema_cache_hits_total", layer="redis") == 1
    assert second.value("cinema_cache_misses_total", layer="memory") == 1
    assert second.value("cinema_cache_errors_total", layer="redis") == 0


async def test_the_pool_and_the_indexer(client, app, db):
    assert (await client.post("/api/v1/genres/bulk", json=[{"name": n} for n in ("Drama", "Noir")])).status == 201
    await eventually(lambda: app[INDEXER].indexer_stats().events == 2)

    metrics = await scrape(client)
    pool = app[POOL]
    assert metrics.value("cinema_db_pool_connections") == pool.get_size() >= 1
    assert metrics.value("cinema_db_pool_connections_in_use") == 0
    assert metrics.value("cinema_db_pool_max_connections") == pool.get_max_size()
    assert metrics.value("cinema_indexer_leader") == 1
    assert metrics.value("cinema_indexer_events_total") == 2
    assert metrics.value("cinema_indexer_lag_seconds_count") == 2
    batches = app[INDEXER].indexer_stats().batches
    assert metrics.value("cinema_indexer_batch_events_count") == batches
    assert metrics.value("cinema_indexer_batch_events_sum") == 2
    assert metrics.value("cinema_indexer_lag_last_seconds") >= 0
    # Without RabbitMQ there is no relay: the process does not claim an outbox backlog.
    assert metrics.value("cinema_relay_leader") == 0
    assert metrics.get("cinema_outbox_backlog") is None


async def test_websockets_and_live_queries_are_gauged(client):
    async with client.ws_connect(STREAM) as ws, client.ws_connect(STREAM) as idle:
        await ws.send_json({"id": "live", "q": "noir", "type": ["genre"], "live": True})
        await frames_until_done(ws, "live")
        metrics = await scrape(client)
        assert metrics.value("cinema_websocket_connections") == 2
        assert metrics.value("cinema_live_queries") == 1
        await idle.close()
    await eventually(lambda: _gauge(client, "cinema_websocket_connections", 0))


async def test_uploads_are_counted_by_status(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, upload_poll_interval=0.2)))
    movie = await create_movie(client, "Heat")
    whole = png(300, 300)
    for body in (whole, whole[: len(whole) // 2]):  # stored, then one that cannot be decoded
        await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=body)))
    metrics = await scrape(client)
    assert metrics.value("cinema_uploads_total", status="done") == 1
    assert metrics.value("cinema_uploads_total", status="failed") == 1
    assert metrics.value("cinema_uploads_total", status="retried") == 0


def _gauge(client, name: str, expected: float) -> object:
    async def check() -> bool:
        return (await scrape(client)).value(name) == expected

    return check()


@pytest.fixture
def quiet_settings(settings):
    return attrs.evolve(settings, metrics=False)


async def test_metrics_can_be_turned_off(aiohttp_client, quiet_settings, db):
    client = await aiohttp_client(create_app(quiet_settings))
    assert (await client.get("/metrics")).status == 404

"""A Redis of the test's own, killed or paused mid-test: no client errors, no stale reads after."""

from __future__ import annotations

import asyncio
import secrets

import attrs
import pytest
import structlog

from cinema.app import create_app
from cinema.http.keys import CACHE, REMOTE_EVENTS
from tests.conftest import eventually

BASE = "/api/v1/genres"


@pytest.fixture
def own_redis_settings(settings, redis_process):
    return attrs.evolve(
        settings,
        redis_url=redis_process.url,
        redis_prefix=f"cinema_test_{secrets.token_hex(4)}",
        redis_timeout=0.2,
        redis_retry=0.05,
    )


async def start(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)
    return client


async def name_at(client, url):
    resp = await client.get(url)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["name"], resp.headers["X-Cache"]


def warnings(logs):
    return [entry for entry in logs if entry["event"] == "cache_redis_unavailable"]


async def test_redis_killed_serves_from_postgres_without_errors_then_the_cache_resumes(
    aiohttp_client, own_redis_settings, redis_process, db
):
    # Retried at almost every request, so that the warning sees many failures.
    own_redis_settings = attrs.evolve(own_redis_settings, redis_retry=0.001)
    client = await start(aiohttp_client, own_redis_settings)
    cache = client.app[CACHE]
    genre = await (await client.post(BASE, json={"name": "Name 0"})).json()
    url = f"{BASE}/{genre['id']}"
    assert await name_at(client, url) == ("Name 0", "miss")
    redis_process.kill()
    with structlog.testing.capture_logs() as logs:
        for i in range(1, 11):
            resp = await client.patch(url, json={"name": f"Name {i}"})
            assert resp.status == 200
            assert (await name_at(client, url))[0] == f"Name {i}"  # read-your-writes, Redis or not
            assert (await client.get(f"{BASE}?limit={i}")).status == 200
    assert cache.cache_stats().errors >= 10
    assert len(warnings(logs)) == 1  # once per interval, however many failures
    assert cache.shared.dirty  # it missed invalidations: the epoch goes up when Redis is back

    redis_process.start()  # empty, as a restarted cache Redis is
    await eventually(lambda: not cache.shared.dirty, timeout=5)
    errors = cache.cache_stats().errors
    second = await start(aiohttp_client, own_redis_settings)
    resp = await client.get(f"{BASE}?sort=name&limit=5")
    assert resp.headers["X-Cache"] == "miss"
    shared_hit = await second.get(f"{BASE}?sort=name&limit=5")  # stored in Redis by the first
    assert shared_hit.headers["X-Cache"] == "hit"
    assert await shared_hit.read() == await resp.read()
    assert cache.cache_stats().errors == errors


async def test_redis_paused_with_its_data_never_serves_what_it_missed_once_it_answers_again(
    aiohttp_client, own_redis_settings, redis_process, db
):
    first = await start(aiohttp_client, own_redis_settings)
    second = await start(aiohttp_client, own_redis_settings)
    genre = await (await first.post(BASE, json={"name": "Drama"})).json()
    url = f"{BASE}/{genre['id']}"
    assert await name_at(first, url) == ("Drama", "miss")  # stored in Redis
    assert await name_at(second, url) == ("Drama", "hit")  # from Redis

    redis_process.pause()  # it keeps "Drama" and stops answering: a hung Redis
    resp = await first.patch(url, json={"name": "Dramas"})  # its invalidation in Redis times out
    assert resp.status == 200
    assert (await name_at(first, url))[0] == "Dramas"

    async def second_converged():
        return (await name_at(second, url))[0] == "Dramas"

    await eventually(second_converged, timeout=5)
    assert first.app[CACHE].shared.dirty

    redis_process.resume()  # "Drama" is still in Redis, under counters the write could not raise
    await eventually(lambda: not first.app[CACHE].shared.dirty, timeout=5)
    await eventually(lambda: not second.app[CACHE].shared.dirty, timeout=5)
    third = await start(aiohttp_client, own_redis_settings)  # nothing of its own: it reads Redis
    assert await name_at(third, url) == ("Dramas", "miss")
    assert await name_at(third, url) == ("Dramas", "hit")


async def test_a_slow_redis_costs_at_most_its_timeout_per_request(
    aiohttp_client, own_redis_settings, redis_process, db
):
    client = await start(aiohttp_client, attrs.evolve(own_redis_settings, redis_retry=60.0))
    genre = await (await client.post(BASE, json={"name": "Drama"})).json()
    redis_process.pause()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await name_at(client, f"{BASE}/{genre['id']}"))[0] == "Drama"  # one timeout, then PostgreSQL
    assert loop.time() - started < 0.2 + 1.0
    started = loop.time()
    for i in range(20):  # Redis is left alone for CINEMA_REDIS_RETRY: no more waiting on it
        assert (await client.get(f"{BASE}?limit={i + 1}")).status == 200
    assert loop.time() - started < 1.0
    redis_process.resume()

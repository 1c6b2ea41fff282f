"""Redis cut, stalled and slowed behind a proxy, during reads and writes, then back.

What the user sees: every read and write answers (no 5xx), reads come from PostgreSQL within
about the Redis timeout while Redis cannot answer, no read is older than a write that was
acknowledged before it, and the shared cache is used again once Redis is back.
"""

from __future__ import annotations

import asyncio

import attrs
import pytest

from cinema.app import create_app
from cinema.http.keys import CACHE, REMOTE_EVENTS
from tests.conftest import eventually
from tests.faults.conftest import Clock

BASE = "/api/v1/genres"
TIMEOUT = 0.2  # CINEMA_REDIS_TIMEOUT of the proxied instance
# What a read may take while Redis does not answer: the timeout, then PostgreSQL, on a loaded machine.
BOUND = TIMEOUT + 0.8

FAULTS = {
    "cut": lambda proxy: proxy.down(),  # connections reset, new ones refused
    "stall": lambda proxy: proxy.stall(),  # connections accepted, nothing answered
    "slow": lambda proxy: proxy.slow(4 * TIMEOUT),  # answers, always too late
}


async def start(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)
    return client


async def read(client, url, clock=None):
    with clock or Clock():
        resp = await client.get(url)
        body = await resp.json()
    assert resp.status == 200, body
    return body, resp.headers["X-Cache"]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_reads_and_writes_go_on_from_postgres_and_are_never_stale(
    aiohttp_client, cache_settings, redis_proxy, redis_server_url, db, fault
):
    # No in-process layer: every read goes to Redis, so every read meets the fault.
    direct = attrs.evolve(cache_settings, cache_entries=0, redis_timeout=TIMEOUT, redis_retry=0.1)
    proxied = attrs.evolve(direct, redis_url=redis_proxy.via(redis_server_url))
    writer = await start(aiohttp_client, proxied)  # the instance whose Redis goes away
    other = await start(aiohttp_client, direct)  # another instance, still reaching Redis
    genre = await (await writer.post(BASE, json={"name": "Name 0"})).json()
    url, page = f"{BASE}/{genre['id']}", f"{BASE}?sort=name"
    assert (await read(writer, url))[1] == "miss"

    async def from_redis() -> bool:  # a first store may miss the 0.2 s deadline on a loaded machine
        return await read(writer, url) == (genre, "hit")

    await eventually(from_redis, timeout=10)
    assert (await read(other, url))[0]["name"] == "Name 0"
    assert (await read(other, page))[1] == "miss"

    FAULTS[fault](redis_proxy)
    clock = Clock()
    for i in range(1, 9):
        with clock:
            resp = await writer.patch(url, json={"name": f"Name {i}"})
        assert resp.status == 200, await resp.text()
        assert (await read(writer, url, clock))[0]["name"] == f"Name {i}"  # read-your-writes
        [item] = (await read(writer, page, clock))[0]["items"]
        assert item["name"] == f"Name {i}"
        # The other instance hears of the write through PostgreSQL and raises the counters in
        # Redis itself: it never serves the entry the writer could not invalidate.
        await eventually(lambda: read_name(other, url, i), timeout=5)  # noqa: B023
        await eventually(lambda: read_page(other, page, i), timeout=5)  # noqa: B023
    assert clock.longest < BOUND, f"a request took {clock.longest:.2f}s while Redis did not answer"
    cache = writer.app[CACHE]
    assert cache.cache_stats().errors > 0

    redis_proxy.restore()
    await eventually(lambda: not cache.shared.dirty, timeout=5)
    hits = cache.cache_stats().shared_hits

    async def served_from_redis() -> bool:
        body, _ = await read(writer, url)
        assert body["name"] == "Name 8"
        return cache.cache_stats().shared_hits > hits

    await eventually(served_from_redis, timeout=5)
    assert (await read(other, url))[0]["name"] == "Name 8"
    [item] = (await read(writer, page))[0]["items"]
    assert item["name"] == "Name 8"


async def read_name(client, url, i):
    body, _ = await read(client, url)
    assert int(body["name"].split()[1]) <= i  # never ahead of what was written
    return body["name"] == f"Name {i}"


async def read_page(client, url, i):
    [item] = (await read(client, url))[0]["items"]
    return item["name"] == f"Name {i}"


async def test_stalled_redis_that_answers_late_never_hands_a_reply_to_the_wrong_command(
    aiohttp_client, cache_settings, redis_proxy, redis_server_url, db
):
    """Replies held during a stall arrive after their commands timed out: none of them may be
    taken for the answer to a later command (a stale entry, or a counter read as another)."""
    settings = attrs.evolve(
        cache_settings,
        cache_entries=0,
        redis_url=redis_proxy.via(redis_server_url),
        redis_timeout=TIMEOUT,
        redis_retry=0.01,
    )
    client = await start(aiohttp_client, settings)
    ids = []
    for n in range(5):
        ids.append((await (await client.post(BASE, json={"name": f"Genre {n}"})).json())["id"])
        await read(client, f"{BASE}/{ids[-1]}")
    for rounds in range(3):
        redis_proxy.stall()
        for n, genre_id in enumerate(ids):  # lookups that time out, their replies held
            body, _ = await read(client, f"{BASE}/{genre_id}")
            assert body["name"] == (f"Genre {n}" if rounds == 0 else f"Genre {n} {rounds - 1}")
        for n, genre_id in enumerate(ids):
            assert (await client.patch(f"{BASE}/{genre_id}", json={"name": f"Genre {n} {rounds}"})).status == 200
        redis_proxy.restore()  # the held replies arrive now
        for _ in range(3):
            for n, genre_id in enumerate(ids):
                body, _ = await read(client, f"{BASE}/{genre_id}")
                assert body == {"id": genre_id, "name": f"Genre {n} {rounds}", "slug": body["slug"]}

"""PostgreSQL cut behind a proxy while writes go on, then back.

What the user sees: while the database is away, requests that need it fail fast with a 503
problem (with Retry-After) and readiness says 503; once it is back the same process serves
again (the pool reconnects, no restart), and every write that was acknowledged, and every
change that committed, is in the event feed (`/api/v1/changes`) and the search index.
"""

from __future__ import annotations

import asyncio
import itertools

import attrs

from cinema.app import create_app
from cinema.http.keys import INDEXER, REMOTE_EVENTS
from tests.conftest import eventually
from tests.faults.conftest import Clock, assert_unavailable

FAST = 2.0  # seconds a request may take to say 503 while the database is down (loaded CI included)


async def test_requests_fail_fast_while_postgres_is_down_and_nothing_committed_is_lost(
    aiohttp_client, settings, pg_proxy, database_url, db
):
    client = await aiohttp_client(create_app(attrs.evolve(settings, database_url=pg_proxy.via(database_url))))
    await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)
    acknowledged: set[str] = set()
    statuses: set[int] = set()
    writing = asyncio.Event()
    names = (f"Genre {n}" for n in itertools.count())

    async def write_on() -> None:
        """A client that keeps writing through the outage."""
        while writing.is_set():
            name = next(names)
            resp = await client.post("/api/v1/genres", json={"name": name})
            statuses.add(resp.status)
            if resp.status == 201:
                acknowledged.add(name)
            else:
                await assert_unavailable(resp)
                await asyncio.sleep(0.01)  # a client backing off (the test's, not the service's, pace)

    writing.set()
    writer = asyncio.create_task(write_on())
    try:
        await eventually(lambda: len(acknowledged) >= 20)
        pg_proxy.down()
        clock = Clock()
        for limit in range(1, 6):
            with clock:
                await assert_unavailable(await client.get(f"/api/v1/genres?limit={limit}"))  # not cached
            with clock:
                await assert_unavailable(await client.post("/api/v1/genres", json={"name": f"Down {limit}"}))
            with clock:
                await assert_unavailable(await client.get("/health/ready"))
        assert clock.longest < FAST, f"a request took {clock.longest:.2f}s to fail"
        during = len(acknowledged)

        pg_proxy.restore()

        async def ready() -> bool:
            return (await client.get("/health/ready")).status == 200

        await eventually(ready, timeout=10)  # the same pool, reconnected
        await eventually(lambda: len(acknowledged) >= during + 20, timeout=10)
    finally:
        writing.clear()
        await writer
    assert statuses == {201, 503}

    # Every acknowledged write is stored; every committed change is in the feed, once, in order.
    stored = {row["name"]: row["id"] for row in await db.fetch("SELECT id, name FROM genres")}
    assert acknowledged <= set(stored)
    feed = []
    cursor = None
    while True:
        query = "?limit=1000" + (f"&since={cursor}" if cursor else "")
        page = await (await client.get(f"/api/v1/changes{query}")).json()
        if not page["items"]:
            break
        feed += page["items"]
        cursor = page["next_cursor"]
    assert [event["seq"] for event in feed] == sorted({event["seq"] for event in feed})
    assert sorted(event["entity_id"] for event in feed if event["type"] == "genre.created") == sorted(stored.values())

    # Downstream consumers reconnected by themselves: the search index holds every genre.
    await eventually(lambda: client.app[INDEXER].leader, timeout=10)
    indexed = f"SELECT count(*) = {len(stored)} FROM search_documents WHERE kind = 'genre'"
    await eventually(lambda: db.fetchval(indexed), timeout=20)
    await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)

"""PostgreSQL cut, or stalled and then healed with its old connections gone silent, behind a proxy
while writes go on.

What the user sees: while the database is away, requests that need it fail with a 503 problem
(with Retry-After) and readiness says 503; once it is back the same process serves again (the
pool reconnects, no restart), and every write that was acknowledged, and every change that
committed, is in the event feed (`/api/v1/changes`) and the search index, and other instances'
changes reach this instance's cache again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import asyncpg
import attrs
from aiohttp.test_utils import TestClient

from cinema.app import create_app
from cinema.http.keys import REMOTE_EVENTS
from tests.conftest import eventually
from tests.faults.conftest import Clock, assert_unavailable

FAST = 2.0  # seconds a request may take to say 503 while the database refuses (loaded CI included)
GENRES = "/api/v1/genres"


async def start(aiohttp_client, settings) -> TestClient:
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)
    return client


@contextlib.asynccontextmanager
async def writing(client: TestClient, writers: int = 1) -> AsyncIterator[set[str]]:
    """Clients that keep writing through the outage; yields the names acknowledged so far."""
    acknowledged: set[str] = set()
    statuses: set[int] = set()
    stop = asyncio.Event()
    names = (f"Genre {n}" for n in itertools.count())

    async def write_on() -> None:
        while not stop.is_set():
            name = next(names)
            resp = await client.post(GENRES, json={"name": name})
            statuses.add(resp.status)
            if resp.status == 201:
                acknowledged.add(name)
            else:
                await assert_unavailable(resp)
                await asyncio.sleep(0.01)  # a client backing off (the test's pace, not the service's)

    tasks = [asyncio.create_task(write_on()) for _ in range(writers)]
    try:
        await eventually(lambda: len(acknowledged) >= 20)
        yield acknowledged
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert statuses <= {201, 503}  # nothing else, whatever the outage did to each write


async def ready(client: TestClient) -> bool:
    return (await client.get("/health/ready")).status == 200


async def nothing_lost(client: TestClient, db: asyncpg.Connection, acknowledged: set[str]) -> None:
    """Every acknowledged write is stored; every committed change is in the feed, once, in
    order; the search index, fed by its own connection (this instance's or another's), holds
    every genre."""
    stored = {row["name"]: row["id"] for row in await db.fetch("SELECT id, name FROM genres")}
    assert acknowledged <= set(stored)
    feed = []
    cursor = None
    while True:
        query = "?limit=1000" + (f"&since={cursor}" if cursor else "")
        resp = await client.get(f"/api/v1/changes{query}")
        assert resp.status == 200
        page = await resp.json()
        if not page["items"]:
            break
        feed += page["items"]
        cursor = page["next_cursor"]
    assert [event["seq"] for event in feed] == sorted({event["seq"] for event in feed})
    assert sorted(event["entity_id"] for event in feed if event["type"] == "genre.created") == sorted(stored.values())
    indexed = f"SELECT count(*) = {len(stored)} FROM search_documents WHERE kind = 'genre'"
    await eventually(lambda: db.fetchval(indexed), timeout=30)


async def test_requests_fail_fast_while_postgres_is_down_and_nothing_committed_is_lost(
    aiohttp_client, settings, pg_proxy, database_url, db
):
    client = await start(aiohttp_client, attrs.evolve(settings, database_url=pg_proxy.via(database_url)))
    async with writing(client) as acknowledged:
        pg_proxy.down()
        clock = Clock()
        for limit in range(1, 6):
            with clock:
                await assert_unavailable(await client.get(f"{GENRES}?limit={limit}"))  # not cached
            with clock:
                await assert_unavailable(await client.post(GENRES, json={"name": f"Down {limit}"}))
            with clock:
                await assert_unavailable(await client.get("/health/ready"))
        assert clock.longest < FAST, f"a request took {clock.longest:.2f}s to fail"
        during = len(acknowledged)

        pg_proxy.restore()
        await eventually(lambda: ready(client), timeout=10)  # the same pool, reconnected
        await eventually(lambda: len(acknowledged) >= during + 20, timeout=10)
    await nothing_lost(client, db, acknowledged)
    await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)


async def test_a_silent_partition_ends_in_503s_and_the_service_recovers_by_itself(
    aiohttp_client, settings, pg_proxy, database_url, db
):
    """The connections open when the network went silent never answer again, nor close: the
    service must notice by itself (a deadline on every statement, a probe of the idle LISTEN
    connection), not wait for the kernel to give up on them after many minutes."""
    settings = attrs.evolve(settings, db_statement_timeout=2.0)
    client = await start(aiohttp_client, attrs.evolve(settings, database_url=pg_proxy.via(database_url)))
    other = await start(aiohttp_client, settings)  # another instance, on a sound network
    genre = await (await client.post(GENRES, json={"name": "Before"})).json()
    url = f"{GENRES}/{genre['id']}"
    assert (await (await client.get(url)).json())["name"] == "Before"  # cached by this instance
    async with writing(client, writers=4) as acknowledged:  # some are mid-transaction when it stalls
        pg_proxy.stall()
        clock = Clock()

        async def unavailable(url: str) -> None:
            with clock:
                await assert_unavailable(await client.get(url))

        # More reads than connections: every pooled connection, and new ones, hang.
        pages = [f"{GENRES}?limit={n}" for n in range(1, 2 * settings.db_pool_size + 1)]
        await asyncio.gather(*map(unavailable, pages), unavailable("/health/ready"))
        bound = settings.ask_timeout + FAST
        assert clock.longest < bound, f"a request took {clock.longest:.2f}s to fail"
        during = len(acknowledged)

        pg_proxy.heal()  # new connections work; the stalled ones stay silent for good
        await eventually(lambda: ready(client), timeout=30)
        await eventually(lambda: len(acknowledged) >= during + 20, timeout=30)
    await nothing_lost(client, db, acknowledged)

    # Other instances' changes reach this one's cache again.
    assert (await other.patch(url, json={"name": "After"})).status == 200

    async def fresh() -> bool:
        return (await (await client.get(url)).json())["name"] == "After"

    await eventually(fresh, timeout=30)


async def test_an_instance_frozen_mid_transaction_does_not_hold_up_the_others_writes(
    aiohttp_client, settings, pg_proxy, database_url, db
):
    """An instance stops talking in the middle of its transactions (its network, or the process
    itself, frozen), its sessions still open on the server: one of them may hold the lock that
    orders the outbox, and its other writers queue for it. The server ends each idle
    transaction, and the others write on: delayed, perhaps told 503 meanwhile, never stuck."""
    settings = attrs.evolve(settings, db_statement_timeout=2.0)  # idle transactions: 1 s
    writers = 4
    frozen = await start(aiohttp_client, attrs.evolve(settings, database_url=pg_proxy.via(database_url)))
    other = await start(aiohttp_client, settings)
    async with writing(frozen, writers=writers) as acknowledged:
        pg_proxy.stall()
        clock = Clock()
        with clock:
            for n in range(20):
                while (resp := await other.post(GENRES, json={"name": f"Other {n}"})).status != 201:
                    await assert_unavailable(resp)  # a client retries
        # Each frozen writer holds the lock for at most the idle limit, one after another.
        assert clock.longest < writers * 1.0 + settings.db_statement_timeout + FAST
        pg_proxy.restore()  # what was held arrives: the frozen instance carries on
        during = len(acknowledged)
        await eventually(lambda: len(acknowledged) >= during + 20, timeout=30)
    await nothing_lost(frozen, db, acknowledged | {f"Other {n}" for n in range(20)})

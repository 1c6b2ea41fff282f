"""Events committed by one app instance reach the bus of another, in commit order."""

from __future__ import annotations

import asyncio
import json

import pytest

from cinema.app import create_app
from cinema.bus.local import LocalBus, Missed
from cinema.bus.remote import RemoteEvents
from cinema.http.keys import BUS, POOL, REMOTE_EVENTS
from tests.conftest import eventually
from tests.faults.proxy import Proxy


@pytest.fixture
async def two_instances(aiohttp_client, settings, db):
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    for client in (first, second):
        await asyncio.wait_for(client.app[REMOTE_EVENTS].listening.wait(), 10)
    return first, second


async def test_another_instance_hears_of_each_commit_once_and_in_order(two_instances):
    first, second = two_instances
    own, other = first.app[BUS].subscribe("genre.*"), second.app[BUS].subscribe("genre.*")
    created = await (await first.post("/api/v1/genres", json={"name": "Drama"})).json()
    await first.patch(f"/api/v1/genres/{created['id']}", json={"name": "Dramas"})
    await first.delete(f"/api/v1/genres/{created['id']}")

    received = [await asyncio.wait_for(other.get(), 5) for _ in range(3)]
    assert [e.type for e in received] == ["genre.created", "genre.updated", "genre.deleted"]
    assert json.loads(received[0].data) == created
    assert json.loads(received[1].data)["name"] == "Dramas"
    assert received[2].data is None
    # The writing instance published its own events directly, and does not get them twice.
    assert [(await own.get()).type for _ in range(3)] == ["genre.created", "genre.updated", "genre.deleted"]
    assert own.get_nowait() is None


async def test_after_losing_its_connection_an_instance_announces_a_gap_and_listens_again(two_instances):
    first, second = two_instances
    subscription = second.app[BUS].subscribe("#")
    feed = second.app[REMOTE_EVENTS]
    async with first.app[POOL].acquire() as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND datname = current_database()"
        )
    assert await asyncio.wait_for(subscription.get(), 10) == Missed(None)
    await eventually(feed.listening.is_set)
    await first.post("/api/v1/genres", json={"name": "Western"})
    event = await asyncio.wait_for(subscription.get(), 5)
    assert event.type == "genre.created"


async def test_a_listening_connection_gone_silent_is_found_out_by_its_probe(database_url, db):
    """No notification, no reset: the probe's round trip misses its deadline, the feed reconnects
    and announces the gap."""
    async with await Proxy.to(database_url) as proxy:
        bus = LocalBus()
        subscription = bus.subscribe("#")
        feed = RemoteEvents(proxy.via(database_url), bus, "test", statement_timeout=0.3, probe_interval=0.1)
        feed.start()
        try:
            await asyncio.wait_for(feed.listening.wait(), 10)
            connections = proxy.connections
            proxy.stall()
            proxy.heal()  # the listening connection hears nothing more, and is never reset
            assert await asyncio.wait_for(subscription.get(), 10) == Missed(None)
            assert feed.listening.is_set()
            assert proxy.connections > connections  # a new one (and the cancel request of the probe)
        finally:
            await feed.stop()

"""The outbox relay against a real RabbitMQ: documented messages, order per entity, one leader,
nothing lost through a broker outage, and a crash between publishing and marking."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections import defaultdict

import aio_pika
import attrs
import pytest
from yarl import URL

from cinema.actors.catalog import CreateGenres, PatchGenre
from cinema.app import create_app
from cinema.bus.amqp import Broker
from cinema.bus.local import LocalBus
from cinema.bus.relay import OutboxRelay
from cinema.db.outbox import NewEvent, append_events, prune_published
from cinema.http.keys import BROKER, CATALOG, RELAY
from cinema.models import GenreCreate, GenrePatch
from tests.bus.conftest import events_queue, running, take
from tests.conftest import eventually
from tests.faults.proxy import Proxy

UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"


@pytest.fixture
async def client(aiohttp_client, amqp_settings, db):
    client = await aiohttp_client(create_app(amqp_settings))
    await running(client.app)
    return client


async def test_a_created_genre_arrives_with_the_documented_body_and_properties(client, amqp, topology, db):
    queue = await events_queue(amqp, topology)
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()

    [message] = await take(queue, 1)
    event = await db.fetchrow("SELECT id::text, occurred_at FROM outbox")
    assert message.routing_key == "genre.created"
    assert message.message_id == event["id"]
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", message.headers["traceparent"])
    body = json.loads(message.body)
    assert list(body) == ["id", "type", "occurred_at", "entity_id", "data"]
    assert body == {
        "id": event["id"],
        "type": "genre.created",
        "occurred_at": body["occurred_at"],
        "entity_id": genre["id"],
        "data": genre,
    }
    assert dt.datetime.fromisoformat(body["occurred_at"]) == event["occurred_at"]
    await eventually(lambda: db.fetchval("SELECT published_at IS NOT NULL FROM outbox"))


async def test_a_deleted_genre_arrives_with_null_data(client, amqp, topology):
    queue = await events_queue(amqp, topology, "genre.deleted")
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    await client.delete(f"/api/v1/genres/{genre['id']}")
    [message] = await take(queue, 1)
    assert json.loads(message.body)["data"] is None
    assert json.loads(message.body)["entity_id"] == genre["id"]


async def test_a_thousand_changes_arrive_complete_and_in_order_per_entity(client, amqp, topology, db):
    queue = await events_queue(amqp, topology)
    catalog = client.app[CATALOG]

    async def life_of_a_genre(n: int) -> None:
        [(genre_id, _)] = await catalog.ask(CreateGenres((GenreCreate(name=f"genre {n} v0"),)))
        for version in range(1, 20):
            await catalog.ask(PatchGenre(genre_id, GenrePatch(name=f"genre {n} v{version}")))

    # 50 genres changing at once: 50 x (1 create + 19 updates) events, interleaved in the outbox.
    await asyncio.gather(*(life_of_a_genre(n) for n in range(50)))
    messages = await take(queue, 1000, timeout=60)

    assert len({m.message_id for m in messages}) == 1000
    versions = defaultdict(list)
    for message in messages:
        body = json.loads(message.body)
        versions[body["entity_id"]].append(int(body["data"]["name"].rsplit("v", 1)[1]))
    assert len(versions) == 50
    assert all(seen == list(range(20)) for seen in versions.values())
    await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))


async def test_one_process_relays_and_another_takes_over_when_it_goes(
    aiohttp_client, amqp_settings, amqp, topology, db
):
    first = await aiohttp_client(create_app(amqp_settings))
    await running(first.app)
    second = await aiohttp_client(create_app(amqp_settings))
    await second.app[BROKER].channel()  # connected, so that it could lead
    queue = await events_queue(amqp, topology)
    await first.post("/api/v1/genres", json={"name": "Drama"})
    await second.post("/api/v1/genres", json={"name": "Comedy"})
    assert {json.loads(m.body)["data"]["name"] for m in await take(queue, 2)} == {"Drama", "Comedy"}
    assert not second.app[RELAY].leading.is_set()

    await first.close()  # the leader goes away: its connection, and with it the lock
    await asyncio.wait_for(second.app[RELAY].leading.wait(), 10)
    await second.post("/api/v1/genres", json={"name": "Western"})
    [message] = await take(queue, 1)
    assert json.loads(message.body)["data"]["name"] == "Western"


async def test_events_wait_in_the_outbox_while_the_broker_is_away(aiohttp_client, amqp_settings, amqp, topology, db):
    """The connection is cut while changes are made; once the broker is back every event arrives."""
    broker = URL(amqp_settings.amqp_url)
    proxy = await Proxy(broker.host or "127.0.0.1", broker.port or 5672).start()
    try:
        settings = attrs.evolve(amqp_settings, amqp_url=str(broker.with_port(proxy.port)))
        client = await aiohttp_client(create_app(settings))
        await running(client.app)
        queue = await events_queue(amqp, topology)

        async def create(names: range) -> set[int]:
            created = set()
            for n in names:
                resp = await client.post("/api/v1/genres", json={"name": f"genre {n}"})
                assert resp.status == 201  # writes go on whatever the broker does
                created.add((await resp.json())["id"])
            return created

        ids = await create(range(20))
        proxy.refusing = True
        proxy.cut()
        ids |= await create(range(20, 40))  # some of these are committed while the cut is noticed
        await eventually(lambda: client.app[BROKER].status == "degraded")
        ready = await client.get("/health/ready")
        assert ready.status == 200
        assert (await ready.json())["checks"]["broker"] == "degraded"
        ids |= await create(range(40, 60))
        assert await db.fetchval(UNPUBLISHED) > 0

        proxy.refusing = False
        messages = await take(queue, 60, timeout=60)  # the first 20 at least once, then the rest
        received = {json.loads(m.body)["entity_id"] for m in messages}
        while received != ids:
            received |= {json.loads(m.body)["entity_id"] for m in await take(queue, 1)}
        await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))
        assert (await (await client.get("/health/ready")).json())["checks"]["broker"] == "ok"
        assert proxy.connections >= 2  # it did reconnect through the proxy
    finally:
        await proxy.close()


async def test_a_crash_between_publishing_and_marking_publishes_again(amqp_server, database_url, amqp, topology, db):
    queue = await events_queue(amqp, topology)
    async with db.transaction():
        [event] = await append_events(db, [NewEvent("genre.created", 7, '{"id": 7}')])
    broker = Broker(amqp_server)
    broker.start()
    confirmed: list[int] = []

    async def die_here(seqs):
        confirmed.extend(seqs)
        await asyncio.Event().wait()  # the process is gone before it marks anything

    crashing = OutboxRelay(database_url, LocalBus(), broker, topology, poll_interval=0.05, before_mark=die_here)
    crashing.start()
    try:
        [first] = await take(queue, 1)
        await eventually(lambda: confirmed == [event.seq])
        await crashing.stop()
        assert await db.fetchval(UNPUBLISHED) == 1

        restarted = OutboxRelay(database_url, LocalBus(), broker, topology, poll_interval=0.05)
        restarted.start()
        try:
            [again] = await take(queue, 1)
            await eventually(lambda: db.fetchval("SELECT published_at IS NOT NULL FROM outbox"))
        finally:
            await restarted.stop()
    finally:
        await crashing.stop()
        await broker.stop()
    # Delivered twice, recognisably the same event: a consumer drops the second by its id.
    assert again.message_id == first.message_id == str(event.id)
    assert again.body == first.body


async def test_published_events_are_pruned_after_the_retention_and_unpublished_never(db):
    async with db.transaction():
        events = await append_events(db, [NewEvent("genre.created", n, None) for n in range(1, 5)])
    await db.execute("UPDATE outbox SET published_at = now() - interval '2 hours' WHERE seq <= $1", events[1].seq)
    await db.execute("UPDATE outbox SET published_at = now() WHERE seq = $1", events[2].seq)
    assert await prune_published(db, 3600, 1) == 1
    assert await prune_published(db, 3600, 10) == 1
    assert await db.fetchval("SELECT array_agg(entity_id ORDER BY seq) FROM outbox") == [3, 4]


async def test_without_a_broker_url_nothing_of_rabbitmq_starts(client_without_broker):
    assert BROKER not in client_without_broker.app
    assert RELAY not in client_without_broker.app
    ready = await client_without_broker.get("/health/ready")
    assert (await ready.json())["checks"] == {"database": "ok", "migrations": "ok", "catalog": "ok"}


@pytest.fixture
async def client_without_broker(aiohttp_client, settings, db):
    return await aiohttp_client(create_app(settings))


async def test_a_broker_down_at_start_up_delays_nothing(aiohttp_client, amqp_settings, amqp, topology, db):
    broker = URL(amqp_settings.amqp_url)
    proxy = await Proxy(broker.host or "127.0.0.1", broker.port or 5672).start()
    proxy.refusing = True
    try:
        settings = attrs.evolve(amqp_settings, amqp_url=str(broker.with_port(proxy.port)))
        client = await aiohttp_client(create_app(settings))
        created = await client.post("/api/v1/genres", json={"name": "Drama"})
        assert created.status == 201
        ready = await client.get("/health/ready")
        assert (ready.status, (await ready.json())["checks"]["broker"]) == (200, "degraded")

        queue = await events_queue(amqp, topology)
        proxy.refusing = False
        [message] = await take(queue, 1)
        assert json.loads(message.body)["data"] == await created.json()
    finally:
        await proxy.close()


async def test_the_leader_prunes_what_is_past_its_retention(aiohttp_client, amqp_settings, db):
    async with db.transaction():
        await append_events(db, [NewEvent("genre.created", 1, None), NewEvent("genre.created", 2, None)])
    await db.execute("UPDATE outbox SET published_at = now() - interval '3 hours' WHERE entity_id = 1")
    await db.execute("INSERT INTO processed_commands VALUES ('old', 'genre.upsert', 1, now() - interval '3 hours')")
    await db.execute("INSERT INTO processed_commands VALUES ('new', 'genre.upsert', 2, now())")
    settings = attrs.evolve(amqp_settings, outbox_retention_hours=2, command_dedup_hours=2)
    await aiohttp_client(create_app(settings))
    await eventually(lambda: db.fetchval("SELECT array_agg(message_id) = '{new}' FROM processed_commands"))
    assert await db.fetchval("SELECT array_agg(entity_id) FROM outbox") == [2]

"""RabbitMQ cut behind a proxy in the middle of a burst of writes, and of commands being consumed.

What other systems see: every committed event reaches the broker once it is back (the relay
marks an event published only after the broker confirmed it), each entity's events in commit
order; every command is applied exactly once however often it is delivered, and none is
acknowledged before its effect committed, even when the database is away too.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import attrs
import orjson

from cinema.app import create_app
from tests.bus.conftest import events_queue, running
from tests.conftest import eventually

GENRES = "/api/v1/genres"


async def start(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    await running(client.app)
    return client


async def test_every_event_of_a_burst_reaches_the_broker_through_a_cut(
    aiohttp_client, amqp_settings, amqp_proxy, amqp, topology, db
):
    client = await start(aiohttp_client, attrs.evolve(amqp_settings, amqp_url=amqp_proxy.via(amqp_settings.amqp_url)))
    queue = await events_queue(amqp, topology)
    acknowledged = 0

    async def write(n: int) -> None:
        nonlocal acknowledged
        resp = await client.post(GENRES, json={"name": f"Genre {n}"})
        assert resp.status == 201, await resp.text()  # writes go on whatever the broker does
        url = f"{GENRES}/{(await resp.json())['id']}"
        for version in range(2):
            assert (await client.patch(url, json={"name": f"Genre {n}.{version}"})).status == 200
        acknowledged += 1

    async def burst(numbers: range) -> None:
        for start_at in range(numbers.start, numbers.stop, 10):  # ten clients at a time
            await asyncio.gather(*(write(n) for n in range(start_at, min(start_at + 10, numbers.stop))))

    writes = asyncio.create_task(burst(range(150)))
    await eventually(lambda: acknowledged >= 30)
    amqp_proxy.down()  # mid-burst: publishes in flight lose their confirmations
    await eventually(lambda: acknowledged >= 100, timeout=30)
    amqp_proxy.restore()
    await writes

    expected = {
        row["id"]: (row["seq"], row["entity_id"])
        for row in await db.fetch("SELECT id::text, seq, entity_id FROM outbox")
    }
    assert len(expected) == 150 * 3
    received: dict[str, int] = {}
    arrivals: dict[int, list[int]] = {}  # entity -> seqs in order of first arrival
    async with asyncio.timeout(60), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            assert message.message_id in expected, "an event that did not commit"
            if message.message_id not in received:  # at least once: a repeat is dropped, as consumers do
                seq, entity = expected[message.message_id]
                received[message.message_id] = seq
                arrivals.setdefault(entity, []).append(seq)
                assert json.loads(message.body)["id"] == message.message_id
            if len(received) == len(expected):
                break
    assert all(seqs == sorted(seqs) for seqs in arrivals.values()), "an entity's events out of commit order"
    await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))
    assert amqp_proxy.connections >= 2


async def command_count(channel, topology) -> tuple[int, int]:
    """(messages ready, consumers) of the commands queue, as the broker has them."""
    queue = await channel.declare_queue(topology.commands, passive=True)
    result = queue.declaration_result
    return result.message_count, result.consumer_count


async def test_each_command_applies_once_and_none_is_acknowledged_before_its_commit(
    aiohttp_client, amqp_settings, amqp_proxy, pg_proxy, database_url, amqp, topology, db
):
    settings = attrs.evolve(
        amqp_settings,
        amqp_url=amqp_proxy.via(amqp_settings.amqp_url),
        database_url=pg_proxy.via(database_url),
        amqp_prefetch=32,
    )
    await start(aiohttp_client, settings)
    exchange = await amqp.get_exchange(topology.commands)
    total = 600
    sent: list[str] = []

    async def send(n: int, message_id: str | None = None) -> None:
        body = {"source": "faults", "external_id": f"g{n}", "data": {"name": f"Genre {n}"}}
        message_id = message_id or uuid.uuid4().hex
        message = aio_pika.Message(orjson.dumps(body), message_id=message_id, content_type="application/json")
        await exchange.publish(message, routing_key="genre.upsert")  # confirmed by the broker
        sent.append(message_id)

    async def publish(numbers: range) -> None:
        for n in numbers:
            await send(n)
            if n % 50 == 0 and sent:  # the same message again, as after a publisher's retry
                await send(n, message_id=sent[-1])

    processed = "SELECT count(*) FROM processed_commands"
    publishing = asyncio.create_task(publish(range(total)))

    # The broker goes away twice while commands are being applied.
    for at in (100, 250):
        await eventually(lambda: db.fetchval(f"SELECT count(*) >= {at} FROM processed_commands"), timeout=30)  # noqa: B023
        amqp_proxy.cut()

    # Then the database goes away: commands arrive but cannot commit. Cut the broker off too:
    # whatever was not acknowledged is back in the queue, so what the broker holds plus what
    # committed must be everything sent (nothing acknowledged without its commit).
    await eventually(lambda: db.fetchval("SELECT count(*) >= 400 FROM processed_commands"), timeout=30)
    pg_proxy.down()
    await publishing
    committed = await db.fetchval(processed)

    async def held() -> bool:  # the consumer holds deliveries it cannot commit
        return (await command_count(amqp, topology))[0] < len(sent) - committed

    await eventually(held, timeout=10)
    assert await db.fetchval(processed) == committed
    amqp_proxy.down()

    async def disconnected() -> bool:
        return (await command_count(amqp, topology))[1] == 0

    await eventually(disconnected, timeout=10)
    ready, _ = await command_count(amqp, topology)
    committed = await db.fetchval(processed)
    assert ready + committed >= len(set(sent)), "a command was acknowledged but did not commit"

    pg_proxy.restore()
    amqp_proxy.restore()
    await eventually(lambda: db.fetchval(f"SELECT count(*) = {total} FROM processed_commands"), timeout=60)
    # Exactly once: one genre and one event per command, whatever was delivered again.
    assert await db.fetchval("SELECT count(*) FROM genres") == total
    assert await db.fetchval("SELECT count(*) FROM outbox") == total
    assert await db.fetchval("SELECT count(DISTINCT message_id) FROM processed_commands") == total
    assert (await command_count(amqp, topology))[0] == 0

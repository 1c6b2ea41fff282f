"""RabbitMQ fixtures: names of each test's own (several test sessions share the broker), and a
channel straight to the broker to watch what the service publishes and to publish commands."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import aio_pika
import attrs
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, ExchangeType

from cinema.bus.amqp import Topology
from cinema.http.keys import COMMAND_CONSUMER, RELAY
from cinema.settings import Settings


@pytest.fixture(scope="session")
def topologies(amqp_server: str) -> Iterator[list[Topology]]:
    """Every test's names, deleted from the broker at the end of the session: only then is no
    robust connection left that would declare them again."""
    created: list[Topology] = []
    yield created
    asyncio.run(_delete(amqp_server, created))


async def _delete(amqp_server: str, topologies: list[Topology]) -> None:
    async with await aio_pika.connect(amqp_server) as connection:
        channel = await connection.channel()
        for topology in topologies:
            for queue in (topology.commands, topology.dead):
                await channel.queue_delete(queue)
            for exchange in (topology.events, topology.commands, topology.unrouted, topology.dead):
                await channel.exchange_delete(exchange)


@pytest.fixture
def topology(topologies: list[Topology]) -> Topology:
    topology = Topology(f"cinema-test-{secrets.token_hex(4)}")
    topologies.append(topology)
    return topology


@pytest.fixture
async def amqp(amqp_server: str) -> AsyncIterator[AbstractChannel]:
    """A channel of the test's own, straight to the broker."""
    async with await aio_pika.connect(amqp_server) as connection:
        yield await connection.channel()


@pytest.fixture
def amqp_settings(settings: Settings, amqp_server: str, topology: Topology) -> Settings:
    return attrs.evolve(settings, amqp_url=amqp_server, amqp_prefix=topology.prefix, relay_poll_interval=0.05)


async def events_queue(channel: AbstractChannel, topology: Topology, pattern: str = "#") -> AbstractQueue:
    """An exclusive queue bound to the events exchange, like another system's subscription."""
    exchange = await channel.declare_exchange(topology.events, ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, pattern)
    return queue


async def take(queue: AbstractQueue, count: int, timeout: float = 30.0) -> list[AbstractIncomingMessage]:
    """The next `count` messages of the queue, acknowledged; fails after `timeout` seconds."""
    received: list[AbstractIncomingMessage] = []
    async with asyncio.timeout(timeout), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            received.append(message)
            if len(received) == count:
                break
    return received


async def running(app) -> None:  # type: ignore[no-untyped-def]
    """Until the app's relay leads and its consumer is registered with the broker."""
    async with asyncio.timeout(20):
        await app[RELAY].leading.wait()
        await app[COMMAND_CONSUMER].consuming.wait()

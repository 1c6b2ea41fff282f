"""The RabbitMQ connection of a process, and the names of what it declares there.

One robust aio-pika connection per process, opened in the background: a broker that is down
when the service starts, or goes away later, never stops the service. The relay and the
command consumer wait for it; after a reconnect aio-pika restores their channels,
exchanges, queues, bindings and consumers by itself.

Topology (every name starts with the `CINEMA_AMQP_PREFIX`, "cinema" by default):

    <p>.events            topic exchange, durable: routing key = event type ("genre.updated")
    <p>.commands          direct exchange, durable: routing key = command ("genre.upsert")
      -> <p>.commands     durable queue, one binding per known command; single active
                          consumer, so commands apply in queue order across processes
    <p>.commands.unrouted fanout, the alternate exchange of <p>.commands: a command nobody
                          knows still reaches the queue, to be dead-lettered with a reason
    <p>.commands.dead     fanout exchange (the queue's dead-letter exchange) -> queue
                          <p>.commands.dead: what can never succeed, with `x-cinema-error`
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import aio_pika
import attrs
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustChannel, ExchangeType
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

log = structlog.get_logger("cinema.amqp")

# What a lost or refused broker connection raises, from aio-pika or below it.
BROKER_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError)


@attrs.frozen
class Topology:
    prefix: str = "cinema"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def unrouted(self) -> str:
        return f"{self.prefix}.commands.unrouted"

    @property
    def dead(self) -> str:
        return f"{self.prefix}.commands.dead"


async def declare_events(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    return await channel.declare_exchange(topology.events, ExchangeType.TOPIC, durable=True)


async def declare_commands(
    channel: AbstractChannel, topology: Topology, routing_keys: Iterable[str]
) -> tuple[AbstractQueue, AbstractExchange]:
    """Declare the command side; returns the command queue and the dead-letter exchange."""
    dead = await channel.declare_exchange(topology.dead, ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(topology.dead, durable=True)
    await dead_queue.bind(dead)
    unrouted = await channel.declare_exchange(topology.unrouted, ExchangeType.FANOUT, durable=True)
    commands = await channel.declare_exchange(
        topology.commands, ExchangeType.DIRECT, durable=True, arguments={"alternate-exchange": topology.unrouted}
    )
    # These arguments cannot change once the queue exists (RabbitMQ refuses a re-declaration).
    queue = await channel.declare_queue(
        topology.commands,
        durable=True,
        arguments={"x-dead-letter-exchange": topology.dead, "x-single-active-consumer": True},
    )
    await queue.bind(unrouted)
    for key in routing_keys:
        await queue.bind(commands, key)
    return queue, dead


class Broker:
    """The process's connection to RabbitMQ; `status` is "ok" while connected, else "degraded"."""

    def __init__(self, url: str, *, reconnect_interval: float = 1.0) -> None:
        self.url = url
        self.reconnect_interval = reconnect_interval
        self._connection: aio_pika.RobustConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._up = False  # for logging the changes only

    def start(self) -> None:
        # fail_fast off: the first connection is retried like any reconnection, in the background.
        self._connection = aio_pika.RobustConnection(
            URL(self.url), fail_fast="false", reconnect_interval=self.reconnect_interval
        )
        self._connection.close_callbacks.add(self._on_close)
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._connecting = asyncio.create_task(self._connect(), name="amqp-connect")

    async def _connect(self) -> None:
        if self._connection is not None:
            await self._connection.connect()
        self._up = True
        log.info("amqp_connected")

    def _on_close(self, _: Any, exc: BaseException | None) -> None:
        # Called for every failed reconnection attempt too: say it once, when the connection goes.
        if self._up and self._connection is not None and not self._connection.close_called:
            log.warning("amqp_connection_lost", error=repr(exc))
        self._up = False

    def _on_reconnect(self, _: Any) -> None:
        self._up = True
        log.info("amqp_reconnected")

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._connection is not None:
            await self._connection.close()

    @property
    def status(self) -> str:
        connected = self._connection is not None and self._connection.connected.is_set()
        return "ok" if connected else "degraded"

    async def channel(self) -> AbstractRobustChannel:
        """A new channel with publisher confirms, once the broker is reachable (waits until then)."""
        if self._connecting is None or self._connection is None:
            raise RuntimeError("start() the broker first")
        await asyncio.shield(self._connecting)
        await self._connection.connected.wait()
        channel = self._connection.channel(publisher_confirms=True)
        await channel.initialize()
        return channel

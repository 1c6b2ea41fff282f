"""The outbox relay: every committed event reaches RabbitMQ at least once, in order per entity.

One process at a time relays, the leader: it holds a session advisory lock on a PostgreSQL
connection of its own, so when that connection goes, so does the lead, and a standby (which
tries every poll interval) takes over. The leader

- reads unpublished rows in `seq` order, which is commit order (cinema/db/outbox.py), in batches;
- publishes them to `<prefix>.events` with publisher confirms, pipelined, except that an
  entity's next event waits until the broker confirmed its previous one;
- marks rows published only once confirmed. A publish that fails stops its entity's chain;
  the next round starts again from the oldest unpublished row, so an entity's events never
  overtake each other, and nothing is skipped;
- is woken through the local bus by every commit (this process's own, and other processes'
  via cinema/bus/remote.py), with a slow poll as a safety net: no busy polling;
- prunes published rows past their retention, and processed command ids past theirs.

A crash between publishing and marking publishes those events again on the next round:
delivery is at least once, and consumers dedupe by `message_id`, the event's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import typing
from collections.abc import Awaitable, Callable, Sequence

import aiormq
import asyncpg
import structlog
from aio_pika.abc import AbstractRobustChannel
from aiormq import spec
from opentelemetry.trace import SpanKind, Status, StatusCode

from cinema import telemetry
from cinema.bus.amqp import BROKER_ERRORS, Broker, Topology, declare_events
from cinema.bus.local import LocalBus
from cinema.bus.service import Reconnecting
from cinema.db.commands import prune_processed
from cinema.db.outbox import Unpublished, mark_published, prune_published, read_unpublished, try_lead
from cinema.metrics import LAG_BUCKETS, Histogram

log = structlog.get_logger("cinema.relay")

PUBLISH_TIMEOUT = 30.0  # seconds for the broker to confirm one message
PRUNE_EVERY = 60.0  # seconds between prunes, unless the last one left more to do
PRUNE_SLICE = 10_000  # rows deleted per statement
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PublishFailed(Exception):
    """The broker did not confirm part of a batch; the rows not confirmed stay unpublished."""


def traceparent(event: Unpublished) -> str:
    """The event's W3C trace context: its writer's trace, else a stable one (a re-publication repeats it)."""
    return event.traceparent or f"00-{event.id.replace('-', '')}-{event.seq:016x}-01"


def properties(event: Unpublished, context: str | None = None) -> spec.Basic.Properties:
    """`context`: the publish span's traceparent, when tracing is on."""
    return spec.Basic.Properties(
        message_id=event.id,
        content_type="application/json",
        delivery_mode=2,  # persistent
        headers={"traceparent": context or traceparent(event)},
    )


class OutboxRelay(Reconnecting):
    """`before_mark(seqs)` runs after the broker confirmed a batch and before it is marked
    published: the place where a crash costs duplicates (tests simulate one there)."""

    name = "relay"
    retry_on = (*DATABASE_ERRORS, *BROKER_ERRORS, PublishFailed)

    def __init__(
        self,
        dsn: str,
        bus: LocalBus,
        broker: Broker,
        topology: Topology,
        *,
        batch_size: int = 500,
        poll_interval: float = 5.0,
        retention_hours: float = 168.0,
        dedup_hours: float = 168.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        before_mark: Callable[[Sequence[int]], Awaitable[None]] | None = None,
        statement_timeout: float = 60.0,
    ) -> None:
        super().__init__(backoff)
        self.dsn = dsn
        self.bus = bus
        self.broker = broker
        self.topology = topology
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention_hours = retention_hours
        self.dedup_hours = dedup_hours
        self.before_mark = before_mark
        self.statement_timeout = statement_timeout  # seconds for one statement on the relay's own connection
        self.leading = asyncio.Event()  # set while this process is the relay
        self.published = 0  # events confirmed by the broker and marked, since start
        self.lag = Histogram(LAG_BUCKETS)  # seconds from an event's transaction to its confirm

    async def session(self) -> None:
        conn = await asyncpg.connect(
            self.dsn,
            # A statement that hangs (a connection gone quietly) ends the session rather than the relay.
            command_timeout=self.statement_timeout,
            timeout=self.statement_timeout,
            server_settings={"timezone": "UTC", "application_name": "cinema-relay"},
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        try:
            if await self._take_lead(conn, lost):
                await self._lead(conn, lost)
        finally:
            self.leading.clear()
            # Closing the connection releases the lock: a standby takes over within its poll interval.
            await conn.close(timeout=2)

    async def _take_lead(self, conn: asyncpg.Connection, lost: asyncio.Event) -> bool:
        """Wait until this process leads (True), or is stopping (False)."""
        if await try_lead(conn):
            return True
        log.info("relay_standby")
        while not self.stopping:
            await self.pause(self.poll_interval, lost.wait())
            _check(lost)
            if await try_lead(conn):
                return True
        return False

    async def _lead(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        self.leading.set()
        log.info("relay_leading")
        # Subscribed before the first read, so a commit after that read wakes the loop. One
        # pending item is enough: it only says "look again".
        wake = self.bus.subscribe("#", maxsize=1)
        channel = await self.broker.channel()  # waits while the broker is away: events wait in the outbox
        try:
            await declare_events(channel, self.topology)
            self.healthy()
            loop = asyncio.get_running_loop()
            next_prune = loop.time()
            while not self.stopping:
                while wake.get_nowait() is not None:
                    pass
                await self._relay_pending(conn, channel)
                if loop.time() >= next_prune:
                    more = await self._prune(conn)
                    next_prune = loop.time() + (0 if more else PRUNE_EVERY)
                    if more:
                        continue
                await self.pause(self.poll_interval, wake.get(), lost.wait())
                _check(lost)
        finally:
            wake.close()
            with contextlib.suppress(*BROKER_ERRORS):
                await channel.close()

    async def _relay_pending(self, conn: asyncpg.Connection, channel: AbstractRobustChannel) -> None:
        """Publish until nothing is left; raises `PublishFailed` after marking what was confirmed."""
        while True:
            batch = await read_unpublished(conn, self.batch_size)
            if not batch:
                return
            confirmed, error = await self._publish(channel, batch)
            if self.before_mark is not None:
                await self.before_mark(confirmed)
            if confirmed:
                await mark_published(conn, confirmed)
                self.published += len(confirmed)
            if error is not None:
                raise PublishFailed(f"{len(batch) - len(confirmed)} of {len(batch)} not confirmed") from error
            log.debug("relay_published", count=len(confirmed), last_seq=confirmed[-1])
            if len(batch) < self.batch_size:
                return

    async def _publish(
        self, channel: AbstractRobustChannel, batch: Sequence[Unpublished]
    ) -> tuple[list[int], BaseException | None]:
        """Publish the batch; returns the seqs confirmed and the first error, if any.

        Messages are sent in seq order and confirmed asynchronously; only an event whose
        entity has an unconfirmed event ahead of it waits (for that confirm), so a failure
        can never let an entity's later event reach the broker before an earlier one.
        Publishing goes through aio-pika's underlying aiormq channel without waiting for each
        write to drain: aio-pika's `Exchange.publish` costs several times more per message.
        """
        underlay = typing.cast(aiormq.Channel, await channel.get_underlay_channel())
        exchange = self.topology.events

        async def send(event: Unpublished, ahead: asyncio.Future[None] | None) -> None:
            if ahead is not None:
                await ahead
            tracer = telemetry.TRACER
            span = None
            if tracer is not None and event.traceparent:  # a sampled write's: the consumer continues it
                span = tracer.start_span(
                    f"{exchange} publish",
                    context=telemetry.extract({"traceparent": event.traceparent}),
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "rabbitmq",
                        "messaging.operation": "publish",
                        "messaging.destination.name": exchange,
                        "messaging.rabbitmq.destination.routing_key": event.type,
                        "messaging.message.id": event.id,
                    },
                )
            try:
                await underlay.basic_publish(
                    event.body,
                    exchange=exchange,
                    routing_key=event.type,
                    properties=properties(event, None if span is None else telemetry.traceparent_of(span)),
                    wait=False,
                    timeout=PUBLISH_TIMEOUT,
                )
            except BaseException as exc:
                if span is not None:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            finally:
                if span is not None:
                    span.end()
            self.lag.observe(max(0.0, time.time() - event.occurred_at.timestamp()))

        last_of: dict[tuple[str, int], asyncio.Future[None]] = {}
        sends = []
        for event in batch:
            sent = asyncio.ensure_future(send(event, last_of.get(event.entity)))
            last_of[event.entity] = sent
            sends.append(sent)
        results = await asyncio.gather(*sends, return_exceptions=True)
        confirmed = [e.seq for e, r in zip(batch, results, strict=True) if not isinstance(r, BaseException)]
        error = next((r for r in results if isinstance(r, BaseException)), None)
        return confirmed, error

    async def _prune(self, conn: asyncpg.Connection) -> bool:
        """One slice of each prune; True when a slice was full (there is more to delete)."""
        events = await prune_published(conn, self.retention_hours * 3600, PRUNE_SLICE)
        commands = await prune_processed(conn, self.dedup_hours * 3600, PRUNE_SLICE)
        if events or commands:
            log.info("relay_pruned", events=events, processed_commands=commands)
        return PRUNE_SLICE in (events, commands)


def _check(lost: asyncio.Event) -> None:
    if lost.is_set():
        raise ConnectionError("the relay's database connection closed")

"""Events committed by other app instances, brought onto this instance's bus.

Every transaction that appends events also NOTIFYs `cinema_events` with
"<origin>:<first seq>:<last seq>" (cinema/db/outbox.py). PostgreSQL delivers that at
commit, in commit order, to every listening connection. Each instance keeps one
connection LISTENing; for notifications from other origins it reads those outbox rows and
publishes them on its own bus, so caches, live searches and relays everywhere hear of every
change within milliseconds, without polling.

When the listening connection is lost, notifications sent meanwhile are gone: after
reconnecting, the bus announces a gap to every subscriber (`Missed`), and each recovers
in its own way (the cache drops its entries; log readers re-read from their position).
A connection the network dropped without a reset would listen to nothing, silently: after
`probe_interval` seconds without a notification a round trip checks it, within the
statement deadline, and a failure counts as a loss.

The same connection listens on further channels given in `channels`, whose payloads are
"<origin>:<rest>": for another origin's payload, `channels[channel](rest)` builds the
message to publish on the bus (the indexer's `cinema_indexed` announcements travel so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import asyncpg
import structlog

from cinema.bus.local import LocalBus, Topical
from cinema.bus.service import Reconnecting
from cinema.db.outbox import CHANNEL, read_events

log = structlog.get_logger("cinema.bus")

_LOST = object()  # queued when the listening connection closes
PROBE_INTERVAL = 5.0  # seconds without a notification after which the connection is probed


class RemoteEvents(Reconnecting):
    name = "remote_events"
    retry_on = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

    def __init__(
        self,
        dsn: str,
        bus: LocalBus,
        origin: str,
        *,
        channels: Mapping[str, Callable[[str], Topical]] | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        statement_timeout: float = 60.0,
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        super().__init__(backoff)
        self.dsn = dsn
        self.statement_timeout = statement_timeout
        self.probe_interval = probe_interval
        self.bus = bus
        self.origin = origin
        self.channels = dict(channels or {})
        self.listening = asyncio.Event()  # set while a connection listens (tests and readiness wait on it)
        self._listened_before = False

    async def session(self) -> None:
        try:
            await self._listen(announce_gap=self._listened_before)
        finally:
            self._listened_before = self._listened_before or self.listening.is_set()
            self.listening.clear()

    async def _listen(self, announce_gap: bool) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        conn = await asyncpg.connect(self.dsn, timeout=self.statement_timeout, command_timeout=self.statement_timeout)
        try:
            conn.add_termination_listener(lambda _: queue.put_nowait(_LOST))
            for channel in (CHANNEL, *self.channels):
                await conn.add_listener(channel, lambda _conn, _pid, name, payload: queue.put_nowait((name, payload)))
            self.listening.set()
            self.healthy()
            if announce_gap:
                self.bus.announce_gap()
            log.info("remote_events_listening")
            while True:
                batch = [await self._next(queue, conn)]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if _LOST in batch:
                    raise ConnectionError("the listening connection closed")
                notes = [note for note in batch if isinstance(note, tuple)]
                await self._publish(conn, [payload for channel, payload in notes if channel == CHANNEL])
                self._publish_others([(channel, payload) for channel, payload in notes if channel != CHANNEL])
        finally:
            await conn.close(timeout=2)

    async def _next(self, queue: asyncio.Queue[object], conn: asyncpg.Connection) -> object:
        """The next notification. While none comes, a round trip now and then proves the connection
        alive: one the network dropped without a reset would otherwise listen to nothing for good,
        and this instance's cache would go on serving what other instances changed."""
        while True:
            try:
                async with asyncio.timeout(self.probe_interval):
                    return await queue.get()
            except TimeoutError:
                await conn.fetchval("SELECT 1")  # within the statement deadline, else TimeoutError

    def _publish_others(self, notes: list[tuple[str, str]]) -> None:
        for channel, payload in notes:
            origin, _, rest = payload.partition(":")
            if origin != self.origin:
                self.bus.publish(self.channels[channel](rest))

    async def _publish(self, conn: asyncpg.Connection, payloads: list[str]) -> None:
        ranges = []
        for payload in payloads:
            origin, first, last = payload.rsplit(":", 2)
            if origin != self.origin:
                ranges.append((int(first), int(last)))
        if not ranges:
            return
        events = await read_events(conn, min(r[0] for r in ranges), max(r[1] for r in ranges))
        for event in events:
            if any(first <= event.seq <= last for first, last in ranges):
                self.bus.publish(event)

"""The indexer actor: owns the search backend, keeps it in step with the outbox log, answers searches.

Indexing runs in one process at a time: each process's indexer keeps a dedicated
connection waiting on a session advisory lock, and the holder (the leader) consumes the
outbox from its stored position (`search_positions`, one per backend). When the leader
dies its connection closes, the lock passes to a waiting process, and that one resumes
from the stored position; nothing is skipped (seq order is commit order) and what was
done twice is harmless (versioned writes).

The leader loop:
    read the next events after the position (at most `batch_size`)
    -> documents (cinema/search/documents.py; affected movies re-read from PostgreSQL)
    -> write them, retrying with back-off until they are written (nothing is dropped)
    -> store the position and NOTIFY `cinema_indexed` (one statement, on the leader connection)
    -> publish `Indexed` on the local bus (live searches of this process)
When there is nothing to read it waits for the bus (any committed event, local or from
another process) and then lets a burst gather for `flush_delay` (or until a batch is
full), so a bulk import is indexed in bulk; a slow poll covers a lost wake-up.

With no stored position (a new backend), it first writes a snapshot of the catalog and
starts after the snapshot's seq.

Index lag is the time from an event's transaction (`occurred_at`) to the moment its
batch is written and searchable; `stats()` gives the last, median, p99 and maximum over
the recent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import asyncpg
import attrs
import structlog

from cinema.actors.base import Actor
from cinema.actors.catalog import DATABASE_DOWN
from cinema.bus.local import LocalBus, Subscription
from cinema.db.outbox import Event, read_events_after
from cinema.db.positions import advance_position, get_position, start_position
from cinema.errors import Unavailable
from cinema.metrics import BATCH_BUCKETS, LAG_BUCKETS, Histogram
from cinema.search.backend import SearchBackend, SearchQuery, SearchUnavailable
from cinema.search.documents import Document, documents_for_events
from cinema.search.live import INDEXED_CHANNEL, Indexed
from cinema.search.reindex import load_snapshot

log = structlog.get_logger("cinema.indexer")

# Milliseconds, for this session (a parameter: SET takes none).
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, false)"
# Advisory lock class for leadership (the second key is the backend's consumer name).
LEADER_LOCK = 0x637365  # "cse"
RETRY = (0.1, 10.0)  # flush retry back-off: first and longest delay, seconds
RECONNECT = (0.2, 5.0)
LAG_WINDOW = 1000  # events whose lag the percentiles are taken over


# -- messages ----------------------------------------------------------------------


@attrs.frozen
class Search:
    """Answers `Hits`."""

    query: SearchQuery


@attrs.frozen
class Hits:
    items: list[str]  # each hit's JSON document, best first
    took_ms: float  # the backend's time

    def render(self) -> bytes:
        """The body of GET /api/v1/search (what the cache keeps)."""
        return b'{"items":[' + ",".join(self.items).encode() + b'],"took_ms":' + str(self.took_ms).encode() + b"}"


@attrs.frozen
class MatchLive:
    """Each query's hits among the documents of versions first..last (live search)."""

    queries: tuple[SearchQuery, ...]
    first: int
    last: int


@attrs.frozen
class WaitIndexed:
    """Answers once this process's indexer has indexed through `seq` (tests, tools)."""

    seq: int


@attrs.frozen
class GetIndexerStats:
    pass


@attrs.frozen
class IndexerStats:
    backend: str
    leader: bool
    position: int | None
    batches: int
    events: int
    documents: int
    failed_flushes: int
    lag_ms_last: float | None
    lag_ms_p50: float | None
    lag_ms_p99: float | None
    lag_ms_max: float | None


# -- the actor ---------------------------------------------------------------------


class IndexerActor(Actor):
    def __init__(
        self,
        dsn: str,
        backend: SearchBackend,
        bus: LocalBus,
        origin: str,
        *,
        batch_size: int = 500,
        flush_delay: float = 0.02,
        poll_interval: float = 5.0,
        statement_timeout: float = 60.0,
        **options: Any,
    ) -> None:
        super().__init__("indexer", **options)
        self.dsn = dsn
        self.backend = backend
        self.bus = bus
        self.origin = origin
        self.batch_size = batch_size
        self.flush_delay = flush_delay
        self.poll_interval = poll_interval
        self.statement_timeout = statement_timeout  # a statement on the leader connection, at most
        self.consumer = f"indexer:{backend.name}"
        self.leader = False
        self._position: int | None = None
        self._advanced = asyncio.Condition()
        self._leading: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wakeups: Subscription | None = None
        self._batches = self._events = self._documents = self._failed_flushes = 0
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._lag_max: float | None = None
        self.lag = Histogram(LAG_BUCKETS)  # seconds, for /metrics
        self.batch_sizes = Histogram(BATCH_BUCKETS)  # events per batch

    async def handle(self, msg: Any) -> Any:
        match msg:
            case Search(query=query):
                started = time.perf_counter()
                try:
                    items = await self.backend.search(query)
                except (*DATABASE_DOWN, SearchUnavailable) as exc:
                    log.warning("search_unavailable", error=repr(exc))
                    raise Unavailable("Search is not available right now; retry shortly.", retry_after=2) from exc
                return Hits(items, round((time.perf_counter() - started) * 1000, 2))
            case MatchLive(queries=queries, first=first, last=last):
                return await self.backend.match(queries, first, last)
            case WaitIndexed(seq=seq):
                async with self._advanced:
                    await self._advanced.wait_for(lambda: self._position is not None and self._position >= seq)
                return self._position
            case GetIndexerStats():
                return self.indexer_stats()
            case _:
                return await super().handle(msg)

    # -- lifecycle -------------------------------------------------------------

    async def on_start(self) -> None:
        self._stop.clear()
        # Subscribed before the first read of the log, so no commit goes unnoticed.
        self._wakeups = self.bus.subscribe("*.created", "*.updated", "*.deleted", maxsize=self.batch_size * 4)
        self._leading = asyncio.create_task(self._lead(), name="indexer:lead")

    async def on_stop(self) -> None:
        self._stop.set()
        if self._leading is not None:
            self._leading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leading
            self._leading = None
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None

    async def _pause(self, seconds: float) -> None:
        """Sleep until `seconds` pass or the actor stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    # -- leadership ------------------------------------------------------------

    async def _lead(self) -> None:
        delay = RECONNECT[0]
        while not self._stop.is_set():
            try:
                settings = {"application_name": "cinema-indexer", "timezone": "UTC", "jit": "off"}
                conn = await asyncpg.connect(
                    self.dsn,
                    server_settings=settings,
                    timeout=self.statement_timeout,
                    command_timeout=self.statement_timeout,
                )
            except (*DATABASE_DOWN, asyncpg.PostgresError) as exc:
                log.warning("indexer_cannot_connect", error=repr(exc), retry_in=delay)
            else:
                try:
                    await self._wait_for_lead(conn)
                    self.leader, delay = True, RECONNECT[0]
                    log.info("indexer_leading", backend=self.backend.name)
                    await self._consume(conn)
                except (*DATABASE_DOWN, asyncpg.PostgresError) as exc:
                    log.warning("indexer_connection_lost", error=repr(exc), retry_in=delay)
                except Exception:  # a bug or an unexpected failure: log it, keep the loop alive
                    log.exception("indexer_failed", retry_in=delay)
                finally:
                    self.leader = False
                    # Closing the session releases the lock for the next leader.
                    conn.terminate()
            await self._pause(delay)
            delay = min(delay * 2, RECONNECT[1])

    async def _wait_for_lead(self, conn: asyncpg.Connection) -> None:
        """Block while another process leads; return when this one may.

        The wait is a series of waits the server ends (`lock_timeout`) before the statement
        deadline does: each answer proves the connection alive, and one the network dropped
        without a reset fails the deadline instead of waiting for a lock it can never get.
        """
        await conn.execute(SET_LOCK_TIMEOUT, str(max(1, round(self.statement_timeout * 500))))
        while True:
            try:
                await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", LEADER_LOCK, self.consumer)
                break
            except asyncpg.LockNotAvailableError:
                continue
        await conn.execute(SET_LOCK_TIMEOUT, "0")

    # -- consuming the log -----------------------------------------------------

    async def _consume(self, conn: asyncpg.Connection) -> None:
        await self._until_done(conn, self.backend.start)
        position = await get_position(conn, self.consumer)
        if position is None:

            async def write(docs: Sequence[Document]) -> None:
                # A snapshot page is a flush like any other: retried in place, counted, never skipped.
                await self._until_done(conn, partial(self.backend.write, docs))

            seq, count = await load_snapshot(conn, write)
            position = await start_position(conn, self.consumer, seq)
            log.info("search_index_bootstrapped", backend=self.backend.name, seq=seq, documents=count)
        await self._advance_to(position)
        while True:
            self._drain_wakeups()
            events = await read_events_after(conn, position, self.batch_size)
            if not events:
                await self._wait_for_work()
                continue
            docs = await documents_for_events(conn, events)
            await self._until_done(conn, partial(self.backend.write, docs))
            first, last = events[0].seq, events[-1].seq
            announcement = f"{self.origin}:{first}:{last}"
            if not await advance_position(conn, self.consumer, last, INDEXED_CHANNEL, announcement):
                # A leader that lost its lock for a moment may find the position moved on.
                position = await get_position(conn, self.consumer) or last
                continue
            self._record(events, docs)
            await self._advance_to(last)
            self.bus.publish(Indexed(first, last, tuple(docs)))
            position = last

    async def _until_done(self, conn: asyncpg.Connection, operation: Callable[[], Awaitable[None]]) -> None:
        """Run `operation` until it succeeds: a failed write is retried with back-off, never dropped."""
        delay = RETRY[0]
        while True:
            try:
                await operation()
                return
            except Exception as exc:  # whatever the cause, the documents must still be written
                self._failed_flushes += 1
                log.warning("search_flush_failed", error=repr(exc), retry_in=delay)
            if conn.is_closed():  # leadership is gone with the connection; the next leader takes over
                raise ConnectionError("the indexer's connection closed during a flush")
            await self._pause(delay)
            delay = min(delay * 2, RETRY[1])

    def _drain_wakeups(self) -> None:
        assert self._wakeups is not None
        while self._wakeups.get_nowait() is not None:
            pass

    async def _wait_for_work(self) -> None:
        assert self._wakeups is not None
        try:
            async with asyncio.timeout(self.poll_interval):
                await self._wakeups.get()
        except TimeoutError:
            return  # the safety poll
        # A burst (a bulk import, several writers) gathers into one batch.
        deadline = asyncio.get_running_loop().time() + self.flush_delay
        seen = 1
        while seen + self._wakeups.pending() < self.batch_size:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wakeups.get()
            except TimeoutError:
                return
            seen += 1

    async def _advance_to(self, position: int) -> None:
        async with self._advanced:
            self._position = position
            self._advanced.notify_all()

    def _record(self, events: Sequence[Event], docs: Sequence[Document]) -> None:
        now = time.time()
        for event in events:
            lag = max(0.0, (now - event.occurred_at.timestamp()) * 1000)
            self._lags.append(lag)
            self._lag_max = lag if self._lag_max is None else max(self._lag_max, lag)
            self.lag.observe(lag / 1000)
        self.batch_sizes.observe(len(events))
        self._batches += 1
        self._events += len(events)
        self._documents += len(docs)

    def indexer_stats(self) -> IndexerStats:
        lags = sorted(self._lags)

        def pct(p: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(p * len(lags)))], 2) if lags else None

        return IndexerStats(
            backend=self.backend.name,
            leader=self.leader,
            position=self._position,
            batches=self._batches,
            events=self._events,
            documents=self._documents,
            failed_flushes=self._failed_flushes,
            lag_ms_last=round(self._lags[-1], 2) if self._lags else None,
            lag_ms_p50=pct(0.5),
            lag_ms_p99=pct(0.99),
            lag_ms_max=round(self._lag_max, 2) if self._lag_max is not None else None,
        )

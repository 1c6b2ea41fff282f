"""The cache actor: the catalog's GET responses, read through an in-process layer and Redis.

Reads (the handler side is cinema/http/cached.py):

    handler -> layer.get: in-process hit -> body + ETag (no actor hop, no JSON encoding)
            -> ask(Fetch): single-flight per key -> Redis, one MGET -> hit
                                                  -> load lock -> catalog -> store -> reply

The in-process layer belongs to this actor; `layer.get` is the one documented read-only fast
path other code takes. Everything that stores or invalidates runs here.

Invalidation, by the counters each event bumps (cinema/cache/kinds.py), on two paths, both
idempotent:
- synchronously for this process's writes: the catalog awaits the bus's commit hooks after
  its commit and before it replies, and `invalidate_committed` is one. When the writer answers,
  its process has dropped every affected entry here and in Redis: read-your-writes is exact.
- from the bus, for every event, this process's and (through cinema/bus/remote.py) every other
  process's: the in-process layers of all processes converge within milliseconds.

A read that started before a write can never store what it read once the write's invalidation
ran: the in-process key it would store under has been dropped from the flights (entity) or
left behind by the generation (lists), and Redis refuses an entry whose counters moved.
A `Missed` gap (a lost connection, a subscription that fell behind) clears the in-process layer
and raises the Redis epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import attrs
import structlog

from cinema.actors.base import Actor
from cinema.bus.local import LocalBus, Missed
from cinema.cache.kinds import Kind, bumped
from cinema.cache.layer import Entry, Key, LocalLayer
from cinema.cache.shared import Lookup, SharedStore
from cinema.db.outbox import Event
from cinema.errors import DomainError
from cinema.etags import etag
from cinema.search.live import Indexed

log = structlog.get_logger("cinema.cache")

# A process that finds another one loading a key looks again after 1, 2, 4 ... 256 ms (511 ms
# in all, within the lock's life), then reads the catalog itself.
WAITS = tuple(0.001 * 2**i for i in range(9))
APPLIED = 4096  # ids of events already applied, remembered so the bus does not apply them twice
BATCH = 1000  # events invalidated together


@attrs.frozen
class Fetch:
    """Answer (entry, hit) for a key, reading the catalog with `query` on a miss."""

    kind: Kind
    ident: str
    query: Any  # a message answering a document (str) or something with `.render()`
    source: Actor | None = None  # the actor `query` goes to; the catalog when None


@attrs.frozen
class CacheStats:
    entries: int  # in the in-process layer
    bytes: int
    hits: int  # answered from the in-process layer
    shared_hits: int  # answered from Redis
    misses: int  # catalog reads
    joined: int  # misses that waited for another request's read of the same key
    waited: int  # misses that waited for another process's read (the Redis load lock)
    invalidations: int  # counters bumped by events
    flushes: int  # whole-cache drops after missed events
    refused: int  # stores refused because a write changed the key during the read
    errors: int  # Redis failures


def render(answer: Any) -> bytes:
    """The response body of a catalog answer."""
    if isinstance(answer, str):
        return answer.encode()
    if isinstance(answer, bytes):
        return answer
    body: bytes = answer.render()
    return body


class _Flight:
    """One catalog read of a key in progress; `stale` once a write invalidated the key."""

    __slots__ = ("stale", "task")

    def __init__(self) -> None:
        self.stale = False
        self.task: asyncio.Task[tuple[Entry, bool]] | None = None


class CacheActor(Actor):
    expected_errors = (DomainError,)

    def __init__(
        self,
        source: Actor,
        bus: LocalBus,
        kinds: Iterable[Kind],
        ttls: Mapping[str, float],
        *,
        max_entries: int,
        max_bytes: int,
        shared: SharedStore | None = None,
        etag_key: bytes = b"",
        **options: Any,
    ) -> None:
        # Workers mostly wait on a catalog read (their own or one they joined): cheap, many.
        options.setdefault("concurrency", 256)
        super().__init__("cache", **options)
        self.source = source
        self.shared = shared
        self.etag_key = etag_key  # the catalog id's bytes (cinema/etags.py)
        self.layer = LocalLayer(kinds, ttls, max_entries, max_bytes)
        self._flights: dict[Key, _Flight] = {}
        self._loading: set[asyncio.Task[tuple[Entry, bool]]] = set()
        self._applied: deque[int] = deque(maxlen=APPLIED)
        self._applied_set: set[int] = set()
        self._starts = 0
        self._shared_hits = self._misses = self._joined = self._waited = 0
        self._invalidations = self._flushes = self._refused = 0
        # Subscribed now, not at start: nothing committed in between goes unheard.
        self._subscription = bus.subscribe("#")
        bus.on_commit(self.invalidate_committed)

    # -- reads ------------------------------------------------------------------------

    async def handle(self, msg: Any) -> Any:
        match msg:
            case Fetch(kind=kind, ident=ident, query=query, source=source):
                return await self._fetch(kind, ident, query, source or self.source)
            case _:
                return await super().handle(msg)

    async def _fetch(self, kind: Kind, ident: str, query: Any, source: Actor) -> tuple[Entry, bool]:
        entry = self.layer.get(kind, ident)  # stored while the message waited in the mailbox
        if entry is not None:
            return entry, True
        key = self.layer.key(kind, ident)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
            load = self._load(flight, key, kind, ident, query, source)
            task = asyncio.create_task(load, name=f"cache:load:{key[0]}")
            flight.task = task
            self._loading.add(task)
            task.add_done_callback(self._landed)
        else:
            self._joined += 1
        assert flight.task is not None
        # Shielded: a reader that gives up does not cancel the read the others wait for.
        return await asyncio.shield(flight.task)

    async def _load(
        self, flight: _Flight, key: Key, kind: Kind, ident: str, query: Any, source: Actor
    ) -> tuple[Entry, bool]:
        shared = self.shared if self.shared is not None and self.shared.available() else None
        token = None
        try:
            found = None if shared is None else await shared.lookup(kind, ident)
            if found is not None and shared is not None:
                if found.entry is None:
                    token = await shared.claim(kind, ident)
                    if token is None:  # another process reads it: wait for its entry a little
                        self._waited += 1
                        found = await self._wait_for_other(shared, kind, ident) or found
                if found.entry is not None:
                    self._shared_hits += 1
                    self._keep(flight, key, found.entry)
                    return found.entry, True
            self._misses += 1
            body = render(await source.ask(query))
            entry = Entry(body, etag(body, self.etag_key))
            if found is not None and shared is not None and await shared.store(kind, ident, found.tag, entry) is False:
                self._refused += 1
            self._keep(flight, key, entry)
            return entry, False
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if token is not None and shared is not None:
                await shared.release(kind, ident, token)

    def _landed(self, task: asyncio.Task[tuple[Entry, bool]]) -> None:
        self._loading.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its readers may all have given up

    async def _wait_for_other(self, shared: SharedStore, kind: Kind, ident: str) -> Lookup | None:
        found = None
        for wait in WAITS:
            await asyncio.sleep(wait)
            found = await shared.lookup(kind, ident)
            if found is None or found.entry is not None:
                break
        return found

    def _keep(self, flight: _Flight, key: Key, entry: Entry) -> None:
        if not flight.stale:
            self.layer.put(key, entry)

    # -- invalidation -----------------------------------------------------------------

    async def invalidate_committed(self, events: Sequence[Any]) -> None:
        """The commit hook: drop what this process's committed events change, here and in Redis."""
        await self._invalidate(events)

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        return (self._consume,) if self.shared is None else (self._consume, self._recover)

    async def on_start(self) -> None:
        self._starts += 1
        if self._starts > 1:  # the loop crashed, perhaps in the middle of an invalidation
            await self._flush()

    async def on_stop(self) -> None:
        for task in list(self._loading):
            task.cancel()
        for task in list(self._loading):
            with contextlib.suppress(BaseException):
                await task

    async def _consume(self) -> None:
        while True:
            batch = [await self._subscription.get()]
            while len(batch) < BATCH and (item := self._subscription.get_nowait()) is not None:
                batch.append(item)
            if any(isinstance(item, Missed) for item in batch):
                log.warning("cache_flushed_after_missed_events")
                await self._flush()
            else:
                await self._invalidate(batch)

    async def _recover(self) -> None:
        """Raise the epoch as soon as Redis is back after this process missed applying an
        invalidation there, rather than at its next read: until then another process could
        still read what the invalidation should have removed."""
        assert self.shared is not None
        while True:
            await self.shared.became_dirty.wait()
            if not await self.shared.bump_epoch():
                await asyncio.sleep(self.shared.retry)

    async def _invalidate(self, events: Sequence[Any]) -> None:
        fresh = [e for e in events if isinstance(e, Event) and e.seq not in self._applied_set]
        seqs: dict[str, int] = {}
        for event in fresh:
            for counter in bumped(event.type, event.entity_id, event.affected_movie_ids):
                seqs[counter] = max(seqs.get(counter, 0), event.seq)
        for indexed in events:  # a batch made searchable: its last seq orders it among the counters
            if isinstance(indexed, Indexed):
                for counter in bumped(indexed.topic, 0, ()):
                    seqs[counter] = max(seqs.get(counter, 0), indexed.last)
        # Redis first: once this process's layer forgets a key, its next read goes to Redis, which
        # must not still accept the old entry (another process's NOTIFY can arrive before the
        # writer has raised the counters there). Reads in flight meanwhile are detached below.
        if self.shared is not None:
            await self.shared.invalidate(seqs)
        for key in self.layer.invalidate(seqs):
            flight = self._flights.pop(key, None)
            if flight is not None:
                flight.stale = True
        self._invalidations += len(seqs)
        for event in fresh:
            if len(self._applied) == APPLIED:
                self._applied_set.discard(self._applied[0])
            self._applied.append(event.seq)
            self._applied_set.add(event.seq)

    async def _flush(self) -> None:
        if self.shared is not None:  # first, for the reason `_invalidate` gives
            await self.shared.bump_epoch()
        self.layer.clear()
        for flight in self._flights.values():
            flight.stale = True
        self._flights.clear()
        self._flushes += 1

    # -- visibility -------------------------------------------------------------------

    def cache_stats(self) -> CacheStats:
        return CacheStats(
            entries=len(self.layer),
            bytes=self.layer.size,
            hits=self.layer.hits,
            shared_hits=self._shared_hits,
            misses=self._misses,
            joined=self._joined,
            waited=self._waited,
            invalidations=self._invalidations,
            flushes=self._flushes,
            refused=self._refused,
            errors=0 if self.shared is None else self.shared.errors,
        )

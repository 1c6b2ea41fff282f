"""Live search: open queries matched against what the indexer just made searchable.

The indexer announces each batch it wrote as `Indexed(first, last)` (the versions of the
batch's documents are exactly the seqs in that range): on its own process's bus directly,
and to every other process by NOTIFY `cinema_indexed`, which cinema/bus/remote.py turns
into the same message on their buses. Each process runs one `LiveSearch` dispatcher: per
announcement it asks the backend, in one request, for every distinct open query's hits
among that range, and hands each hit to the queries' `deliver` callbacks (which only
enqueue). The cost is one backend request per batch, whatever the number of sockets, and
no task per query or per document. Matching in the backend means a live hit is exactly
what the same search would find. Pushes are best effort (ARCHITECTURE.md): an
announcement missed while a connection is down is not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import attrs
import structlog

from cinema.bus.local import LocalBus, Missed, Subscription
from cinema.search.backend import SearchQuery
from cinema.search.documents import Document

log = structlog.get_logger("cinema.search")

INDEXED_TOPIC = "search.indexed"
INDEXED_CHANNEL = "cinema_indexed"


@attrs.frozen
class Indexed:
    """The documents with versions in [first, last] are searchable now (the events of one batch)."""

    first: int
    last: int
    documents: tuple[Document, ...] = ()  # what was written; empty when announced by another process

    @property
    def topic(self) -> str:
        return INDEXED_TOPIC

    def payload(self) -> str:
        """The NOTIFY payload after the origin ("<origin>:<first>:<last>")."""
        return f"{self.first}:{self.last}"

    @classmethod
    def from_payload(cls, payload: str) -> Indexed:
        first, last = payload.split(":")
        return cls(int(first), int(last))


class LiveQuery:
    """One open live query: `deliver(hit_json)` is called for each new hit and must not block."""

    __slots__ = ("deliver", "query")

    def __init__(self, query: SearchQuery, deliver: Callable[[str], None]) -> None:
        self.query = query
        self.deliver = deliver


Matcher = Callable[[Sequence[SearchQuery], int, int], Awaitable[list[list[str]]]]


class LiveSearch:
    def __init__(self, bus: LocalBus, match: Matcher) -> None:
        self.bus = bus
        self.match = match
        # Identical queries (same text, kinds and limit) from many sockets are matched once.
        self._groups: dict[SearchQuery, set[LiveQuery]] = {}
        self._task: asyncio.Task[None] | None = None
        self.dispatched = 0  # announcements matched (tests and stats)

    def add(self, live: LiveQuery) -> None:
        self._groups.setdefault(live.query, set()).add(live)

    def discard(self, live: LiveQuery) -> None:
        group = self._groups.get(live.query)
        if group is not None:
            group.discard(live)
            if not group:
                del self._groups[live.query]

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(self.bus.subscribe(INDEXED_TOPIC)), name="live-search")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, subscription: Subscription) -> None:
        try:
            while True:
                pending = [await subscription.get()]
                while (item := subscription.get_nowait()) is not None:
                    pending.append(item)
                ranges = [(i.first, i.last) for i in pending if isinstance(i, Indexed)]
                if ranges and self._groups:
                    await self._dispatch(min(r[0] for r in ranges), max(r[1] for r in ranges))
                elif any(isinstance(i, Missed) for i in pending):
                    log.info("live_search_missed_announcements")
        finally:
            subscription.close()

    async def _dispatch(self, first: int, last: int) -> None:
        queries = list(self._groups)
        try:
            found = await self.match(queries, first, last)
        except Exception:  # best effort: a failed match loses these pushes, not the dispatcher
            log.warning("live_search_match_failed", first=first, last=last, exc_info=True)
            return
        self.dispatched += 1
        for query, hits in zip(queries, found, strict=True):
            if not hits:
                continue
            for live in tuple(self._groups.get(query, ())):
                for hit in hits:
                    live.deliver(hit)


class Client(Protocol):
    async def close(self) -> None: ...


class Clients:
    """The streaming-search clients of this process: closed at shutdown, counted for stats and tests."""

    def __init__(self) -> None:
        self.open: set[Client] = set()
        self.dropped = 0  # disconnected for not reading

    async def close_all(self) -> None:
        for client in list(self.open):
            await client.close()

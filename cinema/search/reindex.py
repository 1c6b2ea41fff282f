"""Building an index from the catalog tables, and `python -m cinema reindex`.

A snapshot read (REPEATABLE READ) sees exactly the changes up to the last event seq it can
see, because seq order is commit order; its documents are versioned with that seq. Events
after it are applied afterwards through the same versioned writes, so an overlap with the
running indexer is harmless. `reindex` fills a fresh index (a `_next` table, or new
Elasticsearch indices) while searches keep using the current one, swaps it in atomically,
then replays the events committed meanwhile into it. `python -m cinema reindex` runs it
(cinema/__main__.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import attrs
import structlog

from cinema.db.outbox import last_seq, read_events_after
from cinema.search.backend import SearchBackend
from cinema.search.documents import KINDS, Document, documents_for_events, load_documents

log = structlog.get_logger("cinema.search")

Write = Callable[[Sequence[Document]], Awaitable[None]]
# Taken for the whole rebuild: two reindexes at once would fill the same staging tables.
REINDEX_LOCK = 0x63696E656D62


class ReindexRunning(Exception):
    """Another `reindex` holds the lock."""


async def load_snapshot(conn: asyncpg.Connection, write: Write, page: int = 1000) -> tuple[int, int]:
    """Write every entity's current document; returns (the snapshot's seq, documents written)."""
    count = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        seq = await last_seq(conn)
        for kind in KINDS.values():
            after = 0
            while docs := await load_documents(conn, kind, seq, None, after, page):
                await write(docs)
                count += len(docs)
                after = docs[-1].id
    return seq, count


async def catch_up(pool: asyncpg.Pool, write: Write, since: int, batch: int = 500) -> int:
    """Apply the events after `since` until none is left; returns the last seq applied."""
    position = since
    while True:
        async with pool.acquire() as conn:
            events = await read_events_after(conn, position, batch)
            if not events:
                return position
            docs = await documents_for_events(conn, events)
        await write(docs)
        position = events[-1].seq


@attrs.frozen
class ReindexReport:
    backend: str
    seq: int  # the snapshot's seq
    documents: int  # written from the snapshot
    replayed_through: int  # the last event applied after the swap
    seconds: float


async def reindex(pool: asyncpg.Pool, backend: SearchBackend) -> ReindexReport:
    started = time.monotonic()
    async with pool.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", REINDEX_LOCK):
            raise ReindexRunning("another reindex is running")
        try:
            await backend.start()
            stage = await backend.stage()
            try:
                async with pool.acquire() as conn:
                    seq, count = await load_snapshot(conn, stage.write)
                await stage.publish()
            except BaseException:
                await stage.discard()
                raise
            log.info("search_index_swapped", backend=backend.name, seq=seq, documents=count)
            through = await catch_up(pool, backend.write, seq)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", REINDEX_LOCK)
    return ReindexReport(backend.name, seq, count, through, round(time.monotonic() - started, 3))

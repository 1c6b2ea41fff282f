"""The outbox: seq order is commit order, so a reader's "last seq seen" never skips a late commit."""

from __future__ import annotations

import asyncio

import asyncpg

from cinema.db.outbox import NewEvent, append_events
from tests.conftest import eventually

WAITING_FOR_LOCK = "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
READ_AFTER = "SELECT seq, type FROM outbox WHERE seq > $1 ORDER BY seq"


async def test_events_get_ids_and_keep_their_order_within_a_transaction(db):
    async with db.transaction():
        events = await append_events(
            db,
            [NewEvent("genre.created", 1, '{"id": 1}'), NewEvent("genre.deleted", 1, None, (5, 6))],
        )
    assert [e.type for e in events] == ["genre.created", "genre.deleted"]
    assert events[0].seq < events[1].seq
    assert events[0].id != events[1].id
    assert events[1].affected_movie_ids == (5, 6)
    assert events[1].data is None


async def test_transactions_committing_out_of_order_are_never_skipped(db, database_url):
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        # `first` starts its change first, but appends its events (and commits) last.
        tx1 = first.transaction()
        await tx1.start()
        await first.execute("INSERT INTO genres (slug, name) VALUES ('slow', 'Slow')")

        tx2 = second.transaction()
        await tx2.start()
        await append_events(second, [NewEvent("genre.created", 2, None)])
        await tx2.commit()

        # A reader polls now and remembers the last seq it saw.
        seen = await db.fetch(READ_AFTER, 0)
        assert [r["type"] for r in seen] == ["genre.created"]
        cursor = seen[-1]["seq"]

        await append_events(first, [NewEvent("genre.updated", 1, None)])
        await tx1.commit()

        # The late commit got a seq after the cursor: the reader sees it.
        later = await db.fetch(READ_AFTER, cursor)
        assert [r["type"] for r in later] == ["genre.updated"]
    finally:
        await first.close()
        await second.close()


async def test_an_appending_transaction_holds_back_the_next_until_it_commits(db, database_url):
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        tx1 = first.transaction()
        await tx1.start()
        [a] = await append_events(first, [NewEvent("genre.created", 1, None)])

        async def append_second():
            async with second.transaction():
                [b] = await append_events(second, [NewEvent("genre.created", 2, None)])
            return b

        blocked = asyncio.create_task(append_second())
        # `second` waits on the outbox lock, visible in pg_locks, until `first` commits.
        await eventually(lambda: db.fetchval(WAITING_FOR_LOCK))
        assert not blocked.done()
        await tx1.commit()
        b = await blocked
        assert a.seq < b.seq
    finally:
        await first.close()
        await second.close()

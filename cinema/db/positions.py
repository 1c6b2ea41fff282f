"""Where each consumer of the outbox log has got to (`search_positions`).

A consumer processes events in seq order and stores the seq of the last one it finished;
since seq order is commit order (cinema/db/outbox.py), resuming after that seq never
skips an event. Storing happens after the work, so a crash in between repeats some events:
consumers are idempotent (at least once).
"""

from __future__ import annotations

import asyncpg

GET_POSITION = "SELECT seq FROM search_positions WHERE consumer = $1"


async def get_position(conn: asyncpg.Connection, consumer: str) -> int | None:
    seq: int | None = await conn.fetchval(GET_POSITION, consumer)
    return seq


START_POSITION = """
INSERT INTO search_positions (consumer, seq) VALUES ($1, $2)
ON CONFLICT (consumer) DO UPDATE SET seq = search_positions.seq
RETURNING seq
"""


async def start_position(conn: asyncpg.Connection, consumer: str, seq: int) -> int:
    """Store `seq` as the consumer's first position unless it has one; returns the position in force."""
    stored: int = await conn.fetchval(START_POSITION, consumer, seq)
    return stored


# The notification goes out at commit, and only when the position moved.
ADVANCE_POSITION = """
WITH moved AS (
    UPDATE search_positions SET seq = $2, updated_at = now() WHERE consumer = $1 AND seq < $2 RETURNING seq
)
SELECT count(pg_notify($3, $4)) FROM moved
"""


async def advance_position(conn: asyncpg.Connection, consumer: str, seq: int, channel: str, payload: str) -> bool:
    """Move the consumer to `seq` and NOTIFY `channel` with `payload`; False if it was already there."""
    moved: int = await conn.fetchval(ADVANCE_POSITION, consumer, seq, channel, payload)
    return moved > 0

"""The outbox: domain events written in the same transaction as the change they describe.

`append_events` takes a transaction-scoped advisory lock before inserting. The lock is
held until commit, so transactions that write events commit one after another in the
order they got their `seq`: seq order is commit order, and a reader that remembers the
last seq it saw can never skip a row that commits late (the hazard described in
ARCHITECTURE.md). The price is that the tail of writing transactions (the insert and
the commit) is serialised; the insert happens last, so the lock is held briefly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg
import attrs

from cinema import telemetry

# An arbitrary constant naming the lock; pg_advisory_xact_lock takes a bigint.
OUTBOX_LOCK = 0x63696E656D61  # "cinema"
CHANNEL = "cinema_events"


@attrs.frozen
class NewEvent:
    """An event a change produces, before it is in the log."""

    type: str  # "genre.updated"
    entity_id: int
    data: str | None  # the resource as GET returns it (JSON text), None on delete
    affected_movie_ids: tuple[int, ...] = ()


@attrs.frozen
class Event:
    """An event in the log: what the bus carries and consumers read."""

    seq: int
    id: uuid.UUID
    type: str
    entity_id: int
    occurred_at: dt.datetime
    data: str | None
    affected_movie_ids: tuple[int, ...]

    @property
    def topic(self) -> str:
        return self.type


# The NOTIFY is delivered to every listening process when (and only when) the transaction
# commits, in commit order: other processes learn of the change without polling (see
# cinema/bus/remote.py). The payload names the origin, so the writer's own process skips it.
APPEND_EVENTS = f"""
WITH lock AS (SELECT pg_advisory_xact_lock({OUTBOX_LOCK})),
inserted AS (
    INSERT INTO outbox (type, entity_id, data, affected_movie_ids, traceparent)
    SELECT e.type, e.entity_id, e.data::jsonb, e.affected::bigint[], $6::text
    FROM lock, unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY
        AS e(type, entity_id, data, affected, n)
    ORDER BY e.n
    RETURNING seq, id, type, entity_id, occurred_at, data::text AS data, affected_movie_ids
),
notify AS (
    SELECT pg_notify('{CHANNEL}', $5 || ':' || min(seq) || ':' || max(seq)) FROM inserted
)
SELECT inserted.* FROM inserted, notify ORDER BY seq
"""


async def append_events(conn: asyncpg.Connection, events: Sequence[NewEvent], origin: str = "") -> list[Event]:
    """Insert the events in one round trip; call it last in the transaction.

    `origin` identifies the writing app instance in the commit notification. With tracing
    on, the rows keep the writer's `traceparent`: the relay publishes them as part of its trace.
    """
    if not events:
        return []
    rows = await conn.fetch(
        APPEND_EVENTS,
        [e.type for e in events],
        [e.entity_id for e in events],
        [e.data for e in events],
        ["{" + ",".join(map(str, e.affected_movie_ids)) + "}" for e in events],
        origin,
        telemetry.current_traceparent(),
    )
    return [_event(row) for row in rows]


READ_EVENTS = """
SELECT seq, id, type, entity_id, occurred_at, data::text AS data, affected_movie_ids
FROM outbox WHERE seq BETWEEN $1 AND $2 ORDER BY seq
"""


async def read_events(conn: asyncpg.Connection, first: int, last: int) -> list[Event]:
    return [_event(row) for row in await conn.fetch(READ_EVENTS, first, last)]


def _event(row: asyncpg.Record) -> Event:
    return Event(
        seq=row["seq"],
        id=row["id"],
        type=row["type"],
        entity_id=row["entity_id"],
        occurred_at=row["occurred_at"],
        data=row["data"],
        affected_movie_ids=tuple(row["affected_movie_ids"]),
    )


# The public shape of an event (as published on RabbitMQ) plus its position in the log.
CHANGE_JSON = """json_build_object(
    'seq', o.seq, 'id', o.id, 'type', o.type, 'occurred_at', o.occurred_at,
    'entity_id', o.entity_id, 'data', o.data)::text"""
LIST_CHANGES = f"SELECT o.seq, {CHANGE_JSON} FROM outbox o WHERE o.seq > $1 ORDER BY o.seq LIMIT $2"


async def list_changes(conn: asyncpg.Connection, after: int, limit: int) -> list[tuple[int, str]]:
    """Committed events after position `after`, oldest first, as (seq, JSON) pairs.

    Because seq order is commit order, "after the last seq I saw" is exact: a change that
    commits later always gets a greater seq.
    """
    return [(row[0], row[1]) for row in await conn.fetch(LIST_CHANGES, after, limit)]


# -- the relay's side (cinema/bus/relay.py) ------------------------------------------

# Held for a whole session by the one process that relays the outbox to RabbitMQ. A
# different key from OUTBOX_LOCK: session and transaction advisory locks share a key space.
RELAY_LOCK = 0x63696E656D6172  # "cinemar"

TRY_LEAD = f"SELECT pg_try_advisory_lock({RELAY_LOCK})"


async def try_lead(conn: asyncpg.Connection) -> bool:
    """Take the relay's leadership for as long as `conn` lives; False when another process has it."""
    return bool(await conn.fetchval(TRY_LEAD))


@attrs.frozen
class Unpublished:
    """An outbox row on its way to the broker; `body` is the message as API.md documents it."""

    seq: int
    id: str
    type: str
    entity_id: int
    body: bytes
    occurred_at: dt.datetime
    traceparent: str | None = None  # the writing request's trace, when tracing was on

    @property
    def entity(self) -> tuple[str, int]:
        """What per-entity ordering is about: ("genre", 7)."""
        return self.type.partition(".")[0], self.entity_id


# PostgreSQL renders the body, in the documented key order; `data` is the resource as
# GET returns it (or null on delete).
READ_UNPUBLISHED = """
SELECT o.seq, o.id::text AS id, o.type, o.entity_id, o.occurred_at, o.traceparent,
       (SELECT row_to_json(m) FROM (SELECT o.id, o.type, o.occurred_at, o.entity_id, o.data) m)::text AS body
FROM outbox o
WHERE o.published_at IS NULL
ORDER BY o.seq
LIMIT $1
"""


async def read_unpublished(conn: asyncpg.Connection, limit: int) -> list[Unpublished]:
    rows = await conn.fetch(READ_UNPUBLISHED, limit)
    return [
        Unpublished(
            r["seq"], r["id"], r["type"], r["entity_id"], r["body"].encode(), r["occurred_at"], r["traceparent"]
        )
        for r in rows
    ]


MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"


async def mark_published(conn: asyncpg.Connection, seqs: Sequence[int]) -> None:
    await conn.execute(MARK_PUBLISHED, seqs)


# Oldest first along the primary key; the caller deletes in slices, so a large backlog never
# holds locks for long.
PRUNE_PUBLISHED = """
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox
    WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY seq
    LIMIT $2
)
"""


async def prune_published(conn: asyncpg.Connection, older_than_seconds: float, limit: int) -> int:
    """Delete up to `limit` events published more than `older_than_seconds` ago; returns how many."""
    return int((await conn.execute(PRUNE_PUBLISHED, older_than_seconds, limit)).split()[-1])


READ_EVENTS_AFTER = """
SELECT seq, id, type, entity_id, occurred_at, data::text AS data, affected_movie_ids
FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2
"""


async def read_events_after(conn: asyncpg.Connection, seq: int, limit: int) -> list[Event]:
    """The next `limit` events after position `seq`: what a log consumer reads next."""
    return [_event(row) for row in await conn.fetch(READ_EVENTS_AFTER, seq, limit)]


LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM outbox"


async def last_seq(conn: asyncpg.Connection) -> int:
    """The seq of the newest committed event (0 for an empty log); in a snapshot, the snapshot's."""
    seq: int = await conn.fetchval(LAST_SEQ)
    return seq

"""The catalog's identity: a random id that names everything kept outside the database.

Outbox seqs are versions only within one event log. Redis entries and counters, Elasticsearch
indices, ETags and `/changes` cursors live outside the database, so each carries the catalog id:
two databases behind one Redis (or one Elasticsearch) never read each other's state, and a catalog
whose log was rewritten (`seed --replace`, a restore of an older backup) starts afresh under a new id.
"""

from __future__ import annotations

import uuid

import asyncpg

GET_CATALOG_ID = "SELECT id FROM catalog"


async def get_catalog_id(conn: asyncpg.Connection) -> uuid.UUID:
    catalog_id: uuid.UUID = await conn.fetchval(GET_CATALOG_ID)
    return catalog_id


# Only from the id the caller saw: processes that find the log rewritten at the same moment
# agree on one new id (the losers read the winner's).
RENEW_CATALOG_ID = """
UPDATE catalog SET id = gen_random_uuid(), created_at = now() WHERE id = $1 RETURNING id
"""


async def renew_catalog_id(conn: asyncpg.Connection, old: uuid.UUID) -> uuid.UUID:
    """Give the catalog a new id (its event log was rewritten); returns the id now in force."""
    new: uuid.UUID | None = await conn.fetchval(RENEW_CATALOG_ID, old)
    return new if new is not None else await get_catalog_id(conn)

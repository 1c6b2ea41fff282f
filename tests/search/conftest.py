"""Search backends for the behavioural tests: PostgreSQL always, Elasticsearch when configured.

`CINEMA_TEST_ELASTICSEARCH_URL` names an Elasticsearch 9 server; each test gets its own
index prefix, removed afterwards. Without it the Elasticsearch runs are skipped with the
reason (these are the only tests allowed to skip in CI: no Elasticsearch runs there).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from cinema.actors.indexer import WaitIndexed
from cinema.db.outbox import Event, NewEvent, append_events
from cinema.http.keys import INDEXER
from cinema.search.backend import SearchBackend
from cinema.search.documents import KINDS, Document
from cinema.search.postgres import PostgresSearch


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        yield pool


@pytest.fixture(params=["postgres", "elasticsearch"])
async def backend(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[SearchBackend]:
    if request.param == "postgres":
        yield PostgresSearch(pool)
        return
    url = os.environ.get("CINEMA_TEST_ELASTICSEARCH_URL")
    if not url:
        pytest.skip("no Elasticsearch here: set CINEMA_TEST_ELASTICSEARCH_URL to run these against one")
    from cinema.search.elastic import ElasticsearchSearch

    search = ElasticsearchSearch(url, f"cinema-test-{secrets.token_hex(4)}")
    await search.start()
    try:
        yield search
    finally:
        await search.es.indices.delete(index=f"{search.prefix}-*", ignore_unavailable=True)
        await search.close()


def doc(kind: str, entity_id: int, version: int = 1, **data: object) -> Document:
    """A document from a resource shaped as API.md describes it."""
    return KINDS[kind].document(entity_id, version, {"id": entity_id, "slug": f"{kind}-{entity_id}", **data})


async def caught_up(app: web.Application, db: asyncpg.Connection) -> None:
    """Wait until the app's indexer has indexed every committed event."""
    seq = await db.fetchval("SELECT coalesce(max(seq), 0) FROM outbox")
    await app[INDEXER].ask(WaitIndexed(seq), timeout=5)


async def commit(db: asyncpg.Connection, *events: NewEvent) -> list[Event]:
    """Events written straight into the outbox (as another writer would), announced at commit."""
    async with db.transaction():
        return await append_events(db, events, "tests")

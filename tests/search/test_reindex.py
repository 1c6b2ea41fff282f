"""`reindex`: a fresh index from the catalog, swapped in while searches keep answering, then caught up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cinema.db.outbox import NewEvent
from cinema.search.backend import SearchQuery
from cinema.search.postgres import PostgresSearch
from cinema.search.reindex import REINDEX_LOCK, ReindexRunning, reindex
from tests.search.conftest import commit, doc

ROOT = Path(__file__).resolve().parents[2]


async def titles(backend, q):
    return [json.loads(hit)["title"] for hit in await backend.search(SearchQuery(q, limit=100))]


async def test_reindex_rebuilds_from_the_catalog_while_searches_keep_answering(pool, db):
    await db.execute(
        "INSERT INTO genres (slug, name) SELECT 'drama-' || i, 'Drama ' || i FROM generate_series(1, 300) AS i"
    )
    await db.execute("INSERT INTO countries (code, slug, name) VALUES ('FR', 'france', 'France')")
    backend = PostgresSearch(pool)
    # What the current index holds: a document for a genre that no longer exists, and an old name.
    await backend.write([doc("genre", 9999, name="Ghost"), doc("genre", 1, name="Old Name")])
    answers, failures, running = 0, [], True

    async def keep_searching():
        nonlocal answers
        while running:
            try:
                await backend.search(SearchQuery("drama"))
                answers += 1
            except Exception as exc:
                failures.append(exc)
            await asyncio.sleep(0)

    searcher = asyncio.create_task(keep_searching())
    await asyncio.sleep(0.05)
    before = answers
    report = await reindex(pool, backend)
    during = answers - before
    running = False
    await searcher
    assert failures == []
    assert during > 0
    assert (report.backend, report.seq, report.documents, report.replayed_through) == ("postgres", 0, 301, 0)
    assert await titles(backend, "ghost") == []
    assert await titles(backend, "old name") == []
    assert (await titles(backend, "drama 1"))[0] == "Drama 1"
    assert len(await titles(backend, "drama")) == 100
    assert await titles(backend, "france") == ["France"]
    indexes = await db.fetch("SELECT indexname FROM pg_indexes WHERE tablename LIKE 'search_%' ORDER BY 1")
    assert [row[0] for row in indexes] == [
        "search_documents_names_idx",
        "search_documents_pkey",
        "search_documents_tsv_idx",
        "search_documents_version_idx",
        "search_positions_pkey",
        "search_terms_pkey",
    ]
    assert await db.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%_next'") == 0
    # The rebuilt lexicon holds today's words only.
    assert await db.fetchval("SELECT count(*) FROM search_terms WHERE term = 'ghost'") == 0


async def test_events_committed_during_the_build_are_applied_after_the_swap(pool, db):
    await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
    backend = PostgresSearch(pool)
    stage_of = backend.stage

    async def stage_with_a_concurrent_write():
        stage = await stage_of()
        write = stage.write

        async def write_then_commit(docs):
            await write(docs)
            if docs and docs[0].kind == "genre":  # a writer commits while the index is being built
                genre = await db.fetchval("INSERT INTO genres (slug, name) VALUES ('noir', 'Noir') RETURNING id")
                await commit(db, NewEvent("genre.created", genre, f'{{"id": {genre}, "slug": "noir", "name": "Noir"}}'))

        stage.write = write_then_commit
        return stage

    backend.stage = stage_with_a_concurrent_write
    report = await reindex(pool, backend)
    assert (report.seq, report.documents, report.replayed_through) == (0, 1, 1)
    assert await titles(backend, "noir") == ["Noir"]
    assert await titles(backend, "drama") == ["Drama"]


async def test_one_reindex_at_a_time(pool, db):
    await db.execute("SELECT pg_advisory_lock($1)", REINDEX_LOCK)
    try:
        with pytest.raises(ReindexRunning):
            await reindex(pool, PostgresSearch(pool))
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", REINDEX_LOCK)
    assert await db.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%_next'") == 0


async def test_a_failed_build_leaves_the_current_index_alone(pool, db):
    await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
    backend = PostgresSearch(pool)
    await backend.write([doc("genre", 1, name="Drama")])
    stage_of = backend.stage

    async def failing_stage():
        stage = await stage_of()

        async def write(docs):
            raise ConnectionError("the database went away")

        stage.write = write
        return stage

    backend.stage = failing_stage
    with pytest.raises(ConnectionError):
        await reindex(pool, backend)
    assert await titles(backend, "drama") == ["Drama"]
    assert await db.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%_next'") == 0


def test_the_reindex_command_rebuilds_and_reports(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE genres, outbox, search_documents, search_terms RESTART IDENTITY CASCADE")
        conn.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama'), ('crime', 'Crime')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    env |= {"CINEMA_DATABASE_URL": database_url, "CINEMA_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "cinema", "reindex"], env=env, cwd=ROOT, capture_output=True, timeout=60, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "reindexed postgres: 2 documents as of event 0, caught up through event 0" in result.stdout
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM search_documents").fetchone() == (2,)

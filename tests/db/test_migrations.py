"""Migrations: apply on an empty database, re-apply is a no-op, roll back, run concurrently."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from cinema.db.migrate import apply_migrations, migration_ids, rollback_all
from tests.conftest import with_database

TABLES = {
    "genres",
    "countries",
    "persons",
    "movies",
    "movie_genres",
    "movie_countries",
    "credits",
    "shots",
    "outbox",
    "external_ids",
    "processed_commands",
    "uploads",
}


@pytest.fixture
def empty_database(postgres_server):
    name = f"cinema_migrate_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(postgres_server, name)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows} & TABLES


def test_apply_on_empty_then_reapply_is_a_no_op(empty_database):
    assert apply_migrations(empty_database) == migration_ids()
    assert tables(empty_database) == TABLES
    assert apply_migrations(empty_database) == []


def test_rollback_removes_everything_and_apply_restores_it(empty_database):
    apply_migrations(empty_database)
    rollback_all(empty_database)
    assert tables(empty_database) == set()
    assert apply_migrations(empty_database) == migration_ids()


def test_concurrent_processes_apply_each_migration_once(empty_database):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(apply_migrations, [empty_database] * 4))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(migration_ids())]
    with psycopg.connect(empty_database) as conn:
        count = conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0]
    assert count == len(migration_ids())


def test_every_foreign_key_has_an_index_that_leads_with_it(database_url):
    # Unindexed foreign keys make cascades and "rows referring to X" scan the whole table.
    query = """
    SELECT c.conname
    FROM pg_constraint c
    WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
      AND NOT EXISTS (
        SELECT 1 FROM pg_index i
        WHERE i.indrelid = c.conrelid AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey
      )
    """
    with psycopg.connect(database_url) as conn:
        unindexed = [r[0] for r in conn.execute(query).fetchall()]
    assert unindexed == []

"""The catalog id: one row, renewed when the event log is rewritten, agreed on by concurrent renewals."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from cinema.db.catalog import get_catalog_id, renew_catalog_id

ROOT = Path(__file__).parents[2]


async def test_renewals_from_the_same_id_agree_on_one_new_id(db, database_url):
    old = await get_catalog_id(db)
    other = await asyncpg.connect(database_url)
    try:
        first = await renew_catalog_id(db, old)
        second = await renew_catalog_id(other, old)  # it saw the old id too: it takes the winner's
    finally:
        await other.close()
    assert first == second == await get_catalog_id(db) != old


async def test_the_table_holds_exactly_one_catalog(db):
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute("INSERT INTO catalog DEFAULT VALUES")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO catalog (one) VALUES (false)")


async def test_the_new_catalog_id_command_renews_it(db, database_url):
    old = await get_catalog_id(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")} | {"CINEMA_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "cinema", "new-catalog-id"]
    run = subprocess.run  # in a thread: the test's loop keeps serving its own connections
    result = await asyncio.to_thread(run, command, env=env, cwd=ROOT, capture_output=True, timeout=60, text=True)
    assert result.returncode == 0, result.stderr
    new = await get_catalog_id(db)
    assert new != old
    assert result.stdout.strip() == f"catalog {old} is now {new}: restart the service"

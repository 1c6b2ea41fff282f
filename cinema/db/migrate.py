"""Schema migrations with yoyo (plain SQL files in `migrations/`).

yoyo is synchronous and speaks psycopg 3 (`postgresql+psycopg://`); the async service
calls it through `asyncio.to_thread`. `backend.lock()` serialises concurrent runs, so
several processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import structlog
from yoyo import get_backend, read_migrations

log = structlog.get_logger("cinema.db")


def migrations_dir() -> Path:
    """The migrations of a source checkout, else the copy installed inside the package."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "migrations").is_dir():
        return root / "migrations"
    return Path(str(resources.files("cinema") / "migrations"))


def yoyo_url(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def migration_ids() -> list[str]:
    return [m.id for m in read_migrations(str(migrations_dir()))]


def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        applied = [m.id for m in pending]
        log.info("migrations_applied", applied=applied)
        return applied
    finally:
        backend.connection.close()


def rollback_all(dsn: str) -> None:
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            backend.rollback_migrations(backend.to_rollback(migrations))
    finally:
        backend.connection.close()


async def apply_migrations_async(dsn: str) -> list[str]:
    return await asyncio.to_thread(apply_migrations, dsn)

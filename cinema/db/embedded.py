"""The embedded PostgreSQL used when `CINEMA_DATABASE_URL` is unset.

The `pgserver` wheel ships the PostgreSQL binaries; the server listens on a Unix socket
only (no TCP port to clash with), with its data in `<data_dir>/postgres`. Run as root,
pgserver runs the server as a system user `pgserver` it creates, and opens the parent
folders of the data folder for reading (o+rx); see the README.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import structlog

log = structlog.get_logger("cinema.db")

DATABASE = "cinema"


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, database: str = DATABASE) -> Iterator[str]:
    """Start (or join) the embedded server, make sure `database` exists, yield its DSN; stop on exit."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # pgserver wants a runtime dir for its socket and lock
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about the runtime dir on import
        from pgserver.postgres_server import get_server

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        _create_database(server.get_uri("postgres"), database)
        dsn = server.get_uri(database)
        log.info("embedded_postgres_started", pgdata=str(pgdata))
        yield dsn
    finally:
        server.cleanup()
        log.info("embedded_postgres_stopped", pgdata=str(pgdata))


def _create_database(admin_dsn: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

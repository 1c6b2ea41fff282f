"""What the benchmarks share: free ports and scratch databases."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg

# One load generator is one client: a benchmark of the service puts every budget out of its reach
# (what the limiter costs is bench.security's question).
UNLIMITED = {
    "CINEMA_RATE_LIMIT": "0",
    "CINEMA_RATE_LIMIT_WRITES": "0",
    "CINEMA_RATE_LIMIT_SEARCH": "0",
    "CINEMA_RATE_LIMIT_UPLOADS": "0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database of the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A new, empty database on `server` for as long as the block runs; its DSN."""
    name = f"cinema_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def services() -> tuple[str, str] | None:
    """The PostgreSQL server and Redis a benchmark runs against; None, said on stderr, without wrk."""
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return None
    database = os.environ.get("CINEMA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return database, os.environ.get("CINEMA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

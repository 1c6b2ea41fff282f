"""`kill -9` of a worker of the real service (`python -m cinema serve --workers 2`) in the middle
of a burst of 2,000 writes, half over HTTP and half as RabbitMQ commands.

The victim is the worker that relays the outbox to RabbitMQ, so the kill also lands in the
middle of publishing. After the parent has replaced it: every acknowledged write is in the
database, every committed change's event is on the broker, its document in the search index
(PostgreSQL backend), every command applied exactly once, and no cached answer, in either
worker's in-process layer or in Redis, is older than the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import orjson
import psutil
from aio_pika.abc import AbstractQueue

from cinema.bus.amqp import Topology, declare_commands
from cinema.bus.commands import COMMANDS
from tests.bus.conftest import events_queue
from tests.conftest import eventually
from tests.test_serve import free_port, wait_ready, workers

ENTITIES = 500  # over HTTP: a create and a patch each; over RabbitMQ: a creating and an updating upsert
CLIENTS = 8  # HTTP clients writing at once


@contextlib.contextmanager
def service(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "cinema", "serve", "--port", str(port), "--workers", "2"],
            env=base | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            wait_ready(port, process, timeout=60)
            yield process, port
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


async def worker_of(db: asyncpg.Connection, process: subprocess.Popen[bytes], application: str) -> int:
    """The pid of the worker whose connection named `application` leads (holds its advisory
    lock; the other worker's waits), found by the connection's client port."""
    query = """SELECT a.client_port FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
               WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1
               AND a.datname = current_database() AND a.client_port IS NOT NULL"""
    pid = None

    async def found() -> bool:
        nonlocal pid
        ports = {row["client_port"] for row in await db.fetch(query, application)}
        for candidate in workers(process):
            with contextlib.suppress(psutil.Error):
                if any(c.laddr.port in ports for c in psutil.Process(candidate).net_connections("tcp")):
                    pid = candidate
                    return True
        return False

    await eventually(found, timeout=30)
    assert pid is not None
    return pid


async def test_kill_9_of_a_worker_mid_burst_loses_nothing(
    database_url, redis_server_url, redis_prefix, amqp_server, amqp, topology: Topology, db, tmp_path
):
    env = {
        "CINEMA_DATABASE_URL": database_url,
        "CINEMA_MIGRATE_ON_START": "false",
        "CINEMA_REDIS_URL": redis_server_url,
        "CINEMA_REDIS_PREFIX": redis_prefix,
        "CINEMA_REDIS_TIMEOUT": "1.0",  # a loaded machine: this test is about crashes, not latency
        "CINEMA_AMQP_URL": amqp_server,
        "CINEMA_AMQP_PREFIX": topology.prefix,
        "CINEMA_RELAY_POLL_INTERVAL": "0.2",
        "CINEMA_SEARCH_POLL_INTERVAL": "0.5",
        "CINEMA_RATE_LIMIT": "0",
        "CINEMA_RATE_LIMIT_WRITES": "0",  # one client sends the whole burst
        "CINEMA_LOG_FORMAT": "json",
        "CINEMA_LOG_LEVEL": "warning",
        "CINEMA_SHUTDOWN_TIMEOUT": "5",
    }
    events = await events_queue(amqp, topology)  # another system's subscription, from the start
    await declare_commands(amqp, topology, COMMANDS)  # as the service does: commands wait in the queue
    with service(env, tmp_path / "log") as (process, port):
        base = f"http://127.0.0.1:{port}"
        await worker_of(db, process, "cinema-relay")  # the leaders have started
        await worker_of(db, process, "cinema-indexer")
        # Commands: published (and confirmed by the broker) while the HTTP burst runs.
        commands = await amqp.get_exchange(topology.commands)
        sent: list[str] = []

        async def command(n: int, version: int) -> None:
            body = {"source": "faults", "external_id": f"c{n}", "data": {"name": f"Command {n} v{version}"}}
            message_id = uuid.uuid4().hex
            message = aio_pika.Message(
                orjson.dumps(body), message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await commands.publish(message, routing_key="genre.upsert")
            sent.append(message_id)

        async def publish() -> None:
            for version in range(2):
                for n in range(ENTITIES):
                    await command(n, version)

        # HTTP: each entity is created, read (cached), patched and read again by one client.
        created: dict[int, int] = {}  # entity number -> id, acknowledged creates
        names: dict[int, set[str]] = {}  # entity number -> the names its row may hold now
        acknowledged = 0

        async def write(session: aiohttp.ClientSession, n: int) -> None:
            nonlocal acknowledged
            try:
                async with session.post(f"{base}/api/v1/genres", json={"name": f"Http {n}"}) as resp:
                    assert resp.status == 201, await resp.text()
                    created[n] = (await resp.json())["id"]
                acknowledged += 1
                names[n] = {f"Http {n}"}
                url = f"{base}/api/v1/genres/{created[n]}"
                async with session.get(url) as resp:
                    assert resp.status == 200
                names[n].add(f"Http {n} patched")  # from now on either name may be stored
                async with session.patch(url, json={"name": f"Http {n} patched"}) as resp:
                    assert resp.status == 200, await resp.text()
                acknowledged += 1
                names[n] = {f"Http {n} patched"}
                async with session.get(url) as resp:
                    assert resp.status == 200
                    # Exact on the worker that wrote; the other one converges within milliseconds.
                    assert (await resp.json())["name"] in (f"Http {n}", f"Http {n} patched")
            except (TimeoutError, aiohttp.ClientError):
                pass  # the worker died under this request: not acknowledged, either outcome is fine

        async def client(numbers: range) -> None:
            # A connection per request, so that both workers (SO_REUSEPORT) take requests of each client.
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
                for n in numbers:
                    await write(session, n)

        publishing = asyncio.create_task(publish())
        burst = asyncio.gather(*(client(range(c, ENTITIES, CLIENTS)) for c in range(CLIENTS)))
        # The relaying worker dies at a third of the burst; at two thirds, the one then indexing.
        for share, application in ((3, "cinema-relay"), (1.5, "cinema-indexer")):
            victim = await worker_of(db, process, application)
            await eventually(lambda: acknowledged >= 2 * ENTITIES / share, timeout=60)  # noqa: B023
            os.kill(victim, signal.SIGKILL)  # at once: with requests in flight
            # The parent replaces it; the survivor takes over what it led meanwhile.
            await eventually(lambda: victim not in workers(process) and len(workers(process)) == 2, timeout=30)  # noqa: B023
        await burst
        await publishing
        assert acknowledged > ENTITIES  # most of the burst was acknowledged, before and after the kills
        await asyncio.to_thread(wait_ready, port, process)

        # Every command applied exactly once.
        done = f"SELECT count(*) = {len(sent)} FROM processed_commands"
        await eventually(lambda: db.fetchval(done), timeout=60)
        by_command = await db.fetch("SELECT name FROM genres WHERE name LIKE 'Command %' ORDER BY id")
        assert [row["name"] for row in by_command] == [f"Command {n} v1" for n in range(ENTITIES)]

        # Every acknowledged HTTP write is stored.
        stored = {row["id"]: row["name"] for row in await db.fetch("SELECT id, name FROM genres")}
        for n, genre_id in created.items():
            assert stored[genre_id] in names[n], (n, stored[genre_id])

        await everything_on_the_broker(db, events)
        await everything_indexed(db, stored)
        await nothing_stale(base, stored)
    assert process.returncode == 0


async def everything_on_the_broker(db: asyncpg.Connection, queue: AbstractQueue) -> None:
    """Every event in the outbox reached the subscription (at least once)."""
    await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"), timeout=60)
    expected = {row["id"] for row in await db.fetch("SELECT id::text FROM outbox")}
    received: set[str] = set()
    async with asyncio.timeout(60), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            assert message.message_id in expected, "an event of no committed change"
            assert json.loads(message.body)["id"] == message.message_id
            received.add(message.message_id)
            if received == expected:
                break


async def everything_indexed(db: asyncpg.Connection, stored: dict[int, str]) -> None:
    """The search index holds every genre as it is now."""
    query = "SELECT id, title FROM search_documents WHERE kind = 'genre'"

    async def current() -> bool:
        return {row["id"]: row["title"] for row in await db.fetch(query)} == stored

    await eventually(current, timeout=60)


async def nothing_stale(base: str, stored: dict[int, str]) -> None:
    """Every genre, and every list page, as the database has it, from whichever worker answers."""
    deadline = time.monotonic() + 30
    # New connections each round, so that both workers (SO_REUSEPORT) answer some of them.
    for _ in range(2):
        connector = aiohttp.TCPConnector(force_close=True, limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def check(genre_id: int) -> None:
                async with session.get(f"{base}/api/v1/genres/{genre_id}") as resp:
                    assert resp.status == 200
                    assert (await resp.json())["name"] == stored[genre_id], genre_id

            await asyncio.gather(*(check(genre_id) for genre_id in stored))
            listed: dict[int, str] = {}
            cursor = None
            while True:
                query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
                async with session.get(f"{base}/api/v1/genres{query}") as resp:
                    page = await resp.json()
                listed |= {item["id"]: item["name"] for item in page["items"]}
                if (cursor := page["next_cursor"]) is None:
                    break
            assert listed == stored
        assert time.monotonic() < deadline

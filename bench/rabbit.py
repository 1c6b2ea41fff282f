"""RabbitMQ benchmark: command ingest, outbox relay throughput, and publish lag from commit to broker.

    python -m bench.rabbit [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
                           [--amqp-url amqp://guest:guest@127.0.0.1:5672/] [--commands 20000]
                           [--events 50000] [--lag-rate 500] [--lag-seconds 10] [--json]

Each run creates a fresh database on the server named by `--dsn` (dropped afterwards) and
exchanges and queues under a unique prefix (deleted afterwards), so it can run beside tests.

1. Command ingest: N `genre.upsert` commands wait in the command queue; the service starts and
   applies them. Timed from the consumer's start until every command is applied *and* every
   resulting `genre.created` event is confirmed by the broker. Target: >= 2,000/s.
2. Outbox relay: N events wait in the outbox; a relay starts and publishes them, with publisher
   confirms, to the events exchange (one queue bound to it). Target: >= 5,000 events/s.
3. Publish lag: genres are created at a steady rate through the catalog actor while a client
   listens on a queue bound to the events exchange: the time from the commit (the catalog's
   answer) to the message's arrival, so it includes the broker's delivery too (an upper bound
   of commit -> broker). p50, p99 and max.

The service, the load and the listener share one process and event loop (and the machine with
PostgreSQL and RabbitMQ): the numbers are a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
from aiohttp import web

from bench.common import with_database
from cinema.actors.catalog import CreateGenres
from cinema.app import create_app
from cinema.bus.amqp import Broker, Topology, declare_commands, declare_events
from cinema.bus.commands import COMMANDS
from cinema.bus.local import LocalBus
from cinema.bus.relay import OutboxRelay
from cinema.db.migrate import apply_migrations
from cinema.db.outbox import NewEvent, append_events
from cinema.http.keys import CATALOG, COMMAND_CONSUMER, RELAY
from cinema.logs import configure_logging
from cinema.models import GenreCreate
from cinema.settings import Settings

TARGETS = {"command_ingest_per_s": 2000, "relay_events_per_s": 5000}


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 600) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.005)


async def start_service(settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(create_app(settings), handle_signals=False)
    await runner.setup()  # runs every cleanup_ctx: pool, actors, broker, relay, consumer
    return runner


async def bench_commands(settings: Settings, topology: Topology, count: int) -> dict[str, float]:
    async with await aio_pika.connect(settings.amqp_url) as connection:
        channel = await connection.channel()
        await declare_commands(channel, topology, COMMANDS)
        await declare_events(channel, topology)
        exchange = await channel.get_exchange(topology.commands)
        for start in range(0, count, 1000):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            orjson.dumps({"source": "bench", "external_id": f"g{n}", "data": {"name": f"genre {n}"}}),
                            message_id=f"m{n}",
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        "genre.upsert",
                    )
                    for n in range(start, min(start + 1000, count))
                )
            )
    runner = await start_service(settings)
    try:
        app = runner.app
        await app[COMMAND_CONSUMER].consuming.wait()
        started, cpu = time.perf_counter(), time.process_time()
        await until(lambda: app[COMMAND_CONSUMER].applied >= count)
        applied = time.perf_counter() - started
        await until(lambda: app[RELAY].published >= count)
        published, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await runner.cleanup()
    return {
        "commands": count,
        "command_ingest_per_s": round(count / published),
        "command_ingest_per_cpu_s": round(count / cpu),
        "command_apply_only_per_s": round(count / applied),
        "command_ingest_seconds": round(published, 3),
    }


async def bench_relay(dsn: str, amqp_url: str, topology: Topology, count: int) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE outbox")
        data = orjson.dumps({"id": 1, "slug": "a-genre-of-some-length", "name": "A genre of some length"}).decode()
        for start in range(0, count, 5000):
            async with conn.transaction():
                await append_events(
                    conn, [NewEvent("genre.updated", n % 997 + 1, data) for n in range(start, min(start + 5000, count))]
                )
    finally:
        await conn.close()
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)  # somewhere for the events to go, as in production
        await queue.bind(await declare_events(channel, topology), "#")
        broker = Broker(amqp_url)
        broker.start()
        relay = OutboxRelay(dsn, LocalBus(), broker, topology)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            relay.start()
            await until(lambda: relay.published >= count)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await relay.stop()
            await broker.stop()
    return {
        "events": count,
        "relay_events_per_s": round(count / elapsed),
        "relay_events_per_cpu_s": round(count / cpu),
        "relay_seconds": round(elapsed, 3),
    }


async def bench_lag(settings: Settings, topology: Topology, rate: float, seconds: float) -> dict[str, float]:
    committed: dict[int, float] = {}
    lags: list[float] = []
    runner = await start_service(settings)
    try:
        app = runner.app
        await app[RELAY].leading.wait()
        async with await aio_pika.connect(settings.amqp_url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(await declare_events(channel, topology), "genre.created")

            async def listen(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                arrived = time.perf_counter()
                entity_id = json.loads(message.body)["entity_id"]
                await until(lambda: entity_id in committed, timeout=10)  # the answer may come just after
                lags.append(arrived - committed[entity_id])

            await queue.consume(listen, no_ack=True)
            catalog = app[CATALOG]
            total = int(rate * seconds)
            started = time.perf_counter()

            async def create(n: int) -> None:
                [(genre_id, _)] = await catalog.ask(CreateGenres((GenreCreate(name=f"lag {n}"),)))
                committed[genre_id] = time.perf_counter()

            writes = []
            for n in range(total):
                # An open loop: each write starts on schedule, whatever the previous ones do.
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                writes.append(asyncio.create_task(create(n)))
            await asyncio.gather(*writes)
            await until(lambda: len(lags) >= total, timeout=60)
    finally:
        await runner.cleanup()
    ordered = sorted(lags)
    return {
        "lag_rate_per_s": rate,
        "lag_samples": len(ordered),
        "publish_lag_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "publish_lag_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "publish_lag_max_ms": round(ordered[-1] * 1000, 2),
    }


async def cleanup_topology(amqp_url: str, topology: Topology) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for queue in (topology.commands, topology.dead):
            await channel.queue_delete(queue)
        for exchange in (topology.events, topology.commands, topology.unrouted, topology.dead):
            await channel.exchange_delete(exchange)


async def run(args: argparse.Namespace) -> dict[str, float]:
    name = f"cinema_bench_rabbit_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(args.dsn, name)
    topology = Topology(f"cinema-bench-{secrets.token_hex(4)}")
    try:
        await asyncio.to_thread(apply_migrations, dsn)
        settings = Settings(
            database_url=dsn,
            amqp_url=args.amqp_url,
            amqp_prefix=topology.prefix,
            migrate_on_start=False,
            data_dir=Path("/tmp"),
            log_level="warning",
        )
        results = await bench_commands(settings, topology, args.commands)
        results |= await bench_relay(dsn, args.amqp_url, topology, args.events)
        conn = await asyncpg.connect(dsn)
        await conn.execute("TRUNCATE outbox, genres, external_ids, processed_commands RESTART IDENTITY CASCADE")
        await conn.close()
        results |= await bench_lag(settings, topology, args.lag_rate, args.lag_seconds)
    finally:
        await cleanup_topology(args.amqp_url, topology)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


def _loop_runner() -> Callable[[Coroutine[Any, Any, dict[str, float]]], dict[str, float]]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=50_000)
    # Below what single-change transactions commit per second here: each waits for the disk.
    parser.add_argument("--lag-rate", type=float, default=200)
    parser.add_argument("--lag-seconds", type=float, default=10)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    configure_logging(Settings(log_level="warning", log_format="console"))
    load_before = os.getloadavg()[0]
    results = _loop_runner()(run(args))
    # The machine's other work changes the numbers a lot: they travel with its load.
    results |= {"load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        target = TARGETS.get(key)
        verdict = "" if target is None else f"  (target >= {target}: {'met' if value >= target else 'MISSED'})"
        print(f"{key:28} {value:>12}{verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

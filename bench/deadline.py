"""What the statement deadline (`CINEMA_DB_STATEMENT_TIMEOUT`) costs a pooled query.

With a `command_timeout`, asyncpg arms a timer for every statement. This measures the
catalog's shape of work, a pool acquire, one prepared fetch and the release, with the
deadline on and off, in alternating rounds so that background load weighs on both alike:

    python -m bench.deadline [--server postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from cinema.db.pool import SESSION

QUERY = "SELECT $1::int + 1"


async def per_query(pool: asyncpg.Pool, count: int) -> float:
    """Microseconds per acquire + fetch + release, over `count` sequential queries."""
    started = time.perf_counter()
    for n in range(count):
        async with pool.acquire() as conn:
            await conn.fetchval(QUERY, n)
    return (time.perf_counter() - started) / count * 1e6


async def main(server: str, rounds: int, count: int) -> None:
    pools = {
        "off": await asyncpg.create_pool(server, min_size=1, max_size=1, server_settings=SESSION),
        "on": await asyncpg.create_pool(
            server, min_size=1, max_size=1, server_settings=SESSION, timeout=60, command_timeout=60
        ),
    }
    try:
        results: dict[str, list[float]] = {name: [] for name in pools}
        for pool in pools.values():
            await per_query(pool, count // 10)  # warm: statements prepared, plans cached
        for _ in range(rounds):
            for name, pool in pools.items():
                results[name].append(await per_query(pool, count))
    finally:
        for pool in pools.values():
            await pool.close()
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    for name, values in results.items():
        spread = f"{min(values):.1f}..{max(values):.1f}"
        print(f"deadline {name:3}: median {statistics.median(values):7.1f} us/query  (rounds: {spread})")
    print(f"cost of the deadline: {on - off:+.1f} us/query ({(on - off) / off:+.1%})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main(args.server, args.rounds, args.count))

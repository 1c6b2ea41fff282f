"""The benchmark's baselines: the service's HTTP stack with (almost) nothing behind it.

    python -m bench.baselines constant --port P --workers W --size BYTES
    python -m bench.baselines fetch --port P --workers W --dsn DSN [--pool-size 10]

Both run like `cinema serve --workers W`: W processes started by spawn, each an aiohttp
application on uvloop bound with SO_REUSEPORT to the same port, no access log.

- `constant` answers any path with one fixed JSON body of BYTES bytes: the ceiling of the
  HTTP stack alone for a body of that size.
- `fetch` answers `/movies/{id}` with that movie's row, read with one asyncpg `fetchval`
  on a pooled connection (the pool sized as the service's default): the ceiling of a
  service that reads one row from PostgreSQL per request.

Each worker prints `{"event": "listening", "pid": ...}` once it accepts connections (the
harness counts them). SIGTERM or SIGINT stops the workers; a worker whose parent dies
gets SIGTERM too (Linux), so none outlives a killed harness.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
import uvloop
from aiohttp import web

# The row as PostgreSQL renders it, like the service's reads.
FETCH_MOVIE = "SELECT row_to_json(m)::text FROM movies m WHERE m.id = $1"
PR_SET_PDEATHSIG = 1
EMPTY_BODY = b'{"padding":""}'
POOL = web.AppKey("pool", asyncpg.Pool)


def die_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent process dies (nothing elsewhere)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def constant_app(size: int) -> web.Application:
    body = b'{"padding":"' + b"x" * (size - len(EMPTY_BODY)) + b'"}'
    if len(body) != size:
        raise ValueError(f"--size must be at least {len(EMPTY_BODY)}")

    async def constant(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", constant)
    return app


def fetch_app(dsn: str, pool_size: int) -> web.Application:
    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            dsn, min_size=min(2, pool_size), max_size=pool_size, server_settings={"timezone": "UTC"}
        )
        app[POOL] = pool
        try:
            yield
        finally:
            await pool.close()

    async def fetch(request: web.Request) -> web.Response:
        async with request.app[POOL].acquire() as conn:
            doc = await conn.fetchval(FETCH_MOVIE, int(request.match_info["id"]))
        if doc is None:
            raise web.HTTPNotFound()
        return web.Response(text=doc, content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get(r"/movies/{id:\d+}", fetch)
    return app


async def serve(app: web.Application, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024).start()
        print(json.dumps({"event": "listening", "pid": os.getpid()}), flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def worker(make_app: Callable[[], web.Application], port: int) -> None:
    die_with_parent()
    uvloop.run(serve(make_app(), port))


def run_workers(target: Callable[..., None], args: tuple[Any, ...], workers: int) -> int:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args, name="baseline-worker") for _ in range(workers)]
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.exitcode is None:
                process.terminate()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for process in processes:
        process.start()
    code = 0
    for process in processes:
        process.join()
        if process.exitcode and not stopping:
            code = 1
            request_stop(signal.SIGTERM, None)
    return code


def constant_worker(size: int, port: int) -> None:
    worker(lambda: constant_app(size), port)


def fetch_worker(dsn: str, pool_size: int, port: int) -> None:
    worker(lambda: fetch_app(dsn, pool_size), port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("constant", "fetch"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", type=int, default=2048, help="constant: body size in bytes")
    parser.add_argument("--dsn", help="fetch: the PostgreSQL database holding the movies")
    parser.add_argument("--pool-size", type=int, default=10, help="fetch: connections per worker")
    args = parser.parse_args(argv)
    die_with_parent()
    if args.kind == "constant":
        constant_app(args.size)  # a bad size fails here, once, not in every worker
        return run_workers(constant_worker, (args.size, args.port), args.workers)
    if not args.dsn:
        parser.error("fetch needs --dsn")
    return run_workers(fetch_worker, (args.dsn, args.pool_size, args.port), args.workers)


if __name__ == "__main__":
    sys.exit(main())

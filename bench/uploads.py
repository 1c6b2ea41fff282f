"""Upload benchmark: N concurrent image uploads, their throughput, their time to done, the service's memory.

    python -m bench.uploads [--server postgresql://postgres@127.0.0.1:5432/postgres] [--uploads 50]
                            [--size 1048576] [--json]

A scratch database on `--server` (dropped afterwards) and a scratch data folder (local storage);
the service runs as in production (`cinema serve`, one worker), and this process is the client.
Each of `--uploads` movies gets a poster of about `--size` bytes (incompressible PNG noise, so
the bytes on the wire are the size), all sent at once as raw bodies. Measured:

- accepted/s: uploads answered 202 per second, from the first request to the last answer;
- time to done: from an upload's request to its `GET /uploads/{id}` first reading `done`
  (p50 and max), and uploads/s to done for the whole batch;
- the service's peak RSS (its process tree, sampled every 10 ms) above its RSS before the batch.

Targets: no error, every upload done, peak RSS growth under 100 MB (bodies are streamed to spool
files, never held whole). About ten seconds on this 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from PIL import Image

from bench.common import UNLIMITED, free_port, scratch_database
from bench.run import child, child_env, http_get, wait_until_serving
from cinema.db.migrate import apply_migrations

MAX_RSS_GROWTH = 100 * 1024 * 1024


def noise_png(size: int) -> bytes:
    side = max(16, int((size / 3) ** 0.5))
    picture = Image.frombytes("RGB", (side, side), secrets.token_bytes(side * side * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in (process, *process.children(recursive=True)):
        with suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


async def sample_peak(process: psutil.Process, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, tree_rss(process))
        try:
            async with asyncio.timeout(0.01):
                await stop.wait()
        except TimeoutError:
            pass
    return max(peak, tree_rss(process))


async def one_upload(session: aiohttp.ClientSession, base: str, movie_id: int, body: bytes) -> tuple[float, float]:
    """(seconds to the 202, seconds to done), from the request."""
    started = time.perf_counter()
    async with session.put(f"{base}/api/v1/movies/{movie_id}/poster", data=io.BytesIO(body)) as resp:
        if resp.status != 202:
            raise RuntimeError(f"upload for movie {movie_id}: {resp.status} {await resp.text()}")
        location = resp.headers["Location"]
    accepted = time.perf_counter() - started
    while True:
        async with session.get(base + location) as resp:
            upload = await resp.json()
        if upload["status"] == "done":
            return accepted, time.perf_counter() - started
        if upload["status"] == "failed":
            raise RuntimeError(f"upload {upload['id']} failed: {upload['error']}")
        await asyncio.sleep(0.02)  # a client polling its upload's status


async def drive(base: str, process: psutil.Process, count: int, size: int) -> dict[str, Any]:
    bodies = [noise_png(size) for _ in range(count)]
    async with aiohttp.ClientSession() as session:
        ids = []
        for i in range(count + 1):
            async with session.post(f"{base}/api/v1/movies", json={"title": f"Movie {i}"}) as resp:
                ids.append((await resp.json())["id"])
        await one_upload(session, base, ids.pop(), bodies[0])  # warm up: imports, first connections
        before = tree_rss(process)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_peak(process, stop))
        started = time.perf_counter()
        try:
            results = await asyncio.gather(*(one_upload(session, base, i, b) for i, b in zip(ids, bodies, strict=True)))
        finally:
            stop.set()
            peak = await sampler
        elapsed = time.perf_counter() - started
    accepted = [a for a, _ in results]
    done = [d for _, d in results]
    return {
        "uploads": count,
        "bytes_each": len(bodies[0]),
        "accepted_per_s": round(count / max(accepted), 1),
        "done_per_s": round(count / elapsed, 1),
        "time_to_done_s": {"p50": round(statistics.median(done), 3), "max": round(max(done), 3)},
        "rss_before_mb": round(before / 2**20, 1),
        "rss_growth_mb": round((peak - before) / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.uploads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024 * 1024, help="bytes per image (about)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    with ExitStack() as stack, scratch_database(args.server) as dsn:
        apply_migrations(dsn)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cinema-bench-uploads-")))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = child_env(
            {
                "CINEMA_DATABASE_URL": dsn,
                "CINEMA_DATA_DIR": str(folder),
                **UNLIMITED,
                "CINEMA_LOG_FORMAT": "json",
                "CINEMA_LOG_LEVEL": "warning",
            }
        )
        command = [sys.executable, "-m", "cinema", "serve", "--port", str(port), "--workers", "1"]
        service = stack.enter_context(child("the service", command, env, folder / "service.log"))
        wait_until_serving(
            "the service", service, folder / "service.log", lambda: http_get(base + "/health/ready")[0] == 200
        )
        result = asyncio.run(drive(base, psutil.Process(service.pid), args.uploads, args.size))
    result["ok"] = result["rss_growth_mb"] * 2**20 < MAX_RSS_GROWTH
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['uploads']} uploads of {result['bytes_each']} bytes at once: "
            f"{result['accepted_per_s']} accepted/s, {result['done_per_s']} done/s; time to done "
            f"p50 {result['time_to_done_s']['p50']} s, max {result['time_to_done_s']['max']} s; "
            f"peak RSS +{result['rss_growth_mb']} MB over {result['rss_before_mb']} MB "
            f"({'ok' if result['ok'] else 'over the 100 MB target'})"
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

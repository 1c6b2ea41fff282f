"""Cache benchmark: movie detail and list reads with the cache off and on, against a
constant-JSON baseline of the same size, and how fast a write on one instance reaches another.

    python -m bench.cache [--duration 5] [--rounds 5] [--connections 64] [--writes 200]

Needs PostgreSQL (CINEMA_BENCH_DATABASE_URL, default the local server; a scratch database is
created, seeded with `cinema seed`, indexed and dropped), Redis (CINEMA_BENCH_REDIS_URL, default the
local one) and `wrk`. Each server is `python -m cinema serve` with one worker and production
logging (JSON lines at info, one per request, written to /dev/null) and the rate limiter on
(with a limit wrk cannot reach). The baseline is a bare aiohttp app answering a constant body
of the same size as the endpoint it stands for. Results and the targets of the cache issue
are printed as a Markdown table and written to bench/results/cache.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp

from bench.common import free_port, scratch_database, services

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MOVIES = 1000
DETAIL = "/api/v1/movies/1"
LIST = "/api/v1/movies?limit=20"
# The cache issue's targets: a hit's requests/s as a share of the baseline's, and its p99 at most
# this many times the baseline's.
DETAIL_TARGET, LIST_TARGET, P99_FACTOR = 0.60, 0.50, 2.0


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.05)


# With two cores or more, servers run on one and wrk on another, so they do not take turns on
# one core and a server's requests/s measure what it costs, not how the scheduler shared it.
PINNED = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
SERVER_CPU, WRK_CPU = "1", "0"
WRK_THREADS = 1 if PINNED else 2


def on_cpu(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if PINNED else argv


@contextlib.contextmanager
def listening(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `argv` until the block ends; yields its base URL once `port` accepts connections."""
    process = subprocess.Popen(on_cpu(SERVER_CPU, argv), cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


@contextlib.contextmanager
def server(database_url: str, hash_seed: int | None = None, **settings: str) -> Iterator[str]:
    """A cinema process on a free port, with production logging; yields its base URL.

    `hash_seed` fixes PYTHONHASHSEED, for benches that compare two servers started together.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    env |= {
        "CINEMA_DATABASE_URL": database_url,
        "CINEMA_PORT": str(port),
        "CINEMA_LOG_FORMAT": "json",
        "CINEMA_LOG_LEVEL": "info",
        "CINEMA_RATE_LIMIT": "10000000",  # on, as in production, but out of wrk's reach
        **{f"CINEMA_{k.upper()}": v for k, v in settings.items()},
    }
    with listening([sys.executable, "-m", "cinema", "serve"], port, env) as base:
        yield base


@contextlib.contextmanager
def baseline(size: int) -> Iterator[str]:
    """bench/baselines.py's bare aiohttp app answering a constant JSON body of `size` bytes."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.baselines", "constant", "--port", str(port), "--workers", "1"]
    with listening([*argv, "--size", str(size)], port) as base:
        yield base


def wrk(url: str, duration: int, connections: int, headers: Sequence[str] = ()) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency in ms; `headers` ("Name: value") go with every request."""
    options = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        on_cpu(WRK_CPU, ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--latency", *options, url]),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load on {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, _latency(out, "50%"), _latency(out, "99%")


def _latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def seed(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    env["CINEMA_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "cinema", "seed", "--movies", str(MOVIES)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    # Indexed now, or each server's indexer would build the search index while under load.
    command = [sys.executable, "-m", "cinema", "reindex"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


async def fetch(base: str, path: str, cache: str | None = None) -> bytes:
    """The body at `path`; with `cache`, fetched until X-Cache says so (a hit once it is stored)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            async with http.get(base + path) as resp:
                assert resp.status == 200, await resp.text()
                if cache is None or resp.headers.get("X-Cache") == cache:
                    return await resp.read()
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{path} never answered with X-Cache: {cache}")


async def convergence(first: str, second: str, writes: int) -> list[float]:
    """Seconds from the writer's reply until the other instance serves the new value."""
    delays = []
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{first}/api/v1/genres", json={"name": "Convergence 0"}) as resp:
            url = f"/api/v1/genres/{(await resp.json())['id']}"
        for i in range(1, writes + 1):
            async with http.patch(first + url, json={"name": f"Convergence {i}"}) as resp:
                assert resp.status == 200
            replied = time.perf_counter()
            while True:
                async with http.get(second + url) as resp:
                    name = (await resp.json())["name"]
                if name == f"Convergence {i}":
                    break
                assert name == f"Convergence {i - 1}", f"older value after write {i}: {name}"
            delays.append(time.perf_counter() - replied)
    return delays


def median(runs: Sequence[Sequence[float]], column: int) -> float:
    return statistics.median(run[column] for run in runs)


def _check(label: str, ratios: list[tuple[float, float]], share: float) -> str:
    """Two table rows: requests/s as a share of the baseline's, and p99 as a multiple of its p99."""
    ratio, slower = median(ratios, 0), median(ratios, 1)
    return (
        f"| {label}: req/s vs baseline | {ratio:.0%} | >= {share:.0%} | {'yes' if ratio >= share else 'NO'} |\n"
        f"| {label}: p99 vs baseline | {slower:.2f}x | <= {P99_FACTOR:.0f}x | "
        f"{'yes' if slower <= P99_FACTOR else 'NO'} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of hits alternating with baselines")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--writes", type=int, default=200, help="writes for the convergence measurement")
    args = parser.parse_args()
    found = services()
    if found is None:
        return 2
    database, redis = found
    RESULTS.mkdir(exist_ok=True)
    rows: dict[str, list[tuple[float, float, float]]] = {}

    def measure(label: str, url: str) -> tuple[float, float]:
        rps, p50, p99 = wrk(url, args.duration, args.connections)
        rows.setdefault(label, []).append((rps, p50, p99))
        print(f"{label:<48} {rps:>9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms", flush=True)
        return rps, p99

    ratios: dict[str, list[tuple[float, float]]] = {"detail": [], "list": []}
    with scratch_database(database) as dsn:
        seed(dsn)
        prefix = f"cinema_bench_{secrets.token_hex(4)}"
        with server(dsn, cache_enabled="false") as base:
            detail, page = asyncio.run(fetch(base, DETAIL)), asyncio.run(fetch(base, LIST))
            measure("movie detail: cache off (PostgreSQL)", base + DETAIL)
            measure("movie list page: cache off (PostgreSQL)", base + LIST)
        with server(dsn, redis_url=redis, redis_prefix=prefix, cache_entries="0") as base:
            asyncio.run(fetch(base, DETAIL, cache="hit"))
            asyncio.run(fetch(base, LIST, cache="hit"))
            measure("movie detail: cache hit, Redis only", base + DETAIL)
            measure("movie list page: cache hit, Redis only", base + LIST)
        # The targets compare a hit with a baseline measured right before it, round after round:
        # this machine's speed drifts over minutes, and a ratio of neighbours is what stays put.
        with server(dsn) as app, baseline(len(detail)) as detail_base, baseline(len(page)) as list_base:
            asyncio.run(fetch(app, DETAIL, cache="hit"))
            asyncio.run(fetch(app, LIST, cache="hit"))
            for _ in range(args.rounds):
                # The app's own cheapest answer (same edge and log line): the floor for a hit.
                measure("app: /health/live (constant, no actor)", app + "/health/live")
                bare = measure(f"baseline: constant {len(detail)} B JSON (detail)", detail_base + "/")
                hit = measure("movie detail: cache hit, in-process layer", app + DETAIL)
                ratios["detail"].append((hit[0] / bare[0], hit[1] / bare[1]))
                bare = measure(f"baseline: constant {len(page)} B JSON (list page)", list_base + "/")
                hit = measure("movie list page: cache hit, in-process layer", app + LIST)
                ratios["list"].append((hit[0] / bare[0], hit[1] / bare[1]))
        with (
            server(dsn, redis_url=redis, redis_prefix=prefix) as first,
            server(dsn, redis_url=redis, redis_prefix=prefix) as second,
        ):
            delays = sorted(asyncio.run(convergence(first, second, args.writes)))
    p50, p99 = statistics.median(delays) * 1000, delays[max(0, int(len(delays) * 0.99) - 1)] * 1000
    checks = [
        _check("movie detail hit", ratios["detail"], DETAIL_TARGET),
        _check("movie list page hit", ratios["list"], LIST_TARGET),
    ]
    lines = [
        f"wrk -t{WRK_THREADS} -c{args.connections} -d{args.duration}s"
        f"{', wrk and the servers on separate cores' if PINNED else ''}, one worker per server, "
        "JSON logging at info; "
        f"medians of {args.rounds} rounds where a scenario ran in each",
        "",
        "| scenario | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
        *(
            f"| {label} | {median(runs, 0):.0f} | {median(runs, 1):.2f} | {median(runs, 2):.2f} |"
            for label, runs in rows.items()
        ),
        "",
        "| target (median of the rounds' ratios) | measured | required | met |",
        "|---|---|---|---|",
        *checks,
        "",
        f"Convergence across two instances (Redis + LISTEN/NOTIFY), {len(delays)} writes: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {delays[-1] * 1000:.2f} ms (never an older value)",
    ]
    report = "\n".join(lines)
    print("\n" + report)
    (RESULTS / "cache.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

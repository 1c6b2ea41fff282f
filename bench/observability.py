"""What metrics and tracing cost a cached movie detail: the same server with both off, then on.

    python -m bench.observability [--duration 5] [--rounds 6] [--connections 64] [--ratio 0.01]

"On" is `CINEMA_METRICS=true` (the default: per-route counters, scraped here once a round
like Prometheus would) and tracing exporting over OTLP/HTTP to a local collector that takes
every batch and answers 200 (bench.observability's `collector`), sampled the way a busy
service would run it: `parentbased_traceidratio` at `--ratio` (also measured at 1.0, every
request a span, for the record). "Off" is `CINEMA_METRICS=false` and no OTEL_* variable.
Servers run one worker with production logging, like bench/cache.py's, against a scratch
database seeded with `cinema seed`; every round starts a fresh pair with the same hash seed and
alternates which goes first, so that drift and the start-to-start spread of a process's speed
weigh on both.

The cost is measured as the server's CPU time per request (user + system, from /proc), which
other load on a shared machine disturbs far less than requests/s; requests/s are reported too.
Results go to bench/results/observability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from subprocess import DEVNULL

import aiohttp
from aiohttp import web

from bench.cache import DETAIL, RESULTS, SERVER_CPU, WRK_THREADS, fetch, on_cpu, seed, wait_for_port, wrk
from bench.common import free_port, scratch_database

TARGET = 0.10  # the issue's: metrics and tracing on cost a cached detail under 10%


@contextlib.contextmanager
def collector() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP endpoint that accepts every export (in a thread); yields its URL and batch sizes."""
    port = free_port()
    received: list[int] = []
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def traces(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def serve() -> web.AppRunner:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, name="otlp-collector", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(database_url: str, environ: dict[str, str], hash_seed: int = 0) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CINEMA_", "OTEL_", "SENTRY_"))}
    env |= {
        "PYTHONHASHSEED": str(hash_seed),
        "CINEMA_DATABASE_URL": database_url,
        "CINEMA_PORT": str(port),
        "CINEMA_LOG_FORMAT": "json",
        "CINEMA_LOG_LEVEL": "info",
        "CINEMA_RATE_LIMIT": "10000000",
        **environ,
    }
    process = subprocess.Popen(on_cpu(SERVER_CPU, [sys.executable, "-m", "cinema", "serve"]), env=env, stdout=DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(30)


async def scrape(base: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as resp:
        assert resp.status == 200
        return len(await resp.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, fresh servers each")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ratio", type=float, default=0.01, help="the trace sampling ratio of 'on'")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    database = os.environ.get("CINEMA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    RESULTS.mkdir(exist_ok=True)
    runs: dict[str, list[tuple[float, float, float, float]]] = {}

    def measure(label: str, target: tuple[str, int]) -> float:
        """Loads the server; returns its CPU microseconds per request."""
        base, pid = target
        before = cpu_seconds(pid)
        rps, p50, p99 = wrk(base + DETAIL, args.duration, args.connections)
        cpu: float = (cpu_seconds(pid) - before) / (rps * args.duration) * 1e6
        runs.setdefault(label, []).append((rps, p50, p99, cpu))
        print(f"{label:<44} {rps:>8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {cpu:6.1f} us CPU", flush=True)
        return cpu

    off_label = "off: no metrics, no tracing"
    on_label = f"on: metrics + tracing sampled at {args.ratio:g}"
    all_label = "on: metrics + tracing of every request"
    costs: list[float] = []
    with scratch_database(database) as dsn, collector() as (endpoint, batches):
        seed(dsn)
        tracing = {"CINEMA_METRICS": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "bench"}
        sampled = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(args.ratio)}
        # Fresh servers every round, both with the round's hash seed: one process runs several
        # percent faster or slower than the next of the same build (the layout of its memory and
        # its dicts), more than the cost measured; over rounds that lottery averages out.
        for n in range(args.rounds):
            with server(dsn, {"CINEMA_METRICS": "false"}, n) as off, server(dsn, tracing | sampled, n) as on:
                for base, _ in (off, on):
                    asyncio.run(fetch(base, DETAIL, cache="hit"))
                # Off and on take turns going first: neither always runs after the other.
                if n % 2:
                    cpu_on = measure(on_label, on)
                    cpu_off = measure(off_label, off)
                else:
                    cpu_off = measure(off_label, off)
                    cpu_on = measure(on_label, on)
                costs.append(cpu_on / cpu_off - 1)
                scraped = asyncio.run(scrape(on[0]))  # what Prometheus does every 15 s, once a round here
        # Every request traced, for the record, apart: its exporter keeps working after its load.
        with server(dsn, tracing | {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}) as every:
            asyncio.run(fetch(every[0], DETAIL, cache="hit"))
            for _ in range(max(1, args.rounds // 2)):
                measure(all_label, every)
    cost = statistics.median(costs)
    lines = [
        f"wrk -t{WRK_THREADS} -c{args.connections} -d{args.duration}s on {DETAIL} (a cache hit), one worker per "
        f"server, JSON logging at info; medians of {args.rounds} rounds; spans exported to a local OTLP/HTTP "
        f"collector ({len(batches)} batches received, {sum(batches) / 1e6:.1f} MB); a scrape is {scraped} bytes",
        "",
        "| scenario | req/s | p50 ms | p99 ms | server CPU per request |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {_median(rows, 0):.0f} | {_median(rows, 1):.2f} | {_median(rows, 2):.2f} |"
            f" {_median(rows, 3):.1f} us |"
            for label, rows in runs.items()
        ),
        "",
        "| target (median of the rounds' costs) | measured | required | met |",
        "|---|---|---|---|",
        f"| CPU per request added by metrics + tracing at {args.ratio:g} | {cost:.1%} | < {TARGET:.0%} | "
        f"{'yes' if cost < TARGET else 'NO'} |",
    ]
    report = "\n".join(lines)
    print("\n" + report)
    (RESULTS / "observability.md").write_text(report + "\n")
    return 0 if cost < TARGET else 1


def _median(rows: list[tuple[float, float, float, float]], column: int) -> float:
    return statistics.median(row[column] for row in rows)


if __name__ == "__main__":
    sys.exit(main())

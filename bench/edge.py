"""What each per-request feature of the edge costs, in process: no sockets, no HTTP parser.

    python -m bench.edge [--requests 50000] [--repeats 5]

The edge (cinema/http/edge.py) wraps a handler answering a constant 1,500-byte body, configured
as production would be for each scenario, and is called with one prepared request in a loop
(the event loop gets a turn every 32 calls, as under load, so batched work such as the access
lines and the rate limiter's Redis calls runs as it would). Logging is JSON at info to stdout
(send it to /dev/null). The best of `--repeats` runs is reported, as microseconds per request
and as the cost over the bare edge.

The server benches (bench.observability, bench.security) measure the same features end to end,
but one server process runs several percent faster or slower than the next of the same build,
which is the size of what they measure; this one is steady to a tenth of a microsecond.
Needs Redis (CINEMA_BENCH_REDIS_URL, default the local one) for the shared limiter's scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Mapping

import uvloop
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from cinema import logs, telemetry
from cinema.http.auth import TokenVerifier
from cinema.http.edge import Guard
from cinema.metrics import RouteMetrics
from cinema.settings import Settings

BODY = b"x" * 1500
SECRET = "bench-edge-" + "x" * 32
BUDGETS = ("CINEMA_RATE_LIMIT", "CINEMA_RATE_LIMIT_WRITES", "CINEMA_RATE_LIMIT_SEARCH", "CINEMA_RATE_LIMIT_UPLOADS")
NO_LIMIT = dict.fromkeys(BUDGETS, "0")
LIMITED = dict.fromkeys(BUDGETS, "10000000")  # on, beyond the loop's reach
BASE = {"CINEMA_DATABASE_URL": "postgresql://unused/unused", "CINEMA_LOG_FORMAT": "json", "CINEMA_LOG_LEVEL": "info"}


async def constant(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def measure(
    environ: Mapping[str, str],
    *,
    requests: int,
    repeats: int,
    metrics: bool = False,
    ratio: float | None = None,
    token: str | None = None,
) -> float:
    """Microseconds per request through the edge configured by `environ` (best of the repeats)."""
    if ratio is None:
        telemetry.uninstall_tracing()
    else:
        telemetry.install_tracing(TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio))))
    guard = Guard.from_settings(Settings.from_env(BASE | dict(environ)))
    if guard.limiter is not None:
        await guard.limiter.start()
    try:
        counters = RouteMetrics("/api/v1/movies/{id}", "GET") if metrics else None
        edged = guard.edge(constant, "GET", "/api/v1/movies/{id}", counters)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = make_mocked_request("GET", "/api/v1/movies/1", headers=headers)
        answer = await edged(request)
        if answer.status != 200 or getattr(answer, "body", None) != BODY:  # a refusal would be measured instead
            raise RuntimeError(f"the edge answered {answer.status}, not the handler's body")
        best = float("inf")
        for repeat in range(repeats + 1):  # the first is the warm-up
            started = time.perf_counter()
            for i in range(requests):
                await edged(request)
                if i % 32 == 0:
                    await asyncio.sleep(0)
            if repeat:
                best = min(best, (time.perf_counter() - started) / requests * 1e6)
        return best
    finally:
        if guard.limiter is not None:
            await guard.limiter.stop()
        telemetry.uninstall_tracing()


async def run(requests: int, repeats: int, redis_url: str) -> list[tuple[str, float]]:
    token = TokenVerifier(SECRET).issue("bench", ttl=3600)
    redis = {"CINEMA_REDIS_URL": redis_url, "CINEMA_REDIS_PREFIX": f"cinema_bench_edge_{os.getpid()}"}
    scenarios: list[tuple[str, dict[str, object]]] = [
        ("bare edge: no metrics, tracing, auth or limit", {"environ": NO_LIMIT}),
        ("metrics", {"environ": NO_LIMIT, "metrics": True}),
        ("tracing, nothing sampled", {"environ": NO_LIMIT, "ratio": 0.0}),
        ("tracing sampled at 0.01 (no exporter)", {"environ": NO_LIMIT, "ratio": 0.01}),
        ("metrics + tracing at 0.01", {"environ": NO_LIMIT, "metrics": True, "ratio": 0.01}),
        ("bearer token checked", {"environ": NO_LIMIT | {"CINEMA_JWT_SECRET": SECRET}, "token": token}),
        ("in-process rate limiter", {"environ": LIMITED}),
        ("token + Redis rate limiter", {"environ": LIMITED | redis | {"CINEMA_JWT_SECRET": SECRET}, "token": token}),
    ]
    results = []
    for label, options in scenarios:
        results.append((label, await measure(requests=requests, repeats=repeats, **options)))  # type: ignore[arg-type]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logs.configure_logging(Settings.from_env(BASE))
    redis_url = os.environ.get("CINEMA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    results = uvloop.run(run(args.requests, args.repeats, redis_url))
    bare = results[0][1]
    lines = [
        f"The edge around a constant handler, in process; best of {args.repeats} x {args.requests} calls",
        "",
        "| scenario | us per request | over the bare edge |",
        "|---|---|---|",
        *(f"| {label} | {us:.2f} | {us - bare:+.2f} us |" for label, us in results),
    ]
    print("\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

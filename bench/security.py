"""Security benchmark: a cached movie detail with token checks and the Redis rate limiter on,
against the same server with both off.

    python -m bench.security [--duration 3] [--rounds 6] [--connections 64]

Needs PostgreSQL (CINEMA_BENCH_DATABASE_URL, default the local server; a scratch database is
created, seeded, indexed and dropped), Redis (CINEMA_BENCH_REDIS_URL, default the local one) and
`wrk`. Both servers are `python -m cinema serve` with one worker, production logging and the same
Redis; the one with security on has CINEMA_JWT_SECRET set and every budget limited (beyond wrk's
reach), and wrk sends a valid bearer token on every request, so each request verifies its token
(remembered after the first) and spends its budget in Redis (one script call). The off server
has no key and no budget. Each round starts fresh servers (the same PYTHONHASHSEED for all three
in a round, another each round) and alternates their order: a process's speed varies by several
percent from one start to the next, more than the cost measured. The cost is measured as the
server's CPU time per request (user + system, read with psutil around each wrk run), the median of
the rounds' ratios: on a shared machine requests/s follow the other load, CPU per request does not
(requests/s are reported too). Results are printed as a Markdown table and written to bench/results/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
from urllib.parse import urlsplit

import psutil

from bench.cache import DETAIL, RESULTS, WRK_THREADS, fetch, seed, server, wrk
from bench.common import scratch_database, services
from cinema.http.auth import TokenVerifier

TARGET = 0.10  # the security issue's ceiling: what auth and the shared limiter may cost a cached read
LIMIT = "10000000"


def server_process(base: str) -> psutil.Process:
    """The child process listening on `base`'s port."""
    port = urlsplit(base).port
    for child in psutil.Process().children(recursive=True):
        if any(c.laddr and c.laddr.port == port for c in child.net_connections(kind="tcp")):
            return child
    raise RuntimeError(f"no child process listens on {base}")


def measured(base: str, duration: int, connections: int, headers: tuple[str, ...]) -> tuple[float, float, float, float]:
    """wrk's requests/s, p50 and p99, and the server's CPU time per request in microseconds.

    The CPU time is the work a request costs, whatever share of the cores the server got: on a
    shared machine it moves far less from run to run than requests/s.
    """
    process = server_process(base)
    before = sum(process.cpu_times()[:2])
    rps, p50, p99 = wrk(base + DETAIL, duration, connections, headers)
    cpu = sum(process.cpu_times()[:2]) - before
    return rps, p50, p99, cpu / (rps * duration) * 1_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of off and on, alternating, fresh servers each")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    found = services()
    if found is None:
        return 2
    database, redis = found
    secret = secrets.token_hex(32)
    token = TokenVerifier(secret).issue("bench", ttl=3600)
    header = f"Authorization: Bearer {token}"
    prefix = f"cinema_bench_{secrets.token_hex(4)}"
    common = {"redis_url": redis, "redis_prefix": prefix}
    budgets = ("", "_writes", "_search", "_uploads")
    off = common | {f"rate_limit{s}": "0" for s in budgets}
    on = common | {f"rate_limit{s}": LIMIT for s in budgets} | {"jwt_secret": secret}
    # The limiter as it was before (in process, no key): what this issue's features add on top of it.
    local = {f"rate_limit{s}": LIMIT for s in budgets}
    RESULTS.mkdir(exist_ok=True)
    runs: dict[str, list[tuple[float, float, float, float]]] = {"off": [], "local": [], "on": []}
    with scratch_database(database) as dsn:
        seed(dsn)
        # Fresh servers every round, the three with the same hash seed: one process runs several
        # percent faster or slower than the next of the same build (the layout of its memory and
        # its dicts), more than what is measured here; over rounds that lottery averages out.
        for n in range(args.rounds):
            with (
                server(dsn, hash_seed=n, **off) as plain,
                server(dsn, hash_seed=n, **local) as limited,
                server(dsn, hash_seed=n, **on) as guarded,
            ):
                for base in (plain, limited, guarded):
                    asyncio.run(fetch(base, DETAIL, cache="hit"))
                order = [("off", plain, ()), ("local", limited, ()), ("on", guarded, (header,))]
                for label, base, headers in order if n % 2 == 0 else order[::-1]:
                    result = measured(base, args.duration, args.connections, headers)
                    runs[label].append(result)
                    print(
                        f"security {label:<5} {result[0]:>9.0f} req/s  p50 {result[1]:6.2f} ms  p99 {result[2]:6.2f} ms"
                        f"  {result[3]:6.1f} us CPU/request",
                        flush=True,
                    )
    pairs = list(zip(runs["off"], runs["on"], strict=True))
    cost = statistics.median(on_run[3] / off_run[3] - 1 for off_run, on_run in pairs)  # CPU per request
    throughput = statistics.median(1 - on_run[0] / off_run[0] for off_run, on_run in pairs)
    added = statistics.median(on[3] / before[3] - 1 for before, on in zip(runs["local"], runs["on"], strict=True))
    rows = [
        f"| {label} | {statistics.median(r[0] for r in results):.0f} | {statistics.median(r[1] for r in results):.2f}"
        f" | {statistics.median(r[2] for r in results):.2f} | {statistics.median(r[3] for r in results):.1f} |"
        for label, results in (
            ("cached movie detail, no token key, no rate limit", runs["off"]),
            ("cached movie detail, no token key, in-process rate limiter (the limiter before)", runs["local"]),
            ("cached movie detail, bearer token checked, Redis rate limiter", runs["on"]),
        )
    ]
    report = "\n".join(
        [
            f"wrk -t{WRK_THREADS} -c{args.connections} -d{args.duration}s, one worker per server, JSON logs, "
            f"medians of {args.rounds} alternating rounds",
            "",
            "| scenario | req/s | p50 ms | p99 ms | server CPU per request (us) |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "| target | measured | required | met |",
            "|---|---|---|---|",
            f"| server CPU per cached read, auth + Redis limiter on vs off (median of the rounds) | {cost:+.1%} | "
            f"< {TARGET:.0%} | {'yes' if cost < TARGET else 'NO'} |",
            f"| requests/s lost (median of the rounds; moves with the machine's other load) | {throughput:.1%} | | |",
            f"| server CPU per cached read, auth + Redis limiter vs the in-process limiter | {added:+.1%} | | |",
        ]
    )
    print("\n" + report)
    (RESULTS / "security.md").write_text(report + "\n")
    return 0 if cost < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

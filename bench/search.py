"""Search benchmark: indexing rate of a bulk import, search latency, live-push latency.

    python bench/search.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                           [--movies 10000] [--persons 20000] [--clients 8] [--requests 4000] [--pushes 200]

It creates a scratch database on the server (dropped at the end), starts the service on
it (`python -m cinema serve`, PostgreSQL search backend, one process), and then:

1. bulk import: synthetic persons, movies (with genres, countries and ~5 credits each),
   genres and countries are written the way the catalog writes them (rows and their
   events in transactions of 1000, announced with NOTIFY), while the service's indexer
   consumes the outbox; the rate is events / (last event indexed - first commit);
2. search latency: after ANALYZE (what autovacuum does within a minute of the import),
   `--clients` concurrent HTTP clients issue `--requests` GET /api/v1/search (as-you-type
   prefixes, whole words, two words, a typo, some with a type filter) after a warm-up;
   there is no cache in front of search, so every request reaches PostgreSQL;
3. live push: a websocket holds a live query; `--pushes` times, a genre matching it is
   created over HTTP and the time until its hit frame arrives is measured, from the
   request's start (an upper bound of commit -> frame) and from its response (after the
   commit: a lower bound).
Results print as a table and, with --json, as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import UNLIMITED, free_port, scratch_database  # noqa: E402
from cinema.db.migrate import apply_migrations  # noqa: E402
from cinema.db.outbox import CHANNEL, OUTBOX_LOCK  # noqa: E402
from cinema.search.documents import COUNTRY_JSON, MOVIE_JSON, PERSON_JSON  # noqa: E402

CHUNK = 1000  # items per transaction, as POST /bulk allows
# A made-up language with a realistic vocabulary size, so that prefixes are as selective
# as in a real catalog; plus common English words (as unselective as in real titles) and
# accented names and titles.
SYLLABLES = "ka lo mi ra ne to su vi da re an el or in us ar en il on ma ri ta po li be so na de fa gu".split()  # noqa: SIM905
COMMON = "the of a and in to his her with who their from night love last".split()  # noqa: SIM905
ACCENTED = ["Amélie", "Léon", "Café", "Noël", "Señorita", "Über", "Zoë", "Élodie", "Müller", "Schäfer", "Lucía"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


VOCABULARY = vocabulary(random.Random(1), 8000)
FIRST = vocabulary(random.Random(2), 400)
LAST = vocabulary(random.Random(3), 4000)
GENRES = (  # noqa: SIM905
    "Drama Comedy Thriller Horror Romance Western Musical Documentary Animation Crime Fantasy Mystery "
    "Adventure Biography History War Family Sport Music Noir"
).split()
COUNTRIES = [
    ("US", "United States"),
    ("FR", "France"),
    ("IT", "Italy"),
    ("DE", "Germany"),
    ("JP", "Japan"),
    ("ES", "Spain"),
    ("GB", "United Kingdom"),
    ("SE", "Sweden"),
    ("BR", "Brazil"),
    ("IN", "India"),
]


# -- the scratch database and the service ------------------------------------------------


@contextlib.contextmanager
def service(dsn: str, port: int, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    env |= {
        "CINEMA_DATABASE_URL": dsn,
        "CINEMA_PORT": str(port),
        "CINEMA_WORKERS": str(workers),
        "CINEMA_MIGRATE_ON_START": "false",
        "CINEMA_LOG_LEVEL": "warning",
        "CINEMA_LOG_FORMAT": "json",
        **UNLIMITED,
    }
    process = subprocess.Popen([sys.executable, "-m", "cinema", "serve"], cwd=ROOT, env=env)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


async def wait_ready(base: str, session: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/health/ready") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)


# -- 1. the bulk import ------------------------------------------------------------------

APPEND = f"""
WITH lock AS (SELECT pg_advisory_xact_lock({OUTBOX_LOCK})),
inserted AS (
    INSERT INTO outbox (type, entity_id, data)
    SELECT $1, x.id, x.doc::jsonb FROM lock, ({{rows}}) AS x(id, doc) ORDER BY x.id
    RETURNING seq
)
SELECT min(seq), max(seq), pg_notify('{CHANNEL}', 'bench:' || min(seq) || ':' || max(seq)) FROM inserted
"""
PERSON_EVENTS = APPEND.format(rows=f"SELECT p.id, {PERSON_JSON} FROM persons p WHERE p.id = ANY($2::bigint[])")
MOVIE_EVENTS = APPEND.format(rows=f"SELECT m.id, {MOVIE_JSON} FROM movies m WHERE m.id = ANY($2::bigint[])")
GENRE_EVENTS = APPEND.format(
    rows="SELECT g.id, (SELECT row_to_json(d) FROM (SELECT g.id, g.slug, g.name) d)::text"
    " FROM genres g WHERE g.id = ANY($2::bigint[])"
)
COUNTRY_EVENTS = APPEND.format(rows=f"SELECT c.id, {COUNTRY_JSON} FROM countries c WHERE c.id = ANY($2::bigint[])")


def title(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY).title() for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.05:
        words.insert(0, rng.choice(ACCENTED))
    if rng.random() < 0.3:
        words.insert(rng.randint(0, len(words)), rng.choice(COMMON).title())
    return " ".join(words)


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(COMMON) if rng.random() < 0.4 else rng.choice(VOCABULARY) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def person(rng: random.Random) -> str:
    first = rng.choice(ACCENTED) if rng.random() < 0.05 else rng.choice(FIRST).title()
    return f"{first} {rng.choice(LAST).title()}"


async def bulk_import(conn: asyncpg.Connection, movies: int, persons: int, rng: random.Random) -> tuple[int, int]:
    """Write the catalog as the service would (rows + events, 1000 a transaction); returns (events, last seq)."""
    events, last = 0, 0

    async def chunk(sql: str, kind: str, ids: Sequence[int]) -> None:
        nonlocal events, last
        _, high, _ = await conn.fetchrow(sql, f"{kind}.created", list(ids))
        events += len(ids)
        last = high

    async with conn.transaction():
        genre_ids = await conn.fetchval(
            "WITH g AS (INSERT INTO genres (slug, name) SELECT lower(n), n FROM unnest($1::text[]) n RETURNING id)"
            " SELECT array_agg(id) FROM g",
            GENRES,
        )
        await chunk(GENRE_EVENTS, "genre", genre_ids)
    async with conn.transaction():
        country_ids = await conn.fetchval(
            "WITH c AS (INSERT INTO countries (code, slug, name) SELECT c, lower(c), n"
            " FROM unnest($1::text[], $2::text[]) AS x(c, n) RETURNING id) SELECT array_agg(id) FROM c",
            [c for c, _ in COUNTRIES],
            [n for _, n in COUNTRIES],
        )
        await chunk(COUNTRY_EVENTS, "country", country_ids)
    person_ids: list[int] = []
    for start in range(0, persons, CHUNK):
        names = [person(rng) for _ in range(start, min(persons, start + CHUNK))]
        async with conn.transaction():
            ids = await conn.fetchval(
                "WITH p AS (INSERT INTO persons (slug, full_name, biography)"
                " SELECT 'p-' || ($1::int + n), name, bio FROM unnest($2::text[], $3::text[])"
                " WITH ORDINALITY AS x(name, bio, n) RETURNING id) SELECT array_agg(id ORDER BY id) FROM p",
                start,
                names,
                [sentence(rng, 25) for _ in names],
            )
            await chunk(PERSON_EVENTS, "person", ids)
        person_ids += ids
    for start in range(0, movies, CHUNK):
        count = min(movies, start + CHUNK) - start
        async with conn.transaction():
            ids = await conn.fetchval(
                "WITH m AS (INSERT INTO movies (slug, title, original_title, description, release_year)"
                " SELECT 'm-' || ($1::int + n), t, o, d, y FROM unnest($2::text[], $3::text[], $4::text[], $5::int[])"
                " WITH ORDINALITY AS x(t, o, d, y, n) RETURNING id) SELECT array_agg(id ORDER BY id) FROM m",
                start,
                [title(rng) for _ in range(count)],
                [title(rng) if rng.random() < 0.3 else None for _ in range(count)],
                [sentence(rng, 40) for _ in range(count)],
                [rng.randint(1920, 2025) for _ in range(count)],
            )
            links = [(m, g) for m in ids for g in rng.sample(genre_ids, 2)]
            await conn.executemany("INSERT INTO movie_genres VALUES ($1, $2)", links)
            await conn.executemany(
                "INSERT INTO movie_countries VALUES ($1, $2)", [(m, rng.choice(country_ids)) for m in ids]
            )
            credits = [(m, p, i) for m in ids for i, p in enumerate(rng.sample(person_ids, 5))]
            await conn.executemany(
                "INSERT INTO credits (movie_id, person_id, role, position) VALUES ($1, $2, 'actor', $3)", credits
            )
            await chunk(MOVIE_EVENTS, "movie", ids)
    return events, last


class IndexProgress:
    """The indexer's NOTIFY cinema_indexed ("<origin>:<first>:<last>"), and when each arrived."""

    def __init__(self) -> None:
        self.through, self.at = 0, 0.0
        self.changed = asyncio.Event()

    def heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.through, self.at = int(payload.rsplit(":", 1)[1]), time.perf_counter()
        self.changed.set()

    async def reached(self, seq: int) -> float:
        """When the indexer announced `seq` indexed."""
        async with asyncio.timeout(300):
            while self.through < seq:
                self.changed.clear()
                await self.changed.wait()
        return self.at


# -- 2. search latency -------------------------------------------------------------------


def queries(rng: random.Random, n: int) -> list[dict[str, str]]:
    """What people type: prefixes of titles and names as they type them, whole words, typos, accents."""
    made = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.35:  # a title word, as you type
            word = rng.choice(VOCABULARY)
            q = word[: rng.randint(3, len(word))]
        elif kind < 0.55:  # a person, as you type
            first, last = rng.choice(FIRST), rng.choice(LAST)
            q = rng.choice([last[: rng.randint(3, len(last))], f"{first} {last[: rng.randint(1, len(last))]}"])
        elif kind < 0.7:  # two words
            q = f"{rng.choice(VOCABULARY)} {rng.choice(VOCABULARY)[:3]}"
        elif kind < 0.8:  # a common word first, as in "the godf"
            q = f"{rng.choice(COMMON)} {rng.choice(VOCABULARY)[: rng.randint(1, 5)]}"
        elif kind < 0.9:  # one typo
            word = rng.choice([w for w in VOCABULARY if len(w) >= 6])
            i = rng.randrange(1, len(word) - 1)
            q = word[:i] + word[i + 1 :]
        else:  # accents, typed without them
            q = rng.choice(["amelie", "leon", "cafe", "noel", "senorita", "uber", "zoe", "elodie", "muller"])
        params = {"q": q}
        if rng.random() < 0.25:
            params["type"] = rng.choice(["movie", "person"])
        made.append(params)
    return made


async def search_latency(base: str, clients: int, requests: int, rng: random.Random) -> dict[str, float]:
    mix = queries(rng, requests)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        for params in queries(rng, 200):  # warm-up: connections, plans, caches
            async with session.get(base + "/api/v1/search", params=params) as resp:
                await resp.read()
        pending = iter(mix)

        async def client() -> None:
            for params in pending:
                started = time.perf_counter()
                async with session.get(base + "/api/v1/search", params=params) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return summary(latencies) | {"requests_per_s": round(len(latencies) / elapsed, 1)}


# -- 3. live push ------------------------------------------------------------------------


async def live_push(base: str, pushes: int) -> dict[str, dict[str, float]]:
    from_request, from_response = [], []
    async with aiohttp.ClientSession() as session, session.ws_connect(base + "/api/v1/search/stream") as ws:
        await ws.send_json({"id": "live", "q": "livebench", "type": ["genre"], "live": True})
        while (await ws.receive_json())["event"] != "done":
            pass
        for i in range(pushes):
            started = time.perf_counter()
            async with session.post(base + "/api/v1/genres", json={"name": f"Livebench {i}"}) as resp:
                assert resp.status == 201, await resp.text()
                answered = time.perf_counter()
            while True:
                frame = await asyncio.wait_for(ws.receive_json(), 10)
                if frame["hit"]["title"] == f"Livebench {i}":
                    break
            arrived = time.perf_counter()
            from_request.append((arrived - started) * 1000)
            from_response.append((arrived - answered) * 1000)
    return {"from_request_start": summary(from_request), "from_response": summary(from_response)}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {
        "n": len(ordered),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


# -- the run -----------------------------------------------------------------------------


async def run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    rng = random.Random(args.seed)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {
        "movies": args.movies,
        "persons": args.persons,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 2),
    }
    with service(dsn, port, args.workers):
        async with aiohttp.ClientSession() as session:
            await wait_ready(base, session)
        conn = await asyncpg.connect(dsn)
        watcher = await asyncpg.connect(dsn)
        try:
            # The indexer has started from the (empty) snapshot before the import begins; it is
            # another process, so there is nothing to await but its table.
            async with asyncio.timeout(30):
                while await watcher.fetchval("SELECT count(*) FROM search_positions") == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            progress = IndexProgress()
            await watcher.add_listener("cinema_indexed", progress.heard)
            started = time.perf_counter()
            events, last = await bulk_import(conn, args.movies, args.persons, rng)
            imported = time.perf_counter()
            indexed = await progress.reached(last)
            results["bulk_import"] = {
                "events": events,
                "import_seconds": round(imported - started, 2),
                "indexed_seconds": round(indexed - started, 2),
                "indexed_after_import_seconds": round(indexed - imported, 2),
                "docs_per_s": round(events / (indexed - started), 1),
            }
            results["search_documents"] = await watcher.fetchval("SELECT count(*) FROM search_documents")
            # Statistics as autovacuum leaves them within a minute of a bulk import: searches are
            # measured in the steady state, not in the minute after the import.
            await watcher.execute("ANALYZE")
        finally:
            await conn.close()
            await watcher.close()
        results["search"] = await search_latency(base, args.clients, args.requests, rng) | {"clients": args.clients}
        results["live_push"] = await live_push(base, args.pushes)
    # Other work on the machine competes with the service, PostgreSQL and this client alike.
    results["load_after"] = round(os.getloadavg()[0], 2)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CINEMA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server (its database is only used to create and drop a scratch one)",
    )
    parser.add_argument("--movies", type=int, default=10_000)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1, help="service processes (serve --workers)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    with scratch_database(args.database_url) as dsn:
        apply_migrations(dsn)
        results = asyncio.run(run(args, dsn))
    if args.json:
        print(json.dumps(results))
        return 0
    bulk, search, live = results["bulk_import"], results["search"], results["live_push"]
    print(
        f"machine: {results['cpus']} CPUs, load average {results['load_before']} before and"
        f" {results['load_after']} after (this client and the {results['workers']}-process service included)"
    )
    print(
        f"catalog: {results['movies']} movies, {results['persons']} persons -> {results['search_documents']} documents"
    )
    print(
        f"bulk import: {bulk['events']} events committed in {bulk['import_seconds']} s, all indexed after"
        f" {bulk['indexed_seconds']} s ({bulk['indexed_after_import_seconds']} s after the last commit):"
        f" {bulk['docs_per_s']} documents/s"
    )
    print(
        f"search ({search['clients']} clients, {search['n']} requests, {search['requests_per_s']} req/s):"
        f" p50 {search['p50_ms']} ms, p90 {search['p90_ms']} ms, p99 {search['p99_ms']} ms, max {search['max_ms']} ms"
    )
    for name, stats in live.items():
        print(
            f"live push, commit -> frame ({name.replace('_', ' ')}, n={stats['n']}):"
            f" p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

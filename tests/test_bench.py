"""The benchmark's own parts: baselines, the wrk script, the target checks."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import aiohttp
import pytest

from bench.baselines import constant_app, fetch_app
from bench.observability import collector, cpu_seconds
from bench.run import FETCH_BASELINE, LUA, Endpoint, Run, checks
from cinema.seed import generate, write_catalog


async def test_the_constant_baseline_answers_json_of_the_given_size(aiohttp_client):
    client = await aiohttp_client(constant_app(1234))
    resp = await client.get("/api/v1/movies/7")
    body = await resp.read()
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert len(body) == 1234
    assert set(json.loads(body)) == {"padding"}
    with pytest.raises(ValueError, match="at least"):
        constant_app(3)


async def test_the_fetch_baseline_reads_one_movie_row(db, database_url, aiohttp_client):
    await write_catalog(db, generate(5, 20, seed=2))
    client = await aiohttp_client(fetch_app(database_url, 2))
    resp = await client.get("/movies/3")
    assert resp.status == 200
    movie = await resp.json()
    assert movie["id"] == 3
    assert movie["slug"] == await db.fetchval("SELECT slug FROM movies WHERE id = 3")
    assert (await client.get("/movies/99")).status == 404


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
async def test_the_wrk_script_asks_for_ids_in_range_and_reports_json(db, database_url, aiohttp_server):
    await write_catalog(db, generate(20, 20, seed=2))
    server = await aiohttp_server(fetch_app(database_url, 2))
    env = os.environ | {"BENCH_PATH": "/movies/{id}", "BENCH_ID_MIN": "1", "BENCH_ID_MAX": "20"}
    wrk = await asyncio.create_subprocess_exec(
        *("wrk", "-t1", "-c2", "-d1s", f"--script={LUA}", f"http://127.0.0.1:{server.port}/movies/1"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await wrk.communicate()
    [line] = [line for line in out.decode().splitlines() if line.startswith("BENCH_JSON ")]
    summary = json.loads(line.removeprefix("BENCH_JSON "))
    assert summary["requests"] > 0
    # Out-of-range or unsubstituted ids would be 404s, counted as status errors.
    assert summary["errors"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    assert 0 < summary["latency_us"]["p50"] <= summary["latency_us"]["p90"] <= summary["latency_us"]["p99"]


def run(name: str, requests_per_s: float, **errors: int) -> Run:
    return Run(name, "service", "/", requests_per_s=requests_per_s, errors={"status": 0, **errors})


def test_checks_compare_with_the_fetch_baseline_and_count_errors():
    endpoints = [Endpoint("detail", "/d/{id}", target=0.4), Endpoint("list", "/l", target=0.3), Endpoint("g", "/g")]
    runs = [run("detail", 399), run("list", 300), run("g", 5, read=2), run(FETCH_BASELINE, 1000)]
    found = {c.name: (c.passed, c.detail) for c in checks(runs, endpoints)}
    assert found == {
        f"detail >= 40% of {FETCH_BASELINE}": (False, "39.9%"),
        f"list >= 30% of {FETCH_BASELINE}": (True, "30.0%"),
        "zero non-2xx and socket errors": (False, "g: {'status': 0, 'read': 2}"),
    }


def test_a_skipped_endpoint_or_baseline_is_not_measured():
    endpoints = [Endpoint("detail", "/d/{id}", target=0.4)]
    skipped = Run("detail", "service", "/d/{id}", skipped="GET /d/1 answered 404")
    [target, errors] = checks([skipped, run(FETCH_BASELINE, 1000)], endpoints)
    assert (target.passed, target.detail) == (None, "not measured (detail)")
    assert errors.passed is True
    [target, _] = checks([run("detail", 500)], endpoints)
    assert (target.passed, target.detail) == (None, f"not measured ({FETCH_BASELINE})")


def test_the_cache_bench_judges_the_median_round_against_the_issue_targets():
    from bench.cache import _check

    rows = _check("movie detail hit", [(0.58, 1.5), (0.64, 2.4), (0.61, 1.9)], 0.60).splitlines()
    assert rows == [
        "| movie detail hit: req/s vs baseline | 61% | >= 60% | yes |",
        "| movie detail hit: p99 vs baseline | 1.90x | <= 2x | yes |",
    ]
    slow = _check("movie list page hit", [(0.45, 2.1), (0.49, 2.5), (0.52, 1.0)], 0.50)
    assert slow.splitlines()[0].endswith("| 49% | >= 50% | NO |")
    assert slow.splitlines()[1].endswith("| 2.10x | <= 2x | NO |")


async def test_the_observability_benchs_collector_takes_otlp_exports():
    with collector() as (endpoint, batches):
        async with aiohttp.ClientSession() as http, http.post(f"{endpoint}/v1/traces", data=b"spans") as resp:
            assert resp.status == 200
    assert batches == [5]
    assert cpu_seconds(os.getpid()) > 0


def test_the_upload_bench_runs_a_small_batch(postgres_server, capsys):
    from bench.uploads import main

    assert main(["--server", postgres_server, "--uploads", "3", "--size", "65536", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["uploads"] == 3
    assert result["ok"]
    assert result["time_to_done_s"]["p50"] <= result["time_to_done_s"]["max"]


async def test_the_edge_bench_measures_every_scenario_through_the_handler(redis_server_url):
    from bench import edge

    results = await edge.run(requests=64, repeats=1, redis_url=redis_server_url)
    assert results[0][0] == "bare edge: no metrics, tracing, auth or limit"
    assert len(results) == 8
    assert all(us > 0 for _, us in results)

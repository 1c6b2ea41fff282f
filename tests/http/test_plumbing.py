"""What every request gets: request ids, problem+json for every failure, health checks."""

from __future__ import annotations

import asyncio
import secrets

import orjson
import psycopg
import pytest
import structlog

from cinema.actors.catalog import CheckReady
from cinema.app import create_app
from cinema.db import genres
from cinema.db.catalog import get_catalog_id, renew_catalog_id
from cinema.db.migrate import apply_migrations
from cinema.http.keys import CATALOG
from cinema.http.problems import PROBLEM_JSON
from cinema.settings import Settings
from tests.conftest import eventually, with_database
from tests.http.helpers import EdgeServer, raw_request


async def test_request_id_is_echoed_or_generated(client):
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/health/live")
    assert len(generated.headers["X-Request-ID"]) == 32
    unsafe = await client.get("/health/live", headers={"X-Request-ID": "x" * 500})
    assert unsafe.headers["X-Request-ID"] != "x" * 500


async def test_errors_carry_the_request_id_too(client):
    resp = await client.get("/nowhere", headers={"X-Request-ID": "req-1"})
    assert resp.status == 404
    assert resp.headers["X-Request-ID"] == "req-1"


async def test_unknown_route_is_a_404_problem(client):
    resp = await client.get("/api/v1/unknown")
    assert resp.status == 404
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json()
    assert body == {
        "type": "/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No resource at /api/v1/unknown.",
        "instance": "/api/v1/unknown",
    }


@pytest.mark.parametrize("path", ["/api/docs/%0A", "/api/v1/genres/1%0A", "/%0A", "/api/v1/genres%0D%0A"])
async def test_a_path_with_a_line_break_is_a_404_problem_too(client, path):
    # The catch-all route did not match a newline: aiohttp answered a plain-text 404 without our id.
    resp = await client.get(path, headers={"X-Request-ID": "req-2"})
    assert (resp.status, resp.content_type) == (404, PROBLEM_JSON)
    assert resp.headers["X-Request-ID"] == "req-2"
    assert (await resp.json())["instance"] == path  # a URI reference: the line break percent-encoded


LIVE = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
TOO_LONG = "Got more than 8190 bytes when reading"


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (LIVE + b"Authorization: Bearer sec\x00ret\r\n\r\n", "Invalid header value char"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", TOO_LONG),
        (LIVE + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", TOO_LONG),
        (LIVE + b"Content-Length: -1\r\n\r\n", "Invalid character in Content-Length"),
    ],
)
async def test_a_request_aiohttp_refuses_is_a_problem_with_an_id_and_a_warning(
    aiohttp_client, app, request_bytes, error
):
    client = await aiohttp_client(EdgeServer(app))
    with structlog.testing.capture_logs() as logs:
        status, headers, body = await raw_request(client, request_bytes)
    assert status == 400
    assert headers["content-type"] == PROBLEM_JSON
    assert len(headers["x-request-id"]) == 32
    problem = orjson.loads(body)
    assert (problem["type"], problem["title"], problem["status"]) == ("/problems/bad-request", "Bad request", 400)
    assert problem["detail"] == f"The request is malformed: {error}."
    [line] = [entry for entry in logs if entry["log_level"] != "debug"]
    # The client's fault: a warning without a traceback, and nothing of what it sent (a header may be a secret).
    assert line == {"event": "http_request_refused", "log_level": "warning", "status": 400, "error": error,
                    "peer": "127.0.0.1"}  # fmt: skip
    assert (await client.get("/health/live")).status == 200


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_a_400_problem(aiohttp_client, app, encoding):
    # Met while the handler reads the body: this was an unhandled_error and a 500.
    client = await aiohttp_client(EdgeServer(app))
    with structlog.testing.capture_logs() as logs:
        status, headers, body = await raw_request(
            client,
            b"POST /api/v1/genres HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: " + encoding.encode() + b"\r\nContent-Length: 5\r\n\r\nabcde",
        )
    assert (status, headers["content-type"]) == (400, PROBLEM_JSON)
    assert orjson.loads(body)["instance"] == "/api/v1/genres"
    assert [entry for entry in logs if entry["log_level"] == "error"] == []


async def test_a_request_target_that_is_not_a_path_is_a_problem_too(aiohttp_client, app):
    client = await aiohttp_client(EdgeServer(app))
    status, headers, _ = await raw_request(client, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, headers["content-type"], len(headers["x-request-id"])) == (404, PROBLEM_JSON, 32)


async def test_wrong_method_is_a_405_problem_with_allow(client):
    resp = await client.put("/api/v1/genres")
    assert resp.status == 405
    assert resp.content_type == PROBLEM_JSON
    assert "GET" in resp.headers["Allow"]
    assert "POST" in resp.headers["Allow"]


async def test_a_crash_inside_the_catalog_actor_is_a_500_without_internals_then_service_goes_on(client, monkeypatch):
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    original = genres.get_genre
    calls = 0

    async def crash_once(conn, genre_id):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("secret internal detail")
        return await original(conn, genre_id)

    monkeypatch.setattr(genres, "get_genre", crash_once)
    with structlog.testing.capture_logs() as logs:
        resp = await client.get(f"/api/v1/genres/{genre['id']}")
    assert resp.status == 500
    assert resp.content_type == PROBLEM_JSON
    text = await resp.text()
    assert "secret internal detail" not in text
    assert "Traceback" not in text
    [error] = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert error["log_level"] == "error"
    # The exception itself: the configured processors render its whole traceback.
    assert isinstance(error["exc_info"], RuntimeError)
    assert str(error["exc_info"]) == "secret internal detail"
    again = await client.get(f"/api/v1/genres/{genre['id']}")
    assert again.status == 200
    assert client.app[CATALOG].stats().failed == 1


@pytest.fixture
def settings(database_url, tmp_path):
    # One slot in the mailbox and one worker, so the test can saturate the catalog; no cache,
    # whose single flight would fold the test's concurrent reads of one genre into one.
    return Settings(
        database_url=database_url,
        migrate_on_start=False,
        data_dir=tmp_path,
        db_pool_size=1,
        mailbox_size=1,
        ask_timeout=5,
        cache_enabled=False,
    )


async def test_a_saturated_actor_answers_503_with_retry_after_fast(client, monkeypatch):
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    release = asyncio.Event()
    started = asyncio.Event()
    original = genres.get_genre

    async def slow(conn, genre_id):
        started.set()
        await release.wait()
        return await original(conn, genre_id)

    monkeypatch.setattr(genres, "get_genre", slow)
    url = f"/api/v1/genres/{genre['id']}"
    busy = asyncio.create_task(client.get(url))
    await started.wait()
    queued = asyncio.create_task(client.get(url))
    await eventually(lambda: client.app[CATALOG].stats().mailbox == 1)
    rejected = await client.get(url)
    assert rejected.status == 503
    assert rejected.headers["Retry-After"] == "1"
    assert (await rejected.json())["type"] == "/problems/unavailable"
    release.set()
    assert (await busy).status == 200
    assert (await queued).status == 200


async def test_live_and_ready(client):
    assert (await client.get("/health/live")).status == 200
    ready = await client.get("/health/ready")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "catalog": "ok"}}


async def test_ready_turns_503_when_the_catalog_gets_a_new_id_under_a_running_service(client, db):
    await renew_catalog_id(db, await get_catalog_id(db))  # as `seed` or `new-catalog-id` do
    resp = await client.get("/health/ready")
    assert resp.status == 503
    assert "restart the service" in (await resp.json())["detail"]


async def test_ready_is_503_until_migrations_are_applied(aiohttp_client, postgres_server, tmp_path):
    # A deployment whose migrate job has not run yet: an empty database, migrate_on_start off.
    name = f"cinema_empty_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = with_database(postgres_server, name)
        client = await aiohttp_client(create_app(Settings(database_url=dsn, migrate_on_start=False, data_dir=tmp_path)))
        resp = await client.get("/health/ready")
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        assert "0001_updated_at" in (await resp.json())["detail"]
        assert await client.app[CATALOG].ask(CheckReady(("0001_updated_at",))) == ["0001_updated_at"]
        await asyncio.to_thread(apply_migrations, dsn)
        # Started before the catalog had an id: it must not serve under a provisional one.
        resp = await client.get("/health/ready")
        assert resp.status == 503
        assert "restart the service" in (await resp.json())["detail"]
        await client.close()
        client = await aiohttp_client(create_app(Settings(database_url=dsn, migrate_on_start=False, data_dir=tmp_path)))
        assert (await client.get("/health/ready")).status == 200
        await client.close()
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

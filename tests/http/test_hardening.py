"""Limits and headers every response gets: header sizes, security headers, CORS when configured."""

from __future__ import annotations

import attrs
import pytest

from cinema.app import create_app


async def test_every_response_says_nosniff_and_no_referrer(client):
    for path in ("/api/v1/genres", "/api/v1/nowhere", "/health/live"):
        resp = await client.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "Access-Control-Allow-Origin" not in resp.headers  # CORS is off by default


async def test_the_docs_page_has_a_strict_content_security_policy(client):
    resp = await client.get("/api/docs")
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


async def test_oversized_headers_are_refused_before_any_handler(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, max_header_bytes=1024, max_headers=16)))
    resp = await client.get("/api/v1/genres", headers={"X-Big": "x" * 2000})
    assert 400 <= resp.status < 500
    many = {f"X-H{i}": "1" for i in range(20)}
    assert 400 <= (await client.get("/api/v1/genres", headers=many)).status < 500
    assert (await client.get("/api/v1/genres", headers={"X-Small": "x" * 500})).status == 200


async def test_a_query_string_beyond_the_line_limit_is_refused(client):
    resp = await client.get("/api/v1/movies", params={"genre": ["drama"] * 2000})
    assert 400 <= resp.status < 500


@pytest.fixture
async def cors_client(aiohttp_client, settings, db):
    origins = "https://app.example, https://admin.example/"
    return await aiohttp_client(create_app(attrs.evolve(settings, cors_origins=origins)))


async def test_cors_answers_allowed_origins_only(cors_client):
    allowed = await cors_client.get("/api/v1/genres", headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "RateLimit-Remaining" in allowed.headers["Access-Control-Expose-Headers"]
    assert allowed.headers["Vary"] == "Origin"
    other = await cors_client.get("/api/v1/genres", headers={"Origin": "https://evil.example"})
    assert other.status == 200
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_cors_preflight(cors_client):
    asked = {"Origin": "https://admin.example", "Access-Control-Request-Method": "PATCH"}
    resp = await cors_client.options("/api/v1/genres/1", headers=asked)
    assert resp.status == 204
    assert "PATCH" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert resp.headers["Access-Control-Allow-Origin"] == "https://admin.example"
    refused = await cors_client.options("/api/v1/genres/1", headers=asked | {"Origin": "https://evil.example"})
    assert refused.status == 405
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_a_route_naming_an_unknown_budget_stops_the_start_up():
    from aiohttp import web

    from cinema.http.edge import Guard
    from cinema.http.spec import describe
    from cinema.settings import Settings

    @describe("x", tag="x", budget="upload")  # a typo of "uploads"
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ValueError, match="unknown rate-limit budget 'upload'"):
        Guard.from_settings(Settings(rate_limit=0)).edge(handler, "PUT", "/api/v1/movies/{id}/poster")

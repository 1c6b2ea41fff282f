"""Rate limits: headers on every response, 429 with Retry-After past the limit, a fresh window after."""

from __future__ import annotations

import pytest

from cinema.errors import RateLimited
from cinema.http.ratelimit import FixedWindow
from cinema.settings import Settings


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings(database_url=database_url, migrate_on_start=False, data_dir=tmp_path, rate_limit=3)


async def test_headers_count_down_then_429_with_retry_after(client):
    remaining = []
    for _ in range(3):
        resp = await client.get("/api/v1/genres")
        assert resp.status == 200
        assert resp.headers["RateLimit-Limit"] == "3"
        remaining.append(resp.headers["RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    limited = await client.get("/api/v1/genres/1")
    assert limited.status == 429
    body = await limited.json()
    assert body["type"] == "/problems/rate-limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["X-Request-ID"]


async def test_error_responses_carry_the_headers_too(client):
    resp = await client.get("/api/v1/nowhere")
    assert resp.status == 404
    assert resp.headers["RateLimit-Remaining"] == "2"


def test_a_new_window_starts_fresh_and_clients_are_counted_apart():
    now = [0.0]
    window = FixedWindow(limit=2, window=10, clock=lambda: now[0])
    assert window.admit("a") == (1, 10)
    assert window.admit("a") == (0, 10)
    assert window.admit("b") == (1, 10)
    now[0] = 4.2
    with pytest.raises(RateLimited) as refused:
        window.admit("a")
    assert refused.value.retry_after == 6
    now[0] = 25.0  # two windows later
    assert window.admit("a") == (1, 5)

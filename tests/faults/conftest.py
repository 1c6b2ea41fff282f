"""Fault-injection fixtures: a proxy of the test's own in front of each server the service uses.

The service under test reaches PostgreSQL, Redis and RabbitMQ only through these proxies, so a
test can cut, refuse, stall or slow one dependency while the shared servers (and every other
test session using them) go on untouched.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse

from tests.bus.conftest import amqp, amqp_settings, topologies, topology  # noqa: F401 (fixtures used here)
from tests.faults.proxy import Proxy

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[Proxy]:
    async with await Proxy.to(database_url) as proxy:
        yield proxy


@pytest.fixture
async def redis_proxy(redis_server_url: str) -> AsyncIterator[Proxy]:
    async with await Proxy.to(redis_server_url) as proxy:
        yield proxy


@pytest.fixture
async def amqp_proxy(amqp_server: str) -> AsyncIterator[Proxy]:
    async with await Proxy.to(amqp_server) as proxy:
        yield proxy


async def assert_unavailable(resp: ClientResponse) -> None:
    """A 503 problem+json with Retry-After: what a client gets while a required dependency is down."""
    assert resp.status == 503, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert (body["status"], body["type"]) == (503, "/problems/unavailable")


class Clock:
    """The longest of the timed calls (`with clock: ...`), to bound what a fault costs a request."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def __enter__(self) -> Clock:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.longest = max(self.longest, time.perf_counter() - self._started)

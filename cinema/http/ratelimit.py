"""Per-client rate limiting with the RateLimit-* headers on every response.

A fixed window per client (its peer address): simple to explain in headers, O(1) per request, and memory bounded by the
clients seen in the current window. Counts are per process; with `--workers N` a client
gets up to N times the limit (documented in the README).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from cinema.http.problems import PROBLEM_TYPES, problem

log = structlog.get_logger("cinema.http")


class FixedWindow:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._started = clock()
        self._counts: dict[str, int] = {}

    def hit(self, client: str) -> tuple[bool, int, int]:
        """Count a request: (allowed, remaining, seconds until the window resets)."""
        now = self.clock()
        if now - self._started >= self.window:
            # A new window: forget every client at once instead of expiring them one by one.
            self._started += self.window * ((now - self._started) // self.window)
            self._counts = {}
        count = self._counts.get(client, 0) + 1
        self._counts[client] = count
        reset = max(1, math.ceil(self._started + self.window - now))
        return count <= self.limit, max(0, self.limit - count), reset


def client_key(request: web.Request) -> str:
    return request.remote or "unknown"


def ratelimit_middleware(limit: int, window: float = 60.0) -> Any:
    windows = FixedWindow(limit, window)

    @web.middleware
    async def ratelimit(request: web.Request, handler: Handler) -> web.StreamResponse:
        allowed, remaining, reset = windows.hit(client_key(request))
        headers = {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            log.info("rate_limited", client=client_key(request))
            response: web.StreamResponse = problem(
                request,
                429,
                "rate-limited",
                PROBLEM_TYPES["rate-limited"].title,
                f"At most {limit} requests per {window:g} seconds; retry in {reset} s.",
                headers={**headers, "Retry-After": str(reset)},
            )
            return response
        response = await handler(request)
        response.headers.update(headers)
        return response

    return ratelimit

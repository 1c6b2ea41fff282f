"""Per-client rate limiting with the RateLimit-* headers on every response.

A fixed window per client (its peer address): simple to explain in headers, O(1) per request,
and memory bounded by the clients seen in the current window. Counts are per process; with
`--workers N` a client gets up to N times the limit (documented in the README). The edge
(cinema.http.edge) admits each request here and writes the headers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog

from cinema.errors import RateLimited

log = structlog.get_logger("cinema.http")


class FixedWindow:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.limit_header = str(limit)
        self._started = clock()
        self._counts: dict[str, int] = {}

    def admit(self, client: str) -> tuple[int, int]:
        """Count a request: (remaining, seconds until the window resets), or RateLimited past the limit."""
        now = self.clock()
        if now - self._started >= self.window:
            # A new window: forget every client at once instead of expiring them one by one.
            self._started += self.window * ((now - self._started) // self.window)
            self._counts = {}
        count = self._counts.get(client, 0) + 1
        self._counts[client] = count
        reset = max(1, math.ceil(self._started + self.window - now))
        if count > self.limit:
            log.info("rate_limited", client=client)
            raise RateLimited(
                f"At most {self.limit} requests per {self.window:g} seconds; retry in {reset} s.", retry_after=reset
            )
        return self.limit - count, reset

"""What the service counts, kept where it happens, cheaply; rendered for Prometheus on a scrape.

Recording is a few integer additions on objects bound once (a route's counters, an actor's
counters per message kind), never a label lookup per event: aioprometheus's own metrics take a
labels dict on every call and hash it, which would cost a cached read a good part of its
throughput. `GET /metrics` (cinema/http/metrics.py) copies these values into aioprometheus
collectors and renders them there, so the scrape pays for the formatting, not the requests.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Seconds. Latencies of a cached read (tens of microseconds) up to an ask's deadline.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from a commit to the broker's confirm or to the search index: milliseconds to minutes.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Events per indexer batch (CINEMA_SEARCH_BATCH_SIZE is at most 10,000).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)


class Histogram:
    """One histogram series: counts per bucket (not cumulative; the last one is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (`le`).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


class RouteMetrics:
    """The counters of one route (path template and method), bound when the route is registered."""

    __slots__ = ("in_flight", "latency", "method", "route", "statuses")

    def __init__(self, route: str, method: str) -> None:
        self.route = route
        self.method = method
        self.in_flight = 0
        self.statuses: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)

    def done(self, status: int, seconds: float) -> None:
        self.in_flight -= 1
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.latency.observe(seconds)


class KindMetrics:
    """An actor's counters for one kind of message."""

    __slots__ = ("failed", "handled")

    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0

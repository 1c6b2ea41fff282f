"""Rate limits per client and budget, shared by every process when Redis is configured.

Each route spends one of four budgets (`reads`, `writes`, `search`, `uploads`): its RouteDoc's
`budget`, else `reads` for GET and `writes` for the other methods. Health and metrics spend
none. A budget is `limit` requests per `window` seconds (CINEMA_RATE_LIMIT_*), enforced as a
GCRA (the generic cell rate algorithm): one stored number per client and budget, its
theoretical arrival time (TAT); a request is admitted when TAT + window/limit stays within a
window of now, and moves TAT on by window/limit. So a client may spend its whole budget at
once, then gets one more request every window/limit seconds: within any window, never more
than the limit.

The client is the token's subject when the request carries a valid token, else its address:
the peer's, or, when the peer is a trusted proxy (CINEMA_TRUSTED_PROXIES), the first address
in `Forwarded`/`X-Forwarded-For` that is not a trusted proxy, counting from the nearest hop.

With Redis (CINEMA_REDIS_URL) the TATs live there, under `<prefix>:rl:<budget>:<client>`, and
each admission is one EVALSHA of a Lua script that reads Redis's clock, checks and moves the
TAT atomically: every worker and instance shares one budget per client. When Redis fails
(refused, slower than CINEMA_REDIS_TIMEOUT), the limiter fails open to the in-process
limiter, which counts per process, leaves Redis alone for CINEMA_REDIS_RETRY seconds, counts
the failure (`errors`) and logs one `rate_limit_redis_unavailable` warning a minute at most:
clients never see a 5xx because of it. coredis 6 requires a client to be entered and exited in
one task, so an owner task holds it (as cinema/cache/shared.py does).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import coredis
import structlog
from coredis.exceptions import RedisError

from cinema.errors import RateLimited

log = structlog.get_logger("cinema.http")

BUDGETS = ("reads", "writes", "search", "uploads")
EXEMPT_PREFIXES = ("/health/", "/metrics")  # probes and scrapers are never limited
WARN_INTERVAL = 60.0
FAILURES = (RedisError, OSError, TimeoutError, RuntimeError)  # RuntimeError: the client's owner exited
MAX_CLIENT_KEY = 96  # longer subjects are hashed: a key's size stays bounded whatever the token says

# KEYS[1]: the client's TAT; ARGV: the emission interval and the capacity (interval * limit), in
# microseconds. Returns {admitted, remaining, reset_us, retry_us}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
if new - now > capacity then
  return {0, 0, tat - now, new - capacity - now}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
return {1, math.floor((capacity - (new - now)) / interval), new - now, 0}
"""


class Budget:
    """`limit` requests per `window` seconds for each client."""

    __slots__ = ("capacity_us", "interval_us", "limit", "limit_header", "name", "window")

    def __init__(self, name: str, limit: int, window: float) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self.limit_header = str(limit)
        self.interval_us = max(1, int(window * 1_000_000) // limit)
        self.capacity_us = self.interval_us * limit


def over_budget(budget: Budget, reset_us: int, retry_us: int) -> RateLimited:
    retry = max(1, math.ceil(retry_us / 1_000_000))
    error = RateLimited(
        f"At most {budget.limit} {budget.name} per {budget.window:g} seconds; retry in {retry} s.", retry_after=retry
    )
    error.quota = (0, max(1, math.ceil(reset_us / 1_000_000)))  # type: ignore[attr-defined]
    return error


class LocalLimiter:
    """The GCRA in this process's memory: a TAT per (budget, client), swept once a window."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tats: dict[tuple[str, str], int] = {}
        self._sweep_at = 0

    def admit(self, budget: Budget, client: str) -> tuple[int, int]:
        """(remaining, seconds until the whole budget is back), or RateLimited past the budget."""
        now = int(self.clock() * 1_000_000)
        if now >= self._sweep_at:
            self._sweep(now)
        key = (budget.name, client)
        tat = max(self._tats.get(key, now), now)
        new = tat + budget.interval_us
        if new - now > budget.capacity_us:
            raise over_budget(budget, tat - now, new - budget.capacity_us - now)
        self._tats[key] = new
        return (budget.capacity_us - (new - now)) // budget.interval_us, math.ceil((new - now) / 1_000_000)

    def _sweep(self, now: int) -> None:
        # Clients whose TAT has passed have their whole budget back: forgetting them changes nothing.
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
        self._sweep_at = now + 60_000_000


class RedisLimiter:
    """The GCRA in Redis, one script call per admission; the local limiter while Redis fails."""

    shared = True

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.1, retry: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self.retry = retry
        self.errors = 0  # admissions that fell back to the local limiter
        self.fallback = LocalLimiter()
        self._prefix = f"{prefix}:rl"
        self._down_until = 0.0
        self._down = False
        self._warned_at = -math.inf
        self._client: coredis.Redis[bytes] | None = None
        self._script: Any = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start the client's owner task; no connection is made until the first admission."""
        self._stop.clear()
        client: coredis.Redis[bytes] = coredis.Redis.from_url(
            self.url, connect_timeout=self.timeout, stream_timeout=self.timeout, pool_timeout=self.timeout
        )
        ready = asyncio.Event()
        owner = asyncio.create_task(self._own(client, ready), name="rate-limit-redis")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([waiting, owner], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if owner.done():
            owner.result()  # raises what ended it
        self._owner, self._client = owner, client
        self._script = client.register_script(GCRA)

    async def _own(self, client: coredis.Redis[bytes], ready: asyncio.Event) -> None:
        async with client:
            ready.set()
            await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._owner is not None:
            try:
                await self._owner
            except Exception:
                log.exception("rate_limit_redis_client_failed")
        self._owner = self._client = None

    async def admit(self, budget: Budget, client: str) -> tuple[int, int]:
        if time.monotonic() < self._down_until or self._client is None:
            return self.fallback.admit(budget, client)
        key = f"{self._prefix}:{budget.name}:{client}"
        try:
            async with asyncio.timeout(self.timeout):
                if self._owner is not None and self._owner.done():
                    await self._restart()
                admitted, remaining, reset_us, retry_us = await self._script(
                    keys=[key], args=[budget.interval_us, budget.capacity_us]
                )
        except FAILURES as exc:
            self._failed(exc)
            return self.fallback.admit(budget, client)
        if self._down:
            self._down = False
            log.info("rate_limit_redis_recovered")
        if not admitted:
            raise over_budget(budget, reset_us, retry_us)
        return remaining, max(1, math.ceil(reset_us / 1_000_000))

    async def _restart(self) -> None:
        """A fresh client when the owner ended (its task group failed)."""
        owner, self._owner, self._client = self._owner, None, None
        if owner is not None and not owner.cancelled() and owner.exception() is not None:
            log.error("rate_limit_redis_client_failed", error=repr(owner.exception()))
        await self.start()

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        self._down = True
        self._down_until = now + self.retry
        if now - self._warned_at >= WARN_INTERVAL:
            self._warned_at = now
            log.warning("rate_limit_redis_unavailable", error=repr(exc), retry_in=self.retry, fallback="per process")


class RateLimiter:
    """The budgets and where they are counted; the edge asks `admit` once per request."""

    def __init__(self, budgets: Mapping[str, Budget], store: LocalLimiter | RedisLimiter) -> None:
        self.budgets = budgets
        self.store = store

    async def admit(self, budget: Budget, client: str) -> tuple[int, int]:
        if isinstance(self.store, LocalLimiter):
            return self.store.admit(budget, client)
        return await self.store.admit(budget, client)

    async def start(self) -> None:
        if isinstance(self.store, RedisLimiter):
            await self.store.start()

    async def stop(self) -> None:
        if isinstance(self.store, RedisLimiter):
            await self.store.stop()


def budgets_of(limits: Mapping[str, int], window: float) -> dict[str, Budget]:
    """The budgets that limit something (a limit of 0 is no limit)."""
    return {name: Budget(name, limit, window) for name, limit in limits.items() if limit > 0}


# -- who the client is ----------------------------------------------------------------


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddresses:
    """The client's address, believing forwarding headers only from trusted proxies."""

    def __init__(self, trusted: Sequence[Network]) -> None:
        self.trusted = tuple(trusted)
        self._known: dict[str, bool] = {}

    def is_trusted(self, address: str) -> bool:
        known = self._known.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip in network for network in self.trusted)
            if len(self._known) >= 10_000:
                self._known.clear()
            self._known[address] = known
        return known

    def of(self, peer: str | None, headers: Mapping[str, str]) -> str:
        address = peer or "unknown"
        if not self.trusted or not self.is_trusted(address):
            return address
        for hop in reversed(forwarded_for(headers)):
            if not self.is_trusted(hop):
                return hop
        return address  # every hop is a proxy of ours


def forwarded_for(headers: Mapping[str, str]) -> list[str]:
    """The `for` addresses of `Forwarded` (RFC 7239), else of `X-Forwarded-For`, farthest first."""
    forwarded = headers.get("Forwarded")
    if forwarded is not None:
        hops = []
        for element in forwarded.split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                if name.lower() == "for":
                    hops.append(_address(value.strip('"')))
        return hops
    listed = headers.get("X-Forwarded-For")
    return [_address(hop.strip()) for hop in listed.split(",")] if listed else []


def _address(node: str) -> str:
    """`[2001:db8::1]:4711` -> `2001:db8::1`, `192.0.2.1:80` -> `192.0.2.1`."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


def client_key(subject: object, address: str) -> str:
    """The limiter's name for a client: its token's subject, else its address."""
    key = f"s:{subject}" if isinstance(subject, str) and subject else f"a:{address}"
    if len(key) > MAX_CLIENT_KEY:
        key = "h:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return key

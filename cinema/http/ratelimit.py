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
each admission is checked by a Lua script that reads Redis's clock, checks and moves the
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

from cinema.cache.owned import open_owned
from cinema.errors import RateLimited

log = structlog.get_logger("cinema.http")

BUDGETS = ("reads", "writes", "search", "uploads")
EXEMPT_PREFIXES = ("/health/", "/metrics")  # probes and scrapers are never limited
WARN_INTERVAL = 60.0
FAILURES = (RedisError, OSError, TimeoutError, RuntimeError)  # RuntimeError: the client's owner exited
MAX_IN_FLIGHT = 4  # script calls out at once; admissions meanwhile gather into the next batch
MAX_LEASE = 1024  # admissions of one client one process may be granted at once
LEASE_TTL = 0.1  # seconds a granted admission may wait to be used here before it is void
MAX_CLIENT_KEY = 96  # longer subjects are hashed: a key's size stays bounded whatever the token says

# One call serves a batch: KEYS[i] is a client's TAT; ARGV[4i-3..4i] its budget's emission interval
# and capacity (interval * limit) in microseconds, the admissions its waiting requests need, and
# how many more its process would like to hold. The needed ones are granted while the budget has
# them; of the wanted ones at most 1/64 of what is left after that, so grants held in processes
# shrink to none as a budget runs out (near the end every admission goes to a waiting request).
# Returns per key {granted, remaining after, reset_us (until the whole budget is back), retry_us
# (until the next admission is due)}. Keys are taken in order: a client twice in a batch counts twice.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval, capacity = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  local need, want = tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local available = math.floor((now + capacity - tat) / interval)
  local granted = math.max(0, math.min(need, available))
  granted = granted + math.min(want, math.floor((available - granted) / 64))
  if granted > 0 then
    tat = tat + granted * interval
    redis.call('SET', key, string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
  end
  local j = 4 * (i - 1)
  out[j + 1], out[j + 2] = granted, available - granted
  out[j + 3], out[j + 4] = tat - now, tat + interval - capacity - now
end
return out
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


class _Lease:
    """What this process holds of one client's budget in Redis."""

    __slots__ = (
        "asking",
        "cells",
        "expires",
        "granted_at",
        "out",
        "refused_until",
        "remaining",
        "reset",
        "reset_us",
        "size",
        "waiters",
    )

    def __init__(self) -> None:
        self.cells = 0  # admissions granted by Redis and not used yet
        self.expires = 0.0  # unused cells are void after this
        self.granted_at = -math.inf
        self.size = 1  # cells the next ask takes: doubled while the client keeps using them up
        self.remaining = 0  # the budget left in Redis at the last grant
        self.reset = 1
        self.refused_until = 0.0  # Redis has no cell for this client before then: refused here
        self.reset_us = 0
        self.waiters: list[asyncio.Future[tuple[int, int] | RateLimited | None]] = []
        self.asking = False  # an ask is in the next batch
        self.out = False  # an ask is in a call on its way


class RedisLimiter:
    """The GCRA in Redis; the local limiter while Redis fails.

    A coredis call costs more CPU than a cached read (about 0.25 ms here), so the limiter spends
    as few as it can without ever admitting more than the budget:
    - asks are batched: one script call per event-loop pass, at most MAX_IN_FLIGHT calls out;
      the concurrent requests of one client share one ask;
    - a client that uses up its grants quickly is granted several admissions at once (doubling
      up to MAX_LEASE, at most 1/64 of what its budget has left), admitted here without a round
      trip and refilled at half; admissions unused after LEASE_TTL are void: a client that stops
      may get a little less than its budget in that window, never more;
    - Redis's refusal says when the next admission becomes available, and TATs only move forward,
      so until then the client is refused here.
    Every admission is still one Redis granted atomically against the one shared TAT.
    """

    shared = True

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.1, retry: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self.retry = retry
        self.errors = 0  # failed script calls; their admissions were counted by the local limiter
        self.calls = self.asks = 0  # script calls and the asks they carried (the batching)
        self.fallback = LocalLimiter()
        self._prefix = f"{prefix}:rl"
        self._down_until = 0.0
        self._down = False
        self._warned_at = -math.inf
        self._client: coredis.Redis[bytes] | None = None
        self._script: Any = None
        self._owner: asyncio.Task[None] | None = None
        self._open_for_use = False
        self._calls: set[asyncio.Task[None]] = set()
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._sweep_at = 0.0
        self._batch: list[tuple[Budget, str, _Lease]] = []
        self._flush_scheduled = False
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start the client's owner task; no connection is made until the first admission."""
        self._stop.clear()
        await self._open()
        self._open_for_use = True

    async def _open(self) -> None:
        client, owner = await open_owned(self.url, self.timeout, self._stop, "rate-limit-redis")
        self._owner, self._client = owner, client
        self._script = client.register_script(GCRA)

    async def stop(self) -> None:
        self._open_for_use = False
        self._stop.set()
        for call in self._calls:
            call.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        for _, _, lease in self._batch:  # never sent: counted locally
            _answer(lease.waiters, None)
            lease.waiters, lease.asking = [], False
        self._batch = []
        if self._owner is not None:
            try:
                await self._owner
            except Exception:
                log.exception("rate_limit_redis_client_failed")
        self._owner = self._client = None

    def admit_now(self, budget: Budget, client: str) -> tuple[int, int] | None:
        """The verdict without a round trip when this process holds one (granted admissions left,
        a refusal still standing, Redis down); None when Redis must be asked (`admit`)."""
        now = time.monotonic()
        if not self._open_for_use or now < self._down_until:
            return self.fallback.admit(budget, client)
        lease = self._leases.get((budget.name, client))
        if lease is None or lease.waiters:
            return None
        if lease.cells and now < lease.expires:
            lease.cells -= 1
            if lease.cells <= lease.size // 2 and not (lease.asking or lease.out):
                self._ask(budget, client, lease)  # refilled before it runs dry: no request waits
            return lease.remaining + lease.cells, lease.reset
        if now < lease.refused_until:
            raise over_budget(budget, lease.reset_us, int((lease.refused_until - now) * 1_000_000))
        return None

    def _ask(self, budget: Budget, client: str, lease: _Lease) -> None:
        lease.asking = True
        self._batch.append((budget, client, lease))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def admit(self, budget: Budget, client: str) -> tuple[int, int]:
        now = time.monotonic()
        if not self._open_for_use or now < self._down_until:
            return self.fallback.admit(budget, client)
        if now >= self._sweep_at:
            self._sweep(now)
        lease = self._leases.get((budget.name, client))
        if lease is None:
            lease = self._leases[budget.name, client] = _Lease()
        if lease.cells:
            if now < lease.expires and not lease.waiters:
                lease.cells -= 1
                return lease.remaining + lease.cells, lease.reset
            if now >= lease.expires:
                lease.cells, lease.size = 0, max(1, lease.size // 2)  # it did not need that many
        elif now < lease.refused_until:
            raise over_budget(budget, lease.reset_us, int((lease.refused_until - now) * 1_000_000))
        elif now - lease.granted_at < LEASE_TTL:
            lease.size = min(MAX_LEASE, lease.size * 2)  # used up quickly: take more next time
        future: asyncio.Future[tuple[int, int] | RateLimited | None] = asyncio.get_running_loop().create_future()
        lease.waiters.append(future)
        if not lease.asking:
            self._ask(budget, client, lease)
        verdict = await future
        if verdict is None:  # Redis failed this batch
            return self.fallback.admit(budget, client)
        if isinstance(verdict, RateLimited):
            raise verdict
        return verdict

    def _sweep(self, now: float) -> None:
        self._leases = {key: lease for key, lease in self._leases.items() if lease.waiters or lease.expires > now}
        self._sweep_at = now + LEASE_TTL * 100

    def _flush(self) -> None:
        """Send what this loop pass gathered, unless MAX_IN_FLIGHT calls are out (then when one returns)."""
        self._flush_scheduled = False
        if not self._batch or len(self._calls) >= MAX_IN_FLIGHT or not self._open_for_use:
            return
        batch, self._batch = self._batch, []
        self.calls += 1
        self.asks += len(batch)
        call = asyncio.create_task(self._send(batch), name="rate-limit-call")
        self._calls.add(call)
        call.add_done_callback(self._sent)

    def _sent(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        if self._batch and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _send(self, batch: list[tuple[Budget, str, _Lease]]) -> None:
        # Requests of a client arriving while this call is out form its next ask.
        asks = [(budget, lease, lease.waiters) for budget, _, lease in batch]
        for _, _, lease in batch:
            lease.waiters, lease.asking, lease.out = [], False, True
        keys = [f"{self._prefix}:{budget.name}:{client}" for budget, client, _ in batch]
        args = [
            n
            for budget, lease, waiters in asks
            for n in (budget.interval_us, budget.capacity_us, len(waiters), max(0, lease.size - len(waiters)))
        ]
        flat = None
        try:
            async with asyncio.timeout(self.timeout):
                if self._owner is not None and self._owner.done():
                    await self._restart()
                flat = await self._script(keys=keys, args=args)
        except FAILURES as exc:
            self._failed(exc)
        except Exception:  # a bug must not fail requests: they are counted locally
            log.exception("rate_limit_redis_batch_failed")
            self.errors += 1
        else:
            if self._down:
                self._down = False
                log.info("rate_limit_redis_recovered")
        finally:  # also when cancelled at stop: every waiting request gets an answer
            now = time.monotonic()
            for i, (budget, lease, waiters) in enumerate(asks):
                lease.out = False
                if flat is None:
                    _answer(waiters, None)
                else:
                    _grant(budget, lease, waiters, now, *flat[4 * i : 4 * i + 4])

    async def _restart(self) -> None:
        """A fresh client when the owner ended (its task group failed)."""
        owner, self._owner, self._client = self._owner, None, None
        if owner is not None and not owner.cancelled() and owner.exception() is not None:
            log.error("rate_limit_redis_client_failed", error=repr(owner.exception()))
        await self._open()

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        self._down = True
        self._down_until = now + self.retry
        if now - self._warned_at >= WARN_INTERVAL:
            self._warned_at = now
            log.warning("rate_limit_redis_unavailable", error=repr(exc), retry_in=self.retry, fallback="per process")


def _grant(
    budget: Budget,
    lease: _Lease,
    waiters: list[asyncio.Future[tuple[int, int] | RateLimited | None]],
    now: float,
    granted: int,
    remaining: int,
    reset_us: int,
    retry_us: int,
) -> None:
    """Hand out what Redis granted: one admission per waiting request, the rest kept for later ones."""
    lease.remaining, lease.reset, lease.reset_us = remaining, max(1, math.ceil(reset_us / 1_000_000)), reset_us
    lease.cells += max(0, granted - len(waiters))
    lease.expires, lease.granted_at = now + LEASE_TTL, now
    if remaining == 0:  # nothing left in Redis: refused here until the next admission is due
        lease.refused_until = now + retry_us / 1_000_000
    for rank, future in enumerate(waiters):
        if future.done():  # its request was cancelled meanwhile (its admission is lost)
            continue
        if rank < granted:
            future.set_result((remaining + max(0, granted - rank - 1), lease.reset))
        else:
            future.set_result(over_budget(budget, reset_us, retry_us))


def _answer(waiters: list[asyncio.Future[tuple[int, int] | RateLimited | None]], verdict: None) -> None:
    for future in waiters:
        if not future.done():
            future.set_result(verdict)


class RateLimiter:
    """The budgets and where they are counted; the edge asks `admit` once per request."""

    def __init__(self, budgets: Mapping[str, Budget], store: LocalLimiter | RedisLimiter) -> None:
        self.budgets = budgets
        self.store = store

    def admit_now(self, budget: Budget, client: str) -> tuple[int, int] | None:
        """The verdict when it needs no round trip (always, in process); None: await `admit`."""
        store = self.store
        if isinstance(store, LocalLimiter):
            return store.admit(budget, client)
        return store.admit_now(budget, client)

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

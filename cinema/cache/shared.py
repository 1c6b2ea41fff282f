"""The shared layer: Redis, seen by every process, never trusted to be up.

Keys, under P = "<prefix>:<catalog id>:c<schema version>":

    P:epoch              changes whenever Redis may hold entries an invalidation missed: set from
                         Redis's clock on first use (a restarted, empty Redis never reuses an old
                         epoch) and raised again when a process could not apply an invalidation
                         or missed events (`bump_epoch`)
    P:v:<counter>        the outbox seq of the last event that bumped the counter; only ever
                         raised, expires a while after the longest entry TTL
    P:e:<kind>:<ident>   "<tag>\\n<etag>\\n<body>", with the kind's TTL
    P:l:<kind>:<ident>   the load lock (SET NX PX): one process reads the catalog, the others wait

The catalog id (cinema/db/catalog.py) is in every key because the counters hold outbox seqs, which
are versions only within one event log: two databases behind one Redis and prefix, or one database
before and after `seed --replace`, number their events independently, and with a shared namespace
an entry of one would be accepted as current by the other.

An entry's tag is the epoch and the counters of its key as they were read *before* the catalog
read that produced it. A lookup reads the entry, the epoch and the counters in one MGET and
accepts the entry only when its tag equals them, so a read that started before a write yields
an entry no lookup accepts once the write bumped a counter; a store whose counters moved while
it read the catalog is refused atomically as well. A list page's generation is thus part of
its entry's identity, read in the same round trip as the entry.

Every operation has a deadline. A failure (refused, timed out) counts an error, logs a warning
at most once per `WARN_INTERVAL`, and leaves Redis alone for `retry` seconds: meanwhile the cache
reads from PostgreSQL. An invalidation that could not be applied marks the store `dirty`: the
epoch is raised before Redis is used again, so nothing it missed can be served.

coredis 6 requires a client to be entered and exited in the same task: an owner task holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import coredis
import structlog
from coredis.exceptions import RedisError
from coredis.tokens import PureToken
from opentelemetry.trace import SpanKind

from cinema import telemetry
from cinema.cache.kinds import SCHEMA_VERSION, Kind
from cinema.cache.layer import Entry
from cinema.cache.owned import open_owned

log = structlog.get_logger("cinema.cache")
_REDIS_SPAN = {"db.system": "redis"}

WARN_INTERVAL = 60.0  # seconds between two "Redis unavailable" warnings
LOCK_MS = 1000  # a loader that dies frees its lock this long after
COUNTER_MARGIN = 60.0  # seconds a counter outlives the longest entry TTL
FAILURES = (RedisError, OSError, TimeoutError, RuntimeError)  # RuntimeError: the client's owner exited

# The tag the counters have now must equal the one read before the catalog read.
STORE = """
local parts = {}
for i = 2, #KEYS do parts[i - 1] = redis.call('GET', KEYS[i]) or '0' end
if table.concat(parts, ' ') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# Counters only go up: events applied twice, or out of order by different processes, never
# bring back a value an old entry was tagged with.
RAISE = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') < tonumber(ARGV[i]) then
    redis.call('SET', key, ARGV[i], 'PX', ttl)
  else
    redis.call('PEXPIRE', key, ttl)
  end
end
return #KEYS
"""

# max(now in ms, epoch + 1): strictly increasing, and new after a restart that lost the old one.
BUMP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch < now then epoch = now else epoch = epoch + 1 end
redis.call('SET', KEYS[1], string.format('%d', epoch))
return epoch
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@attrs.frozen
class Lookup:
    entry: Entry | None  # a valid entry, or None
    tag: bytes  # the epoch and counters now: what a store of a fresh read must carry


class _Down(Exception):
    """Redis cannot be used right now (public methods answer None or False instead)."""


class SharedStore:
    def __init__(
        self,
        url: str,
        prefix: str,
        catalog: str,
        ttls: Mapping[str, float],
        *,
        timeout: float = 0.1,
        retry: float = 1.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retry = retry
        self.errors = 0
        self.became_dirty = asyncio.Event()  # set while `dirty`, for the actor's recovery loop
        self._prefix = f"{prefix}:{catalog}:c{SCHEMA_VERSION}"
        self._epoch_key = f"{self._prefix}:epoch"
        self._ttls_ms = {name: math.ceil(ttl * 1000) for name, ttl in ttls.items()}
        self._counter_ttl_ms = math.ceil((max(ttls.values(), default=0) + COUNTER_MARGIN) * 1000)
        self._marked = self._cleared = 0  # dirty while they differ
        self._down_until = 0.0
        self._down = False
        self._warned_at = -math.inf
        self._client: coredis.Redis[bytes] | None = None
        self._owner: asyncio.Task[None] | None = None
        self._scripts: dict[str, Any] = {}
        self._stop = asyncio.Event()

    @property
    def dirty(self) -> bool:
        """Redis may hold entries an invalidation missed: the epoch must go up before any use."""
        return self._marked != self._cleared

    def _mark_dirty(self) -> None:
        self._marked += 1
        self.became_dirty.set()

    def _cleared_up_to(self, mark: int) -> None:
        # Marks made while the bump was on its way are not covered by it.
        self._cleared = mark
        if not self.dirty:
            self.became_dirty.clear()

    # -- lifecycle: the client lives in its owner task ------------------------------

    async def start(self) -> None:
        """Start the client's owner task; no connection is made until the first command."""
        self._stop.clear()
        client, owner = await open_owned(self.url, self.timeout, self._stop, "cache-redis")
        self._owner, self._client = owner, client
        self._scripts = {
            name: client.register_script(source)
            for name, source in (("store", STORE), ("raise", RAISE), ("bump", BUMP), ("release", RELEASE))
        }

    async def stop(self) -> None:
        self._stop.set()
        if self._owner is not None:
            try:
                await self._owner
            except Exception:
                log.exception("cache_redis_client_failed")
        self._owner = self._client = None

    async def _ensure_client(self) -> coredis.Redis[bytes]:
        """The client; a fresh one when its owner ended (its task group failed)."""
        if self._owner is not None and self._owner.done() and not self._stop.is_set():
            owner, self._owner, self._client = self._owner, None, None
            if not owner.cancelled() and owner.exception() is not None:
                log.error("cache_redis_client_failed", error=repr(owner.exception()))
            await self.start()
        if self._client is None:
            raise _Down
        return self._client

    # -- the operations: None/False when Redis cannot be used ----------------------

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def lookup(self, kind: Kind, ident: str) -> Lookup | None:
        counters = [self._counter_key(c) for c in kind.counters(ident)]
        try:
            values = await self._run(lambda r: r.mget([self._entry_key(kind, ident), self._epoch_key, *counters]))
            raw, epoch = values[0], values[1]
            if epoch is None:  # a new (or restarted, empty) Redis: start an epoch no old tag has
                epoch = str(await self._run(lambda r: self._scripts["bump"](keys=[self._epoch_key]))).encode()
                raw = None
        except _Down:
            return None
        tag = b" ".join([epoch, *(value or b"0" for value in values[2:])])
        if raw is not None:
            entry_tag, etag, body = raw.split(b"\n", 2)
            if entry_tag == tag:
                return Lookup(Entry(body, etag.decode()), tag)
        return Lookup(None, tag)

    async def store(self, kind: Kind, ident: str, tag: bytes, entry: Entry) -> bool | None:
        """Store unless a counter moved since `tag` was read: False when refused, None when Redis failed."""
        keys = [self._entry_key(kind, ident), self._epoch_key, *map(self._counter_key, kind.counters(ident))]
        value = b"\n".join((tag, entry.etag.encode(), entry.body))
        args = [tag, value, self._ttls_ms[kind.name]]
        try:
            return bool(await self._run(lambda r: self._scripts["store"](keys=keys, args=args)))
        except _Down:
            return None

    async def claim(self, kind: Kind, ident: str) -> str | None:
        """A token when this process should read the catalog; None while another one does."""
        token = secrets.token_hex(8)
        key = self._lock_key(kind, ident)
        try:
            taken = await self._run(lambda r: r.set(key, token, condition=PureToken.NX, px=LOCK_MS))
        except _Down:
            return token
        return token if taken else None

    async def release(self, kind: Kind, ident: str, token: str) -> None:
        key = self._lock_key(kind, ident)
        with contextlib.suppress(_Down):
            await self._run(lambda r: self._scripts["release"](keys=[key], args=[token]))

    async def invalidate(self, counters: Mapping[str, int]) -> bool:
        """Raise each counter to the seq of the event that bumped it; on failure, mark dirty."""
        if not counters:
            return True
        keys = [self._counter_key(c) for c in counters]
        args = [*counters.values(), self._counter_ttl_ms]
        try:
            await self._run(lambda r: self._scripts["raise"](keys=keys, args=args))
        except _Down:
            self._mark_dirty()
            return False
        return True

    async def bump_epoch(self) -> bool:
        """Make every entry stored so far unreadable (missed events); on failure, mark dirty."""
        self._mark_dirty()
        try:
            await self._run(None)  # a dirty store bumps the epoch before anything else
        except _Down:
            return False
        return True

    # -- plumbing -------------------------------------------------------------------

    async def _run(self, command: Callable[[coredis.Redis[bytes]], Awaitable[Any]] | None) -> Any:
        if not self.available():
            raise _Down
        try:
            async with asyncio.timeout(self.timeout):
                client = await self._ensure_client()
                if self.dirty:
                    mark = self._marked
                    await self._scripts["bump"](keys=[self._epoch_key])
                    self._cleared_up_to(mark)
                    log.info("cache_epoch_bumped")
                if command is None:
                    result = None
                elif telemetry.TRACER is None:
                    result = await command(client)
                else:  # named after the SharedStore method the command comes from ("redis lookup")
                    operation = command.__qualname__.split(".")[1]
                    with telemetry.span(f"redis {operation}", kind=SpanKind.CLIENT, attributes=_REDIS_SPAN):
                        result = await command(client)
        except FAILURES as exc:
            self._failed(exc)
            raise _Down from exc
        if self._down:
            self._down = False
            log.info("cache_redis_recovered")
        return result

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        self._down = True
        self._down_until = now + self.retry
        if now - self._warned_at >= WARN_INTERVAL:
            self._warned_at = now
            log.warning("cache_redis_unavailable", error=repr(exc), retry_in=self.retry)

    def _entry_key(self, kind: Kind, ident: str) -> str:
        return f"{self._prefix}:e:{kind.name}:{ident}"

    def _lock_key(self, kind: Kind, ident: str) -> str:
        return f"{self._prefix}:l:{kind.name}:{ident}"

    def _counter_key(self, counter: str) -> str:
        return f"{self._prefix}:v:{counter}"

"""The in-process bus: topic publish/subscribe for domain events between actors.

Topics are dotted names (`genre.created`); patterns follow AMQP topic rules (`*` is one word,
`#` is zero or more), so the same patterns work when a later bridge binds RabbitMQ queues.

Every subscriber has its own bounded queue and `publish` never waits: a slow subscriber
cannot hold up the publisher or the other subscribers. When a subscriber's queue is full,
new events for it are dropped and the next `get` returns a `Missed` marker first, so the
subscriber knows it must recover from the durable log (the outbox) or reset what it derives
from the events (the cache drops everything).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, Protocol

import attrs
import structlog

log = structlog.get_logger("cinema.bus")


class Topical(Protocol):
    @property
    def topic(self) -> str: ...


@attrs.frozen
class Missed:
    """Stands in for events this subscriber did not receive: `count` of them when it fell
    behind, None when the process itself may have missed some (a lost connection)."""

    count: int | None


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching; cached, since a process has few patterns and few topics."""
    return _match(tuple(pattern.split(".")), tuple(topic.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and (head == "*" or head == words[0]) and _match(rest, words[1:])


class Subscription:
    def __init__(self, bus: LocalBus, patterns: tuple[str, ...], maxsize: int) -> None:
        self._bus = bus
        self.patterns = patterns
        self._queue: asyncio.Queue[Topical | Missed] = asyncio.Queue(maxsize)
        self._dropped = 0
        self._unknown_gap = False

    def wants(self, topic: str) -> bool:
        return any(topic_matches(p, topic) for p in self.patterns)

    def _offer(self, event: Topical) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped += 1

    def _gap(self) -> None:
        # Queued, so a subscriber waiting on an empty queue wakes up for it; when the queue is
        # full the subscriber is busy anyway and sees it before its next event.
        try:
            self._queue.put_nowait(Missed(None))
        except asyncio.QueueFull:
            self._unknown_gap = True

    def _take_missed(self) -> Missed | None:
        if self._unknown_gap:
            self._unknown_gap, self._dropped = False, 0
            return Missed(None)
        if self._dropped:
            missed, self._dropped = Missed(self._dropped), 0
            return missed
        return None

    async def get(self) -> Topical | Missed:
        return self._take_missed() or await self._queue.get()

    def get_nowait(self) -> Topical | Missed | None:
        """The next pending item, or None when nothing is waiting (for "run until empty" loops)."""
        missed = self._take_missed()
        if missed is not None:
            return missed
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[Topical | Missed]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Topical | Missed]:
        while True:
            yield await self.get()


CommitHook = Callable[[Sequence[Any]], Awaitable[None]]


class LocalBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._commit_hooks: list[CommitHook] = []

    def on_commit(self, hook: CommitHook) -> None:
        """Have every writer of this process await `hook(events)` after its commit, before it
        replies (the cache drops what the events change there: read-your-writes). A hook must
        not fail the write, which has committed: it handles its own errors."""
        self._commit_hooks.append(hook)

    async def committed(self, events: Sequence[Topical]) -> None:
        """Publish a transaction's events, then wait for the commit hooks."""
        if not events:
            return
        for event in events:
            self.publish(event)
        for hook in self._commit_hooks:
            try:
                await hook(events)
            except Exception:
                log.exception("commit_hook_failed")

    def subscribe(self, *patterns: str, maxsize: int = 10_000) -> Subscription:
        if not patterns:
            raise ValueError("subscribe needs at least one topic pattern")
        sub = Subscription(self, patterns, maxsize)
        self._subscriptions.add(sub)
        return sub

    def announce_gap(self) -> None:
        """Tell every subscriber that events may have been missed (a lost connection to their source)."""
        for sub in self._subscriptions:
            sub._gap()

    def publish(self, event: Topical) -> None:
        """Hand the event to every subscriber whose pattern matches; never blocks."""
        topic = event.topic
        for sub in self._subscriptions:
            if sub.wants(topic):
                sub._offer(event)

"""Starts and stops a set of actors together, and notices one that gave up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import structlog

from cinema.actors.base import Actor, ActorStats

log = structlog.get_logger("cinema.actors")

A = TypeVar("A", bound=Actor)


class ActorSystem:
    """Owns the actors of one process: starts them in order, stops them in reverse order.

    `on_failure` is called when an actor exhausts its restart budget; the server uses it to
    stop the process so that its supervisor starts a fresh one (one-for-one supervision
    inside the process, restart of the whole process past the budget).
    """

    def __init__(self, *, on_failure: Callable[[Actor], None] | None = None, shutdown_timeout: float = 10.0) -> None:
        self._actors: list[Actor] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._on_failure = on_failure
        self._shutdown_timeout = shutdown_timeout

    def spawn(self, actor: A) -> A:
        actor.start()
        self._actors.append(actor)
        self._watchers.append(asyncio.create_task(self._watch(actor), name=f"watch:{actor.name}"))
        return actor

    async def _watch(self, actor: Actor) -> None:
        await actor.failed.wait()
        log.error("actor_failed", actor=actor.name)
        if self._on_failure is not None:
            self._on_failure(actor)

    async def stop(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        while self._actors:
            await self._actors.pop().stop(self._shutdown_timeout)

    async def __aenter__(self) -> ActorSystem:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def actors(self) -> tuple[Actor, ...]:
        return tuple(self._actors)

    def stats(self) -> list[ActorStats]:
        return [actor.stats() for actor in self._actors]

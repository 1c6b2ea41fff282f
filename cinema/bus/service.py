"""A background task that works over connections to other servers and starts over when one fails."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Awaitable

import structlog

log = structlog.get_logger("cinema.bus")


class Reconnecting(abc.ABC):
    """Subclasses write `session()`: connect, work until stopped or failing, clean up.

    A session that fails is started again after an exponential back-off, which `healthy()`
    resets once a session got going: `retry_on` errors are expected (a server went away),
    anything else is logged with its traceback as a bug, and retried all the same, since
    giving up would leave the work undone for good. `stop()` cancels the session and waits
    for its cleanup.
    """

    name = "service"
    retry_on: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        self.backoff = backoff
        self._delay = backoff[0]
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def session(self) -> None: ...

    def healthy(self) -> None:
        self._delay = self.backoff[0]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def pause(self, seconds: float, *also: Awaitable[object]) -> None:
        """Sleep until stop is requested, one of `also` completes, or `seconds` pass."""
        await wait_first(seconds, self._stop.wait(), *also)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, grace: float = 0.0) -> None:
        """Ask the session to end, give it `grace` seconds to finish what it is doing, then cancel it."""
        self._stop.set()
        if self._task is not None:
            if grace > 0:
                await asyncio.wait({self._task}, timeout=grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.session()
            except self.retry_on as exc:
                log.warning(f"{self.name}_interrupted", error=repr(exc), retry_in=self._delay)
            except Exception:
                log.exception(f"{self.name}_failed", retry_in=self._delay)
            await self.pause(self._delay)
            self._delay = min(self._delay * 2, self.backoff[1])


async def wait_first(timeout: float, *waits: Awaitable[object]) -> None:
    """Sleep until one of `waits` completes or `timeout` passes (never a bare sleep in a loop)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""The actor runtime: a long-lived task with a bounded mailbox, `tell`, `ask` and supervision.

A subclass writes one `handle(msg)` that dispatches with `match`. `concurrency` workers take
messages from the mailbox, so an actor that waits on I/O (the catalog waits on PostgreSQL)
serves that many messages at once.

Failure model:
- an exception raised by `handle` fails that one message: an `ask` gets it back, a `tell`
  is logged; the actor goes on;
- an exception anywhere else in the loop (`on_start` included) crashes the loop, which is
  restarted after an exponential back-off; past `max_restarts` within `restart_window`
  seconds the actor gives up and `failed` is set, which the `ActorSystem` turns into a
  process exit (the container runtime or `serve`'s parent restarts the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import attrs
import structlog
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from cinema import telemetry
from cinema.context import REQUEST_CONTEXT
from cinema.metrics import LATENCY_BUCKETS, Histogram, KindMetrics

log = structlog.get_logger("cinema.actors")


class ActorError(Exception):
    """Base of the errors the runtime itself raises to callers."""


class MailboxFull(ActorError):
    """The actor is saturated; the caller should come back later (HTTP 503)."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} is saturated")
        self.actor = actor


class AskTimeout(ActorError):
    def __init__(self, actor: str, msg: object, timeout: float) -> None:
        super().__init__(f"actor {actor!r} did not answer {type(msg).__name__} within {timeout:g}s")
        self.actor = actor


class ActorStopped(ActorError):
    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} is stopped")
        self.actor = actor


@attrs.define(slots=True)
class _Envelope:
    msg: Any
    reply: asyncio.Future[Any] | None  # None for `tell`
    deadline: float | None  # loop time after which nobody waits for the answer
    # The sender's request context (its request id): the actor's log lines about this message
    # carry it, although the actor runs in a task of its own.
    context: dict[str, Any] | None = None
    # The sender's trace context (None with tracing off): the message's span is its child.
    trace: Any = None


@attrs.frozen
class ActorStats:
    name: str
    mailbox: int
    mailbox_size: int
    in_flight: int
    handled: int
    failed: int
    restarts: int


class Actor:
    """Subclass and implement `handle`; optionally `on_start`/`on_stop` for resources.

    An exception from `handle` during an `ask` is the caller's to report (the HTTP layer
    logs unexpected ones with their traceback); `expected_errors` are answers, not
    failures (a domain "not found"), and count as handled.
    """

    expected_errors: tuple[type[Exception], ...] = ()

    def __init__(
        self,
        name: str,
        *,
        mailbox_size: int = 1000,
        concurrency: int = 1,
        ask_timeout: float = 10.0,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        backoff: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self.ask_timeout = ask_timeout
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.backoff = backoff
        self.failed = asyncio.Event()
        self._mailbox: asyncio.Queue[_Envelope] = asyncio.Queue(mailbox_size)
        self._mailbox_size = mailbox_size
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._handled = 0
        self._failed = 0
        self._restarts: deque[float] = deque()
        self._restart_count = 0
        # For /metrics: counters per kind of message, bound at a kind's first message.
        self.kinds: dict[type, KindMetrics] = {}
        self.latency = Histogram(LATENCY_BUCKETS)

    # -- to override ---------------------------------------------------------------

    async def handle(self, msg: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not handle {type(msg).__name__}")

    async def on_start(self) -> None:
        """Runs before the workers, at every (re)start of the loop."""

    async def on_stop(self) -> None:
        """Runs after the workers stopped, at every stop or crash of the loop."""

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        """Long-running coroutines of the actor besides its workers (a subscription's consumer).

        They run in the workers' task group: one that fails crashes the loop, which the
        supervision restarts like any other crash.
        """
        return ()

    # -- messaging -----------------------------------------------------------------

    async def tell(self, msg: Any) -> None:
        """Deliver without waiting for the outcome; waits while the mailbox is full (back-pressure)."""
        self._check_open()
        await self._mailbox.put(_Envelope(msg, None, None, REQUEST_CONTEXT.get(), telemetry.current_context()))

    async def ask(self, msg: Any, timeout: float | None = None) -> Any:
        """Deliver and wait for the answer. Fails fast with `MailboxFull` rather than queueing behind a backlog."""
        self._check_open()
        timeout = self.ask_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        try:
            envelope = _Envelope(msg, reply, loop.time() + timeout, REQUEST_CONTEXT.get(), telemetry.current_context())
            self._mailbox.put_nowait(envelope)
        except asyncio.QueueFull:
            raise MailboxFull(self.name) from None
        try:
            async with asyncio.timeout(timeout):
                return await reply
        except TimeoutError:
            raise AskTimeout(self.name, msg, timeout) from None
        finally:
            # A caller that gave up (timeout, cancellation) frees the worker from answering.
            reply.cancel()

    def _check_open(self) -> None:
        if self._stopping.is_set() or self._task is None:
            raise ActorStopped(self.name)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"actor {self.name!r} already started")
        self._task = asyncio.create_task(self._supervise(), name=f"actor:{self.name}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Refuse new messages, let the mailbox drain within `timeout`, then cancel what is left."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            async with asyncio.timeout(timeout):
                await self._mailbox.join()
        except TimeoutError:
            log.warning("actor_drain_timeout", actor=self.name, left=self._mailbox.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._mailbox.empty():
            envelope = self._mailbox.get_nowait()
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(ActorStopped(self.name))
            self._mailbox.task_done()

    async def __aenter__(self) -> Actor:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def stats(self) -> ActorStats:
        return ActorStats(
            name=self.name,
            mailbox=self._mailbox.qsize(),
            mailbox_size=self._mailbox_size,
            in_flight=self._in_flight,
            handled=self._handled,
            failed=self._failed,
            restarts=self._restart_count,
        )

    # -- the loop ------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self.backoff[0]
        while True:
            try:
                await self._run()
                return  # only when stopping
            except Exception as exc:
                log.exception("actor_crashed", actor=self.name)
                telemetry.report(exc, actor=self.name)
            now = time.monotonic()
            self._restarts.append(now)
            while self._restarts and self._restarts[0] < now - self.restart_window:
                self._restarts.popleft()
            if len(self._restarts) > self.max_restarts:
                log.error("actor_gave_up", actor=self.name, restarts=len(self._restarts))
                self._stopping.set()
                self.failed.set()
                return
            self._restart_count += 1
            # Sleep on "stop requested or back-off elapsed", never a bare sleep.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            delay = min(delay * 2, self.backoff[1])

    async def _run(self) -> None:
        await self.on_start()
        try:
            async with asyncio.TaskGroup() as workers:
                for loop in self.loops():
                    workers.create_task(loop(), name=f"actor:{self.name}:{loop.__name__}")
                for i in range(self.concurrency):
                    workers.create_task(self._work(), name=f"actor:{self.name}:{i}")
        finally:
            await self.on_stop()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            envelope = await self._mailbox.get()
            try:
                if envelope.reply is not None and envelope.reply.done():
                    continue  # the asker gave up while the message waited
                await self._process(envelope, loop)
            finally:
                self._mailbox.task_done()

    async def _process(self, envelope: _Envelope, loop: asyncio.AbstractEventLoop) -> None:
        msg, reply = envelope.msg, envelope.reply
        kind = self.kinds.get(type(msg))
        if kind is None:
            kind = self.kinds[type(msg)] = KindMetrics()
        self._in_flight += 1
        started = loop.time()
        request = REQUEST_CONTEXT.set(envelope.context)
        tracer = telemetry.TRACER
        span = traced = None
        if tracer is not None:
            if envelope.trace is not None and telemetry.dropped(envelope.trace):
                traced = otel_context.attach(envelope.trace)  # dropped like its sender's: one attach
            else:  # a sampled trace's child, or a trace of its own (the sampler decides)
                span = tracer.start_span(
                    f"{self.name} {type(msg).__name__}",
                    context=envelope.trace,
                    kind=SpanKind.CONSUMER,
                    attributes={"cinema.actor": self.name, "cinema.message": type(msg).__name__},
                )
                traced = telemetry.activate(span)
        with structlog.contextvars.bound_contextvars(actor=self.name, message=type(msg).__name__):
            try:
                async with asyncio.timeout_at(envelope.deadline):
                    result = await self.handle(msg)
            except asyncio.CancelledError:
                # Cancelled by stop(): the asker learns why; the cancellation goes on.
                if reply is not None and not reply.done():
                    reply.set_exception(ActorStopped(self.name))
                raise
            except Exception as exc:
                if isinstance(exc, self.expected_errors):
                    self._handled += 1
                    kind.handled += 1
                else:
                    self._failed += 1
                    kind.failed += 1
                    if span is not None:
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                if reply is None:
                    log.exception("actor_message_failed", duration_ms=_ms(loop.time() - started))
                elif not reply.done():
                    reply.set_exception(exc)
            else:
                self._handled += 1
                kind.handled += 1
                if reply is not None and not reply.done():
                    reply.set_result(result)
            finally:
                self._in_flight -= 1
                self.latency.observe(loop.time() - started)
                REQUEST_CONTEXT.reset(request)
                if traced is not None:
                    telemetry.deactivate(traced)
                if span is not None:
                    span.end()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)

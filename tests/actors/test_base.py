"""The actor runtime: ask/tell, timeouts, crash isolation, restarts, back-pressure, draining."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from cinema.actors.base import Actor, ActorStopped, AskTimeout, MailboxFull
from cinema.actors.system import ActorSystem
from cinema.context import REQUEST_CONTEXT


@attrs.frozen
class Echo:
    value: object


@attrs.frozen
class Boom:
    pass


@attrs.frozen
class Wait:
    """Handled when `release` is set; records that it started."""

    started: asyncio.Event
    release: asyncio.Event
    value: object = None


class Worker(Actor):
    def __init__(self, **options):
        super().__init__("worker", **options)
        self.seen: list[object] = []

    async def handle(self, msg):
        match msg:
            case Echo(value=value):
                self.seen.append(value)
                return value
            case Boom():
                raise RuntimeError("boom")
            case Wait(started=started, release=release, value=value):
                started.set()
                await release.wait()
                self.seen.append(value)
                return value
            case _:
                return await super().handle(msg)


async def test_ask_returns_the_answer():
    async with Worker() as actor:
        assert await actor.ask(Echo(42)) == 42
        assert actor.stats().handled == 1


async def test_a_crashing_handler_fails_only_its_ask_and_the_actor_goes_on():
    async with Worker() as actor:
        with pytest.raises(RuntimeError, match="boom"):
            await actor.ask(Boom())
        assert await actor.ask(Echo("after")) == "after"
        stats = actor.stats()
        assert (stats.failed, stats.handled, stats.restarts) == (1, 1, 0)


async def test_a_crashing_tell_is_logged_and_the_actor_goes_on():
    async with Worker() as actor:
        await actor.tell(Boom())
        assert await actor.ask(Echo(1)) == 1
        assert actor.stats().failed == 1


async def test_unknown_messages_fail_the_ask_with_a_clear_error():
    async with Worker() as actor:
        with pytest.raises(TypeError, match="does not handle str"):
            await actor.ask("hello")


async def test_ask_times_out_and_the_late_work_is_cancelled_not_answered():
    async with Worker() as actor:
        started, release = asyncio.Event(), asyncio.Event()
        with pytest.raises(AskTimeout, match=r"did not answer Wait within 0\.05s"):
            await actor.ask(Wait(started, release, "late"), timeout=0.05)
        assert started.is_set()
        # The handler ran under the same deadline: it was cancelled, not left running.
        assert await actor.ask(Echo("next")) == "next"
        assert "late" not in actor.seen


async def test_a_message_whose_asker_gave_up_is_skipped():
    async with Worker(concurrency=1) as actor:
        started, release = asyncio.Event(), asyncio.Event()
        blocker = asyncio.create_task(actor.ask(Wait(started, release, "first")))
        await started.wait()
        with pytest.raises(AskTimeout):
            await actor.ask(Echo("expired"), timeout=0.01)
        release.set()
        assert await blocker == "first"
        assert await actor.ask(Echo("last")) == "last"
        assert actor.seen == ["first", "last"]


async def test_concurrency_handles_that_many_messages_at_once():
    async with Worker(concurrency=3) as actor:
        waits = [Wait(asyncio.Event(), asyncio.Event(), i) for i in range(3)]
        tasks = [asyncio.create_task(actor.ask(w)) for w in waits]
        await asyncio.gather(*(w.started.wait() for w in waits))  # all three started together
        assert actor.stats().in_flight == 3
        for w in waits:
            w.release.set()
        assert await asyncio.gather(*tasks) == [0, 1, 2]


async def test_ask_on_a_full_mailbox_fails_fast():
    async with Worker(mailbox_size=1) as actor:
        started, release = asyncio.Event(), asyncio.Event()
        busy = asyncio.create_task(actor.ask(Wait(started, release)))
        await started.wait()
        queued = asyncio.create_task(actor.ask(Echo("queued")))
        await asyncio.sleep(0)  # let it enter the mailbox
        with pytest.raises(MailboxFull):
            await actor.ask(Echo("rejected"))
        release.set()
        assert await queued == "queued"
        await busy


async def test_tell_waits_while_the_mailbox_is_full():
    async with Worker(mailbox_size=1) as actor:
        started, release = asyncio.Event(), asyncio.Event()
        await actor.tell(Wait(started, release, "w"))
        await started.wait()
        await actor.tell(Echo(1))  # fills the mailbox
        blocked = asyncio.create_task(actor.tell(Echo(2)))
        for _ in range(5):
            await asyncio.sleep(0)  # yield to every other task a few times
        assert not blocked.done()  # back-pressure: the sender waits
        release.set()
        await blocked
        assert await actor.ask(Echo(3)) == 3
        assert actor.seen == ["w", 1, 2, 3]


class FlakyStart(Worker):
    def __init__(self, failures: int, **options):
        super().__init__(**options)
        self.failures = failures
        self.starts = 0

    async def on_start(self):
        self.starts += 1
        if self.starts <= self.failures:
            raise ConnectionError("resource not ready")


async def test_a_crashed_loop_is_restarted_with_backoff():
    actor = FlakyStart(failures=2, backoff=(0.01, 0.02))
    async with actor:
        assert await actor.ask(Echo("ok"), timeout=2) == "ok"
        assert actor.starts == 3
        assert actor.stats().restarts == 2
        assert not actor.failed.is_set()


async def test_past_its_restart_budget_the_actor_fails_and_the_system_is_told():
    failed = asyncio.Event()
    async with ActorSystem(on_failure=lambda actor: failed.set()) as system:
        actor = system.spawn(FlakyStart(failures=100, max_restarts=2, backoff=(0.001, 0.001)))
        async with asyncio.timeout(2):
            await failed.wait()
        assert actor.failed.is_set()
        with pytest.raises(ActorStopped):
            await actor.ask(Echo(1))


async def test_stop_drains_the_mailbox_first():
    actor = Worker()
    actor.start()
    for i in range(100):
        await actor.tell(Echo(i))
    await actor.stop(timeout=5)
    assert actor.seen == list(range(100))
    with pytest.raises(ActorStopped):
        await actor.tell(Echo("late"))


async def test_stop_past_its_deadline_fails_pending_asks_clearly():
    actor = Worker(concurrency=1)
    actor.start()
    started, release = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(actor.ask(Wait(started, release)))
    await started.wait()
    waiting = asyncio.create_task(actor.ask(Echo("never")))
    await asyncio.sleep(0)
    await actor.stop(timeout=0.05)
    for task in (running, waiting):
        with pytest.raises(ActorStopped):
            await task


async def test_system_stops_actors_in_reverse_order():
    stopped: list[str] = []

    class Named(Actor):
        async def on_stop(self):
            stopped.append(self.name)

    async with ActorSystem() as system:
        system.spawn(Named("first"))
        system.spawn(Named("second"))
        await asyncio.sleep(0)  # let both loops start
    assert stopped == ["second", "first"]


class Context(Actor):
    async def handle(self, msg):
        return REQUEST_CONTEXT.get()


async def test_a_message_carries_its_senders_request_context_into_the_actor():
    async with Context("context") as actor:
        token = REQUEST_CONTEXT.set({"request_id": "req-7"})
        try:
            assert await actor.ask("anything") == {"request_id": "req-7"}
        finally:
            REQUEST_CONTEXT.reset(token)
        # Each message has its own: the next one, sent outside a request, has none.
        assert await actor.ask("anything") is None

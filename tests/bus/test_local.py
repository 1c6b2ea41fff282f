"""The in-process bus: AMQP topic patterns, isolation of slow subscribers."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from cinema.bus.local import LocalBus, Missed, topic_matches


@attrs.frozen
class Note:
    topic: str
    n: int = 0


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("genre.created", "genre.created", True),
        ("genre.created", "genre.updated", False),
        ("genre.*", "genre.updated", True),
        ("*.deleted", "movie.deleted", True),
        ("*.deleted", "movie.updated", False),
        ("#", "movie.updated", True),
        ("movie.#", "movie", True),
        ("movie.#", "movie.a.b", True),
        ("#.deleted", "deleted", True),
        ("#.deleted", "a.b.deleted", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("genre.*", "genre", False),
        ("genre.*", "genre.a.b", False),
    ],
)
def test_topic_patterns_follow_amqp_rules(pattern, topic, matches):
    assert topic_matches(pattern, topic) is matches


async def test_subscribers_get_matching_events_in_order():
    bus = LocalBus()
    genres, everything = bus.subscribe("genre.*"), bus.subscribe("#")
    for event in [Note("genre.created", 1), Note("movie.created", 2), Note("genre.deleted", 3)]:
        bus.publish(event)
    assert [await genres.get(), await genres.get()] == [Note("genre.created", 1), Note("genre.deleted", 3)]
    assert genres.get_nowait() is None
    assert [(await everything.get()).n for _ in range(3)] == [1, 2, 3]


async def test_a_full_subscriber_loses_events_without_blocking_others_and_is_told():
    bus = LocalBus()
    slow, fast = bus.subscribe("#", maxsize=2), bus.subscribe("#", maxsize=100)
    for n in range(5):
        bus.publish(Note("movie.updated", n))  # never blocks, even with `slow` full
    assert [(await fast.get()).n for _ in range(5)] == [0, 1, 2, 3, 4]
    assert await slow.get() == Missed(3)  # first the news that it fell behind
    assert [(await slow.get()).n for _ in range(2)] == [0, 1]
    assert slow.get_nowait() is None


async def test_closed_subscriptions_receive_nothing():
    bus = LocalBus()
    sub = bus.subscribe("#")
    sub.close()
    bus.publish(Note("movie.created"))
    assert sub.get_nowait() is None


def test_subscribe_needs_a_pattern():
    with pytest.raises(ValueError, match="at least one"):
        LocalBus().subscribe()


async def test_a_gap_wakes_a_waiting_subscriber_and_reaches_a_full_one():
    bus = LocalBus()
    waiting, full = bus.subscribe("#"), bus.subscribe("#", maxsize=1)
    bus.publish(Note("movie.created", 1))  # fills `full`
    getter = asyncio.create_task(waiting.get())
    assert await getter == Note("movie.created", 1)
    getter = asyncio.create_task(waiting.get())
    await asyncio.sleep(0)
    bus.announce_gap()
    assert await getter == Missed(None)
    assert await full.get() == Missed(None)  # reported before the queued event
    assert await full.get() == Note("movie.created", 1)


async def test_committed_publishes_then_awaits_every_commit_hook_and_survives_a_failing_one():
    bus = LocalBus()
    subscription = bus.subscribe("#")
    seen = []

    async def failing(events):
        raise RuntimeError("hook broke")

    async def recording(events):
        seen.append([e.n for e in events])

    bus.on_commit(failing)
    bus.on_commit(recording)
    await bus.committed([Note("genre.created", 1), Note("genre.updated", 2)])
    assert seen == [[1, 2]]  # after the failing hook, still called, and before committed returned
    assert [subscription.get_nowait().n, subscription.get_nowait().n] == [1, 2]
    await bus.committed([])
    assert seen == [[1, 2]]  # no events, no hooks

"""GET /api/v1/changes: every committed change once, in commit order, for a polling client."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cinema.db.outbox import NewEvent, append_events

URL = "/api/v1/changes"


async def poll(client, since=None, limit=None):
    params = {} | ({"since": since} if since else {}) | ({"limit": str(limit)} if limit else {})
    resp = await client.get(URL, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_the_feed_lists_events_oldest_first_in_the_published_shape(client):
    genre = await (await client.post("/api/v1/genres", json={"name": "Drama"})).json()
    await client.delete(f"/api/v1/genres/{genre['id']}")
    feed = await poll(client)
    assert [(e["type"], e["entity_id"]) for e in feed["items"]] == [
        ("genre.created", genre["id"]),
        ("genre.deleted", genre["id"]),
    ]
    created, deleted = feed["items"]
    assert set(created) == {"seq", "id", "type", "occurred_at", "entity_id", "data"}
    assert created["data"] == genre
    assert deleted["data"] is None
    assert created["occurred_at"].endswith("+00:00")
    assert created["seq"] < deleted["seq"]


async def test_polling_with_the_cursor_sees_each_change_once(client):
    feed = await poll(client)
    assert feed["items"] == []
    cursor = feed["next_cursor"]
    for name in ["Drama", "Crime", "Western"]:
        await client.post("/api/v1/genres", json={"name": name})
    seen = []
    while True:
        feed = await poll(client, cursor, limit=2)
        if not feed["items"]:
            break
        seen += [e["data"]["name"] for e in feed["items"]]
        cursor = feed["next_cursor"]
    assert seen == ["Drama", "Crime", "Western"]
    await client.post("/api/v1/genres", json={"name": "Horror"})
    assert [e["data"]["name"] for e in (await poll(client, cursor))["items"]] == ["Horror"]


async def test_a_change_that_commits_late_is_not_skipped(client, database_url):
    slow = await asyncpg.connect(database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute("INSERT INTO genres (slug, name) VALUES ('slow', 'Slow')")
        await client.post("/api/v1/genres", json={"name": "Fast"})
        feed = await poll(client)
        assert [e["data"]["name"] for e in feed["items"]] == ["Fast"]
        await append_events(slow, [NewEvent("genre.created", 99, '{"name": "Slow"}')])
        await tx.commit()
        later = await poll(client, feed["next_cursor"])
        assert [e["data"]["name"] for e in later["items"]] == ["Slow"]
    finally:
        await slow.close()


async def test_concurrent_writers_never_make_a_poller_miss_or_repeat(client):
    cursor, seen = None, []

    async def writer(n):
        for i in range(10):
            await client.post("/api/v1/genres", json={"name": f"Genre {n}-{i}"})

    writers = asyncio.gather(*(writer(n) for n in range(3)))
    while True:
        feed = await poll(client, cursor, limit=7)
        seen += [e["seq"] for e in feed["items"]]
        cursor = feed["next_cursor"]
        if writers.done() and not feed["items"]:
            break
        await asyncio.sleep(0)
    await writers
    assert len(seen) == 30
    assert seen == sorted(set(seen))


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "garbage"}, "since"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"x": "1"}, "x")],
)
async def test_bad_parameters_are_400(client, params, field):
    resp = await client.get(URL, params=params)
    assert resp.status == 400
    assert field in [e["field"] for e in (await resp.json())["errors"]]


@pytest.mark.parametrize(
    "params",
    [{"since": "¹"}, {"since": "Y2hhbmdlczo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, {"limit": "²"}, {"since": "////"}],
)
async def test_forged_cursors_and_odd_digits_are_400_not_500(client, params):
    assert (await client.get(URL, params=params)).status == 400

"""Cached search results follow the indexer: a hit after a miss, dropped by every searchable batch.

Each test runs twice: with the in-process layer alone, and with Redis behind it.
"""

from __future__ import annotations

import asyncio

import pytest

from cinema.app import create_app
from cinema.cache.kinds import SEARCH
from cinema.http.keys import CACHE, SEARCH_BACKEND
from tests.conftest import eventually
from tests.http.test_cache_instances import start
from tests.search.conftest import caught_up

BASE = "/api/v1/search"


@pytest.fixture
async def app(layered_settings, db):
    return create_app(layered_settings)


async def search(client, q):
    resp = await client.get(BASE, params={"q": q})
    assert resp.status == 200, await resp.text()
    return resp, [hit["title"] for hit in (await resp.json())["items"]]


async def create_movie(client, title):
    resp = await client.post("/api/v1/movies", json={"title": title, "release_year": 1998})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_search_is_a_miss_then_a_hit_with_the_same_body(client, app, db):
    await create_movie(client, "The Mask of Zorro")
    await caught_up(app, db)
    first, titles = await search(client, "zorro")
    second, _ = await search(client, "zorro")
    assert titles == ["The Mask of Zorro"]
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert await second.read() == await first.read()  # took_ms included: the time of the search that ran
    assert second.headers["ETag"] == first.headers["ETag"]


async def test_a_cached_answer_gives_way_once_the_indexer_makes_a_write_searchable(client, app, db):
    await create_movie(client, "Drama")
    await caught_up(app, db)
    await search(client, "zorro")
    cached, titles = await search(client, "zorro")
    assert (cached.headers["X-Cache"], titles) == ("hit", [])
    movie = await create_movie(client, "The Mask of Zorro")

    async def found():
        return (await search(client, "zorro"))[1] == ["The Mask of Zorro"]

    await eventually(found, timeout=2)  # not the 60 s TTL: the announcement dropped the entry
    await client.patch(f"/api/v1/movies/{movie['id']}", json={"title": "The Legend of Zorro"})

    async def renamed():
        return (await search(client, "zorro"))[1] == ["The Legend of Zorro"]

    await eventually(renamed, timeout=2)
    resp, titles = await search(client, "zorro")
    assert (resp.headers["X-Cache"], titles) == ("hit", ["The Legend of Zorro"])


async def test_a_search_that_started_before_a_batch_was_indexed_does_not_store_its_answer(
    client, app, db, monkeypatch, cache_layers
):
    await caught_up(app, db)
    layer = app[CACHE].layer
    generation = layer.key(SEARCH, "")[2]
    backend = app[SEARCH_BACKEND]
    original, has_read, release = backend.search, asyncio.Event(), asyncio.Event()

    async def held(query):
        hits = await original(query)
        monkeypatch.setattr(backend, "search", original)  # only the first search is held
        has_read.set()
        await release.wait()
        return hits

    monkeypatch.setattr(backend, "search", held)
    early = asyncio.create_task(client.get(BASE, params={"q": "zorro"}))
    await has_read.wait()  # it found nothing and is held before it can store that
    await create_movie(client, "The Mask of Zorro")
    await caught_up(app, db)
    await eventually(lambda: layer.key(SEARCH, "")[2] > generation)  # the batch's announcement arrived
    release.set()
    assert (await (await early).json())["items"] == []
    resp, titles = await search(client, "zorro")
    assert (resp.headers["X-Cache"], titles) == ("miss", ["The Mask of Zorro"])
    if cache_layers == "redis":
        assert app[CACHE].cache_stats().refused == 1  # Redis refused it too


async def test_two_instances_follow_each_batch_whichever_indexed_it(aiohttp_client, layered_settings, db):
    first, second = await start(aiohttp_client, layered_settings), await start(aiohttp_client, layered_settings)
    # Only one instance leads the indexer; the other hears of each batch by NOTIFY.
    for client in (first, second):
        await search(client, "zorro")
        resp, titles = await search(client, "zorro")
        assert (resp.headers["X-Cache"], titles) == ("hit", [])
    movie = await create_movie(first, "The Mask of Zorro")
    for title in ("The Mask of Zorro", "The Legend of Zorro"):
        for client in (first, second):

            async def found(client=client, title=title):
                return (await search(client, "zorro"))[1] == [title]

            await eventually(found, timeout=2)
        await first.patch(f"/api/v1/movies/{movie['id']}", json={"title": "The Legend of Zorro"})

"""The cached genre endpoints: hits, invalidation by every write, races, single flight.

Each test runs twice: with the in-process layer alone, and with Redis behind it.
"""

from __future__ import annotations

import asyncio

import attrs
import pytest

from cinema.app import create_app
from cinema.db import genres
from cinema.http.keys import CACHE
from tests.conftest import eventually

BASE = "/api/v1/genres"


@pytest.fixture
async def app(layered_settings, db):
    return create_app(layered_settings)


async def create(client, name):
    resp = await client.post(BASE, json={"name": name})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def get(client, url, status=200, **kwargs):
    resp = await client.get(url, **kwargs)
    assert resp.status == status, await resp.text()
    return resp


async def names(client, url=BASE):
    return [item["name"] for item in (await (await get(client, url)).json())["items"]]


async def test_a_read_is_a_miss_then_a_hit_with_the_same_body_and_etag(client):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    first = await get(client, url)
    second = await get(client, url)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert await second.read() == await first.read()
    assert await first.json() == genre
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.content_type == "application/json"
    stats = client.app[CACHE].cache_stats()
    assert (stats.misses, stats.hits, stats.entries) == (1, 1, 1)


async def test_if_none_match_is_answered_304_from_the_cache(client):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    tag = (await get(client, url)).headers["ETag"]
    resp = await get(client, url, status=304, headers={"If-None-Match": tag})
    assert resp.headers["ETag"] == tag
    assert resp.headers["X-Cache"] == "hit"
    assert await resp.read() == b""
    assert (await get(client, url, headers={"If-None-Match": '"other"'})).headers["X-Cache"] == "hit"


async def test_list_pages_are_cached_per_sort_size_and_cursor(client):
    for name in ("Drama", "Comedy", "Western"):
        await create(client, name)
    first = await get(client, f"{BASE}?limit=2&sort=name")
    body = await first.json()
    assert [g["name"] for g in body["items"]] == ["Comedy", "Drama"]
    assert (await get(client, f"{BASE}?limit=2&sort=name")).headers["X-Cache"] == "hit"
    assert (await get(client, f"{BASE}?limit=2")).headers["X-Cache"] == "miss"
    url = f"{BASE}?limit=2&sort=name&cursor={body['next_cursor']}"
    second = await get(client, url)
    assert second.headers["X-Cache"] == "miss"
    assert [g["name"] for g in (await second.json())["items"]] == ["Western"]
    assert (await get(client, url)).headers["X-Cache"] == "hit"


async def test_a_missing_genre_is_404_and_not_cached(client):
    await get(client, f"{BASE}/99", status=404)
    await get(client, f"{BASE}/99", status=404)
    stats = client.app[CACHE].cache_stats()
    assert (stats.misses, stats.entries) == (2, 0)


# -- every write invalidates what it changes, before it replies ------------------------


async def test_genre_created_shows_in_every_cached_list(client):
    await create(client, "Drama")
    assert await names(client) == ["Drama"]
    assert await names(client, f"{BASE}?sort=-name") == ["Drama"]
    await create(client, "Comedy")
    assert await names(client) == ["Drama", "Comedy"]
    assert await names(client, f"{BASE}?sort=-name") == ["Drama", "Comedy"]


async def test_bulk_created_genres_show_in_the_cached_list(client):
    await create(client, "Drama")
    assert await names(client) == ["Drama"]
    resp = await client.post(f"{BASE}/bulk", json=[{"name": "Comedy"}, {"name": "Western"}])
    assert resp.status == 201
    assert await names(client) == ["Drama", "Comedy", "Western"]


async def test_genre_updated_shows_at_once_in_the_genre_and_the_lists(client):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    await get(client, url)
    await get(client, url)
    assert await names(client) == ["Drama"]
    resp = await client.patch(url, json={"name": "Dramas"})
    assert resp.status == 200
    after = await get(client, url)
    assert after.headers["X-Cache"] == "miss"
    assert (await after.json())["name"] == "Dramas"
    assert after.headers["ETag"] == resp.headers["ETag"]
    assert await names(client) == ["Dramas"]


async def test_a_patch_that_changes_nothing_keeps_the_entry(client):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    await get(client, url)
    assert (await client.patch(url, json={"name": "Drama"})).status == 200
    assert (await get(client, url)).headers["X-Cache"] == "hit"


async def test_genre_deleted_is_gone_from_the_genre_and_the_lists(client):
    genre = await create(client, "Drama")
    await create(client, "Comedy")
    url = f"{BASE}/{genre['id']}"
    await get(client, url)
    assert await names(client) == ["Drama", "Comedy"]
    assert (await client.delete(url)).status == 204
    await get(client, url, status=404)
    assert await names(client) == ["Comedy"]


async def test_other_genres_stay_cached_when_one_changes(client):
    drama, comedy = await create(client, "Drama"), await create(client, "Comedy")
    await get(client, f"{BASE}/{comedy['id']}")
    await client.patch(f"{BASE}/{drama['id']}", json={"name": "Dramas"})
    assert (await get(client, f"{BASE}/{comedy['id']}")).headers["X-Cache"] == "hit"


# -- races -------------------------------------------------------------------------------


def hold(monkeypatch, name):
    """Make the catalog's `genres.<name>` read, then wait: (has read, release) events."""
    has_read, release = asyncio.Event(), asyncio.Event()
    original = getattr(genres, name)

    async def held(*args):
        result = await original(*args)
        monkeypatch.setattr(genres, name, original)  # only the first read is held
        has_read.set()
        await release.wait()
        return result

    monkeypatch.setattr(genres, name, held)
    return has_read, release


def count_reads(monkeypatch):
    """Record the ids the catalog reads genres by, and hold every read: (ids, release event)."""
    original, release, reads = genres.get_genre, asyncio.Event(), []

    async def counted(conn, genre_id):
        reads.append(genre_id)
        await release.wait()
        return await original(conn, genre_id)

    monkeypatch.setattr(genres, "get_genre", counted)
    return reads, release


async def test_a_read_that_started_before_a_write_does_not_store_the_old_genre(client, monkeypatch, cache_layers):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    has_read, release = hold(monkeypatch, "get_genre")
    early = asyncio.create_task(client.get(url))
    await has_read.wait()  # it read "Drama" and is held before it can store it
    assert (await client.patch(url, json={"name": "Dramas"})).status == 200
    release.set()
    assert (await (await early).json())["name"] == "Drama"  # it started before the write
    late = await get(client, url)
    assert (late.headers["X-Cache"], (await late.json())["name"]) == ("miss", "Dramas")
    again = await get(client, url)
    assert (again.headers["X-Cache"], (await again.json())["name"]) == ("hit", "Dramas")
    if cache_layers == "redis":
        assert client.app[CACHE].cache_stats().refused == 1  # Redis refused it too


async def test_a_list_read_that_started_before_a_write_does_not_store_the_old_page(client, monkeypatch, cache_layers):
    await create(client, "Drama")
    has_read, release = hold(monkeypatch, "list_genres")
    early = asyncio.create_task(client.get(BASE))
    await has_read.wait()
    await create(client, "Comedy")
    release.set()
    assert [g["name"] for g in (await (await early).json())["items"]] == ["Drama"]
    assert await names(client) == ["Drama", "Comedy"]
    if cache_layers == "redis":
        assert client.app[CACHE].cache_stats().refused == 1


async def test_a_read_after_the_write_does_not_join_a_read_that_started_before(client, monkeypatch):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    has_read, release = hold(monkeypatch, "get_genre")
    early = asyncio.create_task(client.get(url))
    await has_read.wait()
    await client.patch(url, json={"name": "Dramas"})
    late = await get(client, url)  # answered while the early read is still held
    assert (await late.json())["name"] == "Dramas"
    release.set()
    assert (await early).status == 200


async def test_concurrent_misses_of_one_key_make_one_catalog_read(client, monkeypatch):
    genre = await create(client, "Drama")
    url = f"{BASE}/{genre['id']}"
    reads, release = count_reads(monkeypatch)
    readers = [asyncio.create_task(client.get(url)) for _ in range(20)]
    await eventually(lambda: client.app[CACHE].cache_stats().joined == 19)
    release.set()
    responses = await asyncio.gather(*readers)
    assert {r.status for r in responses} == {200}
    assert {r.headers["X-Cache"] for r in responses} == {"miss"}
    assert reads == [genre["id"]]


async def test_with_the_cache_turned_off_reads_go_to_the_catalog(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, cache_enabled=False)))
    genre = await create(client, "Drama")
    resp = await get(client, f"{BASE}/{genre['id']}")
    assert "X-Cache" not in resp.headers
    assert await resp.json() == genre
    assert CACHE not in client.app

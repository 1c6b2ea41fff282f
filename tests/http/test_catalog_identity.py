"""Catalogs never read each other's state: what lives outside the database is named by the catalog id.

Two databases behind one Redis and one prefix, and one database before and after `seed --replace`,
number their events independently; the cache, the search results, ETags and `/changes` cursors of
one must never answer for the other.
"""

from __future__ import annotations

import attrs
import pytest

from cinema.db.catalog import get_catalog_id
from cinema.seed import generate, write_catalog
from tests.conftest import emptied
from tests.http.test_cache_instances import start
from tests.search.conftest import caught_up


@pytest.fixture
async def other_db(other_database_url):
    async with emptied(other_database_url) as conn:
        yield conn


@pytest.fixture
async def two_catalogs(aiohttp_client, cache_settings, db, other_db, other_database_url):
    """Two services on two databases, sharing one Redis under one prefix."""
    other = attrs.evolve(cache_settings, database_url=other_database_url)
    return await start(aiohttp_client, cache_settings), await start(aiohttp_client, other)


async def ok(resp, status=200):
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_a_cached_entry_of_one_catalog_is_never_served_by_the_other(two_catalogs):
    first, second = two_catalogs
    await ok(await first.post("/api/v1/genres", json={"name": "Drama"}), 201)
    await ok(await first.get("/api/v1/genres/1"))
    assert (await first.get("/api/v1/genres/1")).headers["X-Cache"] == "hit"
    # The same id, created by the same seq, in the other database.
    await ok(await second.post("/api/v1/genres", json={"name": "Comedy"}), 201)
    assert (await ok(await second.get("/api/v1/genres/1")))["name"] == "Comedy"
    assert [g["name"] for g in (await ok(await second.get("/api/v1/genres")))["items"]] == ["Comedy"]
    assert (await ok(await first.get("/api/v1/genres/1")))["name"] == "Drama"


async def test_equal_bodies_in_two_catalogs_have_different_etags(two_catalogs):
    first, second = two_catalogs
    for client in two_catalogs:
        await ok(await client.post("/api/v1/genres", json={"name": "Drama"}), 201)
    one, other = await first.get("/api/v1/genres/1"), await second.get("/api/v1/genres/1")
    assert await one.read() == await other.read()
    assert one.headers["ETag"] != other.headers["ETag"]
    assert (await second.get("/api/v1/genres/1", headers={"If-None-Match": one.headers["ETag"]})).status == 200
    patch = {"name": "Crime"}
    refused = await second.patch("/api/v1/genres/1", json=patch, headers={"If-Match": one.headers["ETag"]})
    assert refused.status == 412
    await ok(await second.patch("/api/v1/genres/1", json=patch, headers={"If-Match": other.headers["ETag"]}))
    assert (await ok(await first.get("/api/v1/genres/1")))["name"] == "Drama"


async def test_a_changes_cursor_of_one_catalog_is_gone_in_the_other(two_catalogs):
    first, second = two_catalogs
    for client in two_catalogs:
        await ok(await client.post("/api/v1/genres", json={"name": "Drama"}), 201)
    cursor = (await ok(await first.get("/api/v1/changes")))["next_cursor"]
    resp = await second.get("/api/v1/changes", params={"since": cursor})
    assert resp.status == 410
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["type"] == "/problems/gone"
    assert (await ok(await first.get("/api/v1/changes", params={"since": cursor})))["items"] == []


async def test_a_search_cached_by_one_catalog_does_not_hide_a_movie_of_the_other(two_catalogs, db, other_db):
    first, second = two_catalogs
    for title in ("Alien", "Brazil", "Casablanca"):  # the first catalog's log is ahead of the second's
        await ok(await first.post("/api/v1/movies", json={"title": title, "release_year": 1980}), 201)
    await caught_up(first.app, db)
    assert (await ok(await first.get("/api/v1/search", params={"q": "zorro"})))["items"] == []
    assert (await first.get("/api/v1/search", params={"q": "zorro"})).headers["X-Cache"] == "hit"
    await ok(await second.post("/api/v1/movies", json={"title": "The Mask of Zorro", "release_year": 1998}), 201)
    await caught_up(second.app, other_db)
    hits = (await ok(await second.get("/api/v1/search", params={"q": "zorro"})))["items"]
    assert [hit["title"] for hit in hits] == ["The Mask of Zorro"]
    assert (await ok(await first.get("/api/v1/search", params={"q": "zorro"})))["items"] == []


async def test_after_seed_replace_nothing_of_the_old_catalog_is_served(aiohttp_client, cache_settings, db):
    before = await start(aiohttp_client, cache_settings)
    await ok(await before.post("/api/v1/genres", json={"name": "Old Genre"}), 201)
    await ok(await before.post("/api/v1/movies", json={"title": "Xylophone Quest", "release_year": 1990}), 201)
    await caught_up(before.app, db)
    old = await before.get("/api/v1/genres/1")
    assert (await before.get("/api/v1/genres/1")).headers["X-Cache"] == "hit"
    cursor = (await ok(await before.get("/api/v1/changes")))["next_cursor"]
    assert len((await ok(await before.get("/api/v1/search", params={"q": "xylophone"})))["items"]) == 1
    old_id = await get_catalog_id(db)
    await before.close()

    catalog = generate(movies=20, seed=7)
    await write_catalog(db, catalog, replace=True)
    assert await get_catalog_id(db) != old_id
    after = await start(aiohttp_client, cache_settings)
    await caught_up(after.app, db)

    genre = await after.get("/api/v1/genres/1", headers={"If-None-Match": old.headers["ETag"]})
    assert genre.status == 200
    assert (await genre.json())["name"] != "Old Genre"
    assert (await after.get("/api/v1/changes", params={"since": cursor})).status == 410
    assert (await ok(await after.get("/api/v1/search", params={"q": "xylophone"})))["items"] == []
    seeded = await db.fetchval("SELECT title FROM movies WHERE id = 1")
    hits = (await ok(await after.get("/api/v1/search", params={"q": seeded, "type": "movie"})))["items"]
    assert seeded in [hit["title"] for hit in hits]

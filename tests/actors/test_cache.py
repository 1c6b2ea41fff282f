"""The cache's parts: the in-process layer, the kinds table, and invalidation by affected movies."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from cinema.actors.base import Actor
from cinema.actors.cache import CacheActor, Fetch
from cinema.app import cache_ttls
from cinema.cache import layer as layer_module
from cinema.cache.kinds import GENRE, GENRES, KINDS, RULES, Kind, bumped
from cinema.cache.layer import OVERHEAD, Entry, LocalLayer
from cinema.cache.shared import SharedStore
from cinema.http.keys import BUS, CATALOG_ID, POOL

BASE = "/api/v1/genres"
TTLS = {"genre": 60.0, "genres": 60.0}


def entry(body: bytes = b"{}") -> Entry:
    return Entry(body, '"tag"')


# -- the in-process layer ----------------------------------------------------------------


def test_the_layer_evicts_the_least_recently_read_entry_past_its_size():
    layer = LocalLayer([GENRE], TTLS, max_entries=2, max_bytes=10**6)
    for ident in ("1", "2"):
        assert layer.put(layer.key(GENRE, ident), entry())
    assert layer.get(GENRE, "1") is not None  # now the most recent
    layer.put(layer.key(GENRE, "3"), entry())
    assert [layer.get(GENRE, i) is not None for i in ("1", "2", "3")] == [True, False, True]
    assert len(layer) == 2


def test_the_layer_is_bounded_by_bytes_too():
    body = b"x" * 1000
    layer = LocalLayer([GENRE], TTLS, max_entries=100, max_bytes=3 * (1000 + 1 + OVERHEAD))
    for ident in "12345":
        layer.put(layer.key(GENRE, ident), entry(body))
    assert len(layer) == 3
    assert layer.size == 3 * (1000 + 1 + OVERHEAD)
    assert layer.get(GENRE, "1") is None
    assert not layer.put(layer.key(GENRE, "big"), entry(b"x" * 10_000))  # larger than the whole layer


def test_an_expired_entry_is_a_miss(monkeypatch):
    now = 1000.0
    monkeypatch.setattr(layer_module, "monotonic", lambda: now)
    layer = LocalLayer([GENRE], TTLS, max_entries=10, max_bytes=10**6)
    layer.put(layer.key(GENRE, "1"), entry())
    now += 59.9
    assert layer.get(GENRE, "1") is not None
    now += 0.2
    assert layer.get(GENRE, "1") is None
    assert len(layer) == 0


def test_a_collection_bump_leaves_every_page_behind_and_refuses_pages_read_before_it():
    layer = LocalLayer([GENRE, GENRES], TTLS, max_entries=10, max_bytes=10**6)
    before = layer.key(GENRES, "id:20:")
    layer.put(before, entry())
    layer.put(layer.key(GENRE, "1"), entry())
    assert layer.invalidate(["genres"]) == []
    assert layer.get(GENRES, "id:20:") is None
    assert not layer.put(before, entry())  # read before the bump: not stored
    assert layer.get(GENRE, "1") is not None  # another kind, untouched
    assert layer.put(layer.key(GENRES, "id:20:"), entry())


def test_an_entity_counter_drops_that_entity_only():
    layer = LocalLayer([GENRE, GENRES], TTLS, max_entries=10, max_bytes=10**6)
    for ident in ("1", "2"):
        layer.put(layer.key(GENRE, ident), entry())
    layer.put(layer.key(GENRES, "id:20:"), entry())
    assert layer.invalidate(["genre:1"]) == [layer.key(GENRE, "1")]
    assert layer.get(GENRE, "1") is None
    assert layer.get(GENRE, "2") is not None
    assert layer.get(GENRES, "id:20:") is not None


def test_with_no_room_the_layer_stores_nothing():
    layer = LocalLayer([GENRE], TTLS, max_entries=0, max_bytes=10**6)
    assert not layer.put(layer.key(GENRE, "1"), entry())


# -- the tables ------------------------------------------------------------------------------


def test_every_kind_can_be_invalidated_by_some_event():
    entities = {rule.entity for rule in RULES.values()} | {"movie"}  # affected_movie_ids
    collections = {c for rule in RULES.values() for c in rule.collections}
    for kind in KINDS.values():
        assert kind.entity is None or kind.entity in entities, kind
        assert set(kind.collections) <= collections, kind
        assert kind.entity is not None or kind.collections, f"{kind.name}: nothing can invalidate it"


def test_an_event_bumps_its_entity_its_collections_and_the_movies_it_affects():
    assert bumped("genre.updated", 5, (7, 9)) == ["movie:7", "movie:9", "genre:5", "genres", "movies"]
    assert bumped("genre.created", 5, ()) == ["genres"]
    assert bumped("person.updated", 3, (7,)) == ["movie:7", "person:3", "persons"]
    assert bumped("credit.created", 4, (7,)) == ["movie:7"]  # no rule: the movies it names still


def test_ttls_come_from_the_kinds_unless_overridden(settings):
    assert cache_ttls(settings) == {kind.name: kind.ttl for kind in KINDS.values()}
    assert cache_ttls(attrs.evolve(settings, cache_ttls="genres=5"))["genres"] == 5


# -- a kind keyed by movie, invalidated by the genres a movie carries ------------------------

MOVIE = Kind("movie", ttl=60, entity="movie")
MOVIE_DOC = """
SELECT json_build_object('id', m.id, 'title', m.title, 'genres',
    (SELECT coalesce(json_agg(g.name ORDER BY g.name), '[]') FROM movie_genres mg
     JOIN genres g ON g.id = mg.genre_id WHERE mg.movie_id = m.id))::text
FROM movies m WHERE m.id = $1
"""


@attrs.frozen
class GetMovie:
    id: int


class Movies(Actor):
    """Reads a movie document, as the catalog's movie reads will."""

    def __init__(self, pool):
        super().__init__("movies")
        self.pool = pool

    async def handle(self, msg):
        async with self.pool.acquire() as conn:
            return await conn.fetchval(MOVIE_DOC, msg.id)


@pytest.fixture
def redis_settings(request, cache_layers):
    return request.getfixturevalue("cache_settings") if cache_layers == "redis" else None


@pytest.fixture
async def movie_cache(client, redis_settings):
    app = client.app
    shared = None
    if redis_settings is not None:
        shared = SharedStore(
            redis_settings.redis_url, redis_settings.redis_prefix, app[CATALOG_ID].hex, {"movie": 60.0}
        )
        await shared.start()
    source = Movies(app[POOL])
    cache = CacheActor(source, app[BUS], [MOVIE], {"movie": 60.0}, max_entries=100, max_bytes=10**6, shared=shared)
    async with source, cache:
        yield cache
    if shared is not None:
        await shared.stop()


async def insert_movie(db, slug, *genre_ids):
    movie_id = await db.fetchval("INSERT INTO movies (slug, title) VALUES ($1, $1) RETURNING id", slug)
    for genre_id in genre_ids:
        await db.execute("INSERT INTO movie_genres (movie_id, genre_id) VALUES ($1, $2)", movie_id, genre_id)
    return movie_id


async def movie(cache, movie_id):
    entry, _ = await cache.ask(Fetch(MOVIE, str(movie_id), GetMovie(movie_id)))
    return entry.body


async def test_a_renamed_genre_invalidates_the_movies_that_carry_it_before_the_write_replies(client, db, movie_cache):
    drama = await (await client.post(BASE, json={"name": "Drama"})).json()
    heat = await insert_movie(db, "heat", drama["id"])
    other = await insert_movie(db, "other")
    assert b'"genres" : ["Drama"]' in await movie(movie_cache, heat)
    await movie(movie_cache, other)
    assert movie_cache.layer.get(MOVIE, str(heat)) is not None
    assert (await client.patch(f"{BASE}/{drama['id']}", json={"name": "Dramas"})).status == 200
    assert movie_cache.layer.get(MOVIE, str(heat)) is None  # gone when the write answered
    assert movie_cache.layer.get(MOVIE, str(other)) is not None
    assert b'"genres" : ["Dramas"]' in await movie(movie_cache, heat)


async def test_a_deleted_genre_invalidates_the_movies_that_carried_it(client, db, movie_cache):
    drama = await (await client.post(BASE, json={"name": "Drama"})).json()
    heat = await insert_movie(db, "heat", drama["id"])
    assert b'"genres" : ["Drama"]' in await movie(movie_cache, heat)
    assert (await client.delete(f"{BASE}/{drama['id']}")).status == 204
    assert b'"genres" : []' in await movie(movie_cache, heat)


async def test_a_crashed_cache_loop_starts_again_with_an_empty_layer(client, db, movie_cache):
    drama = await (await client.post(BASE, json={"name": "Drama"})).json()
    heat = await insert_movie(db, "heat", drama["id"])
    await movie(movie_cache, heat)
    await movie_cache.on_start()  # what a restart after a crash runs
    assert len(movie_cache.layer) == 0
    assert movie_cache.cache_stats().flushes == 1
    await asyncio.wait_for(movie(movie_cache, heat), 5)

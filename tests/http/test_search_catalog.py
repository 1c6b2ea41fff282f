"""Search follows the catalog through the real write paths: what the API writes is found, changed
and gone within a second, including movies whose genre or cast changed under them."""

from __future__ import annotations

import pytest

from cinema.app import create_app
from tests.conftest import eventually


@pytest.fixture
async def app(settings, db):
    return create_app(settings)


async def post(client, url, body):
    resp = await client.post(url, json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def search(client, q, **params):
    resp = await client.get("/api/v1/search", params={"q": q, **params})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def found(client, q, kind, entity_id, **params):
    return any(hit["type"] == kind and hit["id"] == entity_id for hit in await search(client, q, **params))


async def test_created_updated_and_deleted_movies_are_searchable_within_a_second(client):
    movie = await post(client, "/api/v1/movies", {"title": "The Godfather", "release_year": 1972})
    await eventually(lambda: found(client, "godf", "movie", movie["id"]), timeout=1)
    await client.patch(f"/api/v1/movies/{movie['id']}", json={"title": "Il Padrino"})
    await eventually(lambda: found(client, "padrino", "movie", movie["id"]), timeout=1)
    assert not await found(client, "godfather", "movie", movie["id"])
    await client.delete(f"/api/v1/movies/{movie['id']}")

    async def gone():
        return not await found(client, "padrino", "movie", movie["id"])

    await eventually(gone, timeout=1)


async def test_persons_countries_and_genres_are_searchable(client):
    person = await post(client, "/api/v1/persons", {"full_name": "Amélie Poulain", "biography": "A waitress."})
    country = await post(client, "/api/v1/countries", {"code": "FR", "name": "France"})
    genre = await post(client, "/api/v1/genres", {"name": "Romance"})
    await eventually(lambda: found(client, "amelie", "person", person["id"], type="person"), timeout=1)
    await eventually(lambda: found(client, "franc", "country", country["id"], type="country"), timeout=1)
    await eventually(lambda: found(client, "romanc", "genre", genre["id"], type="genre"), timeout=1)


async def test_a_movie_is_found_by_its_cast_and_follows_a_renamed_actor(client):
    """The movie's document names its cast: a renamed actor re-indexes their movies."""
    actor = await post(client, "/api/v1/persons", {"full_name": "Marlon Brando"})
    movie = await post(
        client,
        "/api/v1/movies",
        {"title": "On the Waterfront", "credits": [{"person_id": actor["id"], "role": "actor"}]},
    )
    await eventually(lambda: found(client, "waterfront", "movie", movie["id"]), timeout=1)
    await eventually(lambda: found(client, "marlon", "movie", movie["id"], type="movie"), timeout=1)
    await client.patch(f"/api/v1/persons/{actor['id']}", json={"full_name": "Bud Brando"})
    await eventually(lambda: found(client, "bud", "person", actor["id"]), timeout=1)
    await eventually(lambda: found(client, "bud", "movie", movie["id"], type="movie"), timeout=1)


async def test_deleting_a_genre_updates_the_movies_that_carried_it(client):
    genre = await post(client, "/api/v1/genres", {"name": "Noirish"})
    movie = await post(client, "/api/v1/movies", {"title": "Pickup on South Street", "genre_ids": [genre["id"]]})
    # A movie is found by the names of its genres too.
    await eventually(lambda: found(client, "noirish", "movie", movie["id"], type="movie"), timeout=1)
    await client.delete(f"/api/v1/genres/{genre['id']}")

    async def no_longer_found():
        return not await found(client, "noirish", "movie", movie["id"], type="movie")

    await eventually(no_longer_found, timeout=1)
    assert await found(client, "pickup", "movie", movie["id"])

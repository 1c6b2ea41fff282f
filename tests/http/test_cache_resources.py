"""Every write path leaves no stale cached read behind: one test per event kind, through the API.

Each test first reads (and so caches) what the write will change, checks the second read is a
hit, writes, then reads again: the answer must be the new state, on the in-process layer alone
and with Redis behind it.
"""

from __future__ import annotations

import pytest

from cinema.app import create_app


@pytest.fixture
async def app(layered_settings, db):
    return create_app(layered_settings)


async def post(client, url, body):
    resp = await client.post(url, json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def cached_json(client, url, **params):
    """Read twice: a miss (or hit) then certainly a hit; the body as JSON."""
    await client.get(url, params=params)
    resp = await client.get(url, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Cache"] == "hit"
    return await resp.json()


async def fresh_json(client, url, **params):
    resp = await client.get(url, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.fixture
async def catalog(client):
    drama = await post(client, "/api/v1/genres", {"name": "Drama"})
    france = await post(client, "/api/v1/countries", {"code": "FR", "name": "France"})
    actor = await post(client, "/api/v1/persons", {"full_name": "Jean Gabin"})
    movie = await post(
        client,
        "/api/v1/movies",
        {
            "title": "Le Jour se lève",
            "release_year": 1939,
            "genre_ids": [drama["id"]],
            "country_ids": [france["id"]],
            "credits": [{"person_id": actor["id"], "role": "actor", "character": "François"}],
        },
    )
    return {"genre": drama, "country": france, "person": actor, "movie": movie}


async def test_a_renamed_genre_shows_in_the_movie_and_the_movie_lists(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    await cached_json(client, movie_url)
    await cached_json(client, "/api/v1/movies")
    await cached_json(client, "/api/v1/movies", genre="drama")
    await client.patch(f"/api/v1/genres/{catalog['genre']['id']}", json={"name": "Film drama"})
    assert [g["name"] for g in (await fresh_json(client, movie_url))["genres"]] == ["Film drama"]
    listed = (await fresh_json(client, "/api/v1/movies"))["items"][0]
    assert [g["name"] for g in listed["genres"]] == ["Film drama"]


async def test_a_deleted_genre_leaves_the_movie_and_its_filter(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    await cached_json(client, movie_url)
    await cached_json(client, "/api/v1/movies", genre="drama")
    await client.delete(f"/api/v1/genres/{catalog['genre']['id']}")
    assert (await fresh_json(client, movie_url))["genres"] == []
    # An unknown slug matches nothing (a filter, not a lookup).
    assert (await fresh_json(client, "/api/v1/movies", genre="drama"))["items"] == []


async def test_a_renamed_country_shows_in_the_movie_and_the_country_list(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    await cached_json(client, movie_url)
    await cached_json(client, "/api/v1/countries")
    await cached_json(client, f"/api/v1/countries/{catalog['country']['id']}")
    await client.patch(f"/api/v1/countries/{catalog['country']['id']}", json={"name": "République française"})
    assert (await fresh_json(client, movie_url))["countries"][0]["name"] == "République française"
    assert (await fresh_json(client, "/api/v1/countries"))["items"][0]["name"] == "République française"
    assert (await fresh_json(client, f"/api/v1/countries/{catalog['country']['id']}"))["name"] == (
        "République française"
    )


async def test_a_renamed_person_shows_in_the_credits_of_their_movies_and_the_person_list(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    person_url = f"/api/v1/persons/{catalog['person']['id']}"
    await cached_json(client, movie_url)
    await cached_json(client, person_url)
    await cached_json(client, "/api/v1/persons")
    await client.patch(person_url, json={"full_name": "Jean Alexis Gabin"})
    assert (await fresh_json(client, movie_url))["credits"][0]["person"]["full_name"] == "Jean Alexis Gabin"
    assert (await fresh_json(client, person_url))["full_name"] == "Jean Alexis Gabin"
    assert (await fresh_json(client, "/api/v1/persons"))["items"][0]["full_name"] == "Jean Alexis Gabin"


async def test_a_movie_change_shows_in_the_movie_its_lists_and_its_filmographies(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    filmography = f"/api/v1/persons/{catalog['person']['id']}/credits"
    await cached_json(client, movie_url)
    await cached_json(client, "/api/v1/movies", sort="title")
    await cached_json(client, filmography)
    await client.patch(movie_url, json={"title": "Daybreak"})
    assert (await fresh_json(client, movie_url))["title"] == "Daybreak"
    assert (await fresh_json(client, "/api/v1/movies", sort="title"))["items"][0]["title"] == "Daybreak"
    assert (await fresh_json(client, filmography))["items"][0]["movie"]["title"] == "Daybreak"


async def test_created_and_deleted_movies_show_in_the_cached_lists(client, catalog):
    await cached_json(client, "/api/v1/movies")
    created = await post(client, "/api/v1/movies", {"title": "Quai des brumes", "release_year": 1938})
    ids = [m["id"] for m in (await fresh_json(client, "/api/v1/movies"))["items"]]
    assert created["id"] in ids
    await cached_json(client, f"/api/v1/movies/{created['id']}")
    await client.delete(f"/api/v1/movies/{created['id']}")
    assert (await client.get(f"/api/v1/movies/{created['id']}")).status == 404
    assert created["id"] not in [m["id"] for m in (await fresh_json(client, "/api/v1/movies"))["items"]]


async def test_credit_changes_show_in_the_movie_and_the_filmography(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    director = await post(client, "/api/v1/persons", {"full_name": "Marcel Carné"})
    filmography = f"/api/v1/persons/{director['id']}/credits"
    await cached_json(client, movie_url)
    await cached_json(client, filmography)
    credit = await post(client, f"{movie_url}/credits", {"person_id": director["id"], "role": "director"})
    assert "director" in [c["role"] for c in (await fresh_json(client, movie_url))["credits"]]
    assert [i["role"] for i in (await fresh_json(client, filmography))["items"]] == ["director"]
    await cached_json(client, movie_url)
    await client.delete(f"{movie_url}/credits/{credit['id']}")
    assert "director" not in [c["role"] for c in (await fresh_json(client, movie_url))["credits"]]
    assert (await fresh_json(client, filmography))["items"] == []


async def test_linking_a_genre_shows_in_the_movie_and_the_filtered_list(client, catalog):
    movie_url = f"/api/v1/movies/{catalog['movie']['id']}"
    crime = await post(client, "/api/v1/genres", {"name": "Crime"})
    await cached_json(client, movie_url)
    await cached_json(client, "/api/v1/movies", genre="crime")
    assert (await client.put(f"{movie_url}/genres/{crime['id']}")).status == 204
    assert "Crime" in [g["name"] for g in (await fresh_json(client, movie_url))["genres"]]
    assert len((await fresh_json(client, "/api/v1/movies", genre="crime"))["items"]) == 1

"""The movies endpoints end to end: HTTP -> catalog actor -> PostgreSQL, and back."""

from __future__ import annotations

import asyncio
import json

import pytest

from cinema.etags import etag
from cinema.http.keys import CATALOG_ID
from tests.http.helpers import assert_problem
from tests.http.movie_support import (
    MOVIES,
    add_shot,
    create_movie,
    events,
    last_seq,
    refs,
    statements,
)

__all__ = ["refs", "statements"]  # fixtures used by the tests below

SUMMARY_KEYS = [
    "id",
    "slug",
    "title",
    "original_title",
    "release_year",
    "premiere_date",
    "duration",
    "age_rating",
    "rating",
    "poster_url",
    "images",
    "genres",
    "countries",
    "created_at",
    "updated_at",
]
MOVIE_KEYS = [
    *SUMMARY_KEYS[:3],
    "original_title",
    "description",
    *SUMMARY_KEYS[4:13],
    "credits",
    "shots",
    "created_at",
    "updated_at",
]


def heat(refs, **fields):
    return {
        "title": "Heat",
        "original_title": "Heat",
        "description": "A group of professional bank robbers...",
        "release_year": 1995,
        "premiere_date": "1995-12-15",
        "duration": 170,
        "age_rating": "R",
        "rating": 8.3,
        "genre_ids": [refs.drama, refs.crime],
        "country_ids": [refs.us],
        "credits": [
            {"person_id": refs.pacino, "role": "actor", "character": "Vincent Hanna"},
            {"person_id": refs.de_niro, "role": "actor", "character": "Neil McCauley"},
            {"person_id": refs.mann, "role": "director"},
        ],
        **fields,
    }


# -- create --------------------------------------------------------------------------


async def test_create_returns_201_location_and_the_whole_document(client, refs):
    resp = await client.post(MOVIES, json=heat(refs))
    assert resp.status == 201, await resp.text()
    body = json.loads(await resp.text())
    assert list(body) == MOVIE_KEYS
    assert resp.headers["Location"] == f"{MOVIES}/{body['id']}"
    assert {k: body[k] for k in MOVIE_KEYS[:11]} == {
        "id": body["id"],
        "slug": "heat-1995",
        "title": "Heat",
        "original_title": "Heat",
        "description": "A group of professional bank robbers...",
        "release_year": 1995,
        "premiere_date": "1995-12-15",
        "duration": 170,
        "age_rating": "R",
        "rating": 8.3,
        "poster_url": None,
    }
    # Genres and countries by name; credits in the order sent (positions default to it).
    assert body["genres"] == [
        {"id": refs.crime, "slug": "crime", "name": "Crime"},
        {"id": refs.drama, "slug": "drama", "name": "Drama"},
    ]
    assert body["countries"] == [{"id": refs.us, "code": "US", "slug": "united-states", "name": "United States"}]
    assert [(c["person"]["full_name"], c["role"], c["character"], c["position"]) for c in body["credits"]] == [
        ("Al Pacino", "actor", "Vincent Hanna", 0),
        ("Robert De Niro", "actor", "Neil McCauley", 1),
        ("Michael Mann", "director", None, 2),
    ]
    assert body["credits"][0]["person"] == {
        "id": refs.pacino,
        "slug": "al-pacino",
        "full_name": "Al Pacino",
        "photo_url": None,
    }
    assert body["shots"] == []
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("+00:00")
    again = await client.get(resp.headers["Location"])
    assert await again.text() == await resp.text()
    assert again.headers["ETag"] == resp.headers["ETag"]


async def test_only_a_title_is_required(client):
    body = await create_movie(client, "Untitled project")
    assert body["slug"] == "untitled-project"
    assert body["release_year"] is None
    assert (body["genres"], body["countries"], body["credits"]) == ([], [], [])


async def test_generated_slugs_come_from_title_and_year_and_do_not_collide(client):
    assert (await create_movie(client, "Heat", release_year=1995))["slug"] == "heat-1995"
    assert (await create_movie(client, "Heat!", release_year=1995))["slug"] == "heat-1995-2"
    assert (await create_movie(client, "Heat", release_year=1986))["slug"] == "heat-1986"
    assert (await create_movie(client, "Жара", release_year=1995))["slug"] == "movie-1995"
    long = await create_movie(client, "A" * 40 + " " + "b" * 40, release_year=2001)
    assert long["slug"].endswith("-2001")


async def test_a_given_slug_is_kept_and_a_taken_one_is_409(client):
    assert (await create_movie(client, "Heat", slug="heat"))["slug"] == "heat"
    await assert_problem(await client.post(MOVIES, json={"title": "Other", "slug": "heat"}), 409, "slug")


async def test_a_rating_keeps_one_decimal(client):
    assert (await create_movie(client, "A", rating=7.25))["rating"] == 7.3
    assert (await create_movie(client, "B", rating=10))["rating"] == 10


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": None}, "title"),
        ({"title": 42}, "title"),
        ({"original_title": ""}, "original_title"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "h"}, "slug"),
        ({"release_year": 1887}, "release_year"),
        ({"release_year": 2101}, "release_year"),
        ({"release_year": "1995"}, "release_year"),
        ({"duration": 0}, "duration"),
        ({"duration": 1001}, "duration"),
        ({"age_rating": "X"}, "age_rating"),
        ({"age_rating": "pg"}, "age_rating"),
        ({"rating": -0.1}, "rating"),
        ({"rating": 10.1}, "rating"),
        ({"rating": True}, "rating"),
        ({"premiere_date": "1995-13-01"}, "premiere_date"),
        ({"premiere_date": "15.12.1995"}, "premiere_date"),
        ({"poster_url": "http://x/y.jpg"}, "poster_url"),
        ({"genre_ids": [1, "2"]}, "genre_ids[1]"),
        ({"genre_ids": 1}, "genre_ids"),
        ({"credits": [{"person_id": 1}]}, "credits[0].role"),
        ({"credits": [{"person_id": 1, "role": "extra"}]}, "credits[0].role"),
        ({"credits": [{"person_id": 0, "role": "actor"}]}, "credits[0].person_id"),
        ({"credits": [{"person_id": 1, "role": "actor", "character": ""}]}, "credits[0].character"),
        ({"credits": [{"person_id": 1, "role": "actor", "position": -1}]}, "credits[0].position"),
        ({"credits": [{"person_id": 1, "role": "actor", "position": 2**31}]}, "credits[0].position"),
        ({"credits": [{"person_id": 1, "role": "actor", "x": 1}]}, "credits[0].x"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(client, db, fields, field):
    await assert_problem(await client.post(MOVIES, json={"title": "Heat", **fields}), 422, field)
    assert await db.fetchval("SELECT count(*) FROM movies") == 0


async def test_a_character_is_only_for_actors(client, refs):
    credits = [
        {"person_id": refs.pacino, "role": "actor"},
        {"person_id": refs.mann, "role": "director", "character": "X"},
    ]
    await assert_problem(
        await client.post(MOVIES, json={"title": "Heat", "credits": credits}), 422, "credits[1].character"
    )


async def test_the_same_person_twice_in_one_role_is_409_but_two_roles_are_fine(client, refs):
    twice = [{"person_id": refs.mann, "role": "writer"}, {"person_id": refs.mann, "role": "writer"}]
    resp = await client.post(MOVIES, json={"title": "Heat", "credits": twice})
    await assert_problem(resp, 409, "credits[1].person_id")
    roles = [{"person_id": refs.mann, "role": "writer"}, {"person_id": refs.mann, "role": "director"}]
    body = await create_movie(client, "Heat", credits=roles)
    assert [c["role"] for c in body["credits"]] == ["writer", "director"]


async def test_ids_that_do_not_exist_are_422_naming_each_field_and_nothing_is_written(client, db, refs):
    body = {
        "title": "Heat",
        "genre_ids": [refs.drama, 999, 2**62],
        "country_ids": [998],
        "credits": [{"person_id": refs.pacino, "role": "actor"}, {"person_id": 997, "role": "director"}],
    }
    problem = await assert_problem(await client.post(MOVIES, json=body), 422)
    assert [e["field"] for e in problem["errors"]] == [
        "genre_ids[1]",
        "genre_ids[2]",
        "country_ids[0]",
        "credits[1].person_id",
    ]
    assert "genre 999 does not exist" in problem["errors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM movies") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_ids_beyond_64_bits_are_422_before_the_database_is_asked(client, db):
    body = {"title": "Heat", "genre_ids": [2**63]}
    problem = await assert_problem(await client.post(MOVIES, json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["genre_ids[0]"]
    assert await db.fetchval("SELECT count(*) FROM movies") == 0


async def test_repeated_ids_in_a_set_count_once(client, refs):
    body = await create_movie(client, "Heat", genre_ids=[refs.drama, refs.drama], country_ids=[refs.us, refs.us])
    assert [g["id"] for g in body["genres"]] == [refs.drama]
    assert [c["id"] for c in body["countries"]] == [refs.us]


async def test_create_writes_movie_and_credit_events(client, db, refs):
    body = await create_movie(client, **heat(refs))
    assert await events(db) == [
        ("movie.created", body["id"]),
        *(("credit.created", c["id"]) for c in body["credits"]),
    ]
    data = await db.fetchval("SELECT data FROM outbox WHERE type = 'movie.created'")
    assert json.loads(data) == body
    credit = await db.fetchrow("SELECT data, affected_movie_ids FROM outbox WHERE type = 'credit.created' LIMIT 1")
    assert json.loads(credit["data"]) == body["credits"][0]
    assert credit["affected_movie_ids"] == [body["id"]]


# -- bulk ----------------------------------------------------------------------------


async def test_bulk_creates_all_in_order_with_their_sets(client, db, refs):
    items = [heat(refs), {"title": "Heat"}, {"title": "The Insider", "release_year": 1999, "genre_ids": [refs.drama]}]
    resp = await client.post(f"{MOVIES}/bulk", json=items)
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["items"]
    assert [m["slug"] for m in created] == ["heat-1995", "heat", "the-insider-1999"]
    assert [len(m["credits"]) for m in created] == [3, 0, 0]
    assert [m["genres"] for m in created][2] == [{"id": refs.drama, "slug": "drama", "name": "Drama"}]
    for movie in created:
        assert await (await client.get(f"{MOVIES}/{movie['id']}")).json() == movie
    assert [t for t, _ in await events(db) if t.startswith("movie")] == ["movie.created"] * 3


async def test_bulk_with_one_invalid_item_creates_nothing(client, db):
    resp = await client.post(f"{MOVIES}/bulk", json=[{"title": "A"}, {"title": "B"}, {"title": ""}])
    problem = await assert_problem(resp, 422, "[2].title")
    assert [e["field"] for e in problem["errors"]] == ["[2].title"]
    assert await db.fetchval("SELECT count(*) FROM movies") == 0


async def test_bulk_of_one_item_still_names_the_index(client):
    await assert_problem(await client.post(f"{MOVIES}/bulk", json=[{"title": ""}]), 422, "[0].title")


async def test_bulk_unknown_reference_names_item_and_field_and_rolls_back(client, db, refs):
    items = [
        heat(refs),
        {"title": "B", "credits": [{"person_id": refs.mann, "role": "director"}, {"person_id": 999, "role": "writer"}]},
    ]
    await assert_problem(await client.post(f"{MOVIES}/bulk", json=items), 422, "[1].credits[1].person_id")
    assert await db.fetchval("SELECT count(*) FROM movies") == 0
    assert await db.fetchval("SELECT count(*) FROM credits") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(
    ("items", "status", "field"),
    [
        ([{"title": "A", "slug": "same"}, {"title": "B", "slug": "same"}], 409, "[1].slug"),
        ([{"title": "A"}, {"title": "B", "slug": "taken"}], 409, "[1].slug"),
        (
            [{"title": "A"}, {"title": "B", "credits": [{"person_id": 1, "role": "writer", "character": "C"}]}],
            422,
            "[1].credits[0].character",
        ),
    ],
)
async def test_bulk_conflicts_name_the_item(client, db, refs, items, status, field):
    await create_movie(client, "Taken", slug="taken")
    await assert_problem(await client.post(f"{MOVIES}/bulk", json=items), status, field)
    assert await db.fetchval("SELECT count(*) FROM movies") == 1


@pytest.mark.parametrize("body", [[], {"title": "A"}, [{"title": f"M{i}"} for i in range(1001)]])
async def test_bulk_needs_an_array_of_1_to_1000(client, body):
    await assert_problem(await client.post(f"{MOVIES}/bulk", json=body), 422)


async def test_bulk_of_1000_with_sets_is_accepted(client, db, refs):
    items = [
        {
            "title": f"Movie {i}",
            "release_year": 1900 + i % 100,
            "genre_ids": [refs.drama, refs.crime],
            "credits": [{"person_id": refs.pacino, "role": "actor", "character": f"Role {i}"}],
        }
        for i in range(1000)
    ]
    resp = await client.post(f"{MOVIES}/bulk", json=items)
    assert resp.status == 201, await resp.text()
    assert len((await resp.json())["items"]) == 1000
    assert await db.fetchval("SELECT count(*) FROM movie_genres") == 2000
    assert await db.fetchval("SELECT count(*) FROM credits") == 1000
    assert await db.fetchval("SELECT count(*) FROM outbox") == 2000


# -- get -----------------------------------------------------------------------------


async def test_get_unknown_is_404(client):
    await assert_problem(await client.get(f"{MOVIES}/999"), 404)
    await assert_problem(await client.get(f"{MOVIES}/99999999999999999999999"), 404)


async def test_detail_orders_credits_and_shots_by_position_then_id(client, db, refs):
    credits = [
        {"person_id": refs.mann, "role": "director", "position": 5},
        {"person_id": refs.pacino, "role": "actor", "position": 1},
        {"person_id": refs.de_niro, "role": "actor", "position": 1},
    ]
    movie = await create_movie(client, "Heat", credits=credits)
    shot_ids = [await add_shot(db, movie["id"], f"Shot {i}", position) for i, position in enumerate([2, 0, 0])]
    body = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert [c["person"]["id"] for c in body["credits"]] == [refs.pacino, refs.de_niro, refs.mann]
    assert [s["id"] for s in body["shots"]] == [shot_ids[1], shot_ids[2], shot_ids[0]]
    assert body["shots"][0] == {
        "id": shot_ids[1],
        "movie_id": movie["id"],
        "caption": "Shot 1",
        "image_url": None,
        "images": None,
        "position": 0,
    }


async def test_etag_and_304(client, refs):
    movie = await create_movie(client, **heat(refs))
    first = await client.get(f"{MOVIES}/{movie['id']}")
    assert first.headers["ETag"] == etag(await first.read(), client.app[CATALOG_ID].bytes)
    again = await client.get(f"{MOVIES}/{movie['id']}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    await client.put(f"{MOVIES}/{movie['id']}/genres/{refs.comedy}")
    changed = await client.get(f"{MOVIES}/{movie['id']}", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status == 200


async def test_detail_is_one_statement_whatever_its_size(client, db, refs, statements):
    small = await create_movie(client, "Small")
    persons = await db.fetch(
        "INSERT INTO persons (slug, full_name)"
        " SELECT 'p-' || i, 'Person ' || i FROM generate_series(1, 40) i RETURNING id"
    )
    big = await create_movie(
        client,
        "Big",
        genre_ids=[refs.drama, refs.crime, refs.comedy],
        country_ids=[refs.us, refs.fr],
        credits=[{"person_id": p["id"], "role": "actor", "character": "C"} for p in persons],
    )
    for i in range(25):
        await add_shot(db, big["id"], f"Shot {i}", i)
    for movie in (small, big):
        statements.take()
        resp = await client.get(f"{MOVIES}/{movie['id']}")
        assert resp.status == 200
        assert len(statements.take()) == 1
    assert len((await resp.json())["credits"]) == 40


# -- list ----------------------------------------------------------------------------


async def list_items(client, **params):
    resp = await client.get(MOVIES, params=params)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def titles(client, *pairs):
    resp = await client.get(MOVIES, params=[*pairs, ("limit", "100")])
    assert resp.status == 200, await resp.text()
    return sorted(m["title"] for m in (await resp.json())["items"])


async def test_list_items_are_summaries(client, refs):
    movie = await create_movie(client, **heat(refs))
    [item] = await list_items(client)
    assert list(item) == SUMMARY_KEYS
    assert item == {k: movie[k] for k in SUMMARY_KEYS}


@pytest.fixture
async def library(client, refs):
    """Four movies to filter."""
    await create_movie(
        client,
        "Heat",
        release_year=1995,
        age_rating="R",
        genre_ids=[refs.drama, refs.crime],
        country_ids=[refs.us],
        credits=[
            {"person_id": refs.pacino, "role": "actor"},
            {"person_id": refs.de_niro, "role": "actor"},
            {"person_id": refs.mann, "role": "director"},
        ],
    )
    await create_movie(
        client,
        "The Insider",
        release_year=1999,
        age_rating="R",
        genre_ids=[refs.drama],
        country_ids=[refs.us],
        credits=[{"person_id": refs.pacino, "role": "actor"}, {"person_id": refs.mann, "role": "director"}],
    )
    await create_movie(
        client,
        "Amélie",
        release_year=2001,
        age_rating="R",
        genre_ids=[refs.comedy],
        country_ids=[refs.fr],
        credits=[],
    )
    await create_movie(
        client,
        "Ronin",
        release_year=1998,
        age_rating="PG-13",
        genre_ids=[refs.crime],
        country_ids=[refs.us, refs.fr],
        credits=[{"person_id": refs.de_niro, "role": "actor"}, {"person_id": refs.mann, "role": "writer"}],
    )
    await create_movie(client, "Unknown year")
    return refs


async def test_filter_by_genre_slug_or_id_and_several_mean_all(client, library):
    assert await titles(client, ("genre", "crime")) == ["Heat", "Ronin"]
    assert await titles(client, ("genre", str(library.drama))) == ["Heat", "The Insider"]
    assert await titles(client, ("genre", "drama"), ("genre", "crime")) == ["Heat"]
    assert await titles(client, ("genre", "drama"), ("genre", str(library.crime))) == ["Heat"]
    assert await titles(client, ("genre", "crime"), ("genre", "crime")) == ["Heat", "Ronin"]
    assert await titles(client, *[("genre", "crime")] * 11) == ["Heat", "Ronin"]  # ten values at most, once each
    assert await titles(client, ("genre", "western")) == []
    assert await titles(client, ("genre", "drama"), ("genre", "western")) == []


async def test_filter_by_country_slug_or_id_and_several_mean_all(client, library):
    assert await titles(client, ("country", "france")) == ["Amélie", "Ronin"]
    assert await titles(client, ("country", str(library.us))) == ["Heat", "Ronin", "The Insider"]
    assert await titles(client, ("country", "france"), ("country", "united-states")) == ["Ronin"]


async def test_filter_by_persons_all_of_them_and_optionally_in_a_role(client, library):
    assert await titles(client, ("person", str(library.pacino))) == ["Heat", "The Insider"]
    both = [("person", str(library.pacino)), ("person", str(library.de_niro))]
    assert await titles(client, *both) == ["Heat"]
    assert await titles(client, ("person", str(library.mann))) == ["Heat", "Ronin", "The Insider"]
    assert await titles(client, ("person", str(library.mann)), ("role", "director")) == ["Heat", "The Insider"]
    assert await titles(client, ("person", str(library.mann)), ("role", "writer")) == ["Ronin"]
    assert await titles(client, ("person", str(library.mann)), ("role", "producer")) == []
    assert await titles(client, ("person", "999")) == []


async def test_filter_by_years(client, library):
    assert await titles(client, ("year_from", "1998")) == ["Amélie", "Ronin", "The Insider"]
    assert await titles(client, ("year_to", "1998")) == ["Heat", "Ronin"]
    assert await titles(client, ("year_from", "1996"), ("year_to", "1999")) == ["Ronin", "The Insider"]
    assert await titles(client, ("year_from", "1995"), ("year_to", "1995")) == ["Heat"]


async def test_filter_by_age_ratings_any_of_them(client, library):
    assert await titles(client, ("age_rating", "PG-13")) == ["Ronin"]
    assert await titles(client, ("age_rating", "PG-13"), ("age_rating", "R")) == [
        "Amélie",
        "Heat",
        "Ronin",
        "The Insider",
    ]
    assert await titles(client, ("age_rating", "G")) == []


async def test_filter_by_slug(client, library):
    assert await titles(client, ("slug", "ronin-1998")) == ["Ronin"]
    assert await titles(client, ("slug", "nothing")) == []


async def test_filters_combine(client, library):
    pairs = [("genre", "crime"), ("country", "united-states"), ("person", str(library.de_niro)), ("year_from", "1996")]
    assert await titles(client, *pairs) == ["Ronin"]
    assert await titles(client, *pairs, ("age_rating", "R")) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ([("genre", "Drama")], "genre"),
        ([("genre", "")], "genre"),
        ([("country", "x" * 65)], "country"),
        ([("genre", f"genre-{i}") for i in range(11)], "genre"),
        ([("person", str(i)) for i in range(1, 12)], "person"),
        ([("person", "al-pacino")], "person"),
        ([("person", "0")], "person"),
        ([("person", "99999999999999999999")], "person"),
        ([("person", "1"), ("role", "extra")], "role"),
        ([("role", "actor")], "role"),
        ([("person", "1"), ("role", "actor"), ("role", "director")], "role"),
        ([("year_from", "1887")], "year_from"),
        ([("year_to", "2101")], "year_to"),
        ([("year_to", "199x")], "year_to"),
        ([("year_from", "2000"), ("year_to", "1990")], "year_from"),
        ([("age_rating", "X")], "age_rating"),
        ([("slug", "a"), ("slug", "b")], "slug"),
        ([("slug", "")], "slug"),
        ([("slug", "heat\x00")], "slug"),  # PostgreSQL text cannot hold NUL: this was a 500
        ([("limit", "0")], "limit"),
        ([("limit", "5"), ("limit", "6")], "limit"),
        ([("sort", "popularity")], "sort"),
        ([("cursor", "nope")], "cursor"),
        ([("director", "1")], "director"),
    ],
)
async def test_bad_list_parameters_are_400_naming_them(client, params, field):
    await assert_problem(await client.get(MOVIES, params=params), 400, field)


async def test_every_bad_parameter_is_named_at_once(client):
    problem = await assert_problem(
        await client.get(MOVIES, params=[("genre", "X"), ("limit", "0"), ("year_to", "1")]), 400
    )
    assert sorted(e["field"] for e in problem["errors"]) == ["genre", "limit", "year_to"]


async def page_through(client, sort, limit=2, **params):
    seen, cursor = [], None
    while True:
        query = {"sort": sort, "limit": str(limit), **params} | ({"cursor": cursor} if cursor else {})
        resp = await client.get(MOVIES, params=query)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        assert len(page["items"]) <= limit
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


@pytest.fixture
async def ratings(client, db):
    """Movies with ties and unknown values in every nullable sort key."""
    specs = [
        ("b movie", 1995, 7.5),
        ("A movie", None, None),
        ("c movie", 1995, None),
        ("D movie", 2001, 7.5),
        ("e movie", None, 9.0),
        ("F movie", 1980, 0.0),
        ("g movie", 2001, None),
    ]
    movies = [await create_movie(client, t, release_year=y, rating=r) for t, y, r in specs]
    # Distinct creation times, in another order than the ids (created_at ties break by id).
    for movie, minutes in zip(movies, [3, 1, 2, 2, 0, 5, 4], strict=True):
        await db.execute(
            "UPDATE movies SET created_at = '2024-01-01T00:00Z'::timestamptz + $2 * interval '1 minute' WHERE id = $1",
            movie["id"],
            minutes,
        )
    return movies


def expected_order(movies, field, descending):
    """Unknown values sort as the lowest; ties by id, in the same direction."""
    lowest = {"release_year": 0, "rating": -1}
    if field == "title":
        key = lambda m: (m["title"].lower(), m["id"])  # noqa: E731
    else:
        key = lambda m: (m[field] if m[field] is not None else lowest[field], m["id"])  # noqa: E731
    return [m["id"] for m in sorted(movies, key=key, reverse=descending)]


@pytest.mark.parametrize("field", ["id", "title", "release_year", "rating", "created_at"])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_every_sort_pages_through_everything_once_in_order(client, ratings, field, descending, limit):
    movies = [await (await client.get(f"{MOVIES}/{m['id']}")).json() for m in ratings]
    seen = await page_through(client, ("-" if descending else "") + field, limit)
    assert [m["id"] for m in seen] == expected_order(movies, field, descending)


async def test_unknown_ratings_come_last_among_the_best(client, ratings):
    seen = await page_through(client, "-rating", 3)
    assert [m["rating"] for m in seen] == [9.0, 7.5, 7.5, 0.0, None, None, None]


async def test_pages_stay_stable_while_movies_are_inserted(client, ratings):
    """Rows before the cursor are never repeated, rows after it are never skipped."""
    seen, cursor, n = [], None, 0
    while True:
        params = {"sort": "rating", "limit": "2"} | ({"cursor": cursor} if cursor else {})
        # Each page is read while movies are inserted on both sides of its cursor.
        resp, *_ = await asyncio.gather(
            client.get(MOVIES, params=params),
            create_movie(client, f"Low {n}", rating=0),
            create_movie(client, f"High {n}", rating=10),
        )
        n += 1
        page = await resp.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    keys = [(m["rating"] if m["rating"] is not None else -1, m["id"]) for m in seen]
    assert keys == sorted(set(keys))  # in order, none twice
    assert {m["id"] for m in ratings} <= {m["id"] for m in seen}
    assert any(m["title"].startswith("High") for m in seen)


async def test_filters_and_sort_page_together(client, library):
    seen = await page_through(client, "-release_year", 1, genre="crime")
    assert [m["title"] for m in seen] == ["Ronin", "Heat"]


async def test_a_cursor_of_another_sort_is_400(client, ratings):
    page = await (await client.get(MOVIES, params={"sort": "rating", "limit": "1"})).json()
    await assert_problem(
        await client.get(MOVIES, params={"sort": "title", "cursor": page["next_cursor"]}), 400, "cursor"
    )


async def test_list_etag_and_304(client):
    await create_movie(client, "Heat")
    first = await client.get(MOVIES)
    assert (await client.get(MOVIES, headers={"If-None-Match": first.headers["ETag"]})).status == 304
    await create_movie(client, "Ronin")
    assert (await client.get(MOVIES, headers={"If-None-Match": first.headers["ETag"]})).status == 200


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_a_list_page_is_one_statement_whatever_its_size(client, db, refs, statements, limit):
    items = [
        {
            "title": f"Movie {i}",
            "rating": i % 10,
            "genre_ids": [refs.drama, refs.crime],
            "country_ids": [refs.us],
            "credits": [{"person_id": refs.pacino, "role": "actor"}],
        }
        for i in range(201)
    ]
    assert (await client.post(f"{MOVIES}/bulk", json=items)).status == 201
    for params in (
        {"limit": str(limit)},
        {"limit": str(limit), "sort": "-rating", "genre": "drama", "person": str(refs.pacino), "role": "actor"},
    ):
        statements.take()
        page = await (await client.get(MOVIES, params=params)).json()
        assert len(page["items"]) == limit
        assert len(statements.take()) == 1
        params["cursor"] = page["next_cursor"]
        page = await (await client.get(MOVIES, params=params)).json()
        assert len(page["items"]) == limit
        assert len(statements.take()) == 1


# -- patch ---------------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields_and_null_clears(client, refs):
    movie = await create_movie(client, **heat(refs))
    resp = await client.patch(f"{MOVIES}/{movie['id']}", json={"title": "Heat (1995)", "rating": None, "duration": 171})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body == movie | {"title": "Heat (1995)", "rating": None, "duration": 171, "updated_at": body["updated_at"]}
    assert body["updated_at"] > movie["updated_at"]
    assert body["slug"] == "heat-1995"  # slugs are stable
    assert await (await client.get(f"{MOVIES}/{movie['id']}")).json() == body


async def test_patch_replaces_whole_sets_and_keeps_the_ids_of_kept_credits(client, db, refs):
    movie = await create_movie(client, **heat(refs))
    pacino, de_niro, mann = movie["credits"]
    seq = await last_seq(db)
    credits = [
        {"person_id": refs.mann, "role": "director"},
        {"person_id": refs.pacino, "role": "actor", "character": "Lt. Vincent Hanna"},
        {"person_id": refs.mann, "role": "writer"},
    ]
    resp = await client.patch(
        f"{MOVIES}/{movie['id']}", json={"genre_ids": [refs.comedy], "country_ids": [], "credits": credits}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [g["slug"] for g in body["genres"]] == ["comedy"]
    assert body["countries"] == []
    assert [(c["id"], c["role"], c["character"], c["position"]) for c in body["credits"]] == [
        (mann["id"], "director", None, 0),
        (pacino["id"], "actor", "Lt. Vincent Hanna", 1),
        (body["credits"][2]["id"], "writer", None, 2),
    ]
    new_writer = body["credits"][2]["id"]
    assert new_writer not in {pacino["id"], de_niro["id"], mann["id"]}
    assert await events(db, seq) == [
        ("credit.deleted", de_niro["id"]),
        ("credit.updated", mann["id"]),
        ("credit.updated", pacino["id"]),
        ("credit.created", new_writer),
        ("movie.updated", movie["id"]),
    ]
    assert json.loads(await db.fetchval("SELECT data FROM outbox ORDER BY seq DESC LIMIT 1")) == body


async def test_patch_that_changes_nothing_writes_no_event_and_keeps_updated_at(client, db, refs):
    movie = await create_movie(client, **heat(refs))
    seq = await last_seq(db)
    same = {k: heat(refs)[k] for k in ("title", "rating", "genre_ids", "country_ids", "credits")}
    resp = await client.patch(f"{MOVIES}/{movie['id']}", json=same)
    assert resp.status == 200
    assert await resp.json() == movie
    assert await events(db, seq) == []
    assert (await client.patch(f"{MOVIES}/{movie['id']}", json={})).status == 200
    assert await events(db, seq) == []


async def test_patch_with_matching_if_match_succeeds_and_a_stale_one_is_412(client, refs):
    movie = await create_movie(client, "Heat")
    tag = (await client.get(f"{MOVIES}/{movie['id']}")).headers["ETag"]
    ok = await client.patch(f"{MOVIES}/{movie['id']}", json={"rating": 8.3}, headers={"If-Match": tag})
    assert ok.status == 200
    assert ok.headers["ETag"] == etag(await ok.read(), client.app[CATALOG_ID].bytes)
    stale = await client.patch(f"{MOVIES}/{movie['id']}", json={"rating": 1}, headers={"If-Match": tag})
    await assert_problem(stale, 412)
    assert (await (await client.get(f"{MOVIES}/{movie['id']}")).json())["rating"] == 8.3
    # A change to the movie's sets changes its ETag as well.
    tag = ok.headers["ETag"]
    await client.put(f"{MOVIES}/{movie['id']}/genres/{refs.drama}")
    stale = await client.patch(f"{MOVIES}/{movie['id']}", json={"rating": 1}, headers={"If-Match": tag})
    await assert_problem(stale, 412)


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"title": None}, 422, "title"),
        ({"slug": None}, 422, "slug"),
        ({"slug": "taken"}, 409, "slug"),
        ({"release_year": 3000}, 422, "release_year"),
        ({"genre_ids": [999]}, 422, "genre_ids[0]"),
        ({"country_ids": None}, 422, "country_ids"),
        ({"credits": [{"person_id": 999, "role": "actor"}]}, 422, "credits[0].person_id"),
        ({"credits": [{"person_id": 1, "role": "producer", "character": "X"}]}, 422, "credits[0].character"),
        ({"id": 5}, 422, "id"),
    ],
)
async def test_patch_errors_name_the_field_and_change_nothing(client, db, refs, fields, status, field):
    await create_movie(client, "Taken", slug="taken")
    movie = await create_movie(client, **heat(refs))
    seq = await last_seq(db)
    await assert_problem(await client.patch(f"{MOVIES}/{movie['id']}", json=fields), status, field)
    assert await (await client.get(f"{MOVIES}/{movie['id']}")).json() == movie
    assert await events(db, seq) == []


async def test_patch_unknown_is_404(client):
    await assert_problem(await client.patch(f"{MOVIES}/999", json={"title": "X"}), 404)


# -- delete --------------------------------------------------------------------------


async def test_delete_cascades_to_links_credits_and_shots_with_their_events(client, db, refs):
    movie = await create_movie(client, **heat(refs))
    other = await create_movie(
        client, "Ronin", genre_ids=[refs.crime], credits=[{"person_id": refs.de_niro, "role": "actor"}]
    )
    shot = await add_shot(db, movie["id"], "Diner")
    seq = await last_seq(db)
    resp = await client.delete(f"{MOVIES}/{movie['id']}")
    assert resp.status == 204
    await assert_problem(await client.get(f"{MOVIES}/{movie['id']}"), 404)
    await assert_problem(await client.delete(f"{MOVIES}/{movie['id']}"), 404)
    for table in ("credits", "movie_genres"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 1  # the other movie's
    assert await db.fetchval("SELECT count(*) FROM movie_countries") == 0
    assert await db.fetchval("SELECT count(*) FROM shots") == 0
    assert await db.fetchval("SELECT count(*) FROM persons") == 3
    assert await db.fetchval("SELECT count(*) FROM genres") == 3
    assert await events(db, seq) == [
        *(("credit.deleted", c["id"]) for c in movie["credits"]),
        ("shot.deleted", shot),
        ("movie.deleted", movie["id"]),
    ]
    assert await db.fetchval("SELECT data FROM outbox WHERE type = 'movie.deleted'") is None
    assert (await client.get(f"{MOVIES}/{other['id']}")).status == 200


async def test_delete_with_a_stale_if_match_is_412_and_keeps_the_movie(client):
    movie = await create_movie(client, "Heat")
    await assert_problem(await client.delete(f"{MOVIES}/{movie['id']}", headers={"If-Match": '"stale"'}), 412)
    tag = (await client.get(f"{MOVIES}/{movie['id']}")).headers["ETag"]
    assert (await client.delete(f"{MOVIES}/{movie['id']}", headers={"If-Match": tag})).status == 204


# -- a movie's genres and countries ---------------------------------------------------

LINKS = [("genres", "drama", "genres"), ("countries", "us", "countries")]


@pytest.mark.parametrize(("path", "ref", "key"), LINKS)
async def test_put_and_delete_a_member_are_idempotent_and_204(client, db, refs, path, ref, key):
    movie = await create_movie(client, "Heat")
    target = getattr(refs, ref)
    url = f"{MOVIES}/{movie['id']}/{path}/{target}"
    seq = await last_seq(db)
    for _ in range(2):
        resp = await client.put(url)
        assert resp.status == 204
        assert await resp.read() == b""
    body = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert [m["id"] for m in body[key]] == [target]
    assert body["updated_at"] > movie["updated_at"]
    assert await events(db, seq) == [("movie.updated", movie["id"])]  # the second PUT changed nothing
    assert json.loads(await db.fetchval("SELECT data FROM outbox ORDER BY seq DESC LIMIT 1")) == body
    for _ in range(2):
        assert (await client.delete(url)).status == 204
    assert (await (await client.get(f"{MOVIES}/{movie['id']}")).json())[key] == []
    assert await events(db, seq) == [("movie.updated", movie["id"])] * 2


@pytest.mark.parametrize(("path", "ref", "key"), LINKS)
async def test_a_member_of_unknown_movie_or_unknown_target_is_404(client, refs, path, ref, key):
    movie = await create_movie(client, "Heat")
    for method in ("put", "delete"):
        await assert_problem(await getattr(client, method)(f"{MOVIES}/999/{path}/{getattr(refs, ref)}"), 404)
        await assert_problem(await getattr(client, method)(f"{MOVIES}/{movie['id']}/{path}/999"), 404)
        # A precondition does not turn a missing member into a 412 (RFC 9110, 13.2.1; schemathesis found it).
        stale = await getattr(client, method)(f"{MOVIES}/{movie['id']}/{path}/999", headers={"If-Match": '"x"'})
        await assert_problem(stale, 404)


@pytest.mark.parametrize(("path", "ref", "key"), LINKS)
async def test_a_member_change_honours_the_movies_if_match(client, refs, path, ref, key):
    movie = await create_movie(client, "Heat")
    tag = (await client.get(f"{MOVIES}/{movie['id']}")).headers["ETag"]
    url = f"{MOVIES}/{movie['id']}/{path}/{getattr(refs, ref)}"
    await assert_problem(await client.put(url, headers={"If-Match": '"stale"'}), 412)
    assert (await client.put(url, headers={"If-Match": tag})).status == 204
    await assert_problem(await client.delete(url, headers={"If-Match": tag}), 412)


# -- events --------------------------------------------------------------------------


async def test_concurrent_changes_to_one_movie_write_events_in_commit_order(client, db):
    genres = await db.fetch(
        "INSERT INTO genres (slug, name) SELECT 'g-' || i, 'Genre ' || i FROM generate_series(1, 8) i RETURNING id"
    )
    movie = await create_movie(client, "Heat")
    seq = await last_seq(db)
    results = await asyncio.gather(*(client.put(f"{MOVIES}/{movie['id']}/genres/{g['id']}") for g in genres))
    assert [r.status for r in results] == [204] * 8
    rows = await db.fetch("SELECT type, data FROM outbox WHERE seq > $1 ORDER BY seq", seq)
    assert [r["type"] for r in rows] == ["movie.updated"] * 8
    # Each event's document has one more genre than the one before: seq order is the order
    # in which the changes committed, and the last one is the movie as it is now.
    docs = [json.loads(r["data"]) for r in rows]
    assert [len(d["genres"]) for d in docs] == list(range(1, 9))
    assert [d["updated_at"] for d in docs] == sorted(d["updated_at"] for d in docs)
    assert docs[-1] == await (await client.get(f"{MOVIES}/{movie['id']}")).json()


async def test_concurrent_patches_with_the_same_if_match_let_one_win(client):
    movie = await create_movie(client, "Heat")
    tag = (await client.get(f"{MOVIES}/{movie['id']}")).headers["ETag"]
    results = await asyncio.gather(
        *(client.patch(f"{MOVIES}/{movie['id']}", json={"duration": d}, headers={"If-Match": tag}) for d in range(1, 6))
    )
    assert sorted(r.status for r in results) == [200, 412, 412, 412, 412]

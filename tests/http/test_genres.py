"""The genres endpoints end to end: HTTP -> catalog actor -> PostgreSQL, and back."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest

from cinema.http.keys import BUS, SETTINGS
from tests.http.helpers import assert_problem

BASE = "/api/v1/genres"


async def create(client, name, **fields):
    resp = await client.post(BASE, json={"name": name, **fields})
    assert resp.status == 201, await resp.text()
    return await resp.json()


# -- create --------------------------------------------------------------------------


async def test_create_returns_201_location_and_the_resource(client):
    resp = await client.post(BASE, json={"name": "Science Fiction"})
    assert resp.status == 201
    body = await resp.json()
    assert body == {"id": body["id"], "slug": "science-fiction", "name": "Science Fiction"}
    assert resp.headers["Location"] == f"{BASE}/{body['id']}"
    assert resp.headers["ETag"].startswith('"')
    again = await client.get(resp.headers["Location"])
    assert await again.json() == body
    assert again.headers["ETag"] == resp.headers["ETag"]


async def test_create_keeps_a_given_slug(client):
    body = await create(client, "Film noir", slug="noir")
    assert body["slug"] == "noir"


async def test_generated_slug_folds_accents_and_avoids_collisions(client):
    first = await create(client, "Comédie dramatique")
    second = await create(client, "Comedie-Dramatique!", slug=None)
    assert first["slug"] == "comedie-dramatique"
    assert second["slug"] == "comedie-dramatique-2"


async def test_slug_generated_from_non_latin_name_is_still_valid(client):
    body = await create(client, "Драма")
    assert body["slug"] == "genre"


async def test_duplicate_name_is_409_naming_the_field_regardless_of_case(client):
    await create(client, "Drama")
    body = await assert_problem(await client.post(BASE, json={"name": "DRAMA"}), 409, "name")
    assert "drama" in body["errors"][0]["message"]


async def test_duplicate_slug_is_409(client):
    await create(client, "Drama", slug="drama")
    await assert_problem(await client.post(BASE, json={"name": "Other", "slug": "drama"}), 409, "slug")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "D"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": 42}, "name"),
        ({"name": None}, "name"),
        ({}, "name"),
        ({"name": "Drama", "slug": "Not A Slug"}, "slug"),
        ({"name": "Drama", "slug": "d"}, "slug"),
        ({"name": "Drama", "colour": "red"}, "colour"),
        ([], ""),
    ],
)
async def test_invalid_bodies_are_422_with_field_errors(client, body, field):
    await assert_problem(await client.post(BASE, json=body), 422, field)


async def test_all_field_errors_are_reported_at_once(client):
    body = await assert_problem(await client.post(BASE, json={"name": "D", "slug": "A", "x": 1}), 422)
    assert sorted(e["field"] for e in body["errors"]) == ["name", "slug", "x"]


async def test_malformed_json_is_400(client):
    resp = await client.post(BASE, data=b'{"name": ', headers={"Content-Type": "application/json"})
    await assert_problem(resp, 400)


async def test_other_media_type_is_415(client):
    resp = await client.post(BASE, data=b"name=Drama", headers={"Content-Type": "application/x-www-form-urlencoded"})
    await assert_problem(resp, 415)


async def test_body_over_the_limit_is_413(client, app):
    payload = io.BytesIO(b'{"name": "' + b"x" * app[SETTINGS].max_json_bytes + b'"}')
    resp = await client.post(BASE, data=payload, headers={"Content-Type": "application/json"})
    await assert_problem(resp, 413)


async def test_body_over_the_limit_without_content_length_is_413(client, app):
    async def chunks():
        yield b'{"name": "'
        for _ in range(app[SETTINGS].max_json_bytes // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    resp = await client.post(BASE, data=chunks(), headers={"Content-Type": "application/json"})
    await assert_problem(resp, 413)


# -- bulk ----------------------------------------------------------------------------


async def test_bulk_creates_all_in_order(client):
    resp = await client.post(f"{BASE}/bulk", json=[{"name": "Drama"}, {"name": "Crime"}, {"name": "Drama 2"}])
    assert resp.status == 201
    items = (await resp.json())["items"]
    assert [i["name"] for i in items] == ["Drama", "Crime", "Drama 2"]
    assert [i["slug"] for i in items] == ["drama", "crime", "drama-2"]


async def test_bulk_with_one_invalid_item_creates_nothing(client, db):
    resp = await client.post(f"{BASE}/bulk", json=[{"name": "Drama"}, {"name": "Crime"}, {"name": "X"}])
    body = await assert_problem(resp, 422, "[2].name")
    assert [e["field"] for e in body["errors"]] == ["[2].name"]
    assert await db.fetchval("SELECT count(*) FROM genres") == 0


async def test_bulk_conflict_with_existing_row_names_the_item_and_rolls_back(client, db):
    await create(client, "Crime")
    resp = await client.post(f"{BASE}/bulk", json=[{"name": "Drama"}, {"name": "Western"}, {"name": "crime"}])
    await assert_problem(resp, 409, "[2].name")
    assert await db.fetchval("SELECT count(*) FROM genres") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE type = 'genre.created'") == 1


async def test_bulk_of_one_still_names_the_item(client, db):
    await create(client, "Crime")
    await assert_problem(await client.post(f"{BASE}/bulk", json=[{"name": "CRIME"}]), 409, "[0].name")
    await assert_problem(await client.post(f"{BASE}/bulk", json=[{"name": "X"}]), 422, "[0].name")
    assert await db.fetchval("SELECT count(*) FROM genres") == 1


async def test_bulk_duplicates_within_the_batch_are_409(client, db):
    resp = await client.post(f"{BASE}/bulk", json=[{"name": "Drama"}, {"name": "drama"}])
    await assert_problem(resp, 409, "[1].name")
    assert await db.fetchval("SELECT count(*) FROM genres") == 0


@pytest.mark.parametrize("body", [[], {"name": "Drama"}, [{"name": f"Genre {i}"} for i in range(1001)]])
async def test_bulk_needs_an_array_of_1_to_1000(client, body):
    await assert_problem(await client.post(f"{BASE}/bulk", json=body), 422)


async def test_bulk_of_1000_is_accepted(client, db):
    resp = await client.post(f"{BASE}/bulk", json=[{"name": f"Genre {i}"} for i in range(1000)])
    assert resp.status == 201
    assert await db.fetchval("SELECT count(*) FROM genres") == 1000


# -- read ----------------------------------------------------------------------------


async def test_get_unknown_is_404(client):
    await assert_problem(await client.get(f"{BASE}/999"), 404)


async def test_get_id_beyond_bigint_is_404_not_500(client):
    await assert_problem(await client.get(f"{BASE}/99999999999999999999999"), 404)


async def test_non_numeric_id_is_404(client):
    await assert_problem(await client.get(f"{BASE}/drama"), 404)


async def test_if_none_match_gives_304(client):
    genre = await create(client, "Drama")
    first = await client.get(f"{BASE}/{genre['id']}")
    tag = first.headers["ETag"]
    again = await client.get(f"{BASE}/{genre['id']}", headers={"If-None-Match": tag})
    assert again.status == 304
    assert again.headers["ETag"] == tag
    stale = await client.get(f"{BASE}/{genre['id']}", headers={"If-None-Match": '"other"'})
    assert stale.status == 200


async def test_list_pages_with_a_stable_cursor(client):
    for name in ["Drama", "Crime", "Western", "Horror", "Comedy"]:
        await create(client, name)
    resp = await client.get(BASE, params={"limit": "2", "sort": "name"})
    page = await resp.json()
    assert [g["name"] for g in page["items"]] == ["Comedy", "Crime"]
    # An insert before the cursor does not shift the next page.
    await create(client, "Action")
    seen = [g["name"] for g in page["items"]]
    while page["next_cursor"]:
        resp = await client.get(BASE, params={"limit": "2", "sort": "name", "cursor": page["next_cursor"]})
        assert resp.status == 200
        page = await resp.json()
        seen += [g["name"] for g in page["items"]]
    assert seen == ["Comedy", "Crime", "Drama", "Horror", "Western"]


async def test_list_sorts_descending(client):
    for name in ["Drama", "Crime", "Western"]:
        await create(client, name)
    page = await (await client.get(BASE, params={"sort": "-name"})).json()
    assert [g["name"] for g in page["items"]] == ["Western", "Drama", "Crime"]
    assert page["next_cursor"] is None


async def test_list_descending_pages_through_everything(client):
    for i in range(7):
        await create(client, f"Genre {i}")
    ids, cursor = [], None
    while True:
        params = {"limit": "3", "sort": "-id"} | ({"cursor": cursor} if cursor else {})
        page = await (await client.get(BASE, params=params)).json()
        ids += [g["id"] for g in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [7, 6, 5, 4, 3, 2, 1]


async def test_list_etag_and_304(client):
    await create(client, "Drama")
    first = await client.get(BASE)
    again = await client.get(BASE, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    await create(client, "Crime")
    changed = await client.get(BASE, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort": "popularity"}, "sort"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"page": "2"}, "page"),
    ],
)
async def test_bad_query_parameters_are_400(client, params, field):
    await assert_problem(await client.get(BASE, params=params), 400, field)


async def test_cursor_of_another_sort_is_400(client):
    for name in ["Drama", "Crime", "Western"]:
        await create(client, name)
    page = await (await client.get(BASE, params={"limit": "1", "sort": "name"})).json()
    resp = await client.get(BASE, params={"sort": "slug", "cursor": page["next_cursor"]})
    await assert_problem(resp, 400, "cursor")


# -- patch and delete ----------------------------------------------------------------


async def test_patch_changes_only_given_fields(client):
    genre = await create(client, "Drama")
    resp = await client.patch(f"{BASE}/{genre['id']}", json={"name": "Drama film"})
    assert resp.status == 200
    assert await resp.json() == {"id": genre["id"], "slug": "drama", "name": "Drama film"}


async def test_patch_with_matching_if_match_succeeds_and_stale_one_is_412(client):
    genre = await create(client, "Drama")
    tag = (await client.get(f"{BASE}/{genre['id']}")).headers["ETag"]
    ok = await client.patch(f"{BASE}/{genre['id']}", json={"name": "Dramas"}, headers={"If-Match": tag})
    assert ok.status == 200
    stale = await client.patch(f"{BASE}/{genre['id']}", json={"name": "Drama"}, headers={"If-Match": tag})
    await assert_problem(stale, 412)
    assert (await (await client.get(f"{BASE}/{genre['id']}")).json())["name"] == "Dramas"


async def test_patch_conflict_and_validation(client):
    await create(client, "Crime")
    genre = await create(client, "Drama")
    await assert_problem(await client.patch(f"{BASE}/{genre['id']}", json={"name": "crime"}), 409, "name")
    await assert_problem(await client.patch(f"{BASE}/{genre['id']}", json={"slug": "Bad Slug"}), 422, "slug")
    await assert_problem(await client.patch(f"{BASE}/{genre['id']}", json={"name": None}), 422, "name")
    await assert_problem(await client.patch(f"{BASE}/{genre['id']}", json={"id": 5}), 422, "id")


async def test_patch_unknown_is_404(client):
    await assert_problem(await client.patch(f"{BASE}/999", json={"name": "Drama"}), 404)


async def test_delete_is_204_then_404(client):
    genre = await create(client, "Drama")
    resp = await client.delete(f"{BASE}/{genre['id']}")
    assert resp.status == 204
    await assert_problem(await client.get(f"{BASE}/{genre['id']}"), 404)
    await assert_problem(await client.delete(f"{BASE}/{genre['id']}"), 404)


async def test_delete_with_stale_if_match_is_412_and_keeps_the_genre(client):
    genre = await create(client, "Drama")
    await assert_problem(await client.delete(f"{BASE}/{genre['id']}", headers={"If-Match": '"stale"'}), 412)
    assert (await client.get(f"{BASE}/{genre['id']}")).status == 200


async def test_deleting_a_genre_removes_it_from_its_movies(client, db):
    genre = await create(client, "Drama")
    movie_id = await db.fetchval("INSERT INTO movies (slug, title) VALUES ('heat', 'Heat') RETURNING id")
    await db.execute("INSERT INTO movie_genres VALUES ($1, $2)", movie_id, genre["id"])
    assert (await client.delete(f"{BASE}/{genre['id']}")).status == 204
    assert await db.fetchval("SELECT count(*) FROM movie_genres") == 0
    assert await db.fetchval("SELECT count(*) FROM movies") == 1
    event = await db.fetchrow("SELECT type, entity_id, data, affected_movie_ids FROM outbox ORDER BY seq DESC LIMIT 1")
    assert tuple(event) == ("genre.deleted", genre["id"], None, [movie_id])


# -- events --------------------------------------------------------------------------


async def test_every_change_writes_its_event_in_commit_order(client, db):
    genre = await create(client, "Drama")
    await client.patch(f"{BASE}/{genre['id']}", json={"name": "Dramas"})
    await client.patch(f"{BASE}/{genre['id']}", json={"name": "Dramas"})  # no change, no event
    await client.delete(f"{BASE}/{genre['id']}")
    rows = await db.fetch("SELECT type, entity_id, data::text FROM outbox ORDER BY seq")
    assert [(r["type"], r["entity_id"]) for r in rows] == [
        ("genre.created", genre["id"]),
        ("genre.updated", genre["id"]),
        ("genre.deleted", genre["id"]),
    ]
    assert '"name": "Dramas"' in rows[1]["data"]


async def test_events_reach_the_bus_only_after_commit(client, app, db):
    subscription = app[BUS].subscribe("genre.*")
    await assert_problem(await client.post(BASE, json={"name": "X"}), 422)
    assert subscription.get_nowait() is None
    genre = await create(client, "Drama")
    event = subscription.get_nowait()
    assert (event.type, event.entity_id) == ("genre.created", genre["id"])
    assert await db.fetchval("SELECT id FROM outbox WHERE seq = $1", event.seq) == event.id


async def test_concurrent_creates_of_the_same_name_give_one_201_and_one_409(client, db):
    results = await asyncio.gather(*(client.post(BASE, json={"name": "Drama"}) for _ in range(5)))
    assert sorted(r.status for r in results) == [201, 409, 409, 409, 409]
    assert await db.fetchval("SELECT count(*) FROM genres") == 1


async def test_database_check_constraints_hold_without_the_api(db):
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO genres (slug, name) VALUES ('UPPER', 'Name')")

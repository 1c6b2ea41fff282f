"""The countries endpoints end to end: HTTP -> catalog actor -> PostgreSQL, and back."""

from __future__ import annotations

import json

import asyncpg
import pytest

from cinema.http.keys import BUS
from tests.http.helpers import assert_not_modified, assert_problem, walk

BASE = "/api/v1/countries"


async def create(client, code, name, **fields):
    resp = await client.post(BASE, json={"code": code, "name": name, **fields})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def movie(db, slug):
    return await db.fetchval("INSERT INTO movies (slug, title) VALUES ($1, $1) RETURNING id", slug)


async def link(db, movie_id, country_id):
    await db.execute("INSERT INTO movie_countries (movie_id, country_id) VALUES ($1, $2)", movie_id, country_id)


async def events(db):
    rows = await db.fetch("SELECT type, entity_id, data::text, affected_movie_ids FROM outbox ORDER BY seq")
    return [tuple(r) for r in rows]


# -- create --------------------------------------------------------------------------


async def test_create_returns_201_location_and_the_resource(client):
    resp = await client.post(BASE, json={"code": "FR", "name": "France"})
    assert resp.status == 201
    body = await resp.json()
    assert body == {"id": body["id"], "code": "FR", "slug": "france", "name": "France"}
    assert list(body) == ["id", "code", "slug", "name"]
    assert resp.headers["Location"] == f"{BASE}/{body['id']}"
    again = await client.get(resp.headers["Location"])
    assert await again.json() == body
    assert again.headers["ETag"] == resp.headers["ETag"]


async def test_create_keeps_a_given_slug(client):
    body = await create(client, "GB", "United Kingdom", slug="uk")
    assert body["slug"] == "uk"


async def test_generated_slug_folds_accents_and_avoids_collisions(client):
    first = await create(client, "CI", "Côte d'Ivoire")
    second = await create(client, "XK", "Cote d Ivoire")
    assert first["slug"] == "cote-d-ivoire"
    assert second["slug"] == "cote-d-ivoire-2"


async def test_slug_generated_from_non_latin_name_is_still_valid(client):
    body = await create(client, "RU", "Россия")
    assert body["slug"] == "country"


async def test_lower_case_code_is_422_not_converted(client, db):
    body = await assert_problem(await client.post(BASE, json={"code": "fr", "name": "France"}), 422, "code")
    assert [e["field"] for e in body["errors"]] == ["code"]
    assert await db.fetchval("SELECT count(*) FROM countries") == 0


async def test_duplicate_code_is_409_naming_the_field(client):
    await create(client, "FR", "France")
    body = await assert_problem(await client.post(BASE, json={"code": "FR", "name": "Gaul"}), 409, "code")
    assert "FR" in body["errors"][0]["message"]


async def test_duplicate_name_is_409_regardless_of_case(client):
    await create(client, "FR", "France")
    body = await assert_problem(await client.post(BASE, json={"code": "FX", "name": "FRANCE"}), 409, "name")
    assert "france" in body["errors"][0]["message"]


async def test_duplicate_slug_is_409(client):
    await create(client, "FR", "France", slug="fr")
    await assert_problem(await client.post(BASE, json={"code": "DE", "name": "Germany", "slug": "fr"}), 409, "slug")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "fr", "name": "France"}, "code"),
        ({"code": "Fr", "name": "France"}, "code"),
        ({"code": "FRA", "name": "France"}, "code"),
        ({"code": "F", "name": "France"}, "code"),
        ({"code": "F1", "name": "France"}, "code"),
        ({"code": "ÉF", "name": "France"}, "code"),
        ({"code": 33, "name": "France"}, "code"),
        ({"name": "France"}, "code"),
        ({"code": "FR", "name": "F"}, "name"),
        ({"code": "FR", "name": "x" * 101}, "name"),
        ({"code": "FR", "name": None}, "name"),
        ({"code": "FR"}, "name"),
        ({"code": "FR", "name": "France", "slug": "Not A Slug"}, "slug"),
        ({"code": "FR", "name": "France", "slug": "f"}, "slug"),
        ({"code": "FR", "name": "France", "id": 3}, "id"),
        ([], ""),
    ],
)
async def test_invalid_bodies_are_422_with_field_errors(client, body, field):
    await assert_problem(await client.post(BASE, json=body), 422, field)


async def test_name_of_100_characters_is_accepted(client):
    body = await create(client, "FR", "x" * 100)
    assert len(body["name"]) == 100


async def test_all_field_errors_are_reported_at_once(client):
    body = await assert_problem(await client.post(BASE, json={"code": "f", "name": "F", "slug": "A"}), 422)
    assert sorted(e["field"] for e in body["errors"]) == ["code", "name", "slug"]


async def test_malformed_json_is_400(client):
    resp = await client.post(BASE, data=b'{"code": ', headers={"Content-Type": "application/json"})
    await assert_problem(resp, 400)


async def test_other_media_type_is_415(client):
    resp = await client.post(BASE, data=b"code=FR", headers={"Content-Type": "text/plain"})
    await assert_problem(resp, 415)


# -- bulk ----------------------------------------------------------------------------


async def test_bulk_creates_all_in_order(client):
    resp = await client.post(
        f"{BASE}/bulk",
        json=[{"code": "FR", "name": "France"}, {"code": "DE", "name": "Germany"}, {"code": "IT", "name": "Italy"}],
    )
    assert resp.status == 201
    items = (await resp.json())["items"]
    assert [(i["code"], i["slug"]) for i in items] == [("FR", "france"), ("DE", "germany"), ("IT", "italy")]
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)


async def test_bulk_with_one_invalid_item_creates_nothing(client, db):
    resp = await client.post(f"{BASE}/bulk", json=[{"code": "FR", "name": "France"}, {"code": "de", "name": "Germany"}])
    body = await assert_problem(resp, 422, "[1].code")
    assert [e["field"] for e in body["errors"]] == ["[1].code"]
    assert await db.fetchval("SELECT count(*) FROM countries") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"code": "FR", "name": "Gaul"}, "[2].code"),
        ({"code": "FX", "name": "FRANCE"}, "[2].name"),
        ({"code": "FX", "name": "Gaul", "slug": "france"}, "[2].slug"),
    ],
)
async def test_bulk_conflict_with_existing_row_names_the_item_and_rolls_back(client, db, item, field):
    await create(client, "FR", "France")
    body = [{"code": "DE", "name": "Germany"}, {"code": "IT", "name": "Italy"}, item]
    await assert_problem(await client.post(f"{BASE}/bulk", json=body), 409, field)
    assert await db.fetchval("SELECT count(*) FROM countries") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1


@pytest.mark.parametrize(
    ("second", "field"),
    [
        ({"code": "FR", "name": "Gaul"}, "[1].code"),
        ({"code": "FX", "name": "france"}, "[1].name"),
        ({"code": "FX", "name": "Gaul", "slug": "fr"}, "[1].slug"),
    ],
)
async def test_bulk_duplicates_within_the_batch_are_409(client, db, second, field):
    resp = await client.post(f"{BASE}/bulk", json=[{"code": "FR", "name": "France", "slug": "fr"}, second])
    await assert_problem(resp, 409, field)
    assert await db.fetchval("SELECT count(*) FROM countries") == 0


async def test_bulk_of_one_names_the_item(client):
    await create(client, "FR", "France")
    await assert_problem(await client.post(f"{BASE}/bulk", json=[{"code": "FR", "name": "Gaul"}]), 409, "[0].code")


@pytest.mark.parametrize("body", [[], {"code": "FR", "name": "France"}, [{"code": "FR", "name": "France"}] * 1001])
async def test_bulk_needs_an_array_of_1_to_1000(client, body):
    await assert_problem(await client.post(f"{BASE}/bulk", json=body), 422)


# -- read ----------------------------------------------------------------------------


async def test_get_unknown_is_404(client):
    await assert_problem(await client.get(f"{BASE}/999"), 404)
    await assert_problem(await client.get(f"{BASE}/99999999999999999999999"), 404)


async def test_get_rejects_query_parameters(client):
    country = await create(client, "FR", "France")
    await assert_problem(await client.get(f"{BASE}/{country['id']}", params={"x": "1"}), 400, "x")


async def test_if_none_match_gives_304(client):
    country = await create(client, "FR", "France")
    tag = await assert_not_modified(client, f"{BASE}/{country['id']}")
    await client.patch(f"{BASE}/{country['id']}", json={"name": "République française"})
    changed = await client.get(f"{BASE}/{country['id']}", headers={"If-None-Match": tag})
    assert changed.status == 200
    assert changed.headers["ETag"] != tag


async def seed(client):
    for code, name in [("FR", "France"), ("DE", "Germany"), ("AT", "Austria"), ("JP", "Japan"), ("BR", "Brazil")]:
        await create(client, code, name)


@pytest.mark.parametrize(
    ("sort", "field", "expected"),
    [
        ("id", "code", ["FR", "DE", "AT", "JP", "BR"]),
        ("-id", "code", ["BR", "JP", "AT", "DE", "FR"]),
        ("code", "code", ["AT", "BR", "DE", "FR", "JP"]),
        ("-code", "code", ["JP", "FR", "DE", "BR", "AT"]),
        ("name", "name", ["Austria", "Brazil", "France", "Germany", "Japan"]),
        ("-name", "name", ["Japan", "Germany", "France", "Brazil", "Austria"]),
        ("slug", "slug", ["austria", "brazil", "france", "germany", "japan"]),
        ("-slug", "slug", ["japan", "germany", "france", "brazil", "austria"]),
    ],
)
async def test_list_pages_through_every_sort_in_both_directions(client, sort, field, expected):
    await seed(client)
    items, pages = await walk(client, BASE, sort=sort, limit="2")
    assert [c[field] for c in items] == expected
    assert pages == 3


async def test_cursor_is_stable_under_inserts(client):
    await seed(client)
    page = await (await client.get(BASE, params={"sort": "code", "limit": "2"})).json()
    await create(client, "AR", "Argentina")  # before the cursor: not seen, and nothing shifts
    rest, _ = await walk(client, BASE, cursor=page["next_cursor"], sort="code", limit="2")
    assert [c["code"] for c in rest] == ["DE", "FR", "JP"]


async def test_list_etag_and_304(client):
    await create(client, "FR", "France")
    tag = await assert_not_modified(client, BASE)
    await create(client, "DE", "Germany")
    assert (await client.get(BASE, headers={"If-None-Match": tag})).status == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"sort": "population"}, "sort"),
        ({"sort": "-"}, "sort"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"code": "FR"}, "code"),
    ],
)
async def test_bad_query_parameters_are_400(client, params, field):
    await assert_problem(await client.get(BASE, params=params), 400, field)


async def test_cursor_of_another_sort_is_400(client):
    await seed(client)
    page = await (await client.get(BASE, params={"limit": "1", "sort": "code"})).json()
    await assert_problem(await client.get(BASE, params={"sort": "name", "cursor": page["next_cursor"]}), 400, "cursor")


# -- patch ---------------------------------------------------------------------------


async def test_patch_changes_only_given_fields(client):
    country = await create(client, "FR", "France")
    resp = await client.patch(f"{BASE}/{country['id']}", json={"name": "French Republic"})
    assert resp.status == 200
    assert await resp.json() == {"id": country["id"], "code": "FR", "slug": "france", "name": "French Republic"}
    resp = await client.patch(f"{BASE}/{country['id']}", json={"code": "FX", "slug": "fx"})
    assert await resp.json() == {"id": country["id"], "code": "FX", "slug": "fx", "name": "French Republic"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"code": "DE"}, 409, "code"),
        ({"name": "germany"}, 409, "name"),
        ({"slug": "germany"}, 409, "slug"),
        ({"code": "de"}, 422, "code"),
        ({"code": None}, 422, "code"),
        ({"name": "G"}, 422, "name"),
        ({"name": None}, 422, "name"),
        ({"slug": "Bad Slug"}, 422, "slug"),
        ({"id": 9}, 422, "id"),
    ],
)
async def test_patch_conflicts_and_validation(client, db, body, status, field):
    await create(client, "DE", "Germany")
    country = await create(client, "FR", "France")
    await assert_problem(await client.patch(f"{BASE}/{country['id']}", json=body), status, field)
    assert await (await client.get(f"{BASE}/{country['id']}")).json() == country


async def test_patch_with_matching_if_match_succeeds_and_stale_one_is_412(client):
    country = await create(client, "FR", "France")
    tag = (await client.get(f"{BASE}/{country['id']}")).headers["ETag"]
    ok = await client.patch(f"{BASE}/{country['id']}", json={"name": "Francia"}, headers={"If-Match": tag})
    assert ok.status == 200
    assert ok.headers["ETag"] != tag
    stale = await client.patch(f"{BASE}/{country['id']}", json={"name": "France"}, headers={"If-Match": tag})
    await assert_problem(stale, 412)
    assert (await (await client.get(f"{BASE}/{country['id']}")).json())["name"] == "Francia"
    star = await client.patch(f"{BASE}/{country['id']}", json={"name": "France"}, headers={"If-Match": "*"})
    assert star.status == 200


async def test_patch_unknown_is_404(client):
    await assert_problem(await client.patch(f"{BASE}/999", json={"name": "France"}), 404)


# -- delete --------------------------------------------------------------------------


async def test_delete_is_204_then_404(client):
    country = await create(client, "FR", "France")
    resp = await client.delete(f"{BASE}/{country['id']}")
    assert resp.status == 204
    await assert_problem(await client.get(f"{BASE}/{country['id']}"), 404)
    await assert_problem(await client.delete(f"{BASE}/{country['id']}"), 404)


async def test_delete_with_stale_if_match_is_412_and_keeps_the_country(client):
    country = await create(client, "FR", "France")
    await assert_problem(await client.delete(f"{BASE}/{country['id']}", headers={"If-Match": '"stale"'}), 412)
    assert (await client.get(f"{BASE}/{country['id']}")).status == 200
    tag = (await client.get(f"{BASE}/{country['id']}")).headers["ETag"]
    assert (await client.delete(f"{BASE}/{country['id']}", headers={"If-Match": tag})).status == 204


async def test_deleting_a_country_removes_it_from_its_movies_and_keeps_them(client, db):
    france = await create(client, "FR", "France")
    italy = await create(client, "IT", "Italy")
    amelie, heat = await movie(db, "amelie"), await movie(db, "heat")
    await link(db, amelie, france["id"])
    await link(db, heat, france["id"])
    await link(db, heat, italy["id"])
    assert (await client.delete(f"{BASE}/{france['id']}")).status == 204
    assert await db.fetchval("SELECT count(*) FROM movies") == 2
    links = await db.fetch("SELECT movie_id, country_id FROM movie_countries")
    assert [tuple(r) for r in links] == [(heat, italy["id"])]
    assert (await events(db))[-1] == ("country.deleted", france["id"], None, [amelie, heat])


# -- events --------------------------------------------------------------------------


async def test_every_change_writes_its_event_in_commit_order(client, db):
    country = await create(client, "FR", "France")
    heat = await movie(db, "heat")
    await link(db, heat, country["id"])
    patched = await (await client.patch(f"{BASE}/{country['id']}", json={"name": "Francia"})).json()
    unchanged = await client.patch(f"{BASE}/{country['id']}", json={"name": "Francia", "code": "FR"})
    assert unchanged.status == 200
    assert await unchanged.json() == patched
    await client.delete(f"{BASE}/{country['id']}")
    rows = await events(db)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("country.created", country["id"], []),
        ("country.updated", country["id"], [heat]),
        ("country.deleted", country["id"], [heat]),
    ]
    assert json.loads(rows[0][2]) == country  # data is the resource as GET returns it
    assert json.loads(rows[1][2]) == patched


async def test_bulk_writes_one_event_per_item_in_order(client, db):
    resp = await client.post(f"{BASE}/bulk", json=[{"code": "FR", "name": "France"}, {"code": "DE", "name": "Germany"}])
    ids = [c["id"] for c in (await resp.json())["items"]]
    assert [(r[0], r[1]) for r in await events(db)] == [("country.created", ids[0]), ("country.created", ids[1])]


async def test_events_reach_the_bus_only_after_commit(client, app):
    subscription = app[BUS].subscribe("country.*")
    await assert_problem(await client.post(BASE, json={"code": "fr", "name": "France"}), 422)
    assert subscription.get_nowait() is None
    country = await create(client, "FR", "France")
    event = subscription.get_nowait()
    assert (event.type, event.entity_id) == ("country.created", country["id"])


async def test_database_check_constraints_hold_without_the_api(db):
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO countries (code, slug, name) VALUES ('fr', 'france', 'France')")

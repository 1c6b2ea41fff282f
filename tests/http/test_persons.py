"""The persons endpoints end to end: HTTP -> catalog actor -> PostgreSQL, and back."""

from __future__ import annotations

import base64
import datetime as dt
import json

import asyncpg
import orjson
import pytest

from cinema.http.keys import BUS
from tests.http.helpers import assert_not_modified, assert_problem, walk

BASE = "/api/v1/persons"
FIELDS = [
    "id",
    "slug",
    "full_name",
    "birth_date",
    "death_date",
    "biography",
    "photo_url",
    "images",
    "created_at",
    "updated_at",
]


async def create(client, full_name, **fields):
    resp = await client.post(BASE, json={"full_name": full_name, **fields})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def get(client, person_id):
    resp = await client.get(f"{BASE}/{person_id}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def movie(db, slug):
    return await db.fetchval("INSERT INTO movies (slug, title) VALUES ($1, $1) RETURNING id", slug)


async def credit(db, movie_id, person_id, role="actor"):
    await db.execute("INSERT INTO credits (movie_id, person_id, role) VALUES ($1, $2, $3)", movie_id, person_id, role)


async def events(db):
    rows = await db.fetch("SELECT type, entity_id, data::text, affected_movie_ids FROM outbox ORDER BY seq")
    return [tuple(r) for r in rows]


def utc(timestamp):
    parsed = dt.datetime.fromisoformat(timestamp)
    assert parsed.utcoffset() == dt.timedelta(0), timestamp
    return parsed


# -- create --------------------------------------------------------------------------


async def test_create_returns_201_location_and_the_whole_resource(client):
    resp = await client.post(
        BASE,
        json={
            "full_name": "Jean Gabin",
            "birth_date": "1904-05-17",
            "death_date": "1976-11-15",
            "biography": "French actor.",
        },
    )
    assert resp.status == 201
    body = await resp.json()
    assert list(body) == FIELDS
    assert body | {"created_at": None, "updated_at": None} == {
        "id": body["id"],
        "slug": "jean-gabin",
        "full_name": "Jean Gabin",
        "birth_date": "1904-05-17",
        "death_date": "1976-11-15",
        "biography": "French actor.",
        "photo_url": None,
        "images": None,
        "created_at": None,
        "updated_at": None,
    }
    assert utc(body["created_at"]) == utc(body["updated_at"])
    assert resp.headers["Location"] == f"{BASE}/{body['id']}"
    again = await client.get(resp.headers["Location"])
    assert await again.json() == body
    assert again.headers["ETag"] == resp.headers["ETag"]


async def test_optional_fields_default_to_null(client):
    body = await create(client, "Anonymous")
    assert (body["birth_date"], body["death_date"], body["biography"], body["photo_url"]) == (None, None, None, None)


async def test_same_names_get_distinct_generated_slugs(client):
    first = await create(client, "Jean Gabin")
    second = await create(client, "Jean Gabin")
    third = await create(client, "Jéan Gäbin")
    assert [p["slug"] for p in (first, second, third)] == ["jean-gabin", "jean-gabin-2", "jean-gabin-3"]


async def test_create_keeps_a_given_slug_up_to_160_characters(client):
    assert (await create(client, "Jean Gabin", slug="gabin"))["slug"] == "gabin"
    assert (await create(client, "Jean Gabin", slug="g" * 160))["slug"] == "g" * 160


async def test_slug_generated_from_non_latin_name_is_still_valid(client):
    assert (await create(client, "黒澤明"))["slug"] == "person"


async def test_duplicate_slug_is_409(client):
    await create(client, "Jean Gabin", slug="gabin")
    await assert_problem(await client.post(BASE, json={"full_name": "Other", "slug": "gabin"}), 409, "slug")


async def test_death_on_the_birth_date_is_accepted(client):
    body = await create(client, "Short Life", birth_date="1900-01-01", death_date="1900-01-01")
    assert body["death_date"] == "1900-01-01"


async def test_death_before_birth_is_422_on_death_date(client, db):
    resp = await client.post(BASE, json={"full_name": "Jean", "birth_date": "1904-05-17", "death_date": "1904-05-16"})
    body = await assert_problem(resp, 422, "death_date")
    assert [e["field"] for e in body["errors"]] == ["death_date"]
    assert await db.fetchval("SELECT count(*) FROM persons") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"full_name": "J"}, "full_name"),
        ({"full_name": "x" * 151}, "full_name"),
        ({"full_name": None}, "full_name"),
        ({"full_name": 7}, "full_name"),
        ({}, "full_name"),
        ({"full_name": "Jean", "slug": "Jean Gabin"}, "slug"),
        ({"full_name": "Jean", "slug": "g" * 161}, "slug"),
        ({"full_name": "Jean", "birth_date": "1904-13-01"}, "birth_date"),
        ({"full_name": "Jean", "birth_date": "1904-02-30"}, "birth_date"),
        ({"full_name": "Jean", "birth_date": "19040517"}, "birth_date"),
        ({"full_name": "Jean", "birth_date": "1904-W20-1"}, "birth_date"),
        ({"full_name": "Jean", "birth_date": "1904-05-17T00:00:00"}, "birth_date"),
        ({"full_name": "Jean", "birth_date": "17/05/1904"}, "birth_date"),
        ({"full_name": "Jean", "birth_date": 1904}, "birth_date"),
        ({"full_name": "Jean", "death_date": ""}, "death_date"),
        ({"full_name": "Jean", "birth_date": "9999-12-31"}, "birth_date"),
        ({"full_name": "Jean", "death_date": "0001-01-01"}, "death_date"),
        ({"full_name": "Jean", "biography": 5}, "biography"),
        ({"full_name": "Jean", "photo_url": "http://example.org/jean.jpg"}, "photo_url"),
        ({"full_name": "Jean", "photo_url": None}, "photo_url"),
        ({"full_name": "Jean", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"full_name": "Jean", "id": 4}, "id"),
        ([], ""),
    ],
)
async def test_invalid_bodies_are_422_with_field_errors(client, db, body, field):
    await assert_problem(await client.post(BASE, json=body), 422, field)
    assert await db.fetchval("SELECT count(*) FROM persons") == 0


async def test_dates_next_to_the_ends_of_the_range_read_back_as_sent(client):
    body = await create(client, "Jean", birth_date="0001-01-02", death_date="9999-12-30")
    assert (body["birth_date"], body["death_date"]) == ("0001-01-02", "9999-12-30")


async def test_full_name_of_150_characters_is_accepted(client):
    assert len((await create(client, "x" * 150))["full_name"]) == 150


async def test_all_field_errors_are_reported_at_once(client):
    resp = await client.post(BASE, json={"full_name": "J", "birth_date": "yesterday", "photo_url": "x"})
    body = await assert_problem(resp, 422)
    assert sorted(e["field"] for e in body["errors"]) == ["birth_date", "full_name", "photo_url"]


# -- bulk ----------------------------------------------------------------------------


async def test_bulk_creates_all_in_order(client):
    resp = await client.post(
        f"{BASE}/bulk",
        json=[
            {"full_name": "Jean Gabin"},
            {"full_name": "Michèle Morgan", "birth_date": "1920-02-29"},
            {"full_name": "Jean Gabin"},
        ],
    )
    assert resp.status == 201
    items = (await resp.json())["items"]
    assert [p["slug"] for p in items] == ["jean-gabin", "michele-morgan", "jean-gabin-2"]
    assert items[1]["birth_date"] == "1920-02-29"
    assert all(list(p) == FIELDS for p in items)


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"full_name": "J"}, "[2].full_name"),
        ({"full_name": "Jean", "photo_url": "x"}, "[2].photo_url"),
        ({"full_name": "Jean", "birth_date": "1904-5-17"}, "[2].birth_date"),
        ({"full_name": "Jean", "birth_date": "1904-05-17", "death_date": "1900-01-01"}, "[2].death_date"),
    ],
)
async def test_bulk_with_one_invalid_item_creates_nothing(client, db, item, field):
    resp = await client.post(f"{BASE}/bulk", json=[{"full_name": "Jean Gabin"}, {"full_name": "Michèle Morgan"}, item])
    body = await assert_problem(resp, 422, field)
    assert [e["field"] for e in body["errors"]] == [field]
    assert await db.fetchval("SELECT count(*) FROM persons") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_bulk_reports_every_date_error(client):
    bad = {"full_name": "Jean", "birth_date": "1904-05-17", "death_date": "1900-01-01"}
    body = await assert_problem(await client.post(f"{BASE}/bulk", json=[bad, {"full_name": "Ok"}, bad]), 422)
    assert [e["field"] for e in body["errors"]] == ["[0].death_date", "[2].death_date"]


async def test_bulk_conflict_with_existing_row_names_the_item_and_rolls_back(client, db):
    await create(client, "Jean Gabin", slug="gabin")
    resp = await client.post(
        f"{BASE}/bulk", json=[{"full_name": "Michèle Morgan"}, {"full_name": "J G", "slug": "gabin"}]
    )
    await assert_problem(resp, 409, "[1].slug")
    assert await db.fetchval("SELECT count(*) FROM persons") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1


async def test_bulk_duplicate_slugs_within_the_batch_are_409(client, db):
    resp = await client.post(
        f"{BASE}/bulk", json=[{"full_name": "A B", "slug": "ab"}, {"full_name": "C D", "slug": "ab"}]
    )
    await assert_problem(resp, 409, "[1].slug")
    assert await db.fetchval("SELECT count(*) FROM persons") == 0


async def test_bulk_of_one_names_the_item(client):
    resp = await client.post(f"{BASE}/bulk", json=[{"full_name": "J", "birth_date": "1904-05-17"}])
    await assert_problem(resp, 422, "[0].full_name")
    resp = await client.post(
        f"{BASE}/bulk", json=[{"full_name": "Jean", "birth_date": "2000-01-02", "death_date": "2000-01-01"}]
    )
    await assert_problem(resp, 422, "[0].death_date")


@pytest.mark.parametrize("body", [[], {"full_name": "Jean"}, [{"full_name": "Jean"}] * 1001])
async def test_bulk_needs_an_array_of_1_to_1000(client, body):
    await assert_problem(await client.post(f"{BASE}/bulk", json=body), 422)


# -- read ----------------------------------------------------------------------------


async def test_get_unknown_is_404(client):
    await assert_problem(await client.get(f"{BASE}/999"), 404)
    await assert_problem(await client.get(f"{BASE}/99999999999999999999999"), 404)
    await assert_problem(await client.get(f"{BASE}/jean-gabin"), 404)


async def test_if_none_match_gives_304(client):
    person = await create(client, "Jean Gabin")
    tag = await assert_not_modified(client, f"{BASE}/{person['id']}")
    await client.patch(f"{BASE}/{person['id']}", json={"biography": "Actor."})
    assert (await client.get(f"{BASE}/{person['id']}", headers={"If-None-Match": tag})).status == 200


# Birth dates with ties and nulls, so that pages break inside runs of equal keys and nulls.
BIRTHS = [None, "1920-02-29", None, "1904-05-17", "1920-02-29", None, "1890-01-01", "1920-02-29", None]


async def seed(client):
    resp = await client.post(
        f"{BASE}/bulk",
        json=[{"full_name": f"Person {i}", "birth_date": birth} for i, birth in enumerate(BIRTHS)],
    )
    assert resp.status == 201
    return (await resp.json())["items"]


def by_birth(person):
    # Unknown birth dates last ascending, first descending; ties by id.
    return (person["birth_date"] or "9999-12-31", person["id"])


@pytest.mark.parametrize("limit", [1, 2, 4, 100])
async def test_birth_date_pages_through_null_birth_dates_in_both_directions(client, limit):
    created = await seed(client)
    ascending = sorted(created, key=by_birth)
    assert [p["birth_date"] for p in ascending[-4:]] == [None] * 4
    assert (await walk(client, BASE, sort="birth_date", limit=str(limit)))[0] == ascending
    assert (await walk(client, BASE, sort="-birth_date", limit=str(limit)))[0] == ascending[::-1]


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("id", lambda p: p["id"]),
        ("full_name", lambda p: (p["full_name"], p["id"])),
        ("created_at", lambda p: (utc(p["created_at"]), p["id"])),
    ],
)
async def test_other_sorts_page_through_everything_in_both_directions(client, sort, key):
    created = await seed(client)
    later = await create(client, "Aaron Later")  # another transaction: a later created_at
    everything = sorted([*created, later], key=key)
    assert (await walk(client, BASE, sort=sort, limit="2"))[0] == everything
    assert (await walk(client, BASE, sort=f"-{sort}", limit="3"))[0] == everything[::-1]


async def test_cursor_is_stable_under_inserts(client):
    await seed(client)
    page = await (await client.get(BASE, params={"sort": "birth_date", "limit": "3"})).json()
    await create(client, "Earliest", birth_date="1800-01-01")  # before the cursor
    await create(client, "Unknown")  # after it, among the nulls
    rest, _ = await walk(client, BASE, cursor=page["next_cursor"], sort="birth_date", limit="2")
    assert [p["full_name"] for p in page["items"] + rest].count("Earliest") == 0
    assert rest[-1]["full_name"] == "Unknown"
    assert len(page["items"] + rest) == len(BIRTHS) + 1


async def test_list_etag_and_304(client):
    await create(client, "Jean Gabin")
    tag = await assert_not_modified(client, BASE)
    await create(client, "Michèle Morgan")
    assert (await client.get(BASE, headers={"If-None-Match": tag})).status == 200


def cursor(*parts):
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"sort": "death_date"}, "sort"),
        ({"sort": "photo_url"}, "sort"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sort": "birth_date", "cursor": cursor("birth_date", "1904-13-01", 1)}, "cursor"),
        ({"sort": "birth_date", "cursor": cursor("birth_date", 1904, 1)}, "cursor"),
        ({"sort": "created_at", "cursor": cursor("created_at", "2020-01-01T00:00:00", 1)}, "cursor"),
        ({"sort": "created_at", "cursor": cursor("created_at", "yesterday", 1)}, "cursor"),
        ({"sort": "id", "cursor": cursor("id", "1", 1)}, "cursor"),
        # keys the column cannot take: still the client's 400, never a 500
        ({"sort": "id", "cursor": cursor("id", 2**63, 1)}, "cursor"),
        ({"sort": "id", "cursor": cursor("id", 1, 2**63)}, "cursor"),
        ({"sort": "full_name", "cursor": cursor("full_name", "a\x00b", 1)}, "cursor"),
        ({"sort": "created_at", "cursor": cursor("created_at", "0001-01-01T00:00:00+01:00", 1)}, "cursor"),
        ({"name": "Jean"}, "name"),
    ],
)
async def test_bad_query_parameters_are_400(client, params, field):
    await assert_problem(await client.get(BASE, params=params), 400, field)


async def test_cursor_of_another_sort_is_400(client):
    await seed(client)
    page = await (await client.get(BASE, params={"limit": "1", "sort": "birth_date"})).json()
    await assert_problem(
        await client.get(BASE, params={"sort": "created_at", "cursor": page["next_cursor"]}), 400, "cursor"
    )


# -- patch ---------------------------------------------------------------------------


async def test_patch_changes_only_given_fields_and_moves_updated_at(client):
    person = await create(client, "Jean Gabin", birth_date="1904-05-17", biography="Actor.")
    resp = await client.patch(f"{BASE}/{person['id']}", json={"death_date": "1976-11-15", "biography": None})
    assert resp.status == 200
    body = await resp.json()
    assert body | {"updated_at": None} == person | {"death_date": "1976-11-15", "biography": None, "updated_at": None}
    assert utc(body["updated_at"]) > utc(person["updated_at"])
    assert body == await get(client, person["id"])


async def test_patch_can_clear_a_date(client):
    person = await create(client, "Jean Gabin", birth_date="1904-05-17", death_date="1976-11-15")
    body = await (await client.patch(f"{BASE}/{person['id']}", json={"birth_date": None})).json()
    assert (body["birth_date"], body["death_date"]) == (None, "1976-11-15")


@pytest.mark.parametrize(
    "patch",
    [
        {"death_date": "1904-05-16"},  # before the stored birth date
        {"birth_date": "1976-11-16"},  # after the stored death date
        {"birth_date": "1980-01-01", "death_date": "1979-12-31"},
    ],
)
async def test_patch_that_puts_death_before_birth_is_422_on_death_date(client, db, patch):
    person = await create(client, "Jean Gabin", birth_date="1904-05-17", death_date="1976-11-15")
    body = await assert_problem(await client.patch(f"{BASE}/{person['id']}", json=patch), 422, "death_date")
    assert [e["field"] for e in body["errors"]] == ["death_date"]
    assert await get(client, person["id"]) == person
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"slug": "taken"}, 409, "slug"),
        ({"slug": "Bad Slug"}, 422, "slug"),
        ({"slug": None}, 422, "slug"),
        ({"full_name": "J"}, 422, "full_name"),
        ({"full_name": None}, 422, "full_name"),
        ({"birth_date": "1904-5-17"}, 422, "birth_date"),
        ({"photo_url": "http://example.org/x.jpg"}, 422, "photo_url"),
        ({"updated_at": "2020-01-01T00:00:00Z"}, 422, "updated_at"),
    ],
)
async def test_patch_conflicts_and_validation(client, body, status, field):
    await create(client, "Someone", slug="taken")
    person = await create(client, "Jean Gabin")
    await assert_problem(await client.patch(f"{BASE}/{person['id']}", json=body), status, field)
    assert await get(client, person["id"]) == person


async def test_patch_with_matching_if_match_succeeds_and_stale_one_is_412(client):
    person = await create(client, "Jean Gabin")
    tag = (await client.get(f"{BASE}/{person['id']}")).headers["ETag"]
    ok = await client.patch(f"{BASE}/{person['id']}", json={"biography": "Actor."}, headers={"If-Match": tag})
    assert ok.status == 200
    stale = await client.patch(f"{BASE}/{person['id']}", json={"biography": "Singer."}, headers={"If-Match": tag})
    await assert_problem(stale, 412)
    assert (await get(client, person["id"]))["biography"] == "Actor."


async def test_patch_unknown_is_404(client):
    await assert_problem(await client.patch(f"{BASE}/999", json={"biography": "Actor."}), 404)


async def test_patch_that_changes_nothing_keeps_updated_at_and_writes_no_event(client, db):
    person = await create(client, "Jean Gabin", birth_date="1904-05-17")
    resp = await client.patch(f"{BASE}/{person['id']}", json={"full_name": "Jean Gabin", "birth_date": "1904-05-17"})
    assert resp.status == 200
    assert await resp.json() == person
    assert (await client.patch(f"{BASE}/{person['id']}", json={})).status == 200
    assert [r[0] for r in await events(db)] == ["person.created"]


# -- delete --------------------------------------------------------------------------


async def test_delete_is_204_then_404(client, db):
    person = await create(client, "Jean Gabin")
    assert (await client.delete(f"{BASE}/{person['id']}")).status == 204
    await assert_problem(await client.get(f"{BASE}/{person['id']}"), 404)
    await assert_problem(await client.delete(f"{BASE}/{person['id']}"), 404)
    assert (await events(db))[-1] == ("person.deleted", person["id"], None, [])


async def test_delete_with_stale_if_match_is_412_and_keeps_the_person(client):
    person = await create(client, "Jean Gabin")
    await assert_problem(await client.delete(f"{BASE}/{person['id']}", headers={"If-Match": '"stale"'}), 412)
    tag = (await client.get(f"{BASE}/{person['id']}")).headers["ETag"]
    assert (await client.delete(f"{BASE}/{person['id']}", headers={"If-Match": tag})).status == 204


async def test_a_person_with_credits_cannot_be_deleted_and_the_detail_counts_them(client, db):
    person = await create(client, "Jean Gabin")
    other = await create(client, "Michèle Morgan")
    quai, grande = await movie(db, "le-quai-des-brumes"), await movie(db, "la-grande-illusion")
    await credit(db, quai, person["id"])
    await credit(db, quai, other["id"])
    body = await assert_problem(await client.delete(f"{BASE}/{person['id']}"), 409)
    assert "1 credit;" in body["detail"]
    await credit(db, grande, person["id"])
    await credit(db, grande, person["id"], role="producer")
    body = await assert_problem(await client.delete(f"{BASE}/{person['id']}"), 409)
    assert "3 credits" in body["detail"]
    assert await get(client, person["id"]) == person
    assert await db.fetchval("SELECT count(*) FROM credits") == 4
    assert [r[0] for r in await events(db)] == ["person.created", "person.created"]
    await db.execute("DELETE FROM credits WHERE person_id = $1", person["id"])
    assert (await client.delete(f"{BASE}/{person['id']}")).status == 204


# -- events --------------------------------------------------------------------------


async def test_every_change_writes_its_event_in_commit_order_with_affected_movies(client, db):
    person = await create(client, "Jean Gabin")
    quai, grande, other = await movie(db, "quai"), await movie(db, "grande"), await movie(db, "other")
    await credit(db, grande, person["id"])
    await credit(db, quai, person["id"])
    await credit(db, quai, person["id"], role="director")  # two credits in one movie: one affected movie
    patched = await (await client.patch(f"{BASE}/{person['id']}", json={"full_name": "Jean Gabin (1904)"})).json()
    await db.execute("DELETE FROM credits")
    await client.delete(f"{BASE}/{person['id']}")
    rows = await events(db)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("person.created", person["id"], []),
        ("person.updated", person["id"], sorted([quai, grande])),
        ("person.deleted", person["id"], []),
    ]
    assert other not in rows[1][3]
    assert json.loads(rows[0][2]) == person  # data is the resource as GET returns it
    assert json.loads(rows[1][2]) == patched


async def test_bulk_writes_one_event_per_item_in_order(client, db):
    resp = await client.post(f"{BASE}/bulk", json=[{"full_name": "Jean Gabin"}, {"full_name": "Michèle Morgan"}])
    ids = [p["id"] for p in (await resp.json())["items"]]
    assert [(r[0], r[1]) for r in await events(db)] == [("person.created", ids[0]), ("person.created", ids[1])]


async def test_events_reach_the_bus_only_after_commit(client, app):
    subscription = app[BUS].subscribe("person.*")
    resp = await client.post(BASE, json={"full_name": "Jean", "birth_date": "2000-01-02", "death_date": "2000-01-01"})
    await assert_problem(resp, 422, "death_date")
    assert subscription.get_nowait() is None
    person = await create(client, "Jean Gabin")
    event = subscription.get_nowait()
    assert (event.type, event.entity_id) == ("person.created", person["id"])


# -- the database backs the API --------------------------------------------------------


async def test_database_refuses_death_before_birth_also_on_a_one_sided_update(db):
    person_id = await db.fetchval(
        "INSERT INTO persons (slug, full_name, birth_date) VALUES ('jean', 'Jean', '1904-05-17') RETURNING id"
    )
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute("UPDATE persons SET death_date = '1904-05-16' WHERE id = $1", person_id)
    assert caught.value.constraint_name == "persons_death_after_birth"


async def test_database_refuses_deleting_a_person_with_credits(db):
    person_id = await db.fetchval("INSERT INTO persons (slug, full_name) VALUES ('jean', 'Jean') RETURNING id")
    await credit(db, await movie(db, "quai"), person_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("DELETE FROM persons WHERE id = $1", person_id)


async def test_birth_date_sort_is_served_by_its_index(db):
    await db.execute("SET enable_seqscan = off")
    plan = await db.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT id FROM persons p"
        " WHERE (coalesce(p.birth_date, 'infinity'::date), p.id) > ('1900-01-01'::date, 1)"
        " ORDER BY coalesce(p.birth_date, 'infinity'::date), p.id LIMIT 3"
    )
    assert "persons_birth_date_idx" in plan

"""A movie's credits one at a time, and a person's filmography."""

from __future__ import annotations

import json

import pytest

from tests.http.helpers import assert_problem
from tests.http.movie_support import MOVIES, create_movie, events, last_seq, refs, statements

__all__ = ["refs", "statements"]  # fixtures used by the tests below


@pytest.fixture
async def movie(client, refs):
    return await create_movie(
        client,
        "Heat",
        release_year=1995,
        credits=[
            {"person_id": refs.pacino, "role": "actor", "character": "Vincent Hanna"},
            {"person_id": refs.mann, "role": "director", "position": 7},
        ],
    )


def credits_url(movie, credit_id=None):
    base = f"{MOVIES}/{movie['id']}/credits"
    return base if credit_id is None else f"{base}/{credit_id}"


# -- add -----------------------------------------------------------------------------


async def test_add_returns_201_location_and_the_credit_after_the_last(client, db, refs, movie):
    seq = await last_seq(db)
    resp = await client.post(credits_url(movie), json={"person_id": refs.de_niro, "role": "actor", "character": "Neil"})
    assert resp.status == 201, await resp.text()
    body = json.loads(await resp.text())
    assert list(body) == ["id", "person", "role", "character", "position"]
    assert body == {
        "id": body["id"],
        "person": {"id": refs.de_niro, "slug": "robert-de-niro", "full_name": "Robert De Niro", "photo_url": None},
        "role": "actor",
        "character": "Neil",
        "position": 8,
    }
    assert resp.headers["Location"] == credits_url(movie, body["id"])
    again = await client.get(resp.headers["Location"])
    assert await again.json() == body
    assert again.headers["ETag"] == resp.headers["ETag"]
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert doc["credits"][-1] == body
    assert await events(db, seq) == [("credit.created", body["id"]), ("movie.updated", movie["id"])]
    data = await db.fetch("SELECT data FROM outbox WHERE seq > $1 ORDER BY seq", seq)
    assert [json.loads(r["data"]) for r in data] == [body, doc]


async def test_add_at_a_given_position_and_to_a_movie_without_credits(client, refs):
    movie = await create_movie(client, "Ronin")
    first = await (await client.post(credits_url(movie), json={"person_id": refs.mann, "role": "writer"})).json()
    assert first["position"] == 0
    given = await client.post(credits_url(movie), json={"person_id": refs.de_niro, "role": "actor", "position": 3})
    assert (await given.json())["position"] == 3


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"person_id": 1, "role": "actor", "character": "Again"}, 409, "person_id"),
        ({"person_id": 999, "role": "actor"}, 422, "person_id"),
        ({"person_id": 2, "role": "director", "character": "X"}, 422, "character"),
        ({"person_id": 2, "role": "stunt"}, 422, "role"),
        ({"person_id": 2}, 422, "role"),
        ({"person_id": 2, "role": "actor", "character": "x" * 256}, 422, "character"),
        ({"person_id": 2, "role": "actor", "position": -1}, 422, "position"),
        ({"person_id": 2**63, "role": "actor"}, 422, "person_id"),
    ],
)
async def test_add_errors_name_the_field_and_change_nothing(client, db, movie, body, status, field):
    seq = await last_seq(db)
    await assert_problem(await client.post(credits_url(movie), json=body), status, field)
    assert await db.fetchval("SELECT count(*) FROM credits") == 2
    assert await events(db, seq) == []


async def test_add_to_an_unknown_movie_is_404(client, refs):
    await assert_problem(
        await client.post(f"{MOVIES}/999/credits", json={"person_id": refs.mann, "role": "writer"}), 404
    )


# -- get, patch, delete --------------------------------------------------------------


async def test_a_credit_of_another_movie_or_unknown_is_404(client, movie):
    other = await create_movie(client, "Ronin")
    credit = movie["credits"][0]
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"position": 1}} if method == "patch" else {}
        await assert_problem(await getattr(client, method)(credits_url(other, credit["id"]), **kwargs), 404)
        await assert_problem(await getattr(client, method)(credits_url(movie, 999), **kwargs), 404)


async def test_patch_changes_the_given_fields_and_the_movie(client, db, refs, movie):
    pacino = movie["credits"][0]
    seq = await last_seq(db)
    resp = await client.patch(credits_url(movie, pacino["id"]), json={"character": "Lt. Hanna", "position": 9})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body == pacino | {"character": "Lt. Hanna", "position": 9}
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert [c["id"] for c in doc["credits"]] == [movie["credits"][1]["id"], pacino["id"]]  # positions 7, 9
    assert await events(db, seq) == [("credit.updated", pacino["id"]), ("movie.updated", movie["id"])]


async def test_patch_can_move_a_credit_to_another_person_and_role(client, refs, movie):
    pacino = movie["credits"][0]
    resp = await client.patch(
        credits_url(movie, pacino["id"]), json={"person_id": refs.de_niro, "role": "producer", "character": None}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["person"]["id"], body["role"], body["character"]) == (refs.de_niro, "producer", None)


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"role": "director"}, 422, "character"),  # the actor's character would stay
        ({"person_id": 3, "role": "director", "character": None}, 409, "person_id"),  # Mann directs already
        ({"person_id": 999}, 422, "person_id"),
        ({"role": None}, 422, "role"),
        ({"position": None}, 422, "position"),
        ({"movie_id": 2}, 422, "movie_id"),
    ],
)
async def test_patch_errors_name_the_field_and_change_nothing(client, db, movie, patch, status, field):
    pacino = movie["credits"][0]
    seq = await last_seq(db)
    await assert_problem(await client.patch(credits_url(movie, pacino["id"]), json=patch), status, field)
    assert await (await client.get(credits_url(movie, pacino["id"]))).json() == pacino
    assert await events(db, seq) == []


async def test_patch_that_changes_nothing_writes_no_event(client, db, movie):
    pacino = movie["credits"][0]
    seq = await last_seq(db)
    resp = await client.patch(credits_url(movie, pacino["id"]), json={"character": "Vincent Hanna"})
    assert resp.status == 200
    assert await events(db, seq) == []


async def test_patch_and_delete_honour_the_credits_if_match(client, movie):
    url = credits_url(movie, movie["credits"][0]["id"])
    tag = (await client.get(url)).headers["ETag"]
    await assert_problem(await client.patch(url, json={"position": 3}, headers={"If-Match": '"stale"'}), 412)
    ok = await client.patch(url, json={"position": 3}, headers={"If-Match": tag})
    assert ok.status == 200
    await assert_problem(await client.delete(url, headers={"If-Match": tag}), 412)
    assert (await client.delete(url, headers={"If-Match": ok.headers["ETag"]})).status == 204


async def test_delete_is_204_then_404_and_updates_the_movie(client, db, movie):
    credit = movie["credits"][1]
    seq = await last_seq(db)
    assert (await client.delete(credits_url(movie, credit["id"]))).status == 204
    await assert_problem(await client.get(credits_url(movie, credit["id"])), 404)
    await assert_problem(await client.delete(credits_url(movie, credit["id"])), 404)
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert [c["id"] for c in doc["credits"]] == [movie["credits"][0]["id"]]
    assert await events(db, seq) == [("credit.deleted", credit["id"]), ("movie.updated", movie["id"])]
    assert await db.fetchval("SELECT data FROM outbox WHERE type = 'credit.deleted'") is None


# -- filmography ---------------------------------------------------------------------


def filmography(person_id):
    return f"/api/v1/persons/{person_id}/credits"


async def test_filmography_lists_each_credit_with_its_movies_summary(client, refs, movie):
    ronin = await create_movie(
        client,
        "Ronin",
        release_year=1998,
        genre_ids=[refs.crime],
        credits=[{"person_id": refs.mann, "role": "writer"}, {"person_id": refs.mann, "role": "producer"}],
    )
    resp = await client.get(filmography(refs.mann))
    assert resp.status == 200
    items = json.loads(await resp.text())["items"]
    assert [list(item) for item in items] == [["id", "movie", "role", "character", "position"]] * 3
    assert [(i["movie"]["title"], i["role"]) for i in items] == [
        ("Heat", "director"),
        ("Ronin", "writer"),
        ("Ronin", "producer"),
    ]
    summary = await (await client.get(MOVIES, params={"slug": "ronin-1998"})).json()
    assert items[1]["movie"] == summary["items"][0]
    assert items[1]["id"] == ronin["credits"][0]["id"]
    pacino = await (await client.get(filmography(refs.pacino))).json()
    assert [(i["role"], i["character"]) for i in pacino["items"]] == [("actor", "Vincent Hanna")]


async def test_filmography_sorts_and_pages(client, refs):
    for title, year in [("B", 2001), ("A", None), ("C", 1990)]:
        await create_movie(client, title, release_year=year, credits=[{"person_id": refs.mann, "role": "director"}])
    seen, cursor = [], None
    while True:
        params = {"sort": "-release_year", "limit": "1"} | ({"cursor": cursor} if cursor else {})
        page = await (await client.get(filmography(refs.mann), params=params)).json()
        seen += [i["movie"]["title"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["B", "C", "A"]
    page = await (await client.get(filmography(refs.mann), params={"sort": "title"})).json()
    assert [i["movie"]["title"] for i in page["items"]] == ["A", "B", "C"]


async def test_filmography_of_a_person_without_credits_is_empty_and_of_an_unknown_one_404(client, refs):
    resp = await client.get(filmography(refs.de_niro))
    assert resp.status == 200
    assert await resp.json() == {"items": [], "next_cursor": None}
    await assert_problem(await client.get(filmography(999)), 404)


@pytest.mark.parametrize(
    ("params", "field"), [({"sort": "rating"}, "sort"), ({"limit": "0"}, "limit"), ({"x": "1"}, "x")]
)
async def test_filmography_bad_parameters_are_400(client, refs, params, field):
    await assert_problem(await client.get(filmography(refs.mann), params=params), 400, field)


async def test_filmography_page_is_one_statement_and_has_an_etag(client, refs, movie, statements):
    statements.take()
    first = await client.get(filmography(refs.pacino))
    assert len(statements.take()) == 1
    again = await client.get(filmography(refs.pacino), headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304

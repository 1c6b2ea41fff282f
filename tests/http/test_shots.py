"""Shots' metadata: a movie's list, and each shot's get, patch and delete."""

from __future__ import annotations

import json

import pytest

from tests.http.helpers import assert_problem
from tests.http.movie_support import MOVIES, add_shot, create_movie, events, last_seq

SHOTS = "/api/v1/shots"


@pytest.fixture
async def movie(client, db):
    movie = await create_movie(client, "Heat")
    shots = [await add_shot(db, movie["id"], f"Shot {i}", position) for i, position in enumerate([2, 0, 1, 0])]
    return movie | {"shot_ids": shots}


async def test_a_movies_shots_come_by_position_then_id(client, movie):
    resp = await client.get(f"{MOVIES}/{movie['id']}/shots")
    assert resp.status == 200
    page = json.loads(await resp.text())
    ids = movie["shot_ids"]
    assert [s["id"] for s in page["items"]] == [ids[1], ids[3], ids[2], ids[0]]
    assert list(page["items"][0]) == ["id", "movie_id", "caption", "image_url", "images", "position"]
    assert page["next_cursor"] is None
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert doc["shots"] == page["items"]


@pytest.mark.parametrize(
    ("sort", "order"), [("position", [1, 3, 2, 0]), ("-position", [0, 2, 3, 1]), ("-id", [3, 2, 1, 0])]
)
async def test_shots_page_through_in_every_sort(client, movie, sort, order):
    seen, cursor = [], None
    while True:
        params = {"sort": sort, "limit": "1"} | ({"cursor": cursor} if cursor else {})
        page = await (await client.get(f"{MOVIES}/{movie['id']}/shots", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [movie["shot_ids"][i] for i in order]


async def test_shots_of_a_movie_without_any_are_empty_and_of_an_unknown_one_404(client):
    movie = await create_movie(client, "Ronin")
    assert await (await client.get(f"{MOVIES}/{movie['id']}/shots")).json() == {"items": [], "next_cursor": None}
    await assert_problem(await client.get(f"{MOVIES}/999/shots"), 404)
    await assert_problem(await client.get(f"{MOVIES}/{movie['id']}/shots", params={"sort": "caption"}), 400, "sort")


async def test_get_a_shot_with_etag_and_304(client, movie):
    resp = await client.get(f"{SHOTS}/{movie['shot_ids'][0]}")
    assert await resp.json() == {
        "id": movie["shot_ids"][0],
        "movie_id": movie["id"],
        "caption": "Shot 0",
        "image_url": None,
        "images": None,
        "position": 2,
    }
    again = await client.get(f"{SHOTS}/{movie['shot_ids'][0]}", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    await assert_problem(await client.get(f"{SHOTS}/999"), 404)


async def test_patch_changes_caption_and_position_and_updates_the_movie(client, db, movie):
    shot_id = movie["shot_ids"][0]
    seq = await last_seq(db)
    resp = await client.patch(f"{SHOTS}/{shot_id}", json={"caption": "The diner", "position": 0})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["caption"], body["position"]) == ("The diner", 0)
    assert (await (await client.patch(f"{SHOTS}/{shot_id}", json={"caption": None})).json())["caption"] is None
    assert (await (await client.patch(f"{SHOTS}/{shot_id}", json={"caption": ""})).json())["caption"] == ""
    assert await events(db, seq) == [("shot.updated", shot_id), ("movie.updated", movie["id"])] * 3
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert json.loads(await db.fetchval("SELECT data FROM outbox ORDER BY seq DESC LIMIT 1")) == doc
    assert doc["updated_at"] > movie["updated_at"]


async def test_patch_that_changes_nothing_writes_no_event(client, db, movie):
    seq = await last_seq(db)
    assert (await client.patch(f"{SHOTS}/{movie['shot_ids'][0]}", json={"caption": "Shot 0"})).status == 200
    assert (await client.patch(f"{SHOTS}/{movie['shot_ids'][0]}", json={})).status == 200
    assert await events(db, seq) == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"caption": "x" * 256}, "caption"),
        ({"caption": 5}, "caption"),
        ({"position": -1}, "position"),
        ({"position": None}, "position"),
        ({"image_url": "http://x/y.jpg"}, "image_url"),
        ({"movie_id": 2}, "movie_id"),
    ],
)
async def test_patch_errors_are_422_naming_the_field(client, movie, patch, field):
    await assert_problem(await client.patch(f"{SHOTS}/{movie['shot_ids'][0]}", json=patch), 422, field)


async def test_patch_and_delete_honour_if_match(client, movie):
    url = f"{SHOTS}/{movie['shot_ids'][0]}"
    tag = (await client.get(url)).headers["ETag"]
    await assert_problem(await client.patch(url, json={"position": 5}, headers={"If-Match": '"stale"'}), 412)
    ok = await client.patch(url, json={"position": 5}, headers={"If-Match": tag})
    assert ok.status == 200
    await assert_problem(await client.delete(url, headers={"If-Match": tag}), 412)
    assert (await client.delete(url, headers={"If-Match": ok.headers["ETag"]})).status == 204


async def test_delete_is_204_then_404_and_updates_the_movie(client, db, movie):
    shot_id = movie["shot_ids"][0]
    seq = await last_seq(db)
    assert (await client.delete(f"{SHOTS}/{shot_id}")).status == 204
    await assert_problem(await client.get(f"{SHOTS}/{shot_id}"), 404)
    await assert_problem(await client.delete(f"{SHOTS}/{shot_id}"), 404)
    await assert_problem(await client.patch(f"{SHOTS}/{shot_id}", json={"position": 1}), 404)
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert shot_id not in [s["id"] for s in doc["shots"]]
    assert await events(db, seq) == [("shot.deleted", shot_id), ("movie.updated", movie["id"])]

"""GET /api/v1/search end to end: HTTP -> indexer actor -> the PostgreSQL search table."""

from __future__ import annotations

import asyncio

import pytest

from cinema.db.outbox import NewEvent
from cinema.http.search import SEARCH_PARAMS, search
from cinema.http.spec import route_doc
from tests.http.test_genres import assert_problem
from tests.search.conftest import caught_up, commit

BASE = "/api/v1/search"


@pytest.fixture
async def catalog(client, app, db):
    names = ["Drama", "Dramedy", "Melodrama", "Crime", "Documentary"]
    resp = await client.post("/api/v1/genres/bulk", json=[{"name": name} for name in names])
    assert resp.status == 201
    # Countries have no endpoints yet: their event is written as the country module will write it.
    await commit(db, NewEvent("country.created", 1, '{"id": 1, "code": "DO", "slug": "dominica", "name": "Dominica"}'))
    await caught_up(app, db)
    return {genre["name"]: genre["id"] for genre in (await resp.json())["items"]}


async def test_hits_come_best_first_with_their_fields_and_the_time_taken(client, catalog):
    resp = await client.get(BASE, params={"q": "dram"})
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert list(body) == ["items", "took_ms"]
    assert body["took_ms"] >= 0
    items = body["items"]
    assert {item["title"] for item in items} == {"Drama", "Dramedy"}
    assert items[0] == {
        "type": "genre",
        "id": catalog[items[0]["title"]],
        "slug": items[0]["title"].lower(),
        "title": items[0]["title"],
        "score": items[0]["score"],
    }
    assert items[0]["score"] >= items[1]["score"] > 0


async def test_type_filters_by_kind_comma_separated_or_repeated(client, catalog):
    async def kinds(params):
        resp = await client.get(BASE, params=params)
        assert resp.status == 200, await resp.text()
        return sorted({item["type"] for item in (await resp.json())["items"]})

    assert await kinds({"q": "do"}) == ["country", "genre"]
    assert await kinds({"q": "do", "type": "country"}) == ["country"]
    assert await kinds({"q": "do", "type": "country,genre"}) == ["country", "genre"]
    assert await kinds([("q", "do"), ("type", "movie"), ("type", "genre")]) == ["genre"]


async def test_limit_caps_the_hits(client, catalog):
    body = await (await client.get(BASE, params={"q": "d", "limit": "2"})).json()
    assert len(body["items"]) == 2
    body = await (await client.get(BASE, params={"q": "d"})).json()
    assert len(body["items"]) == 4  # Drama, Dramedy, Documentary, Dominica: no word of Melodrama or Crime starts so


async def test_words_match_in_any_order_and_all_are_needed(client, catalog):
    body = await (await client.get(BASE, params={"q": "melo"})).json()
    assert [item["title"] for item in body["items"]] == ["Melodrama"]
    body = await (await client.get(BASE, params={"q": "crime drama"})).json()
    assert body["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "drama", "limit": "0"}, "limit"),
        ({"q": "drama", "limit": "101"}, "limit"),
        ({"q": "drama", "limit": "ten"}, "limit"),
        ({"q": "drama", "limit": "99999999999999999999"}, "limit"),
        ({"q": "drama", "type": "film"}, "type"),
        ({"q": "drama", "type": "movie,films"}, "type"),
        ({"q": "drama", "sort": "score"}, "sort"),
        ({"q": "ab\x00cd"}, "q"),  # PostgreSQL text cannot hold NUL: this was a 500
        ({"q": "drama", "limit": "²"}, "limit"),  # a digit to str.isdigit, not to int(): this was a 500
    ],
)
async def test_bad_parameters_are_a_400_problem_naming_the_parameter(client, params, field):
    body = await assert_problem(await client.get(BASE, params=params), 400, field)
    assert body["title"] == "Bad request"


async def test_the_route_describes_itself_for_the_openapi_document():
    doc = route_doc(search)
    assert doc is not None
    assert doc.tag == "search"
    assert doc.query == SEARCH_PARAMS
    assert [param.name for param in doc.query] == ["q", "type", "limit"]


@pytest.mark.parametrize(
    ("q", "limit", "kinds"),
    [("ab\x00cd", 20, []), ("", 20, []), ("   ", 5, ["movie"]), ("x" * 201, 20, []), ("drama", 0, []),
     ("drama", 101, []), ("drama", 20, ["film"]), ("\x00", 0, ["nope"])],
)  # fmt: skip
async def test_the_query_string_and_the_websocket_refuse_the_same_searches_naming_the_same_fields(
    client, q, limit, kinds
):
    params = [("q", q), ("limit", str(limit)), *(("type", kind) for kind in kinds)]
    over_http = await assert_problem(await client.get(BASE, params=params), 400)
    async with client.ws_connect(BASE + "/stream") as ws:
        await ws.send_json({"id": "e", "q": q, "limit": limit, "type": kinds})
        over_ws = (await asyncio.wait_for(ws.receive_json(), 5))["problem"]
    assert over_ws["status"] == 422
    assert over_http["errors"] == over_ws["errors"]

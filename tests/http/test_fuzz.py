"""Property-based fuzzing of the HTTP API and the streaming-search websocket (tests/fuzz.py says how).

Beside the schemathesis test, which checks the document's promises with requests shaped by the
schema, these send what no schema describes: any Unicode in paths, query strings and bodies,
any JSON shape, bytes that are not UTF-8, any header bytes; and any frames to the websocket.
The service runs behind its own runner (as `serve` runs it), with a token for writes.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from cinema.app import create_app
from cinema.http.auth import TokenVerifier
from cinema.http.keys import ACTORS
from cinema.http.openapi import build_document
from cinema.http.problems import PROBLEM_JSON
from cinema.http.search_stream import MAX_FRAME, STREAM
from cinema.settings import Settings
from tests.fuzz import (
    assert_actors_alive,
    assert_documented_problem,
    fuzz_settings,
    json_bytes,
    json_values,
    module_settings,
    text,
)
from tests.http.helpers import EdgeServer, raw_request

SECRET = "fuzz-" + "f" * 32
AUTH = {"Authorization": "Bearer " + TokenVerifier(SECRET).issue("fuzz", ttl=3600)}
DOCUMENT = build_document(create_app(Settings()))
OPERATIONS = [
    (method.upper(), path, operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if path != STREAM
]
NAMES = itertools.count()


# One service for the whole module, on the module's event loop: what the fuzzing leaves behind is
# what the last tests (a normal request of each kind) meet.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(database_url, tmp_path_factory):
    """The service with a token required for writes, no rate limits, and one of each resource."""
    settings = module_settings(
        database_url,
        tmp_path_factory.mktemp("fuzz"),
        jwt_secret=SECRET,
        rate_limit=0,
        rate_limit_writes=0,
        rate_limit_search=0,
        rate_limit_uploads=0,
        search_stream_rate=10_000,  # the flood is about frames, not the rate limit (tested on its own)
    )
    async with TestClient(EdgeServer(create_app(settings))) as client:
        for url, body in [
            ("/api/v1/genres", {"name": "Drama"}),
            ("/api/v1/countries", {"code": "FR", "name": "France"}),
            ("/api/v1/persons", {"full_name": "Agnès Varda"}),
            ("/api/v1/movies", {"title": "Cléo", "genre_ids": [1], "country_ids": [1],
                                "credits": [{"person_id": 1, "role": "director"}]}),
        ]:  # fmt: skip
            resp = await client.post(url, json=body, headers=AUTH)
            assert resp.status == 201, await resp.text()
        yield client


async def still_works(client: Any) -> None:
    """A normal request of each kind, after the fuzzing: a write, reads, a search, a websocket query."""
    name = f"Genre {next(NAMES)}"
    created = await client.post("/api/v1/genres", json={"name": name}, headers=AUTH)
    assert created.status == 201, await created.text()
    genre = await created.json()
    assert (await client.get(f"/api/v1/genres/{genre['id']}")).status == 200
    assert (await client.get("/api/v1/movies", params={"genre": "drama"})).status == 200
    assert (await client.get("/api/v1/changes")).status == 200
    assert (await client.get("/api/v1/search", params={"q": "drama"})).status == 200
    async with client.ws_connect(STREAM) as ws:
        await ws.send_json({"id": "after", "q": "drama"})
        while (frame := await asyncio.wait_for(ws.receive_json(), 10))["event"] != "done":
            assert frame["event"] == "hit", frame
    assert_actors_alive(client.app[ACTORS])


def _encoded(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


IDS = st.sampled_from(["1", "2", "0", "01", "9223372036854775807", "9223372036854775808", "1" * 30])
PLAUSIBLE = st.sampled_from(["1", "20", "-1", "drama", "fr", "id", "-id", "title", "actor", "movie,genre", "", " "])


def _request(method: str, path: str, operation: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    params = [p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query"]
    # Mostly the operation's own parameters (a plausible or a hostile value), now and then unknown ones.
    known = st.lists(st.tuples(st.sampled_from(params), st.one_of(PLAUSIBLE, text())), max_size=4) if params else None
    unknown = st.lists(st.tuples(text(huge=False), text(huge=False)), max_size=2)
    query = st.tuples(known, st.one_of(st.just([]), unknown)).map(lambda q: q[0] + q[1]) if params else unknown
    segments = {name[1:-1] for name in path.split("/") if name.startswith("{")}
    path_values = st.fixed_dictionaries({name: st.one_of(IDS, text(huge=False)) for name in segments})
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "query": query,
        "path": path_values,
        "headers": st.fixed_dictionaries(
            {},
            optional={
                "If-Match": st.sampled_from(["*", '"x"', 'W/"x"', ",", '"' + "a" * 5000 + '"']),
                "If-None-Match": st.sampled_from(["*", '"x"', 'W/"x"', ",", "\u00e9"]),
                "X-Request-ID": st.sampled_from(["", "a" * 200, "é", "ok-1"]),
            },
        ),
        "authorization": st.sampled_from([AUTH["Authorization"]] * 4 + ["Bearer nope", "Basic eDp5", "Bearer "]),
    }
    if "requestBody" in operation:
        content = operation["requestBody"]["content"]
        if "application/json" in content:
            keys = st.sampled_from(sorted(_properties(content["application/json"]["schema"])) or ["name"])
            strategies["body"] = st.one_of(json_values(keys).flatmap(json_bytes), st.binary(max_size=64))
            strategies["content_type"] = st.sampled_from(
                ["application/json"] * 6 + ["application/json; charset=latin-1", "text/plain", "application/x+json"]
            )
        else:  # an upload: any bytes, under any of its media types or another
            strategies["body"] = st.binary(max_size=256)
            strategies["content_type"] = st.sampled_from([*sorted(content), "text/plain", "application/json"])
    return st.fixed_dictionaries(strategies)


def _properties(schema: dict[str, Any]) -> set[str]:
    """The field names a body schema mentions (through $refs and array items)."""
    if "$ref" in schema:
        return _properties(DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    names = set(schema.get("properties", {}))
    for sub in [schema.get("items"), *schema.get("properties", {}).values()]:
        if isinstance(sub, dict):
            names |= _properties(sub)
    return names


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
@fuzz_settings(examples=40)
@given(data=st.data())
async def test_any_request_to_any_operation_is_answered_or_refused_as_documented(
    service, method, path, operation, data
):
    request = data.draw(_request(method, path, operation))
    target = path
    for name, value in request["path"].items():
        target = target.replace("{" + name + "}", _encoded(value))
    query = "&".join(f"{_encoded(name)}={_encoded(value)}" for name, value in request["query"])
    url = URL(str(service.make_url("/")).rstrip("/") + target + ("?" + query if query else ""), encoded=True)
    headers = {**request["headers"], "Authorization": request["authorization"]}
    if "body" in request:
        headers["Content-Type"] = request["content_type"]
    body = io.BytesIO(request["body"]) if "body" in request else None  # raw bytes of a megabyte would block
    async with service.session.request(method, url, data=body, headers=headers) as resp:
        body = await resp.read()
        problem = json.loads(body) if resp.content_type == PROBLEM_JSON else body[:200]
        assert_documented_problem(resp.status, resp.content_type, problem, {int(s) for s in operation["responses"]})
        assert resp.headers.get("X-Request-ID"), resp.headers


async def test_after_any_requests_normal_requests_still_work(service):
    await still_works(service)


HEADER_BYTES = st.binary(max_size=40) | st.sampled_from([b"\x00", b"\r", b"\n", b"\xff\xfe", b"a" * 9000, b":"])


@fuzz_settings(examples=150)
@given(
    target=st.sampled_from([b"GET /api/v1/genres", b"GET /api/v1/search?q=dr", b"POST /api/v1/genres", b"GET /nope"]),
    name=HEADER_BYTES,
    value=HEADER_BYTES,
)
async def test_any_header_bytes_are_answered_or_refused_as_a_problem(service, target, name, value):
    request = (
        target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + name + b": " + value + b"\r\n"
        b"Authorization: " + AUTH["Authorization"].encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 17\r\n\r\n" + b'{"name": "Noir"}\n'
    )
    status, headers, body = await raw_request(service, request)
    assert headers.get("x-request-id"), (status, headers)
    problem = json.loads(body) if headers.get("content-type") == PROBLEM_JSON else body[:200]
    assert_documented_problem(status, headers.get("content-type", ""), problem, None)


async def test_after_hostile_headers_normal_requests_still_work(service):
    await still_works(service)


# -- the websocket ---------------------------------------------------------------------

FRAME_KEYS = st.sampled_from(["id", "q", "type", "limit", "live", "cancel"])
FRAME_STATUSES = {400, 409, 422, 503}  # API.md's and the README's error frames
QUERY_FRAMES = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["a", "b"]), json_values(huge=False))},
    optional={
        "q": st.one_of(st.sampled_from(["drama", "dra", "cl"]), json_values(huge=False)),
        "type": st.one_of(st.lists(st.sampled_from(["movie", "genre", "film"]), max_size=3), json_values(huge=False)),
        "limit": st.one_of(st.integers(-5, 200), json_values(huge=False)),
        "live": st.one_of(st.booleans(), json_values(huge=False)),
        "cancel": st.one_of(st.booleans(), json_values(huge=False)),
    },
)
FRAMES = st.one_of(
    st.tuples(st.just("text"), st.one_of(QUERY_FRAMES, json_values(FRAME_KEYS, huge=False)).flatmap(json_bytes)),
    st.tuples(st.just("text"), text(surrogates=False, huge=False).map(str.encode)),
    st.tuples(st.just("binary"), st.binary(max_size=100)),
)


@fuzz_settings(examples=150)
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
async def test_any_frames_are_answered_or_refused_and_the_socket_stays_open(service, frames):
    async with service.ws_connect(STREAM) as ws:
        for kind, data in frames:
            if kind == "binary":
                await ws.send_bytes(data)
            else:
                try:
                    await ws.send_str(data.decode())
                except UnicodeDecodeError:  # not UTF-8: a client cannot send it as text
                    await ws.send_bytes(data)
        await ws.send_json({"id": "fence", "q": "drama"})
        while True:
            message = await asyncio.wait_for(ws.receive(), 10)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            frame = json.loads(message.data)
            if frame["event"] == "error":
                problem = frame["problem"]
                assert problem["status"] in FRAME_STATUSES, frame
                assert_documented_problem(problem["status"], PROBLEM_JSON, problem, None)
                assert problem["instance"] == STREAM
            if (frame["id"], frame["event"]) == ("fence", "done"):
                break


async def test_after_hostile_frames_normal_requests_still_work(service):
    await still_works(service)


async def test_a_frame_over_the_limit_closes_that_socket_only(service):
    async with service.ws_connect(STREAM) as ws:
        await ws.send_str(json.dumps({"id": "big", "q": "x" * MAX_FRAME}))
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await still_works(service)


async def test_a_flood_of_frames_is_answered_frame_by_frame(service):
    """Thousands of frames, good and bad, sent as fast as the socket takes them while the client reads."""
    count = 3000
    bad = [b"{", b"[]", b'{"id": "x"}', b'{"id": "x", "q": "\\u0000"}', b'{"id": "x", "q": "dr", "limit": 0}']
    async with service.ws_connect(STREAM) as ws:

        async def flood() -> None:
            for n in range(count):
                if n % 3:
                    await ws.send_str(bad[n % len(bad)].decode())
                else:
                    await ws.send_str(json.dumps({"id": f"q{n}", "q": "drama"}))

        sender = asyncio.create_task(flood())
        answers = 0
        while answers < count:
            frame = json.loads((await asyncio.wait_for(ws.receive(), 20)).data)
            if frame["event"] in ("done", "error"):
                assert frame["event"] == "done" or frame["problem"]["status"] in (400, 409, 422), frame
                answers += 1
        await sender
    await still_works(service)

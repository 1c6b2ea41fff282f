"""The streaming-search websocket, as API.md describes it: hits then done, replacement, live pushes, errors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct

import aiohttp
import attrs
import orjson
import pytest
from aiohttp import web

from cinema.app import create_app
from cinema.http.keys import LIVE_SEARCH, STREAM_CLIENTS
from cinema.search.documents import KINDS
from cinema.search.postgres import write_documents
from tests.conftest import eventually
from tests.search.conftest import caught_up

STREAM = "/api/v1/search/stream"
GENRES = ["Drama", "Dramedy", "Melodrama", "Western", "Musical", "Documentary"]


@pytest.fixture
async def catalog(client, app, db):
    resp = await client.post("/api/v1/genres/bulk", json=[{"name": name} for name in GENRES])
    assert resp.status == 201
    await caught_up(app, db)
    return {genre["name"]: genre["id"] for genre in (await resp.json())["items"]}


async def frames_until_done(ws, query_id):
    """Every frame received up to and including the `done` of `query_id`."""
    frames = []
    while True:
        frame = await asyncio.wait_for(ws.receive_json(), 5)
        frames.append(frame)
        if frame["id"] == query_id and frame["event"] == "done":
            return frames


async def test_hits_stream_best_first_then_done_with_count_and_time(client, catalog):
    expected = (await (await client.get("/api/v1/search", params={"q": "dram", "limit": "5"})).json())["items"]
    async with client.ws_connect(STREAM) as ws:
        await ws.send_json({"id": "q1", "q": "dram", "type": ["genre"], "limit": 5, "live": False})
        frames = await frames_until_done(ws, "q1")
    assert [f["event"] for f in frames] == ["hit", "hit", "done"]
    assert [f["hit"] for f in frames[:-1]] == expected
    assert [f["hit"]["title"] for f in frames[:-1]] == ["Drama", "Dramedy"]
    assert frames[0]["id"] == "q1"
    assert frames[-1]["count"] == 2
    assert frames[-1]["took_ms"] >= 0


async def test_defaults_and_several_queries_on_one_socket(client, catalog):
    async with client.ws_connect(STREAM) as ws:
        await ws.send_json({"id": "a", "q": "western"})
        await ws.send_json({"id": "b", "q": "musi"})
        frames = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(4)]
    by_id = {(f["id"], f["event"]): f for f in frames}
    assert by_id["a", "hit"]["hit"]["title"] == "Western"
    assert by_id["b", "hit"]["hit"]["title"] == "Musical"
    assert by_id["a", "done"]["count"] == by_id["b", "done"]["count"] == 1


async def test_a_new_query_with_the_same_id_cancels_the_old_one(client, catalog, db):
    async with client.ws_connect(STREAM) as ws:
        # Searches wait on this lock, so the first query is still running when the second arrives.
        async with db.transaction():
            await db.execute("LOCK TABLE search_documents IN ACCESS EXCLUSIVE MODE")
            await ws.send_json({"id": "q", "q": "western"})
            await ws.send_json({"id": "q", "q": "musical"})
            await ws.send_str("not json")  # answered at once: both queries were read before it
            error = await asyncio.wait_for(ws.receive_json(), 5)
            assert (error["id"], error["event"]) == (None, "error")
        frames = await frames_until_done(ws, "q")
        await ws.send_json({"id": "later", "q": "drama"})
        frames += await frames_until_done(ws, "later")
    assert [(f["id"], f["event"], f.get("hit", {}).get("title")) for f in frames] == [
        ("q", "hit", "Musical"),
        ("q", "done", None),
        ("later", "hit", "Drama"),
        ("later", "done", None),
    ]


async def test_a_live_query_pushes_new_matches_until_cancelled(client, catalog, app):
    async with client.ws_connect(STREAM) as ws:
        await ws.send_json({"id": "live", "q": "noir", "type": ["genre"], "live": True})
        assert (await frames_until_done(ws, "live"))[-1]["count"] == 0
        created = await (await client.post("/api/v1/genres", json={"name": "Film Noir"})).json()
        pushed = await asyncio.wait_for(ws.receive_json(), 5)
        assert pushed == {"id": "live", "event": "hit", "hit": pushed["hit"]}
        assert pushed["hit"]["id"] == created["id"]
        assert pushed["hit"]["title"] == "Film Noir"
        # An update is a newly indexed document too.
        await client.patch(f"/api/v1/genres/{created['id']}", json={"name": "Neo-noir"})
        assert (await asyncio.wait_for(ws.receive_json(), 5))["hit"]["title"] == "Neo-noir"
        # Other writes that do not match push nothing; a cancelled query pushes nothing more.
        await ws.send_json({"id": "live", "cancel": True})
        await ws.send_json({"id": "other", "q": "noir", "live": True})
        await frames_until_done(ws, "other")
        await client.post("/api/v1/genres", json={"name": "Noir Comedy"})
        pushed = await asyncio.wait_for(ws.receive_json(), 5)
        assert (pushed["id"], pushed["hit"]["title"]) == ("other", "Noir Comedy")
        await ws.send_json({"id": "fence", "q": "zzz"})
        # Had "live" still been open, its push for the same batch would have come before this.
        assert (await asyncio.wait_for(ws.receive_json(), 5))["id"] == "fence"
    await eventually(lambda: len(app[LIVE_SEARCH]) == 0)


async def test_identical_live_queries_of_many_sockets_are_matched_once_per_batch(client, catalog, app):
    sockets = [await client.ws_connect(STREAM) for _ in range(5)]
    try:
        for ws in sockets:
            await ws.send_json({"id": "l", "q": "horror", "live": True})
            await frames_until_done(ws, "l")
        before = app[LIVE_SEARCH].dispatched
        await client.post("/api/v1/genres", json={"name": "Horror"})
        for ws in sockets:
            assert (await asyncio.wait_for(ws.receive_json(), 5))["hit"]["title"] == "Horror"
        assert app[LIVE_SEARCH].dispatched == before + 1
    finally:
        for ws in sockets:
            await ws.close()


@pytest.mark.parametrize(
    ("frame", "status", "fields"),
    [
        ({"q": "drama"}, 422, ["id"]),
        ({"id": "e", "q": ""}, 422, ["q"]),
        ({"id": "e", "q": "x" * 201}, 422, ["q"]),
        ({"id": "e", "q": "drama", "limit": 0}, 422, ["limit"]),
        ({"id": "e", "q": "drama", "limit": "20"}, 422, ["limit"]),
        ({"id": "e", "q": "drama", "type": ["film"]}, 422, ["type"]),
        ({"id": "e", "q": "drama", "type": "genre"}, 422, ["type"]),
        ({"id": "e", "q": "drama", "live": "yes"}, 422, ["live"]),
        ({"id": "e", "q": "drama", "sort": "title"}, 422, ["sort"]),
        ({"id": "e", "cancel": False}, 422, ["cancel"]),
        ({"id": 7, "q": "drama"}, 422, ["id"]),
        ([1, 2], 422, [""]),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_open(client, catalog, frame, status, fields):
    async with client.ws_connect(STREAM) as ws:
        await ws.send_str(orjson.dumps(frame).decode())
        error = await asyncio.wait_for(ws.receive_json(), 5)
        frame_id = frame.get("id") if isinstance(frame, dict) and isinstance(frame.get("id"), str) else None
        assert (error["id"], error["event"]) == (frame_id, "error")
        problem = error["problem"]
        assert problem["status"] == status
        assert problem["type"] == "/problems/validation-failed"
        assert problem["instance"] == STREAM
        assert [e["field"] for e in problem["errors"]] == fields
        await ws.send_json({"id": "ok", "q": "drama"})
        assert (await frames_until_done(ws, "ok"))[-1]["count"] == 1


async def test_malformed_json_and_binary_frames_are_400_frames(client, catalog):
    async with client.ws_connect(STREAM) as ws:
        await ws.send_str("{not json")
        await ws.send_bytes(b'{"id": "b", "q": "drama"}')
        for _ in range(2):
            error = await asyncio.wait_for(ws.receive_json(), 5)
            assert (error["id"], error["problem"]["status"]) == (None, 400)
            assert error["problem"]["type"] == "/problems/bad-request"
        await ws.send_json({"id": "ok", "q": "drama"})
        assert (await frames_until_done(ws, "ok"))[-1]["count"] == 1


async def test_too_many_open_queries_is_a_409_frame(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, search_stream_queries=2)))
    async with client.ws_connect(STREAM) as ws:
        for query_id in ("a", "b"):
            await ws.send_json({"id": query_id, "q": "drama", "live": True})
            await frames_until_done(ws, query_id)
        await ws.send_json({"id": "c", "q": "drama"})
        error = await asyncio.wait_for(ws.receive_json(), 5)
        assert (error["id"], error["problem"]["status"]) == ("c", 409)
        await ws.send_json({"id": "a", "q": "drama"})  # replacing one of them is fine
        assert (await frames_until_done(ws, "a"))[-1]["event"] == "done"


async def test_a_plain_get_is_a_400_problem(client):
    resp = await client.get(STREAM)
    assert resp.status == 400
    assert (await resp.json())["detail"] == "This endpoint is a websocket: send an Upgrade request."


async def test_the_server_pings_idle_sockets(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, search_stream_heartbeat=0.1)))
    async with client.ws_connect(STREAM, autoping=False) as ws:
        ping = await asyncio.wait_for(ws.receive(), 5)
        assert ping.type.name == "PING"


# -- a client that does not read -------------------------------------------------------


def ws_frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = bytes([128 | len(payload)]) if len(payload) < 126 else bytes([128 | 126]) + struct.pack("!H", len(payload))
    return b"\x81" + length + mask + masked


@pytest.fixture
async def served(settings, db):
    """Run the app as `serve` does: the test server cancels a handler when its client goes away,
    `serve` does not, and a handler must then finish on its own."""
    apps = []

    async def start(app):
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        apps.append(runner)
        return site._server.sockets[0].getsockname()[1]

    yield start
    for runner in apps:
        await runner.cleanup()


async def stuck_client(port):
    """A websocket client on a raw socket with a tiny receive buffer that it never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET {STREAM} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, handshake.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += await loop.sock_recv(sock, 1)
    assert response.startswith(b"HTTP/1.1 101")
    return sock


@pytest.mark.parametrize("cause", ["a frame waits too long", "a live hit finds the buffer full"])
async def test_a_client_that_does_not_read_is_disconnected_not_buffered(served, settings, db, cause):
    live = cause == "a live hit finds the buffer full"
    slow = attrs.evolve(
        settings,
        search_stream_send_timeout=60 if live else 1.0,
        search_stream_buffer=16,
        search_stream_queries=500,
        search_stream_rate=10_000,  # the flood below is what this test is about
    )
    app = create_app(slow)
    port = await served(app)
    # Hits of about 700 bytes: a hundred queries of a hundred hits outgrow any socket buffer.
    long_title = "Drama " + "x" * 250
    movies = [
        KINDS["movie"].document(i, 1, {"slug": f"m{i}", "title": long_title, "original_title": long_title})
        for i in range(1, 101)
    ]
    await write_documents(db, movies)
    await caught_up(app, db)
    loop = asyncio.get_running_loop()
    sock = await stuck_client(port)
    try:
        clients = app[STREAM_CLIENTS]
        await eventually(lambda: len(clients.open) == 1)
        [session] = clients.open
        if live:
            await loop.sock_sendall(sock, ws_frame('{"id": "live", "q": "western", "live": true}'))
            # Its `done` is queued before the flood (live hits wait for it).
            await eventually(lambda: "live" in session.queries and session.queries["live"].done)
        for i in range(150):
            await loop.sock_sendall(sock, ws_frame(orjson.dumps({"id": f"q{i}", "q": "drama", "limit": 100}).decode()))
        # Stuck: the socket buffers are full, the transport has paused above its high-water mark,
        # and the queue has filled up behind it.
        transport = session.request.transport

        def stuck():
            return clients.dropped or (session.full() and transport.get_write_buffer_size() > 64 * 1024)

        await eventually(stuck, timeout=10)
        assert clients.dropped == 0
        # Bad frames now: their error frames wait for room, and so does the reader, which must
        # be released when the client is dropped.
        await loop.sock_sendall(sock, ws_frame("not json") * 200)
        if live:
            async with aiohttp.ClientSession() as http:
                await http.post(f"http://127.0.0.1:{port}/api/v1/genres", json={"name": "Western"})
        await eventually(lambda: clients.dropped == 1, timeout=10)
        await eventually(lambda: not clients.open, timeout=5)
        # The connection is gone: reading drains what had arrived, then ends.
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionResetError):
                while await loop.sock_recv(sock, 1 << 20):
                    pass
    finally:
        sock.close()

"""What one streaming-search client may ask: frames per second, live queries, the search budget,
the frame size; and what junk it may send without hurting the service or other clients."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import attrs
import orjson

from cinema.app import create_app
from cinema.http.keys import INDEXER
from tests.http.test_search_stream import STREAM, frames_until_done


async def errors_of(ws, count):
    frames = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(count)]
    assert all(f["event"] == "error" for f in frames), frames
    return [f["problem"]["status"] for f in frames]


async def test_frames_beyond_the_rate_get_429_frames_and_the_socket_stays_open(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, search_stream_rate=3)))
    async with client.ws_connect(STREAM) as ws:
        for _ in range(5):  # a burst of 3 is allowed (each a 400 here), then the rate applies
            await ws.send_str("not json")
        assert sorted(await errors_of(ws, 5)) == [400, 400, 400, 429, 429]


async def test_live_queries_per_socket_are_limited(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, search_stream_live=1)))
    async with client.ws_connect(STREAM) as ws:
        await ws.send_json({"id": "a", "q": "drama", "live": True})
        await frames_until_done(ws, "a")
        await ws.send_json({"id": "b", "q": "drama", "live": True})
        error = await asyncio.wait_for(ws.receive_json(), 5)
        assert (error["id"], error["problem"]["status"]) == ("b", 409)
        assert "live" in error["problem"]["detail"]
        await ws.send_json({"id": "c", "q": "drama"})  # a query that is not live is fine
        assert (await frames_until_done(ws, "c"))[-1]["event"] == "done"


async def test_websocket_queries_spend_the_search_budget_with_http_searches(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, rate_limit_search=3)))
    assert (await client.get("/api/v1/search", params={"q": "drama"})).status == 200
    async with client.ws_connect(STREAM) as ws:  # opening the socket spends one too
        await ws.send_json({"id": "a", "q": "drama"})
        assert (await frames_until_done(ws, "a"))[-1]["event"] == "done"
        await ws.send_json({"id": "b", "q": "drama"})
        error = await asyncio.wait_for(ws.receive_json(), 5)
        assert (error["id"], error["problem"]["status"]) == ("b", 429)
    assert (await client.get("/api/v1/search", params={"q": "drama"})).status == 429


def junk(rng: random.Random) -> str | bytes:
    """A frame a broken or hostile client might send."""
    choice = rng.randrange(9)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if choice == 1:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 64)))
    values = [None, True, 0, -1, 2**63, 1.5e308, "", "x" * 300, [], {}, ["movie"], {"q": 1}, "\u0000"]
    frame = {
        key: rng.choice(values)
        for key in rng.sample(["id", "q", "type", "limit", "live", "cancel", "extra"], rng.randrange(0, 7))
    }
    if choice == 2:
        return orjson.dumps(rng.choice(values)).decode()
    if choice == 3:
        return orjson.dumps(frame).decode()[:-1]  # truncated
    return orjson.dumps(frame).decode()


async def test_junk_frames_never_stall_the_socket_or_the_indexer(aiohttp_client, settings, db):
    app = create_app(attrs.evolve(settings, search_stream_rate=10_000))
    client = await aiohttp_client(app)
    rng = random.Random(13)
    async with client.ws_connect(STREAM) as ws:
        for _ in range(300):
            frame = junk(rng)
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        # Whatever that did, a good query on the same socket is answered, in order after the junk.
        await ws.send_json({"id": "good", "q": "drama"})
        frames = await frames_until_done(ws, "good")
        assert frames[-1]["event"] == "done"
        assert all(f["event"] in ("error", "hit", "done") for f in frames)
        assert all(f["problem"]["status"] < 500 for f in frames if f["event"] == "error"), frames
    indexer = app[INDEXER]
    assert indexer.stats().restarts == 0
    # An oversized frame closes that socket (1009); the service goes on serving others.
    async with client.ws_connect(STREAM) as ws:
        await ws.send_str("x" * 100_000)
        closed = await asyncio.wait_for(ws.receive(), 5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    async with client.ws_connect(STREAM) as ws:
        await ws.send_json({"id": "after", "q": "drama"})
        assert (await frames_until_done(ws, "after"))[-1]["event"] == "done"

"""Assertions the endpoint tests share."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestServer

from cinema.http.edge import AppRunner
from cinema.http.problems import PROBLEM_JSON


async def assert_problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status (and a field error on `field`); returns its body."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == resp.url.path
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


async def walk(client: Any, url: str, *, cursor: str | None = None, **params: str) -> tuple[list[Any], int]:
    """Every item of a list from `cursor` on (from the start without one), and the number of pages read."""
    items: list[Any] = []
    pages = 0
    while True:
        resp = await client.get(url, params=params | ({"cursor": cursor} if cursor else {}))
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        if "limit" in params:
            assert len(page["items"]) <= int(params["limit"])
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


async def assert_not_modified(client: Any, url: str) -> str:
    """GET `url` carries a strong ETag and answers 304 (empty) when sent it back; returns the tag."""
    tag: str = (await client.get(url)).headers["ETag"]
    assert tag.startswith('"')
    again = await client.get(url, headers={"If-None-Match": tag})
    assert again.status == 304
    assert again.headers["ETag"] == tag
    assert await again.read() == b""
    return tag


class EdgeServer(TestServer):
    """A test server run by cinema's own runner, as `serve` runs it: for what happens before any route."""

    async def _make_runner(self, **kwargs: Any) -> AppRunner:
        return AppRunner(self.app, **kwargs)


async def raw_request(client: Any, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as it is on a connection of its own; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass  # a server that answers and closes before reading everything resets the connection: keep the answer
    finally:
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body

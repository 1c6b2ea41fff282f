"""Cached GET responses: what a read-heavy handler answers with.

    return await cached(request, GENRE, str(genre_id), GetGenre(genre_id))

A hit in the cache actor's in-process layer is answered right here, from the stored bytes and
ETag (the one read-only fast path into the actor's state); anything else asks the actor, which
reads through Redis and the catalog. `X-Cache` says which it was; If-None-Match gets its 304
from the stored ETag either way. With the cache turned off the catalog answers directly.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cinema.actors.cache import Fetch, render
from cinema.cache.kinds import Kind
from cinema.http.io import json_response
from cinema.http.keys import CACHE, CATALOG

HIT = {"X-Cache": "hit"}
MISS = {"X-Cache": "miss"}


async def cached(request: web.Request, kind: Kind, ident: str, query: Any) -> web.Response:
    cache = request.app.get(CACHE)
    if cache is None:
        return json_response(request, render(await request.app[CATALOG].ask(query)))
    entry = cache.layer.get(kind, ident)
    hit = entry is not None
    if entry is None:
        entry, hit = await cache.ask(Fetch(kind, ident, query))
    return json_response(request, entry.body, tag=entry.etag, headers=HIT if hit else MISS)

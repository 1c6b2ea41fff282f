"""Cached GET responses: what a read-heavy handler answers with.

    return await cached(request, GENRES, ident, ListGenres(query))   # any read
    return await cached_entity(request, GENRE, GetGenre)            # one entity by the id in its path

A hit in the cache actor's in-process layer is answered right here, from the stored bytes and
ETag (the one read-only fast path into the actor's state); anything else asks the actor, which
reads through Redis and the catalog. `X-Cache` says which it was; If-None-Match gets its 304
from the stored ETag either way. With the cache turned off the catalog answers directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiohttp import web
from multidict import MultiMapping

from cinema.actors.base import Actor
from cinema.actors.cache import Fetch, render
from cinema.cache.kinds import Kind
from cinema.http.io import json_response, path_id, reject_unknown
from cinema.http.keys import CACHE, CATALOG

T = TypeVar("T")

HIT = {"X-Cache": "hit"}
MISS = {"X-Cache": "miss"}


async def cached_entity(request: web.Request, kind: Kind, query: Callable[[int], Any]) -> web.Response:
    """The entity whose id is in the path; `query(id)`, the catalog's message, is made on a miss only."""
    if request.rel_url.raw_query_string:
        reject_unknown(request.query, ())
    entity_id = path_id(request)
    ident = str(entity_id)
    cache = request.app.get(CACHE)
    if cache is not None and (entry := cache.layer.get(kind, ident)) is not None:
        return json_response(request, entry.body, tag=entry.etag, headers=HIT)
    return await cached(request, kind, ident, query(entity_id))


async def cached(request: web.Request, kind: Kind, ident: str, query: Any, source: Actor | None = None) -> web.Response:
    """`query`'s answer from the cache, asked of `source` (the catalog when None) on a miss."""
    cache = request.app.get(CACHE)
    if cache is None:
        return json_response(request, render(await (source or request.app[CATALOG]).ask(query)))
    entry = cache.layer.get(kind, ident)
    hit = entry is not None
    if entry is None:
        entry, hit = await cache.ask(Fetch(kind, ident, query, source))
    return json_response(request, entry.body, tag=entry.etag, headers=HIT if hit else MISS)


class ParsedQueries(Generic[T]):
    """A list endpoint's query parsing, remembered by raw query string.

    Parsing is a pure function of the query string, and a hit on a hot page should not pay for
    it again: on a cached movie list page it was a third of the cost. Bounded (the oldest goes
    first); a query that fails to parse raises every time and is not remembered.
    """

    def __init__(self, parse: Callable[[MultiMapping[str]], T], size: int = 1024) -> None:
        self._parse = parse
        self._size = size
        self._parsed: dict[str, T] = {}

    def __call__(self, request: web.Request) -> T:
        raw = request.rel_url.raw_query_string
        parsed = self._parsed.get(raw)
        if parsed is None:
            parsed = self._parse(request.query)
            if len(self._parsed) >= self._size:
                del self._parsed[next(iter(self._parsed))]
            self._parsed[raw] = parsed
        return parsed

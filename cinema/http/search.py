"""/api/v1/search: full-text search across movies, persons, genres and countries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
from aiohttp import web
from multidict import MultiMapping

from cinema.actors.indexer import Search
from cinema.cache.kinds import SEARCH
from cinema.convert import NUL_MESSAGE, unstorable
from cinema.errors import BadRequest, FieldError, ValidationFailed
from cinema.http.cached import ParsedQueries, cached
from cinema.http.io import reject_unknown
from cinema.http.keys import INDEXER
from cinema.http.spec import Param, describe
from cinema.models import meta
from cinema.search.backend import SearchQuery
from cinema.search.documents import KINDS

routes = web.RouteTableDef()

BASE = "/api/v1/search"
TAG = "search"
MAX_QUERY = 200
MAX_LIMIT = 100


@attrs.frozen
class SearchHit:
    """A hit; the fields of its kind's summary follow the fixed ones (a movie's release_year, ...)."""

    type: str = attrs.field(metadata=meta(enum=sorted(KINDS)))
    id: int
    slug: str
    title: str
    score: float


@attrs.frozen
class SearchResults:
    items: list[SearchHit]
    # A cached answer (X-Cache: hit) keeps the time of the search that produced it.
    took_ms: float = attrs.field(metadata=meta(description="Milliseconds the search backend took."))


SEARCH_PARAMS = (
    Param(
        "q",
        {"type": "string", "minLength": 1, "maxLength": MAX_QUERY, "pattern": r"\S"},
        "The words to find; each may be a prefix.",
        required=True,
    ),
    Param(
        "type",
        {"type": "string", "enum": sorted(KINDS)},
        "Kinds to search (comma-separated or repeated); all by default.",
        repeated=True,
    ),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20}, "At most this many hits."),
)


def kind_errors(kinds: Sequence[str], field: str) -> list[FieldError]:
    known = ", ".join(sorted(KINDS))
    return [FieldError(field, f"unknown kind {kind!r}; known: {known}") for kind in kinds if kind not in KINDS]


def search_query(q: str, kinds: Iterable[str], limit: int) -> SearchQuery:
    """The one validation of a search, whether it came in a query string or a websocket frame.

    Raises ValidationFailed naming each field (`q`, `type`, `limit`); the query string's
    parser answers it as its 400.
    """
    kinds = tuple(dict.fromkeys(kinds))
    errors = []
    if unstorable(q):
        errors.append(FieldError("q", NUL_MESSAGE))
    elif not q.strip():
        errors.append(FieldError("q", "must contain something to search for"))
    elif len(q) > MAX_QUERY:
        errors.append(FieldError("q", f"must be at most {MAX_QUERY} characters long"))
    if not 1 <= limit <= MAX_LIMIT:
        errors.append(FieldError("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
    errors += kind_errors(kinds, "type")
    if errors:
        raise ValidationFailed("The query has invalid fields.", errors=errors)
    return SearchQuery(q.strip(), kinds, limit)


def parse_search(params: MultiMapping[str]) -> SearchQuery:
    """`q`, `type` and `limit` from a query string; anything off is a 400 naming the parameter."""
    reject_unknown(params, ("q", "type", "limit"))
    raw_limit = params.get("limit", "20")
    limit = int(raw_limit) if raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) < 6 else 0  # not "²"
    kinds = (k for value in params.getall("type", ()) for k in value.split(",") if k.strip())
    try:
        return search_query(params.get("q", ""), kinds, limit)
    except ValidationFailed as exc:
        raise BadRequest("Invalid query parameters.", errors=exc.errors) from None


@routes.get(BASE)
@describe(
    "Search movies, persons, genres and countries",
    tag=TAG,
    response=SearchResults,
    query=SEARCH_PARAMS,
    errors=(400,),
    budget="search",
)
async def search(request: web.Request) -> web.Response:
    ident, message = SEARCHES(request)
    return await cached(request, SEARCH, ident, message, source=request.app[INDEXER])


def _search_query(params: MultiMapping[str]) -> tuple[str, Search]:
    query = parse_search(params)
    return repr(query), Search(query)


SEARCHES = ParsedQueries(_search_query)

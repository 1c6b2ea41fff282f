"""/api/v1/movies: list (with filters), get, create, bulk create, patch, delete; a movie's genres and countries."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from aiohttp import web
from multidict import MultiMapping

from cinema.actors.catalog import (
    CreateMovies,
    DeleteMovie,
    GetMovie,
    LinkMovie,
    ListMovies,
    PatchMovie,
    UnlinkMovie,
)
from cinema.cache.kinds import MOVIE, MOVIES
from cinema.convert import structure, structure_bulk
from cinema.db.movies import MAX_VALUES, SORTS, MovieFilter
from cinema.db.pages import page_ident, page_query
from cinema.errors import BadRequest, FieldError
from cinema.http.auth import ADMIN_SCOPE
from cinema.http.cached import ParsedQueries, cached, cached_entity
from cinema.http.io import if_match, items_body, json_response, path_id, read_json, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import PAGE_PARAMS, ListOf, PageOf, Param, describe, sort_param
from cinema.models import AGE_RATINGS, BIGINT_MAX, ROLES, Movie, MovieCreate, MoviePatch, MovieSummary

routes = web.RouteTableDef()

BASE = "/api/v1/movies"
ONE = BASE + r"/{id:\d+}"
TAG = "movies"

YEAR = {"type": "integer", "minimum": 1888, "maximum": 2100}
SLUG_OR_ID = re.compile(r"^[a-z0-9-]{1,64}$")
SLUG_OR_ID_SCHEMA = {"type": "string", "pattern": SLUG_OR_ID.pattern}
FILTER_PARAMS = (
    Param(
        "genre",
        SLUG_OR_ID_SCHEMA,
        f"A genre's slug or id; repeated (up to {MAX_VALUES}): movies having all of them.",
        repeated=True,
    ),
    Param(
        "country",
        SLUG_OR_ID_SCHEMA,
        f"A country's slug or id; repeated (up to {MAX_VALUES}): movies of all of them.",
        repeated=True,
    ),
    Param(
        "person",
        {"type": "integer", "minimum": 1},
        f"A person's id; repeated (up to {MAX_VALUES}): movies crediting all of them.",
        repeated=True,
    ),
    Param("role", {"type": "string", "enum": list(ROLES)}, "With `person`: credited in this role."),
    Param("year_from", YEAR, "Released in this year or later (movies without a year never match)."),
    Param("year_to", YEAR, "Released in this year or earlier."),
    Param(
        "age_rating",
        {"type": "string", "enum": list(AGE_RATINGS)},
        "Repeated: any of these ratings.",
        repeated=True,
    ),
    Param("slug", {"type": "string", "minLength": 1}, "The movie with this slug."),
)
PAGE_KEYS = ("limit", "sort", "cursor")
LIST_PARAMS = (*(p.name for p in FILTER_PARAMS), *PAGE_KEYS)
SORT_DOC = sort_param(tuple(SORTS))
SORT_NOTE = "An unknown release year or rating sorts as the lowest value."
# A genre or country slug, or an id (a number may be either: it matches both).
IF_MATCH_NOTE = "If-Match takes the movie's ETag."


@routes.get(BASE)
@describe(
    "List movies (summaries: no description, credits or shots)",
    tag=TAG,
    response=PageOf(MovieSummary),
    query=(*FILTER_PARAMS, *PAGE_PARAMS, Param(SORT_DOC.name, SORT_DOC.schema, SORT_NOTE)),
    errors=(400,),
    conditional=True,
)
async def list_movies(request: web.Request) -> web.Response:
    ident, message = LIST_QUERIES(request)
    return await cached(request, MOVIES, ident, message)


def _list_query(params: MultiMapping[str]) -> tuple[str, ListMovies]:
    reject_unknown(params, LIST_PARAMS)
    errors: list[FieldError] = []
    movie_filter = movie_filter_of(params, errors)
    for key in PAGE_KEYS:
        if len(params.getall(key, [])) > 1:
            errors.append(FieldError(key, "must be given at most once"))
    try:
        query = page_query(params, SORTS)
    except BadRequest as exc:
        errors += exc.errors
    if errors:
        raise BadRequest("Invalid query parameters.", errors=errors)
    return f"{page_ident(query)}|{movie_filter!r}", ListMovies(movie_filter, query)


LIST_QUERIES = ParsedQueries(_list_query)


def movie_filter_of(params: MultiMapping[str], errors: list[FieldError]) -> MovieFilter:
    """The list's filters; every problem is added to `errors` (400 naming the parameter)."""

    def values(name: str, check: Callable[[str], bool], message: str) -> tuple[str, ...]:
        given = tuple(dict.fromkeys(params.getall(name, [])))  # repeated values count once
        bad = [v for v in given if not check(v)]
        if bad:
            errors.append(FieldError(name, f"{message} (got {bad[0]!r})"))
        elif len(given) > MAX_VALUES:
            errors.append(FieldError(name, f"at most {MAX_VALUES} different values"))
        return given

    def single(name: str, check: Callable[[str], bool], message: str) -> str | None:
        given = values(name, check, message)
        if len(params.getall(name, [])) > 1:
            errors.append(FieldError(name, "must be given at most once"))
        return given[0] if given else None

    genres = values("genre", _is_slug_or_id, "must be a genre's slug or id")
    countries = values("country", _is_slug_or_id, "must be a country's slug or id")
    persons = values("person", _is_id, "must be a person's id")
    role = single("role", ROLES.__contains__, "must be one of " + ", ".join(ROLES))
    if role is not None and not persons:
        errors.append(FieldError("role", "needs a person parameter"))
    year_from = single("year_from", _is_year, "must be a year from 1888 to 2100")
    year_to = single("year_to", _is_year, "must be a year from 1888 to 2100")
    if not errors and year_from and year_to and int(year_from) > int(year_to):
        errors.append(FieldError("year_from", "must not be after year_to"))
    age_ratings = values("age_rating", AGE_RATINGS.__contains__, "must be one of " + ", ".join(AGE_RATINGS))
    slug = single("slug", bool, "must not be empty")
    if errors:
        return MovieFilter()
    return MovieFilter(
        genres=genres,
        countries=countries,
        persons=tuple(int(p) for p in persons),
        role=role,
        year_from=None if year_from is None else int(year_from),
        year_to=None if year_to is None else int(year_to),
        age_ratings=age_ratings,
        slug=slug,
    )


def _is_slug_or_id(value: str) -> bool:
    return SLUG_OR_ID.match(value) is not None


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and 1 <= int(value) <= BIGINT_MAX


def _is_year(value: str) -> bool:
    return value.isascii() and value.isdigit() and 1888 <= int(value) <= 2100


@routes.get(ONE)
@describe(
    "Get a movie with its genres, countries, credits and shots",
    tag=TAG,
    response=Movie,
    errors=(404,),
    conditional=True,
)
async def get_movie(request: web.Request) -> web.Response:
    return await cached_entity(request, MOVIE, GetMovie)


@routes.post(BASE)
@describe(
    "Create a movie (the slug is made from title and year when omitted: heat-1995)",
    tag=TAG,
    body=MovieCreate,
    response=Movie,
    status=201,
    errors=(409, 422),
)
async def create_movie(request: web.Request) -> web.Response:
    item = structure(await read_json(request), MovieCreate)
    [(movie_id, doc)] = await request.app[CATALOG].ask(CreateMovies((item,)))
    return json_response(request, doc.encode(), status=201, headers={"Location": f"{BASE}/{movie_id}"})


@routes.post(BASE + "/bulk")
@describe(
    "Create up to 1000 movies, all or none",
    tag=TAG,
    body=ListOf(MovieCreate),
    response=ListOf(Movie),
    status=201,
    errors=(409, 422),
    scope=ADMIN_SCOPE,
)
async def create_movies(request: web.Request) -> web.Response:
    items = structure_bulk(await read_json(request), MovieCreate)
    created = await request.app[CATALOG].ask(CreateMovies(tuple(items), bulk=True))
    return json_response(request, items_body(doc for _, doc in created), status=201)


@routes.patch(ONE)
@describe(
    "Change a movie; genre_ids, country_ids and credits, when given, replace the whole set",
    tag=TAG,
    body=MoviePatch,
    response=Movie,
    errors=(404, 409, 412, 422),
    conditional=True,
)
async def patch_movie(request: web.Request) -> web.Response:
    movie_id = path_id(request)
    patch = structure(await read_json(request), MoviePatch)
    doc = await request.app[CATALOG].ask(PatchMovie(movie_id, patch, if_match(request)))
    return json_response(request, doc.encode())


@routes.delete(ONE)
@describe("Delete a movie with its credits and shots", tag=TAG, status=204, errors=(404, 412), conditional=True)
async def delete_movie(request: web.Request) -> web.Response:
    await request.app[CATALOG].ask(DeleteMovie(path_id(request), if_match(request)))
    return web.Response(status=204)


# A movie's genres and countries, one at a time. Both verbs are idempotent and answer 204
# (no body, like every DELETE): the movie's new document is one GET away, and the change
# is announced as `movie.updated`.


async def _change_link(request: web.Request, kind: Literal["genre", "country"], add: bool) -> web.Response:
    message = LinkMovie if add else UnlinkMovie
    target_id = path_id(request, f"{kind}_id")
    await request.app[CATALOG].ask(message(kind, path_id(request), target_id, if_match(request)))
    return web.Response(status=204)


LINK_DOC = {"tag": TAG, "status": 204, "errors": (404, 412), "conditional": True}


@routes.put(ONE + r"/genres/{genre_id:\d+}")
@describe(f"Give the movie this genre (idempotent). {IF_MATCH_NOTE}", **LINK_DOC)
async def add_genre(request: web.Request) -> web.Response:
    return await _change_link(request, "genre", add=True)


@routes.delete(ONE + r"/genres/{genre_id:\d+}")
@describe(f"Take this genre from the movie (idempotent). {IF_MATCH_NOTE}", **LINK_DOC)
async def remove_genre(request: web.Request) -> web.Response:
    return await _change_link(request, "genre", add=False)


@routes.put(ONE + r"/countries/{country_id:\d+}")
@describe(f"Give the movie this country (idempotent). {IF_MATCH_NOTE}", **LINK_DOC)
async def add_country(request: web.Request) -> web.Response:
    return await _change_link(request, "country", add=True)


@routes.delete(ONE + r"/countries/{country_id:\d+}")
@describe(f"Take this country from the movie (idempotent). {IF_MATCH_NOTE}", **LINK_DOC)
async def remove_country(request: web.Request) -> web.Response:
    return await _change_link(request, "country", add=False)

"""/api/v1/genres: list, get, create, bulk create, patch, delete."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from cinema.actors.catalog import CreateGenres, DeleteGenre, GetGenre, ListGenres, PatchGenre
from cinema.cache.kinds import GENRE, GENRES
from cinema.convert import structure, structure_bulk
from cinema.db.genres import SORTS
from cinema.db.pages import page_ident, page_query
from cinema.http.auth import ADMIN_SCOPE
from cinema.http.cached import ParsedQueries, cached, cached_entity
from cinema.http.io import if_match, items_body, json_response, path_id, read_json, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import PAGE_PARAMS, ListOf, PageOf, describe, sort_param
from cinema.models import Genre, GenreCreate, GenrePatch

routes = web.RouteTableDef()

BASE = "/api/v1/genres"
LIST_PARAMS = ("limit", "sort", "cursor")
TAG = "genres"


def _list_query(params: MultiMapping[str]) -> tuple[str, ListGenres]:
    reject_unknown(params, LIST_PARAMS)
    query = page_query(params, SORTS)
    return page_ident(query), ListGenres(query)


LIST_QUERIES = ParsedQueries(_list_query)


@routes.get(BASE)
@describe(
    "List genres",
    tag=TAG,
    response=PageOf(Genre),
    query=(*PAGE_PARAMS, sort_param(tuple(SORTS))),
    errors=(400,),
    conditional=True,
)
async def list_genres(request: web.Request) -> web.Response:
    ident, message = LIST_QUERIES(request)
    return await cached(request, GENRES, ident, message)


@routes.get(BASE + r"/{id:\d+}")
@describe("Get a genre", tag=TAG, response=Genre, errors=(404,), conditional=True)
async def get_genre(request: web.Request) -> web.Response:
    return await cached_entity(request, GENRE, GetGenre)


@routes.post(BASE)
@describe("Create a genre", tag=TAG, body=GenreCreate, response=Genre, status=201, errors=(409, 422))
async def create_genre(request: web.Request) -> web.Response:
    item = structure(await read_json(request), GenreCreate)
    [(genre_id, doc)] = await request.app[CATALOG].ask(CreateGenres((item,)))
    return json_response(request, doc.encode(), status=201, headers={"Location": f"{BASE}/{genre_id}"})


@routes.post(BASE + "/bulk")
@describe(
    "Create up to 1000 genres, all or none",
    tag=TAG,
    body=ListOf(GenreCreate),
    response=ListOf(Genre),
    status=201,
    errors=(409, 422),
    scope=ADMIN_SCOPE,
)
async def create_genres(request: web.Request) -> web.Response:
    items = structure_bulk(await read_json(request), GenreCreate)
    created = await request.app[CATALOG].ask(CreateGenres(tuple(items), bulk=True))
    return json_response(request, items_body(doc for _, doc in created), status=201)


@routes.patch(BASE + r"/{id:\d+}")
@describe("Change a genre", tag=TAG, body=GenrePatch, response=Genre, errors=(404, 409, 412, 422), conditional=True)
async def patch_genre(request: web.Request) -> web.Response:
    genre_id = path_id(request)
    patch = structure(await read_json(request), GenrePatch)
    doc = await request.app[CATALOG].ask(PatchGenre(genre_id, patch, if_match(request)))
    return json_response(request, doc.encode())


@routes.delete(BASE + r"/{id:\d+}")
@describe("Delete a genre (it leaves its movies)", tag=TAG, status=204, errors=(404, 412), conditional=True)
async def delete_genre(request: web.Request) -> web.Response:
    await request.app[CATALOG].ask(DeleteGenre(path_id(request), if_match(request)))
    return web.Response(status=204)

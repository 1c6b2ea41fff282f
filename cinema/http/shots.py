"""A movie's shots (/api/v1/movies/{id}/shots) and each shot's metadata (/api/v1/shots/{id})."""

from __future__ import annotations

from aiohttp import web

from cinema.actors.catalog import DeleteShot, GetShot, ListShots, PatchShot
from cinema.convert import structure
from cinema.db.pages import page_query
from cinema.db.shots import DEFAULT_SORT, SORTS
from cinema.http.io import if_match, json_response, path_id, read_json, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import PAGE_PARAMS, PageOf, Param, describe, sort_param
from cinema.models import Shot, ShotPatch

routes = web.RouteTableDef()

BASE = "/api/v1/shots"
ONE = BASE + r"/{id:\d+}"
TAG = "shots"
SORT_DOC = sort_param(tuple(SORTS))


@routes.get(r"/api/v1/movies/{id:\d+}/shots")
@describe(
    "List a movie's shots",
    tag=TAG,
    response=PageOf(Shot),
    query=(*PAGE_PARAMS, Param("sort", SORT_DOC.schema | {"default": DEFAULT_SORT}, SORT_DOC.description)),
    errors=(400, 404),
    conditional=True,
)
async def list_shots(request: web.Request) -> web.Response:
    reject_unknown(request.query, ("limit", "sort", "cursor"))
    query = page_query(request.query, SORTS, DEFAULT_SORT)
    page = await request.app[CATALOG].ask(ListShots(path_id(request), query))
    return json_response(request, page.render())


@routes.get(ONE)
@describe("Get a shot", tag=TAG, response=Shot, errors=(404,), conditional=True)
async def get_shot(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    doc = await request.app[CATALOG].ask(GetShot(path_id(request)))
    return json_response(request, doc.encode())


@routes.patch(ONE)
@describe(
    "Change a shot's caption or position",
    tag=TAG,
    body=ShotPatch,
    response=Shot,
    errors=(404, 412, 422),
    conditional=True,
)
async def patch_shot(request: web.Request) -> web.Response:
    shot_id = path_id(request)
    patch = structure(await read_json(request), ShotPatch)
    doc = await request.app[CATALOG].ask(PatchShot(shot_id, patch, if_match(request)))
    return json_response(request, doc.encode())


@routes.delete(ONE)
@describe("Delete a shot", tag=TAG, status=204, errors=(404, 412), conditional=True)
async def delete_shot(request: web.Request) -> web.Response:
    await request.app[CATALOG].ask(DeleteShot(path_id(request), if_match(request)))
    return web.Response(status=204)

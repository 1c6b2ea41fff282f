"""A movie's credits one at a time (/api/v1/movies/{id}/credits), and a person's filmography."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from cinema.actors.catalog import AddCredit, DeleteCredit, GetCredit, ListPersonCredits, PatchCredit
from cinema.cache.kinds import FILMOGRAPHY
from cinema.convert import structure
from cinema.db.credits import PERSON_CREDIT_SORTS
from cinema.db.pages import PageQuery, page_ident, page_query
from cinema.http.cached import ParsedQueries, cached
from cinema.http.io import if_match, json_response, path_id, read_json, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import PAGE_PARAMS, PageOf, describe, sort_param
from cinema.models import Credit, CreditCreate, CreditPatch, PersonCredit

routes = web.RouteTableDef()

MOVIE_CREDITS = r"/api/v1/movies/{id:\d+}/credits"
ONE = MOVIE_CREDITS + r"/{credit_id:\d+}"
TAG = "credits"


@routes.post(MOVIE_CREDITS)
@describe(
    "Credit a person in a movie (position: after the last credit when omitted)",
    tag=TAG,
    body=CreditCreate,
    response=Credit,
    status=201,
    errors=(404, 409, 422),
)
async def add_credit(request: web.Request) -> web.Response:
    movie_id = path_id(request)
    credit = structure(await read_json(request), CreditCreate)
    credit_id, doc = await request.app[CATALOG].ask(AddCredit(movie_id, credit))
    location = f"/api/v1/movies/{movie_id}/credits/{credit_id}"
    return json_response(request, doc.encode(), status=201, headers={"Location": location})


@routes.get(ONE)
@describe("Get one of a movie's credits", tag=TAG, response=Credit, errors=(404,), conditional=True)
async def get_credit(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    doc = await request.app[CATALOG].ask(GetCredit(path_id(request), path_id(request, "credit_id")))
    return json_response(request, doc.encode())


@routes.patch(ONE)
@describe(
    "Change a credit (If-Match takes the credit's ETag)",
    tag=TAG,
    body=CreditPatch,
    response=Credit,
    errors=(404, 409, 412, 422),
    conditional=True,
)
async def patch_credit(request: web.Request) -> web.Response:
    movie_id, credit_id = path_id(request), path_id(request, "credit_id")
    patch = structure(await read_json(request), CreditPatch)
    doc = await request.app[CATALOG].ask(PatchCredit(movie_id, credit_id, patch, if_match(request)))
    return json_response(request, doc.encode())


@routes.delete(ONE)
@describe("Remove a credit from its movie", tag=TAG, status=204, errors=(404, 412), conditional=True)
async def delete_credit(request: web.Request) -> web.Response:
    movie_id, credit_id = path_id(request), path_id(request, "credit_id")
    await request.app[CATALOG].ask(DeleteCredit(movie_id, credit_id, if_match(request)))
    return web.Response(status=204)


@routes.get(r"/api/v1/persons/{id:\d+}/credits")
@describe(
    "A person's filmography: each credit with its movie's summary",
    tag=TAG,
    response=PageOf(PersonCredit),
    query=(*PAGE_PARAMS, sort_param(tuple(PERSON_CREDIT_SORTS))),
    errors=(400, 404),
    conditional=True,
)
async def list_person_credits(request: web.Request) -> web.Response:
    page, query = FILMOGRAPHY_QUERIES(request)
    person_id = path_id(request)
    return await cached(request, FILMOGRAPHY, f"{person_id}|{page}", ListPersonCredits(person_id, query))


def _filmography_query(params: MultiMapping[str]) -> tuple[str, PageQuery]:
    reject_unknown(params, ("limit", "sort", "cursor"))
    query = page_query(params, PERSON_CREDIT_SORTS)
    return page_ident(query), query


FILMOGRAPHY_QUERIES = ParsedQueries(_filmography_query)

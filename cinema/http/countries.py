"""/api/v1/countries: list, get, create, bulk create, patch, delete."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from cinema.actors.catalog import CreateCountries, DeleteCountry, GetCountry, ListCountries, PatchCountry
from cinema.cache.kinds import COUNTRIES, COUNTRY
from cinema.convert import structure, structure_bulk
from cinema.db.countries import SORTS
from cinema.db.pages import page_ident, page_query
from cinema.http.auth import ADMIN_SCOPE
from cinema.http.cached import ParsedQueries, cached, cached_entity
from cinema.http.io import if_match, items_body, json_response, path_id, read_json, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import PAGE_PARAMS, ListOf, PageOf, describe, sort_param
from cinema.models import Country, CountryCreate, CountryPatch

routes = web.RouteTableDef()

BASE = "/api/v1/countries"
LIST_PARAMS = ("limit", "sort", "cursor")
TAG = "countries"


def _list_query(params: MultiMapping[str]) -> tuple[str, ListCountries]:
    reject_unknown(params, LIST_PARAMS)
    query = page_query(params, SORTS)
    return page_ident(query), ListCountries(query)


LIST_QUERIES = ParsedQueries(_list_query)


@routes.get(BASE)
@describe(
    "List countries",
    tag=TAG,
    response=PageOf(Country),
    query=(*PAGE_PARAMS, sort_param(tuple(SORTS))),
    errors=(400,),
    conditional=True,
)
async def list_countries(request: web.Request) -> web.Response:
    ident, message = LIST_QUERIES(request)
    return await cached(request, COUNTRIES, ident, message)


@routes.get(BASE + r"/{id:\d+}")
@describe("Get a country", tag=TAG, response=Country, errors=(404,), conditional=True)
async def get_country(request: web.Request) -> web.Response:
    return await cached_entity(request, COUNTRY, GetCountry)


@routes.post(BASE)
@describe(
    "Create a country (code in upper case, e.g. FR: lower case is a 422, not converted)",
    tag=TAG,
    body=CountryCreate,
    response=Country,
    status=201,
    errors=(409, 422),
)
async def create_country(request: web.Request) -> web.Response:
    item = structure(await read_json(request), CountryCreate)
    [(country_id, doc)] = await request.app[CATALOG].ask(CreateCountries((item,)))
    return json_response(request, doc.encode(), status=201, headers={"Location": f"{BASE}/{country_id}"})


@routes.post(BASE + "/bulk")
@describe(
    "Create up to 1000 countries, all or none",
    tag=TAG,
    body=ListOf(CountryCreate),
    response=ListOf(Country),
    status=201,
    errors=(409, 422),
    scope=ADMIN_SCOPE,
)
async def create_countries(request: web.Request) -> web.Response:
    items = structure_bulk(await read_json(request), CountryCreate)
    created = await request.app[CATALOG].ask(CreateCountries(tuple(items), bulk=True))
    return json_response(request, items_body(doc for _, doc in created), status=201)


@routes.patch(BASE + r"/{id:\d+}")
@describe(
    "Change a country (code in upper case)",
    tag=TAG,
    body=CountryPatch,
    response=Country,
    errors=(404, 409, 412, 422),
    conditional=True,
)
async def patch_country(request: web.Request) -> web.Response:
    country_id = path_id(request)
    patch = structure(await read_json(request), CountryPatch)
    doc = await request.app[CATALOG].ask(PatchCountry(country_id, patch, if_match(request)))
    return json_response(request, doc.encode())


@routes.delete(BASE + r"/{id:\d+}")
@describe("Delete a country (it leaves its movies)", tag=TAG, status=204, errors=(404, 412), conditional=True)
async def delete_country(request: web.Request) -> web.Response:
    await request.app[CATALOG].ask(DeleteCountry(path_id(request), if_match(request)))
    return web.Response(status=204)

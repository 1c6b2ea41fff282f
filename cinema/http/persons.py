"""/api/v1/persons: list, get, create, bulk create, patch, delete.

`photo_url` is read-only here (the photo upload sets it): a body that sends it is a 422 on
that field. Filmographies (`/persons/{id}/credits`) live with the credits.
"""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from cinema.actors.catalog import CreatePersons, DeletePerson, GetPerson, ListPersons, PatchPerson
from cinema.cache.kinds import PERSON, PERSONS
from cinema.convert import structure, structure_bulk
from cinema.db.pages import page_ident, page_query
from cinema.db.persons import SORTS
from cinema.http.auth import ADMIN_SCOPE
from cinema.http.cached import ParsedQueries, cached, cached_entity
from cinema.http.io import if_match, items_body, json_response, path_id, read_json, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import PAGE_PARAMS, ListOf, PageOf, describe, sort_param
from cinema.models import Person, PersonCreate, PersonPatch

routes = web.RouteTableDef()

BASE = "/api/v1/persons"
LIST_PARAMS = ("limit", "sort", "cursor")
TAG = "persons"


def _list_query(params: MultiMapping[str]) -> tuple[str, ListPersons]:
    reject_unknown(params, LIST_PARAMS)
    query = page_query(params, SORTS)
    return page_ident(query), ListPersons(query)


LIST_QUERIES = ParsedQueries(_list_query)


@routes.get(BASE)
@describe(
    "List persons (without a birth date they sort last by birth_date, first by -birth_date)",
    tag=TAG,
    response=PageOf(Person),
    query=(*PAGE_PARAMS, sort_param(tuple(SORTS))),
    errors=(400,),
    conditional=True,
)
async def list_persons(request: web.Request) -> web.Response:
    ident, message = LIST_QUERIES(request)
    return await cached(request, PERSONS, ident, message)


@routes.get(BASE + r"/{id:\d+}")
@describe("Get a person", tag=TAG, response=Person, errors=(404,), conditional=True)
async def get_person(request: web.Request) -> web.Response:
    return await cached_entity(request, PERSON, GetPerson)


@routes.post(BASE)
@describe(
    "Create a person (photo_url is read-only: upload a photo instead)",
    tag=TAG,
    body=PersonCreate,
    response=Person,
    status=201,
    errors=(409, 422),
)
async def create_person(request: web.Request) -> web.Response:
    item = structure(await read_json(request), PersonCreate)
    [(person_id, doc)] = await request.app[CATALOG].ask(CreatePersons((item,)))
    return json_response(request, doc.encode(), status=201, headers={"Location": f"{BASE}/{person_id}"})


@routes.post(BASE + "/bulk")
@describe(
    "Create up to 1000 persons, all or none",
    tag=TAG,
    body=ListOf(PersonCreate),
    response=ListOf(Person),
    status=201,
    errors=(409, 422),
    scope=ADMIN_SCOPE,
)
async def create_persons(request: web.Request) -> web.Response:
    items = structure_bulk(await read_json(request), PersonCreate)
    created = await request.app[CATALOG].ask(CreatePersons(tuple(items), bulk=True))
    return json_response(request, items_body(doc for _, doc in created), status=201)


@routes.patch(BASE + r"/{id:\d+}")
@describe(
    "Change a person (death_date is checked against the stored birth_date and the other way round)",
    tag=TAG,
    body=PersonPatch,
    response=Person,
    errors=(404, 409, 412, 422),
    conditional=True,
)
async def patch_person(request: web.Request) -> web.Response:
    person_id = path_id(request)
    patch = structure(await read_json(request), PersonPatch)
    doc = await request.app[CATALOG].ask(PatchPerson(person_id, patch, if_match(request)))
    return json_response(request, doc.encode())


@routes.delete(BASE + r"/{id:\d+}")
@describe(
    "Delete a person who has no credits (409 saying how many otherwise)",
    tag=TAG,
    status=204,
    errors=(404, 409, 412),
    conditional=True,
)
async def delete_person(request: web.Request) -> web.Response:
    await request.app[CATALOG].ask(DeletePerson(path_id(request), if_match(request)))
    return web.Response(status=204)

"""The OpenAPI document, the docs viewer and the problem-type pages."""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Literal
from urllib.parse import urljoin, urlsplit

import attrs
import jsonschema_rs
import pytest
from aiohttp import web
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from cinema.app import create_app
from cinema.errors import DomainError
from cinema.http import problems
from cinema.http.openapi import DOCS_PATH, OPENAPI_PATH, UndocumentedRoute, build_document
from cinema.http.problems import PROBLEM_JSON, PROBLEM_TYPES
from cinema.http.spec import ListOf, PageOf, Param, describe
from cinema.models import UNSET, Unset, meta


@pytest.fixture
def document(settings):
    return build_document(create_app(settings))


def resolve(document, ref):
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# -- the document ---------------------------------------------------------------------


async def test_document_is_served_with_etag_and_304(client):
    resp = await client.get(OPENAPI_PATH)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert resp.headers["X-Request-ID"]
    body = await resp.json()
    assert body["openapi"] == "3.1.0"
    again = await client.get(OPENAPI_PATH, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    assert again.headers["ETag"] == resp.headers["ETag"]


def test_document_is_valid_openapi_3_1(document):
    # schemathesis ships the OAS 3.1 schema (the document's structure) and jsonschema-rs, its dependency,
    # the JSON Schema 2020-12 meta-schema (each schema in it). openapi-spec-validator is not among them.
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    for node in walk(document):
        if "$ref" in node:
            assert resolve(document, node["$ref"]) is not None


def test_every_route_is_documented_once_with_a_unique_operation_id(settings, document):
    app = create_app(settings)
    served = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.method not in ("HEAD", "*")  # "*": the edge's route for unmatched requests
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == served
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert "list_genres" in ids


async def test_an_undocumented_api_route_stops_start_up(settings):
    app = create_app(settings)

    async def secret(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/api/v1/secret", secret)
    with pytest.raises(UndocumentedRoute, match=r"GET /api/v1/secret \(.*secret\)"):
        await web.AppRunner(app).setup()  # before the database or any actor is started


def test_every_operation_documents_its_errors_and_request_id(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert {"400", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                response = resolve(document, response["$ref"]) if "$ref" in response else response
                assert "X-Request-ID" in response["headers"], (method, path, status)
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == [PROBLEM_JSON]
            unavailable = resolve(document, responses["503"]["$ref"])
            assert "Retry-After" in unavailable["headers"]


def test_genre_operations(document):
    genres, genre = document["paths"]["/api/v1/genres"], document["paths"]["/api/v1/genres/{id}"]
    listed = genres["get"]
    assert {p.get("name") for p in listed["parameters"]} >= {"limit", "cursor", "sort"}
    assert {"$ref": "#/components/parameters/IfNoneMatch"} in listed["parameters"]
    assert "304" in listed["responses"]
    assert listed["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GenrePage"
    }

    created = genres["post"]
    assert set(created["responses"]) == {"201", "400", "401", "403", "409", "413", "415", "422", "429", "503"}
    assert created["security"] == [{"bearerAuth": ["catalog:write"]}]
    assert "security" not in listed
    assert "Location" in created["responses"]["201"]["headers"]
    assert "ETag" in created["responses"]["201"]["headers"]

    patched = genre["patch"]
    assert patched["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    }
    assert {"$ref": "#/components/parameters/IfMatch"} in patched["parameters"]
    assert {"404", "412", "422"} <= set(patched["responses"])
    assert "304" not in patched["responses"]
    assert "200" in patched["responses"]

    deleted = genre["delete"]
    assert "content" not in deleted["responses"]["204"]

    bulk = document["paths"]["/api/v1/genres/bulk"]["post"]
    assert bulk["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/GenreCreate"},
        "minItems": 1,
        "maxItems": 1000,
    }
    assert "Location" not in bulk["responses"]["201"]["headers"]
    assert bulk["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GenreList"
    }


def test_genre_schemas_come_from_the_models(document):
    schemas = document["components"]["schemas"]
    assert schemas["Genre"]["required"] == ["id", "slug", "name"]
    assert "additionalProperties" not in schemas["Genre"]
    create = schemas["GenreCreate"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["name"]
    assert create["properties"]["name"] == {"type": "string", "minLength": 2, "maxLength": 64}
    assert create["properties"]["slug"]["type"] == ["string", "null"]
    assert create["properties"]["slug"]["pattern"] == "^[a-z0-9-]+$"
    patch = schemas["GenrePatch"]
    assert "required" not in patch
    assert patch["properties"]["slug"]["type"] == "string"  # optional, but null is not a slug
    page = schemas["GenrePage"]
    assert page["required"] == ["items", "next_cursor"]
    assert page["properties"]["next_cursor"]["type"] == ["string", "null"]


# -- type mapping ---------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Inner:
    """A nested thing."""

    n: int


@attrs.frozen
class Everything:
    count: int
    ratio: float
    flag: bool
    day: dt.date
    moment: dt.datetime
    tags: list[str] = attrs.field(metadata=meta(maxItems=3, items={"minLength": 1}))
    pair: tuple[int, str]
    many: tuple[Inner, ...]
    inner: Inner
    maybe_inner: Inner | None
    colour: Colour
    rating: Literal["G", "PG"] | None = None
    note: str | Unset | None = UNSET
    size: int | Unset = attrs.field(default=UNSET, metadata=meta(minimum=1))
    labels: dict[str, int] = attrs.field(factory=dict)


def app_with(**describe_fields):
    app = web.Application()

    @describe("Try", tag="test", **describe_fields)
    async def try_it(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post(r"/api/things/{id:\d+}/{slug:[a-z]+}/{name}", try_it)
    return app


def test_attrs_types_map_to_json_schema():
    document = build_document(app_with(body=Everything, response=PageOf(Everything)))
    schemas = document["components"]["schemas"]
    props = schemas["Everything"]["properties"]
    assert props["count"] == {"type": "integer", "format": "int64"}
    assert props["ratio"] == {"type": "number"}
    assert props["flag"] == {"type": "boolean"}
    assert props["day"] == {"type": "string", "format": "date"}
    assert props["moment"] == {"type": "string", "format": "date-time"}
    assert props["tags"] == {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 3}
    assert props["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "integer", "format": "int64"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["many"] == {"type": "array", "items": {"$ref": "#/components/schemas/Inner"}}
    assert props["inner"] == {"$ref": "#/components/schemas/Inner"}
    assert props["maybe_inner"] == {"anyOf": [{"$ref": "#/components/schemas/Inner"}, {"type": "null"}]}
    assert props["colour"] == {"enum": ["red", "blue"]}
    assert props["rating"] == {"anyOf": [{"enum": ["G", "PG"]}, {"type": "null"}], "default": None}
    assert props["note"] == {"type": ["string", "null"]}
    assert props["size"] == {"type": "integer", "format": "int64", "minimum": 1}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "integer", "format": "int64"}}
    assert schemas["Everything"]["required"] == [
        "count",
        "ratio",
        "flag",
        "day",
        "moment",
        "tags",
        "pair",
        "many",
        "inner",
        "maybe_inner",
        "colour",
    ]
    # A body class and the classes nested in it reject unknown keys, as cinema.convert does.
    assert schemas["Everything"]["additionalProperties"] is False
    assert schemas["Inner"]["additionalProperties"] is False
    assert schemas["Inner"]["description"] == "A nested thing."
    for schema in schemas.values():
        assert jsonschema_rs.meta.is_valid(schema)


def test_nullable_enum_admits_null():
    @attrs.frozen
    class Rated:
        rating: str | None = attrs.field(default=None, metadata=meta(enum=["G", "PG"]))

    props = build_document(app_with(body=Rated))["components"]["schemas"]["Rated"]["properties"]
    assert props["rating"] == {"type": ["string", "null"], "enum": ["G", "PG", None], "default": None}
    validator = jsonschema_rs.validator_for(props["rating"])
    assert validator.is_valid(None)
    assert validator.is_valid("PG")
    assert not validator.is_valid("R")


def test_path_parameters_are_typed_from_the_route_patterns():
    op = build_document(app_with(response=Inner))["paths"]["/api/things/{id}/{slug}/{name}"]["post"]
    assert [(p["name"], p["schema"]) for p in op["parameters"]] == [
        ("id", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}),
        ("slug", {"type": "string", "pattern": "^(?:[a-z]+)$"}),
        ("name", {"type": "string", "minLength": 1}),
    ]
    assert "404" in op["responses"]


def test_repeated_query_parameters_are_arrays():
    param = Param("genre", {"type": "string"}, "Genre slug or id.", repeated=True)
    op = build_document(app_with(response=ListOf(Inner), query=(param,)))["paths"]["/api/things/{id}/{slug}/{name}"]
    described = op["post"]["parameters"][-1]
    assert described == {
        "name": "genre",
        "in": "query",
        "schema": {"type": "array", "items": {"type": "string"}},
        "description": "Genre slug or id.",
    }


def _another_inner():
    @attrs.frozen
    class Inner:
        other: str

    return Inner


AnotherInner = _another_inner()


@attrs.frozen
class Both:
    a: Inner
    b: AnotherInner


def test_two_classes_with_one_name_are_refused():
    with pytest.raises(ValueError, match="Two classes named Inner"):
        build_document(app_with(body=Both))


def test_a_status_without_a_problem_type_is_refused():
    with pytest.raises(ValueError, match="Status 418"):
        build_document(app_with(response=Inner, errors=(418,)))


# -- problem types --------------------------------------------------------------------


def domain_errors(cls=DomainError):
    for sub in cls.__subclasses__():
        yield sub
        yield from domain_errors(sub)


def test_every_problem_the_service_answers_with_is_a_documented_type():
    for error in [DomainError, *domain_errors()]:
        kind = PROBLEM_TYPES[error.slug]
        assert (kind.status, kind.title) == (error.status, error.title), error
    for status, slug in problems._HTTP_SLUGS.items():
        assert PROBLEM_TYPES[slug].status == status


def test_problem_schema_lists_every_type(document):
    problem = document["components"]["schemas"]["Problem"]
    listed = {t["type"] for t in problem["x-problem-types"]}
    assert listed == {f"/problems/{slug}" for slug in PROBLEM_TYPES}
    assert set(problem["properties"]["type"]["enum"]) == listed
    for slug in PROBLEM_TYPES:
        assert f"/problems/{slug}" in problem["description"]
    not_found = document["components"]["responses"]["NotFound"]
    narrowed = not_found["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"]
    assert narrowed == {"type": {"enum": ["/problems/not-found"]}, "status": {"const": 404}}


async def test_problem_type_uris_resolve(client):
    resp = await client.get("/api/v1/genres/999")
    problem = await resp.json()
    described = await client.get(problem["type"])
    assert described.status == 200
    assert await described.json() == {
        "slug": "not-found",
        "status": 404,
        "title": "Not found",
        "meaning": PROBLEM_TYPES["not-found"].meaning,
    }
    for slug in PROBLEM_TYPES:
        assert (await client.get(f"/problems/{slug}")).status == 200


async def test_unknown_problem_type_is_404(client):
    resp = await client.get("/problems/no-such-thing")
    assert resp.status == 404
    assert resp.content_type == PROBLEM_JSON


async def test_framework_errors_use_the_types_title(client):
    body = await (await client.get("/nowhere")).json()
    assert (body["type"], body["title"]) == ("/problems/not-found", "Not found")
    resp = await client.put("/api/v1/genres")
    body = await resp.json()
    assert (resp.status, body["title"]) == (405, "Method not allowed")
    assert "GET" in resp.headers["Allow"]


async def test_problem_instance_is_a_uri_reference_even_for_non_ascii_paths(client):
    resp = await client.get("/api/v1/genres/%C3%A27 x")
    body = await resp.json()
    assert body["instance"] == "/api/v1/genres/%C3%A27%20x"
    assert body["detail"] == "No resource at /api/v1/genres/â7 x."


# -- the viewer -----------------------------------------------------------------------


async def test_docs_page_uses_only_local_assets_that_are_served(client):
    resp = await client.get(DOCS_PATH)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)
    assert len(refs) >= 3
    assert not re.search(r"https?://|//[a-z]", page)
    for ref in refs:
        asset = await client.get(urlsplit(urljoin(str(resp.url), ref)).path)
        assert asset.status == 200, ref
        assert asset.headers["ETag"]
        assert len(await asset.read()) > 0
    script = await (await client.get(DOCS_PATH + "/init.js")).text()
    assert 'url: "openapi.json"' in script  # relative to /api/docs: /api/openapi.json
    assert "validatorUrl: null" in script  # no call to the online validator


async def test_docs_assets_have_their_types_and_revalidate(client):
    resp = await client.get(DOCS_PATH + "/swagger-ui-bundle.js")
    assert resp.content_type == "text/javascript"
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    assert (await client.get(DOCS_PATH + "/swagger-ui.css")).content_type == "text/css"
    again = await client.get(DOCS_PATH + "/swagger-ui-bundle.js", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


@pytest.mark.parametrize("name", ["index.html", "nothing.js", "..", "swagger-initializer.js"])
async def test_unknown_docs_asset_is_404(client, name):
    resp = await client.get(f"{DOCS_PATH}/{name}")
    assert resp.status == 404
    assert resp.content_type == PROBLEM_JSON


async def test_health_endpoints_are_documented(client, document):
    live = document["paths"]["/health/live"]["get"]
    assert live["tags"] == ["health"]
    assert "description" in live
    schema = live["responses"]["200"]["content"]["application/json"]["schema"]
    assert jsonschema_rs.validator_for(schema).is_valid(await (await client.get("/health/live")).json())
    ready = document["paths"]["/health/ready"]["get"]
    schema = ready["responses"]["200"]["content"]["application/json"]["schema"]
    assert jsonschema_rs.validator_for(schema).is_valid(await (await client.get("/health/ready")).json())


def test_each_path_is_one_resource_whatever_the_order_of_its_routes(settings):
    app = create_app(settings)
    paths = [resource.canonical for resource in app.router.resources()]
    assert len(paths) == len(set(paths))
    assert paths[-1] == "/{path}"  # the edge's route for unmatched requests comes last

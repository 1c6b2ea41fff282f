"""The API describing itself: `GET /api/openapi.json`, the `GET /api/docs` viewer, `GET /problems/{slug}`.

The OpenAPI 3.1 document is generated once at start-up from the application's route
table and the `RouteDoc` each handler carries (cinema/http/spec.py). Body schemas come
from the attrs classes those name: field types give the JSON types, and the JSON Schema
keywords kept in field metadata (the same ones `cinema.convert` enforces) give the
constraints. A route under /api/ without a RouteDoc stops start-up, so no endpoint can
be served undocumented.

The viewer is Swagger UI, served from the `swagger_ui_bundle` package itself: the page
loads nothing from the internet.
"""

from __future__ import annotations

import collections.abc
import datetime as dt
import enum
import inspect
import re
import types
import typing
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import cache
from http import HTTPStatus
from typing import Any

import attrs
import orjson
from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

import cinema
from cinema.convert import MAX_BULK
from cinema.errors import PROBLEM_BASE, NotFound
from cinema.etags import Tagged
from cinema.http.auth import ADMIN_SCOPE, WRITE_SCOPE, required_scope
from cinema.http.edge import REQUEST_ID
from cinema.http.io import JSON, MAX_ID, tagged_response
from cinema.http.keys import OPENAPI
from cinema.http.problems import PROBLEM_JSON, PROBLEM_TYPES, ProblemType
from cinema.http.spec import ListOf, PageOf, Param, Raw, RouteDoc, describe, route_doc
from cinema.models import Unset

routes = web.RouteTableDef()

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
TAG = "docs"

INFO_DESCRIPTION = """\
The cinema catalog: movies, people, genres and countries.

- Bodies are JSON (UTF-8); ids are integers; timestamps are RFC 3339 in UTC. Text may hold any character
  but U+0000 (NUL), and integers fit in 64 bits: other values are a 422.
- Lists are keyset-paginated: `limit` (1..100), `sort` (`field`, or `-field` to descend) and the opaque
  `cursor` taken from the previous page's `next_cursor` (`null` on the last page).
- Reads return a strong `ETag` (`If-None-Match` gives 304); `PATCH` and `DELETE` honour `If-Match` (412 when
  the resource changed since it was read).
- `POST .../bulk` creates up to 1000 items in one transaction, all or none.
- Errors are RFC 9457 problem details (`application/problem+json`); each `type` URI is described at its own
  address and in the `Problem` schema below.
- Every response carries `X-Request-ID`, echoed from the request when given: quote it when reporting a problem.
- Images (posters, photos, shots) are uploaded as the raw body or a `multipart/form-data` `file`; the answer is
  202 with the upload to follow. Resources show the original's URL and `images`, WebP renditions by size:
  posters w185, w342, w780; photos w185, h632; shots w300, w1280. Image URLs never change (their keys are
  content-addressed) and may be cached forever.
"""


class UndocumentedRoute(RuntimeError):
    """An /api/ route whose handler has no `@describe(...)`: the service refuses to start."""


def build_document(app: web.Application) -> dict[str, Any]:
    return _Builder(app.router.routes()).document()


async def document_ctx(app: web.Application) -> AsyncIterator[None]:
    """Generate the document once the route table is complete; a missing RouteDoc fails start-up here."""
    app[OPENAPI] = Tagged.of(orjson.dumps(build_document(app)))
    yield


# -- the generator --------------------------------------------------------------------

_SCALARS: dict[Any, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer", "format": "int64"},  # cinema.convert refuses wider integers
    float: {"type": "number"},
    str: {"type": "string"},
    dt.date: {"type": "string", "format": "date"},
    dt.datetime: {"type": "string", "format": "date-time"},
    type(None): {"type": "null"},
    Any: {},
}
_SEQUENCES = (list, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_READS = frozenset({"GET", "HEAD"})
_DEFAULT_SEGMENT = "[^{}/]+"  # aiohttp's pattern for a `{name}` without a regex


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


class _Builder:
    def __init__(self, routes: Iterable[web.AbstractRoute]) -> None:
        self.routes = [route for route in routes if route.method != "HEAD"]  # aiohttp adds HEAD to every GET
        self.schemas: dict[str, dict[str, Any]] = {}
        self.classes: dict[str, type] = {}
        self.problem_responses: dict[str, dict[str, Any]] = {}
        self.operation_ids: set[str] = set()
        self.tags: dict[str, None] = {}
        self.closed: set[type] = set()

    def document(self) -> dict[str, Any]:
        documented = [(route, *_path(route), self._doc(route)) for route in self.routes]
        self.closed = _request_classes([doc for *_, doc in documented if doc is not None])
        paths: dict[str, dict[str, Any]] = {}
        for route, path, params, doc in documented:
            if doc is not None:
                paths.setdefault(path, {})[route.method.lower()] = self._operation(route, doc, params)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "cinema",
                "version": cinema.__version__,
                "description": INFO_DESCRIPTION,
                "license": {"name": "MIT", "identifier": "MIT"},
            },
            "tags": [{"name": tag} for tag in self.tags],
            "paths": paths,
            "components": {
                "schemas": {"Problem": _problem_schema(), **dict(sorted(self.schemas.items()))},
                "responses": {"NotModified": _not_modified(), **dict(sorted(self.problem_responses.items()))},
                "parameters": _PARAMETERS,
                "headers": _HEADERS,
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": f"A JWT with `exp` and the scope the operation names (`{WRITE_SCOPE}` for "
                        f"writes, `{ADMIN_SCOPE}` for bulk writes, which also grants `{WRITE_SCOPE}`) in `scope`, "
                        "`scp` or `permissions`: HS256 signed with CINEMA_JWT_SECRET, or RS256/ES256 from "
                        "CINEMA_JWT_PUBLIC_KEY or an identity provider's JWKS. Needed when the service has a key.",
                    }
                },
            },
        }

    def _doc(self, route: web.AbstractRoute) -> RouteDoc | None:
        doc = route_doc(route.handler)
        path = route.resource.canonical if route.resource is not None else ""
        if doc is None and path.startswith("/api/"):
            name = getattr(route.handler, "__qualname__", repr(route.handler))
            raise UndocumentedRoute(f"{route.method} {path} ({name}) has no @describe(...): document it")
        return doc

    # -- operations -------------------------------------------------------------------

    def _operation(self, route: web.AbstractRoute, doc: RouteDoc, path_params: list[dict[str, Any]]) -> dict[str, Any]:
        operation_id = route.handler.__name__
        if operation_id in self.operation_ids:
            raise ValueError(f"Two handlers are named {operation_id}; operation ids must be unique")
        self.operation_ids.add(operation_id)
        self.tags[doc.tag] = None
        reads = route.method in _READS
        path = route.resource.canonical if route.resource is not None else ""
        scope = required_scope(route.method, path, doc.scope)  # what the edge requires
        writes = scope is not None
        operation: dict[str, Any] = {"tags": [doc.tag], "summary": doc.summary, "operationId": operation_id}
        description = inspect.getdoc(route.handler)
        if description:
            operation["description"] = description
        parameters = [*path_params, *(_query_param(p) for p in doc.query)]
        if doc.conditional:
            parameters.append(_ref("parameters", "IfNoneMatch" if reads else "IfMatch"))
        if parameters:
            operation["parameters"] = parameters
        if isinstance(doc.body, Raw):
            operation["requestBody"] = {"required": True, "content": doc.body.content()}
        elif doc.body is not None:
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": self._body(doc.body)}}}
        responses = {str(doc.status): self._success(doc)}
        if doc.conditional and reads:
            responses["304"] = _ref("responses", "NotModified")
        if writes:
            operation["security"] = [{"bearerAuth": [scope]}]
        for status in _problem_statuses(doc, reads, writes, bool(path_params)):
            responses[str(status)] = self._problem_response(status)
        operation["responses"] = responses
        return operation

    def _success(self, doc: RouteDoc) -> dict[str, Any]:
        headers: dict[str, Any] = {REQUEST_ID: _ref("headers", "RequestId"), **_RATE_LIMIT_HEADERS}
        response: dict[str, Any] = {"description": HTTPStatus(doc.status).phrase, "headers": headers}
        if doc.response is None:
            return response
        # json_response tags every catalog document; a Raw body is tagged when the route is conditional.
        if not isinstance(doc.response, Raw) or doc.conditional:
            headers["ETag"] = _ref("headers", "ETag")
        if doc.status in (201, 202) and not isinstance(doc.response, ListOf):  # 202: where to follow the work
            headers["Location"] = _ref("headers", "Location")
        if isinstance(doc.response, Raw):
            response["content"] = doc.response.content()
            return response
        if isinstance(doc.response, PageOf):
            schema = self._envelope(doc.response.cls, "Page")
        elif isinstance(doc.response, ListOf):
            schema = self._envelope(doc.response.cls, "List")
        else:
            schema = self._class_ref(doc.response)
        response["content"] = {JSON: {"schema": schema}}
        return response

    def _envelope(self, cls: type, kind: str) -> dict[str, Any]:
        name = cls.__name__ + kind
        if name not in self.schemas:
            properties: dict[str, Any] = {"items": {"type": "array", "items": self._class_ref(cls)}}
            if kind == "Page":
                properties["next_cursor"] = {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` to read the next page; null on the last page.",
                }
            self.schemas[name] = {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            }
        return _ref("schemas", name)

    def _body(self, body: type | ListOf) -> dict[str, Any]:
        if isinstance(body, ListOf):
            return {"type": "array", "items": self._class_ref(body.cls), "minItems": 1, "maxItems": MAX_BULK}
        return self._class_ref(body)

    def _problem_response(self, status: int) -> dict[str, str]:
        kinds = [t for t in PROBLEM_TYPES.values() if t.status == status]
        if not kinds:
            raise ValueError(f"Status {status} is documented but no problem type in PROBLEM_TYPES has it")
        name = "".join(word.capitalize() for word in kinds[0].title.split())
        if name not in self.problem_responses:
            headers: dict[str, Any] = {REQUEST_ID: _ref("headers", "RequestId")}
            if status in (429, 503):
                headers["Retry-After"] = _ref("headers", "RetryAfter")
            headers |= _RATE_LIMIT_HEADERS
            narrowed = {"type": {"enum": [t.uri for t in kinds]}, "status": {"const": status}}
            schema = {"allOf": [_ref("schemas", "Problem"), {"properties": narrowed}]}
            self.problem_responses[name] = {
                "description": " ".join(t.meaning for t in kinds),
                "headers": headers,
                "content": {PROBLEM_JSON: {"schema": schema}},
            }
        return _ref("responses", name)

    # -- schemas from attrs classes ---------------------------------------------------

    def _class_ref(self, cls: type) -> dict[str, str]:
        name = cls.__name__
        known = self.classes.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"Two classes named {name} ({known.__module__}, {cls.__module__}); rename one")
        if known is None:
            self.classes[name] = cls
            self.schemas[name] = {}  # taken before recursing, so a class may refer to itself
            self.schemas[name] = self._class_schema(cls)
        return _ref("schemas", name)

    def _class_schema(self, cls: type) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required = []
        for field in attrs.fields(cls):
            properties[field.name] = self._field_schema(field, hints[field.name])
            if field.default is attrs.NOTHING:
                required.append(field.name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if cls in self.closed:
            schema["additionalProperties"] = False
        if cls.__doc__:
            schema["description"] = inspect.cleandoc(cls.__doc__)
        return schema

    def _field_schema(self, field: attrs.Attribute, hint: Any) -> dict[str, Any]:  # type: ignore[type-arg]
        # `X | Unset` (PATCH bodies): the key may be left out, which `required` already says;
        # null is accepted only when None is one of the members too.
        members = [arg for arg in _union_members(hint) if arg is not Unset]
        nullable = type(None) in members
        members = [arg for arg in members if arg is not type(None)]
        schema = self._any_of(members)
        keywords = dict(field.metadata.get("schema", {}))
        if "items" in keywords and "items" in schema:  # constraints on each item of a list field
            schema["items"] = {**schema["items"], **keywords.pop("items")}
        schema.update(keywords)
        if nullable:
            schema = _nullable(schema)
        if _is_plain_default(field.default):
            schema["default"] = field.default
        return schema

    def _any_of(self, members: list[Any]) -> dict[str, Any]:
        if len(members) == 1:
            return self._type_schema(members[0])
        return {"anyOf": [self._type_schema(member) for member in members]}

    def _type_schema(self, tp: Any) -> dict[str, Any]:
        if tp in _SCALARS:
            return dict(_SCALARS[tp])
        if attrs.has(tp):
            return self._class_ref(tp)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"enum": [member.value for member in tp]}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Literal:
            return {"enum": list(args)}
        if _is_union(tp):
            members = [arg for arg in args if arg is not type(None)]
            inner = self._any_of(members)
            return _nullable(inner) if len(members) < len(args) else inner
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self._type_schema(args[0])}
            prefix = list(map(self._type_schema, args))
            return {"type": "array", "prefixItems": prefix, "minItems": len(args), "maxItems": len(args)}
        if origin in (set, frozenset, collections.abc.Set):
            return {"type": "array", "items": self._type_schema(args[0]), "uniqueItems": True}
        if origin in (dict, collections.abc.Mapping):
            return {"type": "object", "additionalProperties": self._type_schema(args[1])}
        if origin in _SEQUENCES:
            return {"type": "array", "items": self._type_schema(args[0])}
        raise TypeError(f"No JSON Schema for the type {tp!r}; teach cinema/http/openapi.py about it")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _union_members(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if _is_union(tp) else (tp,)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "type" not in schema or "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    nullable = {**schema, "type": [*kinds, "null"]}
    if "enum" in nullable:  # the enum restricts the value, null included
        nullable["enum"] = [*nullable["enum"], None]
    return nullable


def _is_plain_default(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float, str)


def _attrs_classes_in(tp: Any) -> Iterator[type]:
    if attrs.has(tp):
        yield tp
    for arg in typing.get_args(tp):
        yield from _attrs_classes_in(arg)


def _request_classes(docs: Iterable[RouteDoc]) -> set[type]:
    """Classes that appear in request bodies (at any depth): their schemas forbid unknown keys, as convert does."""
    pending = [
        doc.body.cls if isinstance(doc.body, ListOf) else doc.body
        for doc in docs
        if doc.body is not None and not isinstance(doc.body, Raw)
    ]
    seen: set[type] = set()
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.add(cls)
            for hint in typing.get_type_hints(cls).values():
                pending.extend(_attrs_classes_in(hint))
    return seen


def _problem_statuses(doc: RouteDoc, reads: bool, writes: bool, has_path_params: bool) -> list[int]:
    # Every request can be malformed, rate limited, or meet a dependency that is down.
    statuses = {400, 429, 503, *doc.errors}
    if writes:
        statuses |= {401, 403}
    if has_path_params:
        statuses.add(404)
    if doc.body is not None:
        statuses |= {413, 415, 422}
    if doc.conditional and not reads:
        statuses.add(412)
    return sorted(statuses)


def _query_param(param: Param) -> dict[str, Any]:
    schema = {"type": "array", "items": param.schema} if param.repeated else param.schema
    described: dict[str, Any] = {"name": param.name, "in": "query", "schema": schema}
    if param.description:
        described["description"] = param.description
    if param.required:
        described["required"] = True
    return described


def _path(route: web.AbstractRoute) -> tuple[str, list[dict[str, Any]]]:
    """The route's OpenAPI path and its path parameters, typed from the route's regexes."""
    resource = route.resource
    if resource is None:
        return "", []
    info = resource.get_info()
    if "formatter" not in info:
        return resource.canonical, []
    patterns = _group_patterns(info["pattern"].pattern)
    params = []
    for name in re.findall(r"\{(\w+)\}", info["formatter"]):
        params.append({"name": name, "in": "path", "required": True, "schema": _segment_schema(patterns[name])})
    return info["formatter"], params


def _segment_schema(pattern: str) -> dict[str, Any]:
    if pattern == r"\d+":
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    if pattern == _DEFAULT_SEGMENT:
        return {"type": "string", "minLength": 1}
    return {"type": "string", "pattern": f"^(?:{pattern})$"}


def _group_patterns(regex: str) -> dict[str, str]:
    """The sub-pattern of each named group of a compiled route regex (`(?P<id>\\d+)` -> `\\d+`)."""
    groups = {}
    for match in re.finditer(r"\(\?P<(\w+)>", regex):
        depth, i = 1, match.end()
        while depth:
            char = regex[i]
            if char == "\\":
                i += 1
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            i += 1
        groups[match.group(1)] = regex[match.end() : i - 1]
    return groups


# -- shared components ----------------------------------------------------------------

# Sent on every response while rate limiting is on (CINEMA_RATE_LIMIT > 0), hence not required.
_RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {"$ref": "#/components/headers/RateLimitLimit"},
    "RateLimit-Remaining": {"$ref": "#/components/headers/RateLimitRemaining"},
    "RateLimit-Reset": {"$ref": "#/components/headers/RateLimitReset"},
}

_HEADERS = {
    "RateLimitLimit": {
        "description": "Requests allowed per window for this client.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimitRemaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimitReset": {
        "description": "Seconds until the current window ends.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RequestId": {
        "description": "The request's id: the client's `X-Request-ID` when it sent a valid one, else generated. "
        "Every log line of the request carries it.",
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "Strong entity tag of this representation, for `If-None-Match` and `If-Match`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "The created resource.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
}

_PARAMETERS = {
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "description": "ETags the client holds; 304 Not Modified when one is current (`*` matches any).",
        "schema": {"type": "string"},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "description": "Apply the change only if the resource's current ETag is among these (`*`: any); "
        "else 412. Prevents lost updates.",
        "schema": {"type": "string"},
    },
}


def _not_modified() -> dict[str, Any]:
    return {
        "description": "Not Modified: the `If-None-Match` tag is current; no body.",
        "headers": {"ETag": _ref("headers", "ETag"), REQUEST_ID: _ref("headers", "RequestId")},
    }


def _problem_schema() -> dict[str, Any]:
    rows = "\n".join(
        f"| `{t.uri}` | {t.status or 'varies'} | {t.title} | {t.meaning} |" for t in PROBLEM_TYPES.values()
    )
    return {
        "type": "object",
        "description": "An RFC 9457 problem detail. Its `type` is one of these (each URI also answers "
        "`GET` with its description):\n\n| type | status | title | meaning |\n|---|---|---|---|\n" + rows,
        "required": ["type", "title", "status", "detail", "instance"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference", "enum": [t.uri for t in PROBLEM_TYPES.values()]},
            "title": {"type": "string", "description": "The same for every problem of this type."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong with this request, for a human."},
            "instance": {"type": "string", "format": "uri-reference", "description": "The request's path."},
            "errors": {
                "type": "array",
                "description": "Field-level problems, present only when there are some.",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {
                            "type": "string",
                            "description": "Path of the field or query parameter: `name`, `credits[2].role`, "
                            "`[3].name` in a bulk body; empty for the body as a whole.",
                        },
                        "message": {"type": "string"},
                    },
                },
            },
        },
        "x-problem-types": [
            {"type": t.uri, "status": t.status, "title": t.title, "meaning": t.meaning} for t in PROBLEM_TYPES.values()
        ],
    }


# -- routes ---------------------------------------------------------------------------


@routes.get(OPENAPI_PATH)
@describe(
    "This OpenAPI 3.1 document",
    tag=TAG,
    response=Raw((JSON,), {"type": "object", "required": ["openapi", "info", "paths"]}),
    conditional=True,
)
async def get_openapi(request: web.Request) -> web.Response:
    """Generated at start-up from the route table and the models; every route under /api/ is in it."""
    return tagged_response(request, request.app[OPENAPI], JSON)


# The page links its assets relative to itself (/api/docs -> /api/docs/<asset>), so it also works behind a
# proxy that mounts the API under a prefix. validatorUrl: null keeps Swagger UI from calling its online validator.
DOCS_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cinema API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""

INIT_JS = b"""window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
});
"""

HTML = "text/html; charset=utf-8"
# The page and Swagger UI load only this service's own files (no inline script, no other origin);
# Swagger UI's icons are data: URIs in its stylesheet.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".map": "application/json",
}
# Swagger UI's files this page uses (and their source maps, which browsers' developer tools ask for).
_BUNDLED = (
    "swagger-ui.css",
    "swagger-ui.css.map",
    "swagger-ui-bundle.js",
    "swagger-ui-bundle.js.map",
    "favicon-32x32.png",
    "favicon-16x16.png",
)
_DOCS_PAGE = Tagged.of(DOCS_PAGE)


@cache
def _asset(name: str) -> Tagged:
    if name == "init.js":
        return Tagged.of(INIT_JS)
    return Tagged.of((swagger_ui_path / name).read_bytes())


@routes.get(DOCS_PATH)
@describe(
    "This document in a browser (Swagger UI, served locally)",
    tag=TAG,
    response=Raw(("text/html",)),
    conditional=True,
)
async def get_docs(request: web.Request) -> web.Response:
    return tagged_response(request, _DOCS_PAGE, HTML, {"Content-Security-Policy": DOCS_CSP})


@routes.get(DOCS_PATH + r"/{name:[A-Za-z0-9._-]+}")
@describe(
    "A file of the documentation viewer",
    tag=TAG,
    response=Raw(tuple(sorted({t.split(";")[0] for t in _ASSET_TYPES.values()}))),
    errors=(404,),
    conditional=True,
)
async def get_docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name != "init.js" and name not in _BUNDLED:
        raise NotFound(f"No resource at {request.path}.")
    content_type = _ASSET_TYPES["." + name.rsplit(".", 1)[1]]
    return tagged_response(request, _asset(name), content_type, {"Cache-Control": "public, max-age=3600"})


_PROBLEM_PAGES = {slug: Tagged.of(orjson.dumps(attrs.asdict(t))) for slug, t in PROBLEM_TYPES.items()}


@routes.get(PROBLEM_BASE + "{slug:[a-z0-9-]+}")
@describe("What a problem type means", tag=TAG, response=ProblemType, errors=(404,), conditional=True)
async def get_problem_type(request: web.Request) -> web.Response:
    """The `type` URI of every problem response resolves here, to the type's status, title and meaning."""
    page = _PROBLEM_PAGES.get(request.match_info["slug"])
    if page is None:
        raise NotFound(f"No problem type at {request.path}.")
    return tagged_response(request, page, JSON)

"""Reading requests and writing JSON responses: bodies, ids, query parameters, ETags."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from cinema.convert import NUL_MESSAGE, unstorable
from cinema.errors import BadRequest, FieldError, NotFound, PayloadTooLarge, UnsupportedMediaType
from cinema.etags import IfMatch, Tagged, etag, parse_tags
from cinema.http.keys import CATALOG_ID, SETTINGS

JSON = "application/json"
MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints


async def read_json(request: web.Request) -> Any:
    """The decoded JSON body: 415 for another media type, 413 over the limit, 400 if malformed."""
    if request.content_type != JSON and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(f"Send the body as {JSON} (got {request.content_type or 'no content type'}).")
    limit = request.app[SETTINGS].max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body is {request.content_length} bytes; at most {limit} are accepted.")
    body = await request.read()  # the app's client_max_size enforces the limit without a length header
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None


def path_id(request: web.Request, name: str = "id") -> int:
    """An integer id from the path (routes accept digits only); out of range is simply not found."""
    value = int(request.match_info[name])
    if value > MAX_ID:
        raise NotFound(f"No resource at {request.path}.")
    return value


def reject_unknown(params: Mapping[str, str], known: Collection[str]) -> None:
    """The checks every query string gets first: only `known` names, and values PostgreSQL can store.

    Every parser of a query string starts here, so a NUL reaches no SQL, whatever the parameter.
    """
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise BadRequest(
            "Unknown query parameters.",
            errors=[FieldError(name, "unknown parameter; known: " + ", ".join(sorted(known))) for name in unknown],
        )
    unstored = dict.fromkeys(name for name, value in params.items() if unstorable(value))
    if unstored:
        raise BadRequest("Invalid query parameters.", errors=[FieldError(name, NUL_MESSAGE) for name in unstored])


def json_response(
    request: web.Request,
    body: bytes,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    tag: str | None = None,
) -> web.Response:
    """A JSON response with a strong ETag (`tag` when the caller has it: a cache entry keeps
    the ETag of its body); 304, with the same headers, when If-None-Match already has it."""
    tag = tag or etag(body, request.app[CATALOG_ID].bytes)
    if status == 200 and _not_modified(request, tag):
        return web.Response(status=304, headers={**(headers or {}), "ETag": tag})
    response = web.Response(body=body, status=status, content_type=JSON, headers=headers)
    response.headers["ETag"] = tag
    return response


def if_match(request: web.Request) -> IfMatch | None:
    """The request's `If-Match`, checked by the write against tags of this catalog."""
    return IfMatch.parse(request.headers.get("If-Match"), request.app[CATALOG_ID].bytes)


def items_body(docs: Iterable[str]) -> bytes:
    """`{"items": [...]}` around JSON documents that PostgreSQL already rendered."""
    return b'{"items":[' + ",".join(docs).encode() + b"]}"


def tagged_response(
    request: web.Request, tagged: Tagged, content_type: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A 200 of bytes whose tag was computed once; 304 when If-None-Match already has it.

    `content_type` is the whole header value, parameters included (`text/html; charset=utf-8`).
    """
    if _not_modified(request, tagged.tag):
        return web.Response(status=304, headers={**(headers or {}), "ETag": tagged.tag})
    return web.Response(body=tagged.body, headers={**(headers or {}), "Content-Type": content_type, "ETag": tagged.tag})


def _not_modified(request: web.Request, tag: str) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is None:
        return False
    tags = parse_tags(if_none_match)
    return tags is None or tag in tags

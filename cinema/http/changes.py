"""/api/v1/changes: the committed event feed, for clients that sync over HTTP."""

from __future__ import annotations

import base64

import orjson
from aiohttp import web

from cinema.actors.catalog import ListChanges
from cinema.errors import BadRequest, FieldError
from cinema.http.io import json_response, reject_unknown
from cinema.http.keys import CATALOG
from cinema.http.spec import Param, describe

routes = web.RouteTableDef()

PARAMS = (
    Param("since", {"type": "string"}, "The `next_cursor` of the previous call; omit to start at the oldest event."),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Events per call."),
)


def encode_position(seq: int) -> str:
    return base64.urlsafe_b64encode(f"changes:{seq}".encode()).decode().rstrip("=")


def decode_position(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # binascii.Error, non-ASCII input and bad UTF-8 are all ValueErrors
        return None
    prefix, _, seq = text.partition(":")
    if prefix != "changes" or not (seq.isascii() and seq.isdigit()) or int(seq) >= 2**63:
        return None
    return int(seq)


@routes.get("/api/v1/changes")
@describe(
    "The committed changes, oldest first; poll with `next_cursor` to see each change once, in order",
    tag="changes",
    query=PARAMS,
    response=None,
    errors=(400,),
)
async def list_changes(request: web.Request) -> web.Response:
    reject_unknown(request.query, ("since", "limit"))
    errors = []
    after = 0
    if "since" in request.query:
        position = decode_position(request.query["since"])
        if position is None:
            errors.append(FieldError("since", "is not a cursor of this feed"))
        else:
            after = position
    raw_limit = request.query.get("limit", "100")
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 1000:
        errors.append(FieldError("limit", "must be an integer from 1 to 1000"))
    if errors:
        raise BadRequest("Invalid query parameters.", errors=errors)
    changes = await request.app[CATALOG].ask(ListChanges(after, int(raw_limit)))
    # The cursor is always returned, also when nothing is new: it is where the next poll starts.
    last = changes[-1][0] if changes else after
    body = (
        b'{"items":['
        + ",".join(doc for _, doc in changes).encode()
        + b'],"next_cursor":'
        + orjson.dumps(encode_position(last))
        + b"}"
    )
    return json_response(request, body)

"""/api/v1/changes: the committed event feed, for clients that sync over HTTP."""

from __future__ import annotations

import base64

import orjson
from aiohttp import web

from cinema.actors.catalog import ListChanges
from cinema.errors import BadRequest, FieldError, Gone
from cinema.http.io import json_response, reject_unknown
from cinema.http.keys import CATALOG, CATALOG_ID
from cinema.http.spec import Param, describe

routes = web.RouteTableDef()

PARAMS = (
    Param("since", {"type": "string"}, "The `next_cursor` of the previous call; omit to start at the oldest event."),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Events per call."),
)


# A seq is a position only within one event log, so the cursor names the catalog's (cinema/db/catalog.py):
# a cursor from before `seed --replace`, or from another deployment, is refused, never resumed.
def encode_position(catalog: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"changes:{catalog}:{seq}".encode()).decode().rstrip("=")


def decode_position(cursor: str) -> tuple[str, int] | None:
    """(catalog id, seq), or None when `cursor` is not a cursor of this feed at all."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # binascii.Error, non-ASCII input and bad UTF-8 are all ValueErrors
        return None
    prefix, _, rest = text.partition(":")
    catalog, _, seq = rest.partition(":")
    if prefix != "changes" or not (catalog.isascii() and catalog.isalnum()):
        return None
    if not (seq.isascii() and seq.isdigit()) or int(seq) >= 2**63:
        return None
    return catalog, int(seq)


@routes.get("/api/v1/changes")
@describe(
    "The committed changes, oldest first; poll with `next_cursor` to see each change once, in order",
    tag="changes",
    query=PARAMS,
    response=None,
    errors=(400, 410),
)
async def list_changes(request: web.Request) -> web.Response:
    reject_unknown(request.query, ("since", "limit"))
    catalog = request.app[CATALOG_ID].hex
    errors = []
    after = 0
    if "since" in request.query:
        position = decode_position(request.query["since"])
        if position is None:
            errors.append(FieldError("since", "is not a cursor of this feed"))
        elif position[0] != catalog:
            raise Gone("This cursor belongs to another catalog's event log; start again without `since`.")
        else:
            after = position[1]
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
        + orjson.dumps(encode_position(catalog, last))
        + b"}"
    )
    return json_response(request, body)

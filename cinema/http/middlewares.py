"""Request context: the request id, and one canonical log line per request."""

from __future__ import annotations

import itertools
import re
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from cinema.logs import REQUEST_CONTEXT, log_request

REQUEST_ID = "X-Request-ID"
# An id echoed back into headers and logs must be short and printable.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# Generated ids: a random prefix per process and a counter, 32 hex digits like a UUID's, unique
# across processes without a system call per request (uuid4 reads the OS random source).
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID, "")
    request_id = given if given and _SAFE_ID.match(given) else new_request_id()
    REQUEST_CONTEXT.set({"request_id": request_id})
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID] = request_id
        return response
    except web.HTTPException as exc:  # 3xx raised by a handler, passed through by the problems layer
        status = exc.status
        exc.headers[REQUEST_ID] = request_id
        raise
    finally:
        log_request(request.method, request.path, status, round((time.perf_counter() - started) * 1000, 2))

"""The edge: what every request passes through, wrapped around each route's handler.

In order, for each request: its id (the client's `X-Request-ID` when valid, else generated),
bound to every log line written while serving it; the rate limit; the bearer token of a
write; the handler; a failure rendered as problem+json (cinema.http.problems); the id and
the RateLimit-* headers on the response; and one `http_request` log line.

`add_routes` registers each handler behind the edge, plus a last route that turns requests no
route matches into 404 or 405 problems. It is not an aiohttp middleware because a middleware
chain costs several calls and a coroutine per request on top of the work (about a sixth of a
cache hit, measured with bench/cache.py); the edge itself is one coroutine around the handler.
"""

from __future__ import annotations

import functools
import itertools
import re
import secrets
import time
from collections.abc import Callable, Iterable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import istr

from cinema.errors import RateLimited
from cinema.http.auth import TokenVerifier, authorize
from cinema.http.problems import render
from cinema.http.ratelimit import FixedWindow
from cinema.logs import REQUEST_CONTEXT, log_request
from cinema.settings import Settings

log = structlog.get_logger("cinema.http")

REQUEST_ID = "X-Request-ID"
# Header names as istr, which the response's headers need not case-fold on every request.
_ID, _LIMIT, _REMAINING, _RESET = map(istr, (REQUEST_ID, "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"))
# An id echoed back into headers and logs must be short and printable.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# Generated ids: a random prefix per process and a counter, 32 hex digits like a UUID's, unique
# across processes without a system call per request (uuid4 reads the OS random source).
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def add_routes(app: web.Application, settings: Settings, tables: Iterable[web.RouteTableDef]) -> None:
    """Register every route of `tables` behind the edge, then the route for unmatched requests."""
    edge = behind_edge(settings)
    definitions: list[web.RouteDef] = []
    for table in tables:
        for definition in table:
            assert isinstance(definition, web.RouteDef), "static routes would bypass the edge"
            definitions.append(definition)
    # aiohttp gives routes one resource only when they are registered one after another: each
    # path's routes go together, where the path first appears, so routing meets each path once.
    rank = {path: i for i, path in enumerate(dict.fromkeys(d.path for d in definitions))}
    for definition in sorted(definitions, key=lambda d: rank[d.path]):
        handler = edge(definition.handler)
        web.RouteDef(definition.method, definition.path, handler, definition.kwargs).register(app.router)
    # [\s\S], not `.`: a path with an encoded newline (%0A) must land here too, not in aiohttp's plain 404.
    app.router.add_route("*", r"/{path:[\s\S]*}", edge(unmatched))


def behind_edge(settings: Settings) -> Callable[[Handler], Handler]:
    """A decorator: the handler, served behind the edge configured by `settings`."""
    window = FixedWindow(settings.rate_limit, settings.rate_limit_window) if settings.rate_limit else None
    verifier = TokenVerifier.from_settings(settings)
    if verifier is None:
        log.warning("auth_disabled", hint="set CINEMA_JWT_SECRET to require tokens for writes")
    return functools.partial(_edge, window=window, verifier=verifier)


def _edge(handler: Handler, *, window: FixedWindow | None, verifier: TokenVerifier | None) -> Handler:
    async def edge(request: web.Request) -> web.StreamResponse:
        request_id = request.headers.get(_ID)
        if request_id is None or not _SAFE_ID.match(request_id):
            request_id = f"{_PREFIX}{next(_COUNTER):016x}"
        context: dict[str, object] = {"request_id": request_id}
        REQUEST_CONTEXT.set(context)
        started = time.perf_counter()
        quota = None
        response: web.StreamResponse
        try:
            if window is not None:
                quota = window.admit(request.remote or "unknown")
            if verifier is not None and (subject := authorize(verifier, request)) is not None:
                context["subject"] = subject
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = render(request, exc)
            else:  # a redirect raised by a handler goes out as it is
                exc.headers[_ID] = request_id
                log_request(request.method, request.path, exc.status, started)
                raise
        except RateLimited as exc:
            quota = (0, exc.retry_after or 1)
            response = render(request, exc)
        except Exception as exc:
            response = render(request, exc)
        except BaseException:  # cancelled: the client went away mid-request
            log_request(request.method, request.path, 499, started)
            raise
        headers = response.headers
        headers[_ID] = request_id
        if quota is not None:
            headers[_LIMIT] = window.limit_header  # type: ignore[union-attr]
            headers[_REMAINING] = str(quota[0])
            headers[_RESET] = str(quota[1])
        log_request(request.method, request.path, response.status, started)
        return response

    return functools.update_wrapper(edge, handler)


async def unmatched(request: web.Request) -> web.StreamResponse:
    """No route took the request: 405 with Allow when its path exists for other methods, else 404."""
    this = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not this:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()

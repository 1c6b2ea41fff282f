"""The edge: what every request passes through, wrapped around each route's handler.

In order, for each request: its id (the client's `X-Request-ID` when valid, else generated),
bound to every log line written while serving it; the rate limit; the bearer token of a
write; the handler; a failure rendered as problem+json (cinema.http.problems); the id and
the RateLimit-* headers on the response; one `http_request` log line; and the route's metrics
(counters bound once per route: cinema/metrics.py). With tracing on, a server span encloses
all of it (cinema.telemetry.server_spans: one more coroutine, no middleware chain).

`add_routes` registers each handler behind the edge, plus a last route that turns requests no
route matches into 404 or 405 problems. It is not an aiohttp middleware because a middleware
chain costs several calls and a coroutine per request on top of the work (about a sixth of a
cache hit, measured with bench/cache.py); the edge itself is one coroutine around the handler.

`AppRunner` serves the application with a connection protocol that answers what aiohttp
refuses before any route (a malformed request line or header) in the same shape:
problem+json with an X-Request-ID, logged as the client's fault.
"""

from __future__ import annotations

import functools
import itertools
import re
import secrets
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from multidict import istr

from cinema import telemetry
from cinema.context import REQUEST_CONTEXT
from cinema.errors import RateLimited
from cinema.http.auth import TokenVerifier, authorize
from cinema.http.problems import render, status_problem
from cinema.http.ratelimit import FixedWindow
from cinema.logs import log_request
from cinema.metrics import RouteMetrics
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


def add_routes(
    app: web.Application,
    settings: Settings,
    tables: Iterable[web.RouteTableDef],
    metrics: list[RouteMetrics] | None = None,
) -> None:
    """Register every route of `tables` behind the edge, then the route for unmatched requests.

    With `metrics`, each route gets its `RouteMetrics` (appended there) for /metrics to render.
    """
    edge = behind_edge(settings)

    def bound(handler: Handler, route: str, method: str) -> Handler:
        if metrics is None:
            return edge(handler, None)
        metrics.append(RouteMetrics(route, method))
        return edge(handler, metrics[-1])

    definitions: list[web.RouteDef] = []
    for table in tables:
        for definition in table:
            assert isinstance(definition, web.RouteDef), "static routes would bypass the edge"
            definitions.append(definition)
    # aiohttp gives routes one resource only when they are registered one after another: each
    # path's routes go together, where the path first appears, so routing meets each path once.
    rank = {path: i for i, path in enumerate(dict.fromkeys(d.path for d in definitions))}
    for definition in sorted(definitions, key=lambda d: rank[d.path]):
        handler = bound(definition.handler, definition.path, definition.method)
        [route, *_] = web.RouteDef(definition.method, definition.path, handler, definition.kwargs).register(app.router)
        if metrics is not None and route.resource is not None:  # the template without its regexes
            metrics[-1].route = route.resource.canonical
    anywhere = _Anywhere()
    app.router.register_resource(anywhere)
    anywhere.add_route("*", bound(unmatched, "unmatched", "*"))


def behind_edge(settings: Settings) -> Callable[[Handler, RouteMetrics | None], Handler]:
    """`edge(handler, route_metrics)`: the handler, served behind the edge configured by `settings`."""
    window = FixedWindow(settings.rate_limit, settings.rate_limit_window) if settings.rate_limit else None
    verifier = TokenVerifier.from_settings(settings)
    if verifier is None:
        log.warning("auth_disabled", hint="set CINEMA_JWT_SECRET to require tokens for writes")
    spans = telemetry.server_spans()
    if spans is None:
        return functools.partial(_edge, window=window, verifier=verifier)

    def traced(handler: Handler, metrics: RouteMetrics | None) -> Handler:
        return functools.update_wrapper(spans(_edge(handler, metrics, window=window, verifier=verifier)), handler)

    return traced


def _edge(
    handler: Handler, metrics: RouteMetrics | None, *, window: FixedWindow | None, verifier: TokenVerifier | None
) -> Handler:
    async def edge(request: web.Request) -> web.StreamResponse:
        request_id = request.headers.get(_ID)
        if request_id is None or not _SAFE_ID.match(request_id):
            request_id = f"{_PREFIX}{next(_COUNTER):016x}"
        context: dict[str, object] = {"request_id": request_id}
        REQUEST_CONTEXT.set(context)
        started = time.perf_counter()
        if metrics is not None:
            metrics.in_flight += 1
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
                if metrics is not None:
                    metrics.done(exc.status, time.perf_counter() - started)
                raise
        except RateLimited as exc:
            quota = (0, exc.retry_after or 1)
            response = render(request, exc)
        except Exception as exc:
            response = render(request, exc)
        except BaseException:  # cancelled: the client went away mid-request
            log_request(request.method, request.path, 499, started)
            if metrics is not None:
                metrics.done(499, time.perf_counter() - started)
            raise
        headers = response.headers
        headers[_ID] = request_id
        if quota is not None:
            headers[_LIMIT] = window.limit_header  # type: ignore[union-attr]
            headers[_REMAINING] = str(quota[0])
            headers[_RESET] = str(quota[1])
        log_request(request.method, request.path, response.status, started)
        if metrics is not None:
            metrics.done(response.status, time.perf_counter() - started)
        return response

    return functools.update_wrapper(edge, handler)


class _Anywhere(web.DynamicResource):
    """The last resource: every request target, also those aiohttp's patterns never match (a path
    with a line break, `OPTIONS *`, `CONNECT host:port`), which aiohttp would answer itself."""

    def __init__(self) -> None:
        super().__init__("/{path}")

    def _match(self, path: str) -> dict[str, str]:
        return {"path": path}


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


class AppRunner(web.AppRunner):
    """aiohttp's runner, whose connections answer aiohttp's own errors as the edge answers (`_Protocol`)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class _Protocol(RequestHandler):
    """A connection whose errors before any route (aiohttp's parser refused the request) are problems too.

    aiohttp would answer them in plain text without our headers, and log each with a traceback
    at `error`: on the internet a scanner would fill the error log. They are the client's fault,
    so one `warning` line without the request's bytes (a refused header may be a credential).
    """

    __slots__ = ()  # aiohttp's layout: a connection costs what it did

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: the response has begun, the connection is broken
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        request_id = f"{_PREFIX}{next(_COUNTER):016x}"
        REQUEST_CONTEXT.set({"request_id": request_id})
        # The first words of aiohttp's message say what was wrong; the rest quotes the request.
        what = (message or HTTPStatus(status).phrase).partition(":")[0].strip()[:100]
        if status >= 500:
            log.error("http_request_failed", status=status, exc_info=exc)
        elif isinstance(exc, BadHttpMethod) and self._request_count == 1:
            log.debug("http_request_refused", status=status, error=what, peer=request.remote)  # not HTTP at all
        else:
            log.warning("http_request_refused", status=status, error=what, peer=request.remote)
        detail = f"The request is malformed: {what}." if status < 500 else "An unexpected error occurred."
        response = status_problem(request, status, detail)
        response.headers[_ID] = request_id
        response.force_close()
        return response

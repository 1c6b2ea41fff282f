"""The edge: what every request passes through, wrapped around each route's handler.

In order, for each request: its id (the client's `X-Request-ID` when valid, else generated),
bound to every log line written while serving it; a CORS preflight answered (when CORS is on);
the bearer token verified (remembered once verified); the rate limit of the route's budget,
for the token's subject or the client's address (a bad token is counted before it is refused);
the route's scope; the handler; a failure rendered as problem+json (cinema.http.problems); the
id, security, RateLimit-* and CORS headers on the response; one `http_request` log line; and
the route's metrics (counters bound once per route: cinema/metrics.py). What each route needs
(scope, budget, counters, span names) is resolved once, when it is registered (`Guard.edge`).
With tracing on, a server span encloses all of it, begun and ended inline
(cinema.telemetry.server_spans: a dropped request costs the sampling decision).

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
from collections.abc import Callable, Iterable, MutableMapping
from http import HTTPStatus

import attrs
import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from multidict import istr

from cinema import telemetry
from cinema.context import REQUEST_CONTEXT
from cinema.errors import RateLimited, Unauthorized
from cinema.http.auth import TokenVerifier, check_scope, required_scope
from cinema.http.keys import RATE_LIMITER, VERIFIER
from cinema.http.problems import render, status_problem
from cinema.http.ratelimit import (
    BUDGETS,
    EXEMPT_PREFIXES,
    Budget,
    ClientAddresses,
    LocalLimiter,
    RateLimiter,
    RedisLimiter,
    budgets_of,
    client_key,
)
from cinema.http.spec import route_doc
from cinema.logs import log_request
from cinema.metrics import RouteMetrics
from cinema.settings import Settings, parse_networks

log = structlog.get_logger("cinema.http")

REQUEST_ID = "X-Request-ID"
# Header names as istr, which the response's headers need not case-fold on every request.
_ID, _LIMIT, _REMAINING, _RESET = map(istr, (REQUEST_ID, "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"))
_AUTHORIZATION, _NOSNIFF, _REFERRER_POLICY = map(istr, ("Authorization", "X-Content-Type-Options", "Referrer-Policy"))
CLIENT = web.RequestKey("client", str)  # the limiter's name for the request's client (websocket queries spend it)
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
    guard = Guard.from_settings(settings)
    if guard.verifier is not None:  # closed by cinema.app
        app[VERIFIER] = guard.verifier
    if guard.limiter is not None:  # started and stopped by cinema.app
        app[RATE_LIMITER] = guard.limiter
    definitions: list[web.RouteDef] = []
    for table in tables:
        for definition in table:
            assert isinstance(definition, web.RouteDef), "static routes would bypass the edge"
            definitions.append(definition)
    # aiohttp gives routes one resource only when they are registered one after another: each
    # path's routes go together, where the path first appears, so routing meets each path once.
    rank = {path: i for i, path in enumerate(dict.fromkeys(d.path for d in definitions))}
    for definition in sorted(definitions, key=lambda d: rank[d.path]):
        counters = None
        if metrics is not None:
            counters = RouteMetrics(definition.path, definition.method)
            metrics.append(counters)
        handler = guard.edge(definition.handler, definition.method, definition.path, counters)
        [route, *_] = web.RouteDef(definition.method, definition.path, handler, definition.kwargs).register(app.router)
        if counters is not None and route.resource is not None:  # the template without its regexes
            counters.route = route.resource.canonical
    counters = None
    if metrics is not None:
        counters = RouteMetrics("unmatched", "*")
        metrics.append(counters)
    anywhere = _Anywhere()
    app.router.register_resource(anywhere)
    anywhere.add_route("*", guard.edge(unmatched, "GET", "/", counters))


@attrs.frozen
class Guard:
    """What the edge checks, configured once: tokens, rate limits, CORS, the security headers."""

    verifier: TokenVerifier | None
    limiter: RateLimiter | None
    addresses: ClientAddresses
    cors: Cors | None
    spans: Callable[[], telemetry.RouteSpans] | None  # with tracing on: each route's server spans

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        verifier = TokenVerifier.from_settings(settings)
        if verifier is None:
            log.warning("auth_disabled", hint="set CINEMA_JWT_SECRET, CINEMA_JWT_PUBLIC_KEY or CINEMA_JWT_JWKS_URL")
        limits = {
            "reads": settings.rate_limit,
            "writes": settings.rate_limit_writes,
            "search": settings.rate_limit_search,
            "uploads": settings.rate_limit_uploads,
        }
        budgets = budgets_of(limits, settings.rate_limit_window)
        limiter = None
        if budgets:
            store: LocalLimiter | RedisLimiter = LocalLimiter()
            if settings.redis_url is not None:
                store = RedisLimiter(
                    settings.redis_url,
                    settings.redis_prefix,
                    timeout=settings.redis_timeout,
                    retry=settings.redis_retry,
                )
            limiter = RateLimiter(budgets, store)
        cors = Cors.from_setting(settings.cors_origins)
        addresses = ClientAddresses(parse_networks(settings.trusted_proxies))
        return cls(verifier, limiter, addresses, cors, telemetry.server_spans())

    def edge(self, handler: Handler, method: str, path: str, metrics: RouteMetrics | None = None) -> Handler:
        """`handler` behind the edge, with the scope, the budget and the counters of its route."""
        doc = route_doc(handler)
        name = (doc.budget if doc is not None else None) or ("reads" if method in ("GET", "HEAD") else "writes")
        if name not in BUDGETS:  # a typo in a RouteDoc stops the start-up, limits on or off
            raise ValueError(f"{method} {path}: unknown rate-limit budget {name!r} (known: {', '.join(BUDGETS)})")
        budget = None
        if self.limiter is not None and not path.startswith(EXEMPT_PREFIXES):
            budget = self.limiter.budgets.get(name)
        scope = required_scope(method, path, doc.scope if doc is not None else None)
        return _edge(
            handler,
            guard=self,
            budget=budget,
            scope=scope if self.verifier is not None else None,
            metrics=metrics,
            spans=self.spans() if self.spans is not None else None,
        )


def _edge(
    handler: Handler,
    *,
    guard: Guard,
    budget: Budget | None,
    scope: str | None,
    metrics: RouteMetrics | None,
    spans: telemetry.RouteSpans | None,
) -> Handler:
    verifier, limiter, addresses, cors = guard.verifier, guard.limiter, guard.addresses, guard.cors

    async def edge(request: web.Request) -> web.StreamResponse:
        request_id = request.headers.get(_ID)
        if request_id is None or not _SAFE_ID.match(request_id):
            request_id = f"{_PREFIX}{next(_COUNTER):016x}"
        context: dict[str, object] = {"request_id": request_id}
        REQUEST_CONTEXT.set(context)
        traced = spans.begin(request, context) if spans is not None else None
        started = time.perf_counter()
        if metrics is not None:
            metrics.in_flight += 1
        quota = None
        response: web.StreamResponse
        try:
            if cors is not None and request.method == "OPTIONS" and (preflight := cors.preflight(request)):
                response = preflight
            else:
                claims = None
                refused: Unauthorized | None = None
                authorization = request.headers.get(_AUTHORIZATION)
                if verifier is not None and authorization is not None:
                    claims = verifier.known(authorization)
                    if claims is None:
                        try:
                            claims = await verifier.claims(authorization)
                        except Unauthorized as exc:  # counted against the address's budget first
                            refused = exc
                subject = claims.get("sub") if claims is not None else None
                if subject is not None:
                    context["subject"] = subject
                if budget is not None:
                    client = client_key(subject, addresses.of(request.remote, request.headers))
                    request[CLIENT] = client
                    quota = limiter.admit_now(budget, client)  # type: ignore[union-attr]
                    if quota is None:
                        quota = await limiter.admit(budget, client)  # type: ignore[union-attr]
                if scope is not None:
                    if claims is None:
                        raise refused or Unauthorized("This request needs an `Authorization: Bearer <token>` header.")
                    check_scope(claims, scope)
                response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = render(request, exc)
            else:  # a redirect raised by a handler goes out as it is
                exc.headers[_ID] = request_id
                log_request(request.method, request.path, exc.status, started)
                if metrics is not None:
                    metrics.done(exc.status, time.perf_counter() - started)
                if traced is not None:
                    spans.end(traced, exc.status)  # type: ignore[union-attr]
                raise
        except RateLimited as exc:
            quota = getattr(exc, "quota", (0, exc.retry_after or 1))
            response = render(request, exc)
        except Exception as exc:
            response = render(request, exc)
        except BaseException as exc:  # cancelled: the client went away mid-request
            log_request(request.method, request.path, 499, started)
            if metrics is not None:
                metrics.done(499, time.perf_counter() - started)
            if traced is not None:
                spans.end(traced, None, exc)  # type: ignore[union-attr]
            raise
        headers = response.headers
        headers[_ID] = request_id
        headers[_NOSNIFF] = "nosniff"
        headers[_REFERRER_POLICY] = "no-referrer"
        if quota is not None:
            headers[_LIMIT] = budget.limit_header  # type: ignore[union-attr]
            headers[_REMAINING] = str(quota[0])
            headers[_RESET] = str(quota[1])
        if cors is not None:
            cors.allow(request, headers)
        log_request(request.method, request.path, response.status, started)
        if metrics is not None:
            metrics.done(response.status, time.perf_counter() - started)
        if traced is not None:
            spans.end(traced, response.status)  # type: ignore[union-attr]
        return response

    return functools.update_wrapper(edge, handler)


@attrs.frozen
class Cors:
    """Cross-origin access for browsers, for the origins CINEMA_CORS_ORIGINS names (`*`: any)."""

    origins: frozenset[str]

    @classmethod
    def from_setting(cls, value: str) -> Cors | None:
        origins = frozenset(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return cls(origins) if origins else None

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and ("*" in self.origins or origin in self.origins)

    def preflight(self, request: web.Request) -> web.Response | None:
        """The answer to a preflight from an allowed origin; None for any other OPTIONS request."""
        headers = request.headers
        if not self.allowed(headers.get("Origin")) or "Access-Control-Request-Method" not in headers:
            return None
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
                "Access-Control-Allow-Headers": _CORS_REQUEST_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )

    def allow(self, request: web.Request, headers: MutableMapping[str, str]) -> None:
        origin = request.headers.get("Origin")
        if self.allowed(origin):
            headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
            headers["Access-Control-Expose-Headers"] = _CORS_EXPOSED
        headers["Vary"] = "Origin"


_CORS_REQUEST_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match, X-Request-ID"
_CORS_EXPOSED = (
    "ETag, Location, Retry-After, X-Request-ID, X-Cache, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)


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

"""The edge: what every request passes through, wrapped around each route's handler.

In order, for each request: its id (the client's `X-Request-ID` when valid, else generated),
bound to every log line written while serving it; a CORS preflight answered (when CORS is on);
the bearer token verified (remembered once verified); the rate limit of the route's budget,
for the token's subject or the client's address (a bad token is counted before it is refused);
the route's scope; the handler; a failure rendered as problem+json (cinema.http.problems); the
id, security, RateLimit-* and CORS headers on the response; and one `http_request` log line.
What each route needs (scope, budget) is resolved once, when it is registered (`Guard.edge`).

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
from collections.abc import Iterable, MutableMapping

import attrs
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import istr

from cinema.errors import RateLimited, Unauthorized
from cinema.http.auth import TokenVerifier, check_scope, required_scope
from cinema.http.keys import RATE_LIMITER, VERIFIER
from cinema.http.problems import render
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
from cinema.logs import REQUEST_CONTEXT, log_request
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


def add_routes(app: web.Application, settings: Settings, tables: Iterable[web.RouteTableDef]) -> None:
    """Register every route of `tables` behind the edge, then the route for unmatched requests."""
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
        handler = guard.edge(definition.handler, definition.method, definition.path)
        web.RouteDef(definition.method, definition.path, handler, definition.kwargs).register(app.router)
    app.router.add_route("*", "/{path:.*}", guard.edge(unmatched, "GET", "/"))


@attrs.frozen
class Guard:
    """What the edge checks, configured once: tokens, rate limits, CORS, the security headers."""

    verifier: TokenVerifier | None
    limiter: RateLimiter | None
    addresses: ClientAddresses
    cors: Cors | None

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
        return cls(verifier, limiter, ClientAddresses(parse_networks(settings.trusted_proxies)), cors)

    def edge(self, handler: Handler, method: str, path: str) -> Handler:
        """`handler` behind the edge, with the scope and the budget of its route."""
        doc = route_doc(handler)
        name = (doc.budget if doc is not None else None) or ("reads" if method in ("GET", "HEAD") else "writes")
        if name not in BUDGETS:  # a typo in a RouteDoc stops the start-up, limits on or off
            raise ValueError(f"{method} {path}: unknown rate-limit budget {name!r} (known: {', '.join(BUDGETS)})")
        budget = None
        if self.limiter is not None and not path.startswith(EXEMPT_PREFIXES):
            budget = self.limiter.budgets.get(name)
        scope = required_scope(method, path, doc.scope if doc is not None else None)
        return _edge(handler, guard=self, budget=budget, scope=scope if self.verifier is not None else None)


def _edge(handler: Handler, *, guard: Guard, budget: Budget | None, scope: str | None) -> Handler:
    verifier, limiter, addresses, cors = guard.verifier, guard.limiter, guard.addresses, guard.cors

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
                raise
        except RateLimited as exc:
            quota = getattr(exc, "quota", (0, exc.retry_after or 1))
            response = render(request, exc)
        except Exception as exc:
            response = render(request, exc)
        except BaseException:  # cancelled: the client went away mid-request
            log_request(request.method, request.path, 499, started)
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

"""RFC 9457 problem details: the one place where failures become HTTP responses."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import quote

import attrs
import orjson
import structlog
from aiohttp import web

from cinema import telemetry
from cinema.actors.base import ActorStopped, AskTimeout, MailboxFull
from cinema.errors import PROBLEM_BASE, DomainError, FieldError, Forbidden, Unauthorized, problem_document
from cinema.http.auth import WRITE_SCOPE

log = structlog.get_logger("cinema.http")

PROBLEM_JSON = "application/problem+json"
_PATH_SAFE = "/:@!$&'()*+,;="  # RFC 3986 pchar, kept as they are


@attrs.frozen
class ProblemType:
    """One `type` of problem a client can receive: documented in the OpenAPI document and at its own URI."""

    slug: str
    status: int | None  # None: the status varies (framework errors without a type of their own)
    title: str
    meaning: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


# Every problem type the service answers with (a test keeps this in step with cinema.errors).
PROBLEM_TYPES = {
    t.slug: t
    for t in (
        ProblemType(
            "bad-request",
            400,
            "Bad request",
            "The request is malformed: the body is not valid JSON, or a query parameter is unknown or has a value "
            "the endpoint cannot use (`errors` names each parameter).",
        ),
        ProblemType(
            "unauthorized",
            401,
            "Unauthorized",
            "A write needs `Authorization: Bearer <JWT>` with a valid, unexpired token signed for this service.",
        ),
        ProblemType(
            "forbidden",
            403,
            "Forbidden",
            "The token is valid but does not grant the scope this request needs (`catalog:write`, or "
            "`catalog:admin` for bulk writes); `WWW-Authenticate` names it.",
        ),
        ProblemType("not-found", 404, "Not found", "Nothing exists at this URI: an unknown id or path."),
        ProblemType(
            "method-not-allowed",
            405,
            "Method not allowed",
            "The resource exists but not with this method; the `Allow` header lists the methods it accepts.",
        ),
        ProblemType(
            "conflict",
            409,
            "Conflict",
            "The change contradicts the stored data: a unique value is taken, a referenced resource does not "
            "exist, or the resource is still referenced (`errors` names the field).",
        ),
        ProblemType(
            "gone",
            410,
            "Gone",
            "The cursor is a position in another catalog's event log: the catalog was replaced (`seed --replace`, "
            "a restore) or the cursor comes from another deployment. Read the resources again, then follow the feed "
            "from the `next_cursor` of a call without `since`.",
        ),
        ProblemType(
            "precondition-failed",
            412,
            "Precondition failed",
            "`If-Match` does not name the current representation: the resource changed since it was read. "
            "Read it again, then retry with its new `ETag`.",
        ),
        ProblemType(
            "payload-too-large",
            413,
            "Payload too large",
            "The request body is larger than the service accepts (`CINEMA_MAX_JSON_BYTES` for JSON bodies).",
        ),
        ProblemType(
            "unsupported-media-type",
            415,
            "Unsupported media type",
            "The body is not in a media type the endpoint accepts: send JSON as `application/json`.",
        ),
        ProblemType(
            "validation-failed",
            422,
            "Validation failed",
            "The body is well-formed JSON but some values break their constraints; `errors` lists every "
            "offending field (`credits[2].role`, or `[3].name` for an item of a bulk body).",
        ),
        ProblemType(
            "rate-limited",
            429,
            "Too many requests",
            "The client sent more requests than its limit for the current window; retry after `Retry-After` "
            "seconds (`RateLimit-Reset` says the same).",
        ),
        ProblemType(
            "internal-error",
            500,
            "Internal server error",
            "A bug in the service; it was logged with the response's `X-Request-ID`, which a report should quote.",
        ),
        ProblemType(
            "unavailable",
            503,
            "Service unavailable",
            "A dependency is down or the service is saturated; retry after the `Retry-After` seconds.",
        ),
        ProblemType(
            "http-error",
            None,
            "HTTP error",
            "Any other error status from the HTTP layer; `status` and `title` tell which.",
        ),
    )
}

# Framework exceptions (unknown route, wrong method, body over the limit) get the same shape.
_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    500: "internal-error",
}


def problem(
    request: web.BaseRequest,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    # `instance` is a URI reference, so non-ASCII is percent-encoded.
    body = problem_document(status, slug, title, detail, quote(request.path, safe=_PATH_SAFE), errors)
    return web.Response(status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers)


def from_domain_error(request: web.Request, exc: DomainError) -> web.Response:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="cinema"'
    elif isinstance(exc, Forbidden):
        scope = getattr(exc, "scope", WRITE_SCOPE)
        headers["WWW-Authenticate"] = f'Bearer realm="cinema", error="insufficient_scope", scope="{scope}"'
    return problem(request, exc.status, exc.slug, exc.title, exc.detail, exc.errors, headers)


def _unavailable(request: web.Request, detail: str, retry_after: int) -> web.Response:
    return problem(
        request, 503, "unavailable", "Service unavailable", detail, headers={"Retry-After": str(retry_after)}
    )


def render(request: web.Request, exc: Exception) -> web.Response:
    """The problem+json answer to a handler's exception (a redirect is not one: the edge passes those on)."""
    if isinstance(exc, DomainError):
        return from_domain_error(request, exc)
    if isinstance(exc, MailboxFull):
        return _unavailable(request, "The service is saturated; retry shortly.", 1)
    if isinstance(exc, AskTimeout):
        # No traceback: it would only show the edge awaiting the ask, and rendering one costs
        # milliseconds of the event loop per request, when a dependency that is down makes
        # every request time out at once (measured: 200 ms each with the console renderer).
        log.warning("actor_ask_timeout", error=str(exc))
        return _unavailable(request, "The service did not answer in time; retry shortly.", 2)
    if isinstance(exc, ActorStopped):
        return _unavailable(request, "The service is shutting down; retry on another instance.", 1)
    if isinstance(exc, web.HTTPException):
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return status_problem(request, exc.status, _detail(request, exc), headers)
    if isinstance(exc, web.RequestPayloadError):  # the client's fault, met while a handler reads the body
        return status_problem(request, 400, "The body cannot be read: its chunked or content encoding is malformed.")
    # A bug: the client gets no internals, the log gets the whole traceback.
    log.error("unhandled_error", exc_info=exc)
    telemetry.report(exc)
    return problem(
        request,
        500,
        "internal-error",
        PROBLEM_TYPES["internal-error"].title,
        "An unexpected error occurred; it was logged with this request's X-Request-ID.",
    )


def status_problem(
    request: web.BaseRequest, status: int, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The problem for a bare HTTP status: the framework's errors (unknown route, wrong method, unparsable request)."""
    slug = _HTTP_SLUGS.get(status, "http-error")
    # A type has one title whoever raises it ("Not found", not aiohttp's "Not Found").
    title = HTTPStatus(status).phrase if slug == "http-error" else PROBLEM_TYPES[slug].title
    return problem(request, status, slug, title, detail, headers=headers)


def _detail(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"No resource at {request.path}."
    if exc.status == 405:
        return f"{request.method} is not allowed here; allowed: {exc.headers.get('Allow', '')}."
    if exc.status == 413:
        return "The request body is larger than this endpoint accepts."
    return exc.text or exc.reason

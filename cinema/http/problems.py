"""RFC 9457 problem details: the one place where failures become HTTP responses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from cinema.actors.base import ActorStopped, AskTimeout, MailboxFull
from cinema.errors import DomainError, FieldError

log = structlog.get_logger("cinema.http")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"

# Framework exceptions (unknown route, wrong method, body over the limit) get the same shape.
_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_body(
    status: int, slug: str, title: str, detail: str, instance: str, errors: Sequence[FieldError] = ()
) -> dict[str, Any]:
    """The problem details object (also sent inside websocket error frames)."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def problem(
    request: web.Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = problem_body(status, slug, title, detail, request.path, errors)
    return web.Response(status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers)


def from_domain_error(request: web.Request, exc: DomainError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem(request, exc.status, exc.slug, exc.title, exc.detail, exc.errors, headers)


def _unavailable(request: web.Request, detail: str, retry_after: int) -> web.Response:
    return problem(
        request, 503, "unavailable", "Service unavailable", detail, headers={"Retry-After": str(retry_after)}
    )


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return from_domain_error(request, exc)
    except MailboxFull:
        return _unavailable(request, "The service is saturated; retry shortly.", 1)
    except AskTimeout:
        log.warning("actor_ask_timeout", exc_info=True)
        return _unavailable(request, "The service did not answer in time; retry shortly.", 2)
    except ActorStopped:
        return _unavailable(request, "The service is shutting down; retry on another instance.", 1)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = _HTTP_SLUGS.get(exc.status, "http-error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        detail = _detail(request, exc)
        return problem(request, exc.status, slug, exc.reason, detail, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        # A bug: the client gets no internals, the log gets the whole traceback.
        log.exception("unhandled_error")
        return problem(
            request,
            500,
            "internal-error",
            "Internal server error",
            "An unexpected error occurred; it was logged with this request's X-Request-ID.",
        )


def _detail(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"No resource at {request.path}."
    if exc.status == 405:
        return f"{request.method} is not allowed here; allowed: {exc.headers.get('Allow', '')}."
    if exc.status == 413:
        return "The request body is larger than this endpoint accepts."
    return exc.text or exc.reason

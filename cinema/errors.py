"""Domain errors: what went wrong, in terms a client can act on.

Domain and database code raise these; the HTTP edge (cinema/http/edge.py) renders them as RFC 9457
problem details, and the RabbitMQ consumer as replies and dead-letter reasons. Nothing here
knows about HTTP beyond the status code each kind of problem maps to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs


@attrs.frozen
class FieldError:
    field: str  # "name", "credits[2].role", "[3].title" for bulk items
    message: str


class DomainError(Exception):
    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = (), retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.retry_after = retry_after

    def prefixed(self, prefix: str) -> DomainError:
        """The same error with every field name prefixed (bulk items: "[3]" + ".title")."""
        errors = [FieldError(f"{prefix}.{e.field}" if e.field else prefix, e.message) for e in self.errors]
        clone = type(self)(self.detail, errors=errors, retry_after=self.retry_after)
        return clone


class BadRequest(DomainError):
    """Malformed JSON, or a query parameter the endpoint cannot use."""


class Unauthorized(DomainError):
    """No valid bearer token for a request that needs one."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(DomainError):
    """A valid token without the scope the request needs."""

    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    """A unique value taken, a referenced row missing or still in use."""

    status, slug, title = 409, "conflict", "Conflict"


class Gone(DomainError):
    """A position (a `/changes` cursor) in an event log that no longer exists: the catalog was replaced."""

    status, slug, title = 410, "gone", "Gone"


class PreconditionFailed(DomainError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(DomainError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(DomainError):
    """A value outside its constraints; `errors` names each field."""

    status, slug, title = 422, "validation-failed", "Validation failed"


class RateLimited(DomainError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Unavailable(DomainError):
    """A dependency is down or the service is saturated; the client should retry later."""

    status, slug, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = (), retry_after: int | None = 1) -> None:
        super().__init__(detail, errors=errors, retry_after=retry_after)


PROBLEM_BASE = "/problems/"


def problem_document(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
) -> dict[str, Any]:
    """An RFC 9457 problem, as HTTP answers and RabbitMQ replies carry it."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body

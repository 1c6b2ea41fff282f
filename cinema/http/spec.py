"""What each route promises, attached to its handler: the source of the OpenAPI document.

    @routes.get(BASE)
    @describe("List genres", tag="genres", response=PageOf(Genre), query=PAGE_PARAMS, errors=(400,))
    async def list_genres(request): ...

The generator (cinema/http/openapi.py) walks the application's route table and reads
these, together with the attrs classes named here (their fields, types and the JSON
Schema keywords in their metadata), so the document describes exactly what is served.
A handler's docstring, when it has one, becomes the operation's description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

H = TypeVar("H", bound=Callable[..., Any])


@attrs.frozen
class Param:
    """A query parameter."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    repeated: bool = False  # ?genre=drama&genre=crime
    required: bool = False


@attrs.frozen
class PageOf:
    """A keyset page: {"items": [cls], "next_cursor": str | null}."""

    cls: type


@attrs.frozen
class ListOf:
    """A JSON array of cls (bulk bodies), or {"items": [cls]} when used as a response."""

    cls: type


@attrs.frozen
class Raw:
    """A body that is not one of the catalog's attrs classes: health reports, this API's own documents, assets."""

    media_types: tuple[str, ...]
    schema: dict[str, Any] = attrs.field(factory=lambda: {"type": "string"})
    by_type: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # media types whose schema differs

    def content(self) -> dict[str, Any]:
        """The OpenAPI `content` object: each media type with its schema."""
        return {media: {"schema": self.by_type.get(media, self.schema)} for media in self.media_types}


@attrs.frozen
class RouteDoc:
    summary: str
    tag: str
    body: type | ListOf | Raw | None = None  # Raw: not JSON (images)
    response: type | PageOf | ListOf | Raw | None = None  # None: no body (204)
    status: int = 200
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # problem statuses besides the ones every route can answer
    conditional: bool = False  # honours If-Match (writes) or If-None-Match (reads)
    # The rate-limit budget it spends (cinema.http.ratelimit.BUDGETS): None is `reads` for GET, else `writes`.
    budget: str | None = None
    scope: str | None = None  # the token scope a write needs; None: catalog:write


def describe(summary: str, **fields: Any) -> Callable[[H], H]:
    doc = RouteDoc(summary, **fields)

    def attach(handler: H) -> H:
        handler.__route_doc__ = doc  # type: ignore[attr-defined]
        return handler

    return attach


def route_doc(handler: Any) -> RouteDoc | None:
    return getattr(handler, "__route_doc__", None)


PAGE_PARAMS = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Items per page."),
    Param("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
)


def sort_param(fields: list[str] | tuple[str, ...]) -> Param:
    values = [*fields, *(f"-{f}" for f in fields)]
    return Param("sort", {"type": "string", "enum": values, "default": "id"}, "Sort field; `-field` descends.")

"""Assertions the endpoint tests share."""

from __future__ import annotations

from typing import Any

from cinema.http.problems import PROBLEM_JSON


async def assert_problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status (and a field error on `field`); returns its body."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == resp.url.path
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body

"""Liveness (the process answers) and readiness (it can serve: database reachable, schema current,
and the catalog the one this process started with).

RabbitMQ, when configured, is reported but does not make the service unready: while it is
away, writes go on and their events wait in the outbox ("degraded").
"""

from __future__ import annotations

import orjson
from aiohttp import web

from cinema.actors.catalog import CheckReady, GetCatalogId
from cinema.errors import Unavailable
from cinema.http.io import JSON
from cinema.http.keys import BROKER, CATALOG, CATALOG_ID, MIGRATIONS
from cinema.http.spec import Raw, describe

routes = web.RouteTableDef()

TAG = "health"
LIVE = Raw((JSON,), {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}})
READY = Raw(
    (JSON,),
    {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"const": "ready"},
            "checks": {
                "type": "object",
                "required": ["database", "migrations"],
                "properties": {
                    "database": {"const": "ok"},
                    "migrations": {"const": "ok"},
                    "catalog": {"const": "ok"},
                },
            },
        },
    },
)


@routes.get("/health/live")
@describe("Liveness: the process answers", tag=TAG, response=LIVE)
async def live(request: web.Request) -> web.Response:
    """Touches no dependency: a failure means the process should be restarted."""
    return web.json_response({"status": "ok"})


@routes.get("/health/ready")
@describe("Readiness: the database answers and its schema is current", tag=TAG, response=READY)
async def ready(request: web.Request) -> web.Response:
    """503 (with `Retry-After`) while the database is unreachable or migrations are pending: send no traffic yet."""
    missing = await request.app[CATALOG].ask(CheckReady(request.app[MIGRATIONS]), timeout=5)
    if missing:
        raise Unavailable(f"Migrations not applied yet: {', '.join(missing)}.", retry_after=5)
    # What this process keeps outside the database is named by the id it read at start-up
    # (cinema/db/catalog.py); serving on under another one would mix two catalogs.
    if await request.app[CATALOG].ask(GetCatalogId(), timeout=5) != request.app[CATALOG_ID]:
        raise Unavailable(
            "The catalog's id changed after this process started (a seed, `new-catalog-id`, or migrations "
            "applied after start-up): restart the service.",
            retry_after=5,
        )
    checks = {"database": "ok", "migrations": "ok", "catalog": "ok"}
    if BROKER in request.app:
        checks["broker"] = request.app[BROKER].status
    body = {"status": "ready", "checks": checks}
    return web.Response(body=orjson.dumps(body), content_type="application/json")

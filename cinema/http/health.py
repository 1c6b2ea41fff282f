"""Liveness (the process answers) and readiness (it can serve: database reachable, schema current).

RabbitMQ, when configured, is reported but does not make the service unready: while it is
away, writes go on and their events wait in the outbox ("degraded").
"""

from __future__ import annotations

import orjson
from aiohttp import web

from cinema.actors.catalog import CheckReady
from cinema.errors import Unavailable
from cinema.http.keys import BROKER, CATALOG, MIGRATIONS

routes = web.RouteTableDef()


@routes.get("/health/live")
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    missing = await request.app[CATALOG].ask(CheckReady(request.app[MIGRATIONS]), timeout=5)
    if missing:
        raise Unavailable(f"Migrations not applied yet: {', '.join(missing)}.", retry_after=5)
    checks = {"database": "ok", "migrations": "ok"}
    if BROKER in request.app:
        checks["broker"] = request.app[BROKER].status
    body = {"status": "ready", "checks": checks}
    return web.Response(body=orjson.dumps(body), content_type="application/json")

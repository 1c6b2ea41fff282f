"""Property-based tests of the live service against its own OpenAPI document (schemathesis).

Every documented operation is called with generated requests, valid and invalid; each
response must match the document (status, headers, content type, body schema) and none
may be a 5xx. Operations join as they are added to the route table.

`case.call_and_validate()` is synchronous (requests), so the service runs on its own event
loop in a background thread, on an ephemeral port, against the test database.

The cases are generated at collection time from the document built from the route table
(no server needed for that); the live fixture checks the served document is that one.
schemathesis' lazy loader (`schemathesis.pytest.from_fixture`) would read it from the
live URL instead, but it breaks on pytest 9 (it sets `Node._nodeid`, which is gone).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cinema.app import create_app
from cinema.http.auth import ADMIN_SCOPE, WRITE_SCOPE, TokenVerifier
from cinema.http.edge import AppRunner
from cinema.http.openapi import OPENAPI_PATH, build_document
from cinema.settings import Settings
from tests.conftest import TABLES

# Bounded so the whole module stays well under a minute; the coverage phase adds the
# boundary and invalid values (lengths, patterns, missing fields, wrong types) on top.
# Derandomized: a run depends on the code only, so CI is reproducible. To explore, raise
# MAX_EXAMPLES and drop derandomize locally (150 examples over 3 random runs found nothing more).
MAX_EXAMPLES = 30

ACCEPTABLE = ["2xx", "3xx", "404", "409", "412"]
CONFIG = SchemathesisConfig.from_dict(
    {
        # allow-x00: text with U+0000 is a documented 422 (PostgreSQL cannot store it), which JSON
        # Schema cannot express short of a pattern on every string.
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "allow-x00": False},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # A well-formed request may still find its If-Match precondition false: that is its documented 412.
            "positive_data_acceptance": {"expected-statuses": ACCEPTABLE},
        },
        # (Within one entry, include-* filters are alternatives; the name "METHOD /path" pins both.)
        # Rules JSON Schema cannot state, each a documented 422: a person's death date not before the
        # birth date, and dates inside 0002-01-01..9999-12-30 (the driver maps the two ends to infinities).
        "operations": [
            # An upload body's type is decided by its bytes (415 for anything but an image), and its
            # form fields by the service (400); JSON Schema cannot say "a PNG". First: the first entry that
            # matches an operation decides.
            {
                "include-name-regex": "^(PUT|POST) /api/v1/(movies/[{]id[}]/(poster|shots)|persons/[{]id[}]/photo)$",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "400", "415", "422"]}},
            },
            {
                "include-path-regex": "^/api/v1/persons",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "422"]}},
            },
            # `role` only means something together with `person` (a 400 otherwise); query parameters
            # cannot state that dependency.
            {
                "include-name-regex": "^GET /api/v1/movies$",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "400"]}},
            },
            # Ids in a movie body must name existing rows, and only actors have a character.
            {
                "include-name-regex": "^(POST|PATCH|PUT) /api/v1/movies",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "422"]}},
            },
        ],
    }
)
# Any string is a valid cursor by the schema, but only the ones the service issued are accepted (400 else).
OPAQUE_QUERY = frozenset({"cursor", "since"})


class ServerThread:
    """The application on its own loop in a daemon thread, served on 127.0.0.1 at an ephemeral port."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = AppRunner(app, access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, name="cinema-server", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self._run(self._start())

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()

    async def _start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)


@pytest.fixture(scope="module")
def base_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    settings_ = Settings(
        database_url=database_url,
        migrate_on_start=False,
        data_dir=data_dir,
        ask_timeout=5,
        jwt_secret=SECRET,
        # Limited, so every response's RateLimit-* headers are checked too, but beyond what a run sends.
        rate_limit=1_000_000,
        rate_limit_writes=1_000_000,
        rate_limit_search=1_000_000,
        rate_limit_uploads=1_000_000,
    )
    with ServerThread(create_app(settings_)) as url:
        served = requests.get(url + OPENAPI_PATH, timeout=10)
        assert served.status_code == 200
        assert served.json() == DOCUMENT
        yield url


# Writes are documented as needing a token: the service under test requires one, and the cases send
# a valid catalog:admin one, so bulk writes are exercised too (schemathesis also checks that the same
# request without it is refused).
SECRET = "schemathesis-" + "s" * 32
AUTH = {
    "Authorization": "Bearer "
    + TokenVerifier(SECRET).issue("schemathesis", ttl=3600, scopes=(WRITE_SCOPE, ADMIN_SCOPE))
}
DOCUMENT = orjson.loads(orjson.dumps(build_document(create_app(Settings()))))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


# The websocket speaks frames after its 101, which schemathesis cannot; tests/http/test_search_stream.py covers it.
@schema.exclude(path="/api/v1/search/stream").parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_service_keeps_its_documented_promises(case, base_url):
    opaque = OPAQUE_QUERY.intersection(case.query or {})
    case.call_and_validate(
        base_url=base_url, headers=AUTH, excluded_checks=[positive_data_acceptance] if opaque else []
    )


def test_the_fuzzing_token_reaches_bulk_writes(base_url):
    """The cases' token is one bulk writes accept (else every bulk case would only see its 403)."""
    body = [{"name": "Fuzzing token check"}]
    assert requests.post(base_url + "/api/v1/genres/bulk", json=body, headers=AUTH, timeout=10).status_code == 201
    writer = {"Authorization": "Bearer " + TokenVerifier(SECRET).issue("writer", ttl=60)}
    refused = requests.post(base_url + "/api/v1/genres/bulk", json=body, headers=writer, timeout=10)
    assert refused.status_code == 403

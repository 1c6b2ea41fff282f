"""Writes need a bearer JWT with the catalog:write scope; reads stay public."""

from __future__ import annotations

import asyncio
import sys
import time
from asyncio.subprocess import PIPE

import jwt
import pytest

from cinema.http.auth import TokenVerifier
from cinema.settings import Settings

SECRET = "s" * 32


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings(database_url=database_url, migrate_on_start=False, data_dir=tmp_path, jwt_secret=SECRET)


def token(scope="catalog:write", secret=SECRET, exp_in=60, **claims):
    body = {"sub": "tester", "exp": int(time.time()) + exp_in, "scope": scope} | claims
    return jwt.encode(body, secret, algorithm="HS256")


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


async def test_reads_need_no_token(client):
    assert (await client.get("/api/v1/genres")).status == 200


async def test_a_write_with_the_scope_succeeds(client):
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(token()))
    assert resp.status == 201


async def test_scope_may_also_come_as_an_scp_list(client):
    resp = await client.post(
        "/api/v1/genres", json={"name": "Drama"}, headers=bearer(token(scope=None, scp=["catalog:write"]))
    )
    assert resp.status == 201


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer("not-a-jwt"),
        bearer(token(secret="x" * 32)),
        bearer(token(exp_in=-10)),
        bearer(jwt.encode({"sub": "x", "scope": "catalog:write"}, SECRET, algorithm="HS256")),  # no exp
    ],
)
async def test_missing_or_bad_tokens_are_401_and_change_nothing(client, db, headers):
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["type"] == "/problems/unauthorized"
    assert await db.fetchval("SELECT count(*) FROM genres") == 0


async def test_a_token_without_the_scope_is_403(client, db):
    resp = await client.delete("/api/v1/genres/1", headers=bearer(token(scope="catalog:read")))
    assert resp.status == 403
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


async def test_the_cli_issues_a_token_the_service_accepts(client):
    env = {"CINEMA_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cinema", "token", "--subject", "ops", env=env, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr
    issued = stdout.decode().strip()
    assert TokenVerifier(SECRET).claims(f"Bearer {issued}")["sub"] == "ops"
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(issued))
    assert resp.status == 201


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="CINEMA_JWT_SECRET: must be at least 32 bytes"):
        Settings(jwt_secret="short")

"""Writes need a bearer JWT with the catalog:write scope, bulk writes catalog:admin; reads stay public.

Tokens come signed with the service's secret (HS256), a configured public key, or the keys of an
identity provider's JWKS (here served by the test itself)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from asyncio.subprocess import PIPE

import attrs
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cinema.app import create_app
from cinema.http.auth import TokenVerifier, exposure_problem
from cinema.http.keys import VERIFIER
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
        bearer(token(exp_in=-120)),  # beyond the leeway
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
    assert (await TokenVerifier(SECRET).claims(f"Bearer {issued}"))["sub"] == "ops"
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(issued))
    assert resp.status == 201


async def test_bulk_writes_need_the_admin_scope(client, db):
    body = [{"name": "Drama"}, {"name": "Crime"}]
    refused = await client.post("/api/v1/genres/bulk", json=body, headers=bearer(token()))
    assert refused.status == 403
    assert 'scope="catalog:admin"' in refused.headers["WWW-Authenticate"]
    assert await db.fetchval("SELECT count(*) FROM genres") == 0
    admitted = await client.post("/api/v1/genres/bulk", json=body, headers=bearer(token(scope="catalog:admin")))
    assert admitted.status == 201
    # The admin scope covers single writes too.
    resp = await client.post("/api/v1/genres", json={"name": "War"}, headers=bearer(token(scope="catalog:admin")))
    assert resp.status == 201


@pytest.fixture
def audience_settings(settings):
    return attrs.evolve(settings, jwt_audience="cinema-api", jwt_issuer="https://id.example")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-api", "iss": "https://id.example"},
        {"iss": "https://id.example"},  # no audience at all
        {"aud": "cinema-api", "iss": "https://evil.example"},
        {"aud": "cinema-api", "iss": "https://id.example", "nbf": int(time.time()) + 600},  # not yet valid
    ],
)
async def test_wrong_audience_issuer_or_not_yet_valid_is_401(aiohttp_client, audience_settings, db, claims):
    client = await aiohttp_client(create_app(audience_settings))
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(token(**claims)))
    assert resp.status == 401, await resp.text()
    right = token(aud="cinema-api", iss="https://id.example", exp_in=-10)  # expired, but within the leeway
    assert (await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(right))).status == 201


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_key) -> str:
    public = private_key.public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def signed(private_key, algorithm="RS256", kid=None, exp_in=60, scope="catalog:write", **claims):
    body = {"sub": "idp-user", "exp": int(time.time()) + exp_in, "scope": scope} | claims
    return jwt.encode(body, private_key, algorithm=algorithm, headers={"kid": kid} if kid else None)


@pytest.fixture
async def jwks(aiohttp_server):
    """An identity provider's JWKS endpoint, serving the keys put in `keys`, counting its fetches."""
    state = {"keys": [], "fetches": 0}

    async def serve_keys(request):
        state["fetches"] += 1
        return web.json_response({"keys": state["keys"]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", serve_keys)
    server = await aiohttp_server(app)
    state["url"] = str(server.make_url("/.well-known/jwks.json"))
    return state


def as_jwk(private_key, kid, algorithm="RS256"):
    cls = jwt.algorithms.RSAAlgorithm if algorithm.startswith("RS") else jwt.algorithms.ECAlgorithm
    return cls.to_jwk(private_key.public_key(), as_dict=True) | {"kid": kid, "alg": algorithm, "use": "sig"}


async def test_rs256_tokens_are_verified_through_the_providers_jwks(aiohttp_client, settings, db, jwks):
    first, second = rsa_key(), rsa_key()
    jwks["keys"] = [as_jwk(first, "k1")]
    idp = attrs.evolve(settings, jwt_secret=None, jwt_jwks_url=jwks["url"], jwt_jwks_refresh=30)
    app = create_app(idp)
    now = [1000.0]
    app[VERIFIER].key_set.clock = lambda: now[0]  # type: ignore[union-attr]
    client = await aiohttp_client(app)
    headers = bearer(signed(first, kid="k1"))
    assert (await client.post("/api/v1/genres", json={"name": "Drama"}, headers=headers)).status == 201
    assert (await client.post("/api/v1/genres", json={"name": "Crime"}, headers=headers)).status == 201
    assert jwks["fetches"] == 1  # cached
    # The provider rotates its keys: an unknown kid fetches the set again, once per jwt_jwks_refresh.
    jwks["keys"] = [as_jwk(first, "k1"), as_jwk(second, "k2")]
    rotated = bearer(signed(second, kid="k2"))
    now[0] += 31
    assert (await client.post("/api/v1/genres", json={"name": "War"}, headers=rotated)).status == 201
    assert jwks["fetches"] == 2
    # Junk kids do not make the service hammer the provider.
    for i in range(3):
        junk = bearer(signed(second, kid=f"junk-{i}"))
        assert (await client.post("/api/v1/genres", json={"name": f"X{i}"}, headers=junk)).status == 401
    assert jwks["fetches"] == 2
    now[0] += 31
    assert (
        await client.post("/api/v1/genres", json={"name": "X"}, headers=bearer(signed(second, kid="j")))
    ).status == 401
    assert jwks["fetches"] == 3
    # A token signed by a key the provider does not hold, under a known kid, is refused.
    forged = bearer(signed(rsa_key(), kid="k1"))
    assert (await client.post("/api/v1/genres", json={"name": "Forged"}, headers=forged)).status == 401


async def test_a_jwks_that_cannot_be_fetched_refuses_tokens_not_the_service(aiohttp_client, settings, db):
    idp = attrs.evolve(settings, jwt_secret=None, jwt_jwks_url="http://127.0.0.1:9/jwks.json")
    client = await aiohttp_client(create_app(idp))
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(signed(rsa_key(), kid="k")))
    assert resp.status == 401
    assert (await client.get("/api/v1/genres")).status == 200


async def test_a_configured_es256_public_key(aiohttp_client, settings, db, tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_text(pem(private))
    client = await aiohttp_client(create_app(attrs.evolve(settings, jwt_public_key=str(path))))
    resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(signed(private, "ES256")))
    assert resp.status == 201
    # The HS256 secret is still accepted alongside.
    assert (await client.post("/api/v1/genres", json={"name": "War"}, headers=bearer(token()))).status == 201


async def test_algorithms_are_pinned_to_their_keys(aiohttp_client, settings, db):
    private = rsa_key()
    public_pem = pem(private)
    client = await aiohttp_client(create_app(attrs.evolve(settings, jwt_secret=None, jwt_public_key=public_pem)))
    body = {"sub": "x", "exp": int(time.time()) + 60, "scope": "catalog:write"}
    unsigned = jwt.encode(body, None, algorithm="none")
    # HS/RS confusion: the RSA public key (which anyone may have) used as an HMAC secret.
    header = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(body)
    confused = header + "." + b64_bytes(hmac.new(public_pem.encode(), header.encode(), hashlib.sha256).digest())
    for forged in (unsigned, confused, signed(private, "RS512")):
        resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(forged))
        assert resp.status == 401, forged
    assert (await client.post("/api/v1/genres", json={"name": "Drama"}, headers=bearer(signed(private)))).status == 201


def b64(value) -> str:
    return b64_bytes(json.dumps(value).encode())


def b64_bytes(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_cli_grants_the_scopes_asked_for():
    env = {"CINEMA_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "cinema", "token", "--scope", "catalog:write catalog:admin", "--ttl", "60"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    claims = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["scope"] == "catalog:write catalog:admin"
    assert claims["exp"] - claims["iat"] == 60
    missing = subprocess.run(command, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "CINEMA_JWT_SECRET" in missing.stderr


def serve_command(host: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "CINEMA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"} | env
    command = [sys.executable, "-m", "cinema", "serve", "--host", host, "--port", "0"]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_public_address_without_a_key():
    done = serve_command("0.0.0.0")
    assert done.returncode == 2
    assert "refusing to listen on '0.0.0.0'" in done.stderr
    assert "CINEMA_AUTH=off" in done.stderr


def test_exposure_rules():
    assert exposure_problem(Settings(host="127.0.0.1")) is None
    assert exposure_problem(Settings(host="::1")) is None
    assert exposure_problem(Settings(host="localhost")) is None
    assert exposure_problem(Settings(host="0.0.0.0")) is not None
    assert exposure_problem(Settings(host="::")) is not None
    assert exposure_problem(Settings(host="cinema.internal")) is not None
    assert exposure_problem(Settings(host="0.0.0.0", jwt_secret=SECRET)) is None
    assert exposure_problem(Settings(host="0.0.0.0", auth="off")) is None


async def test_auth_off_opens_writes_even_with_a_key(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(attrs.evolve(settings, auth="off")))
    assert (await client.post("/api/v1/genres", json={"name": "Drama"})).status == 201


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="CINEMA_JWT_SECRET: must be at least 32 bytes"):
        Settings(jwt_secret="short")


def test_the_openapi_document_names_each_writes_scope():
    from cinema.http.openapi import build_document

    paths = build_document(create_app(Settings()))["paths"]
    assert paths["/api/v1/genres/bulk"]["post"]["security"] == [{"bearerAuth": ["catalog:admin"]}]
    assert paths["/api/v1/genres"]["post"]["security"] == [{"bearerAuth": ["catalog:write"]}]
    assert "security" not in paths["/api/v1/genres"]["get"]

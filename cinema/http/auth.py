"""Bearer tokens: reads are public, writes need a JWT with a scope, bulk writes an admin scope.

Tokens are JWTs with `exp`, and their scopes in `scope` (space-separated, RFC 8693, as
Keycloak, Auth0 and Cognito write it), `scp` (a list or a string) or `permissions` (Auth0's
RBAC list). They are verified against the keys configured:

- `CINEMA_JWT_SECRET`: HS256, for tokens this service mints (`python -m cinema token`);
- `CINEMA_JWT_PUBLIC_KEY`: one RSA or EC public key (PEM, or a file holding it): RS256 or ES256;
- `CINEMA_JWT_JWKS_URL`: an identity provider's key set, fetched with aiohttp, cached, and
  fetched again when a token names a `kid` it does not hold (at most once per
  `CINEMA_JWT_JWKS_REFRESH` seconds, so junk `kid`s cannot make the service hammer the provider).

Each key has one algorithm, fixed when it is loaded (a secret HS256; an RSA key RS256; an EC
key the ES variant of its curve; a JWK the `alg` it states): a token is decoded with its
key's algorithm only, so `none` and HS/RS confusion (an RSA public key used as an HMAC secret)
are refused. `exp` is required; `exp`, `nbf`, `iss` and `aud` are checked with a leeway of
`CINEMA_JWT_LEEWAY` seconds. Verified tokens are remembered until they expire, so a client
that sends the same token on every request pays for one signature check.

With no key configured (the single-machine default) writes are open; `serve` refuses to
listen anywhere but a loopback address then, unless `CINEMA_AUTH=off` (see `exposure_problem`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from cinema.errors import Forbidden, Unauthorized

if TYPE_CHECKING:  # the settings validate a public key with load_public_key
    from cinema.settings import Settings

log = structlog.get_logger("cinema.http")

WRITE_SCOPE = "catalog:write"
ADMIN_SCOPE = "catalog:admin"  # bulk endpoints; implies catalog:write
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALGORITHM = "HS256"  # of the secret
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
VERIFIED_TOKENS = 10_000  # tokens remembered as verified; the memory is emptied when full
JWKS_MAX_AGE = 3600.0  # seconds a fetched key set is used before it is fetched again
JWKS_TIMEOUT = 5.0


class InsufficientScope(Forbidden):
    """A valid token without the scope the request needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"The token does not grant the {scope} scope.")
        self.scope = scope


class Key:
    """A verification key and the one algorithm it verifies."""

    __slots__ = ("algorithm", "key")

    def __init__(self, algorithm: str, key: Any) -> None:
        self.algorithm = algorithm
        self.key = key

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Key:
        key = load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        if isinstance(key, rsa.RSAPublicKey):
            return cls("RS256", key)
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
            return cls(_EC_ALGORITHMS[key.curve.name], key)
        raise ValueError("the public key must be an RSA key or an EC key on P-256, P-384 or P-521")

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> Key | None:
        """The key of a JWK that verifies signatures, or None (an encryption key, an unknown type)."""
        if jwk.get("use", "sig") != "sig":
            return None
        algorithm = jwk.get("alg")
        if algorithm is None:
            kty = jwk.get("kty")
            algorithm = "RS256" if kty == "RSA" else _EC_CURVES.get(jwk.get("crv", "")) if kty == "EC" else None
        if algorithm not in ASYMMETRIC:  # never HS* from a key set: its "secret" would be public
            return None
        try:
            return cls(algorithm, jwt.PyJWK(dict(jwk), algorithm).key)
        except jwt.PyJWKError:
            return None


def load_public_key(value: str) -> Key:
    """CINEMA_JWT_PUBLIC_KEY: a PEM, or the path of a file holding one."""
    text = value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()
    return Key.from_pem(text)


class KeySet:
    """A JWKS, fetched on first use, cached, and fetched again for an unknown `kid` (rate-limited)."""

    def __init__(self, url: str, min_refresh: float, clock: Any = time.monotonic) -> None:
        self.url = url
        self.min_refresh = min_refresh
        self.clock = clock
        self.keys: dict[str | None, Key] = {}
        self.fetches = 0
        self._fetched_at = -float("inf")
        self._fetching: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def key(self, kid: str | None) -> Key | None:
        key = self.keys.get(kid)
        age = self.clock() - self._fetched_at
        if (key is None and age >= self.min_refresh) or age >= JWKS_MAX_AGE:
            await self.refresh()
            key = self.keys.get(kid)
        return key

    async def refresh(self) -> None:
        """One fetch at a time; requests that need it meanwhile wait for the same one."""
        if self._fetching is None or self._fetching.done():
            self._fetched_at = self.clock()  # also on failure: a provider that is down is not hammered
            self._fetching = asyncio.create_task(self._fetch(), name="jwks-fetch")
        await asyncio.shield(self._fetching)

    async def _fetch(self) -> None:
        self.fetches += 1
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=JWKS_TIMEOUT))
        try:
            async with self._session.get(self.url) as resp:
                resp.raise_for_status()
                document = await resp.json(content_type=None)
            found = [jwk for jwk in document["keys"] if isinstance(jwk, dict)]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("jwks_unavailable", url=self.url, error=repr(exc), keeping=len(self.keys))
            return
        keys: dict[str | None, Key] = {}
        for jwk in found:
            key = Key.from_jwk(jwk)
            if key is not None:
                keys[jwk.get("kid")] = key
        if len(keys) == 1:  # a token without `kid` may use the only key
            keys[None] = next(iter(keys.values()))
        self.keys = keys
        log.info("jwks_fetched", url=self.url, keys=len(found))

    async def close(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
            await asyncio.gather(self._fetching, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


class TokenVerifier:
    def __init__(
        self,
        secret: str | None = None,
        *,
        public_key: Key | None = None,
        key_set: KeySet | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 30.0,
    ) -> None:
        self.secret = Key(ALGORITHM, secret) if secret is not None else None
        self.public_key = public_key
        self.key_set = key_set
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    def __repr__(self) -> str:  # never the secret
        return f"TokenVerifier(issuer={self.issuer!r}, audience={self.audience!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        """None when tokens are not checked: no key configured, or CINEMA_AUTH=off."""
        if settings.auth == "off" or not has_key(settings):
            return None
        public_key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        key_set = KeySet(settings.jwt_jwks_url, settings.jwt_jwks_refresh) if settings.jwt_jwks_url else None
        return cls(
            settings.jwt_secret,
            public_key=public_key,
            key_set=key_set,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway,
        )

    async def close(self) -> None:
        if self.key_set is not None:
            await self.key_set.close()

    def known(self, authorization: str) -> dict[str, Any] | None:
        """The claims of a header whose token was verified before and has not expired; else None."""
        known = self._verified.get(authorization)
        if known is not None and time.time() < known[0]:
            return known[1]
        return None

    async def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of an `Authorization: Bearer <token>` header; Unauthorized otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("This request needs an `Authorization: Bearer <token>` header.")
        known = self.known(authorization)  # type: ignore[arg-type]
        if known is not None:
            return known
        claims = await self._decode(token)
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[authorization] = (float(claims["exp"]) + self.leeway, claims)  # type: ignore[index]
        return claims

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            key = await self._key_for(header)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is not valid: {exc}.") from None
        if not isinstance(claims.get("exp"), int | float):
            raise Unauthorized("The token is not valid: its exp is not a number.")
        return claims

    async def _key_for(self, header: Mapping[str, Any]) -> Key:
        algorithm = header.get("alg")
        if algorithm == ALGORITHM and self.secret is not None:
            return self.secret
        if algorithm in ASYMMETRIC:
            kid = header.get("kid")
            if self.key_set is not None and (kid is not None or self.public_key is None):
                key = await self.key_set.key(kid if isinstance(kid, str) else None)
                if key is None:
                    raise jwt.InvalidTokenError(f"no key {kid!r} in the identity provider's key set")
            elif self.public_key is not None:
                key = self.public_key
            else:
                raise jwt.InvalidAlgorithmError(f"the algorithm {algorithm} is not accepted")
            if key.algorithm != algorithm:
                raise jwt.InvalidAlgorithmError(f"the key takes {key.algorithm}, not {algorithm}")
            return key
        raise jwt.InvalidAlgorithmError(f"the algorithm {algorithm!r} is not accepted")

    def issue(self, subject: str, ttl: int = 3600, scopes: tuple[str, ...] = (WRITE_SCOPE,)) -> str:
        """A token signed with the secret (`python -m cinema token`, tests)."""
        if self.secret is None:
            raise ValueError("tokens can only be issued with CINEMA_JWT_SECRET")
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl, "scope": " ".join(scopes)}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        return jwt.encode(claims, self.secret.key, algorithm=ALGORITHM)


def scopes(claims: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for name in ("scope", "scp", "permissions"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(s for s in value if isinstance(s, str))
    return found


def check_scope(claims: Mapping[str, Any], scope: str) -> None:
    granted = scopes(claims)
    if scope not in granted and ADMIN_SCOPE not in granted:
        raise InsufficientScope(scope)


def required_scope(method: str, path: str, declared: str | None) -> str | None:
    """The scope a route needs: what its RouteDoc declares, else catalog:write for writes under /api/."""
    if method not in WRITE_METHODS or not path.startswith("/api/"):
        return None
    return declared or WRITE_SCOPE


def has_key(settings: Settings) -> bool:
    return bool(settings.jwt_secret or settings.jwt_public_key or settings.jwt_jwks_url)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def exposure_problem(settings: Settings) -> str | None:
    """Why `serve` must not start: open writes on an address other machines can reach."""
    if settings.auth == "off" or has_key(settings) or is_loopback(settings.host):
        return None
    return (
        f"refusing to listen on {settings.host!r} with writes open to anyone: configure a token key "
        "(CINEMA_JWT_SECRET, CINEMA_JWT_PUBLIC_KEY or CINEMA_JWT_JWKS_URL), listen on a loopback address "
        "(CINEMA_HOST=127.0.0.1), or set CINEMA_AUTH=off to serve writes without tokens on purpose"
    )

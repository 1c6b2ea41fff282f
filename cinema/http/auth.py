"""Bearer tokens for writes: reads are public, writes need a JWT with the `catalog:write` scope.

Tokens are HS256 JWTs signed with `CINEMA_JWT_SECRET`, with an `exp` claim, and the scope
in `scope` (space-separated, RFC 8693) or `scp` (a list). With no secret configured (the
single-machine default) writes are open and the service says so at start-up.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import jwt
from aiohttp import web

from cinema.errors import Forbidden, Unauthorized
from cinema.settings import Settings

WRITE_SCOPE = "catalog:write"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALGORITHM = "HS256"


@attrs.frozen
class TokenVerifier:
    secret: str = attrs.field(repr=False)
    issuer: str | None = None
    audience: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        if settings.jwt_secret is None:
            return None
        return cls(settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience)

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of the request's bearer token, which must grant the write scope."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("This request needs an `Authorization: Bearer <token>` header.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self.secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is not valid: {exc}.") from None
        if WRITE_SCOPE not in _scopes(claims):
            raise Forbidden(f"The token does not grant the {WRITE_SCOPE} scope.")
        return claims

    def issue(self, subject: str, ttl: int = 3600, scopes: tuple[str, ...] = (WRITE_SCOPE,)) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl, "scope": " ".join(scopes)}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)


def _scopes(claims: dict[str, Any]) -> set[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    scopes = set(scope.split()) if isinstance(scope, str) else set()
    if isinstance(scp, list):
        scopes.update(s for s in scp if isinstance(s, str))
    return scopes


def authorize(verifier: TokenVerifier, request: web.Request) -> str | None:
    """Check a write's token (reads pass); the token's subject, for the request's log lines."""
    if request.method not in WRITE_METHODS or not request.path.startswith("/api/"):
        return None
    subject = verifier.claims(request.headers.get("Authorization")).get("sub")
    return subject if isinstance(subject, str) else None

"""Strong entity tags: a digest of the exact bytes sent, keyed by the catalog they come from.

The key is the catalog's id (cinema/db/catalog.py): equal bodies have equal tags within one
catalog, and a tag a client kept from another catalog (another database, or this one before
`seed --replace`) never matches, so neither a 304 nor an `If-Match` can confuse the two.
"""

from __future__ import annotations

from hashlib import blake2b

import attrs

from cinema.errors import PreconditionFailed


def etag(body: bytes, key: bytes = b"") -> str:
    """The tag of `body`; `key` is the catalog id's bytes for catalog data (none for static files)."""
    return '"' + blake2b(body, digest_size=12, key=key).hexdigest() + '"'


@attrs.frozen
class Tagged:
    """Bytes made once and served many times (the OpenAPI document, the docs' assets), with their tag."""

    body: bytes
    tag: str

    @classmethod
    def of(cls, body: bytes) -> Tagged:
        return cls(body, etag(body))


def parse_tags(header: str) -> frozenset[str] | None:
    """The tags of an If-Match/If-None-Match header; None for `*` (any current representation)."""
    if header.strip() == "*":
        return None
    return frozenset(tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip())


@attrs.frozen
class IfMatch:
    """A write's `If-Match` precondition: the tags it names (None for `*`), in its catalog's tag space."""

    tags: frozenset[str] | None
    key: bytes

    @classmethod
    def parse(cls, header: str | None, key: bytes) -> IfMatch | None:
        return None if header is None else cls(parse_tags(header), key)


def check_if_match(current: str | bytes, if_match: IfMatch | None) -> None:
    """Raise 412 unless `If-Match` names the current representation (optimistic concurrency)."""
    if if_match is None or if_match.tags is None:
        return
    body = current.encode() if isinstance(current, str) else current
    if etag(body, if_match.key) not in if_match.tags:
        raise PreconditionFailed("The resource has changed since you read it (If-Match does not match its ETag).")

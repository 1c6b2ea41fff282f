"""Strong entity tags: a digest of the exact bytes sent, so equal bodies have equal tags."""

from __future__ import annotations

from hashlib import blake2b

import attrs

from cinema.errors import PreconditionFailed


def etag(body: bytes) -> str:
    return '"' + blake2b(body, digest_size=12).hexdigest() + '"'


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


def check_if_match(current: str | bytes, if_match: str | None) -> None:
    """Raise 412 unless `If-Match` names the current representation (optimistic concurrency)."""
    if if_match is None:
        return
    tags = parse_tags(if_match)
    if tags is None:
        return
    body = current.encode() if isinstance(current, str) else current
    if etag(body) not in tags:
        raise PreconditionFailed("The resource has changed since you read it (If-Match does not match its ETag).")

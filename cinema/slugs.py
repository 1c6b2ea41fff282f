"""URL slugs: lower-case ASCII words joined by hyphens, accents folded."""

from __future__ import annotations

import re
import unicodedata

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = 64) -> str:
    """ "Amélie (2001)" -> "amelie-2001"; may be shorter than 2 for non-Latin text (callers pad)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", folded.lower()).strip("-")
    return slug[:max_length].rstrip("-")

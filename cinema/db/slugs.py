"""Generated slugs that do not collide: "drama", then "drama-2", "drama-3", ..."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from cinema.slugs import slugify

# Table names cannot be parameters; each table's query is spelled out once.
TAKEN_SLUGS = {
    table: f"SELECT slug FROM {table} WHERE slug = ANY($1) OR slug LIKE ANY($2)"
    for table in ("genres", "countries", "persons", "movies")
}
FALLBACK = {"genres": "genre", "countries": "country", "persons": "person", "movies": "movie"}


async def free_slugs(conn: asyncpg.Connection, table: str, items: Sequence[tuple[str | None, str]]) -> list[str]:
    """For each (given slug or None, text to derive one from): the given slug, or a free one.

    Given slugs are kept as they are (a taken one is the client's conflict, a 409).
    Derived ones get the lowest free numeric suffix, against the table and the batch.
    A concurrent insert can still take a derived slug first; the insert then fails with a
    409 on `slug`, which is rare enough not to warrant a retry loop.
    """
    bases = [slugify(text) if given is None else given for given, text in items]
    bases = [b if len(b) >= 2 else (FALLBACK[table] + "-" + b).rstrip("-") for b in bases]
    derived = sorted({b for (given, _), b in zip(items, bases, strict=True) if given is None})
    taken: set[str] = {given for given, _ in items if given is not None}
    if derived:
        rows = await conn.fetch(TAKEN_SLUGS[table], derived, [b + "-%" for b in derived])
        taken.update(row[0] for row in rows)
    slugs = []
    for (given, _), base in zip(items, bases, strict=True):
        if given is not None:
            slugs.append(given)
            continue
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base[: 64 - len(str(n)) - 1]}-{n}"
        taken.add(slug)
        slugs.append(slug)
    return slugs

"""The PostgreSQL search backend: `search_documents` and its typo lexicon `search_terms`.

Matching (see migrations/0011_search.sql): every query word is a prefix of an indexed word
(`'godf':*`), accents folded on both sides by `search_fold`, and a word of 4 letters or
more also matches the title/name words one typo away from it, found in `search_terms` by
their one-deletion keys. The score weights titles and names (A) over original titles (B),
descriptions (C) and mentions (D), and counts exact prefix matches twice so that a typo
match never outranks a real one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from cinema.search.backend import SearchQuery
from cinema.search.documents import Document

LIVE = ("search_documents", "search_terms")
NEXT = ("search_documents_next", "search_terms_next")

# One roundtrip per batch: the documents (tombstones for deletions), then the new words of
# their titles and names into the lexicon. Rows go in key order, so that two writers (the
# indexer and a reindex catching up) lock rows in the same order and cannot deadlock.
WRITE_DOCUMENTS = """
WITH docs AS (
    INSERT INTO {docs} AS d (kind, id, version, slug, title, summary, tsv)
    SELECT u.kind, u.id, u.version, u.slug, u.title, u.summary::json,
        CASE WHEN u.title IS NOT NULL THEN
            setweight(to_tsvector('simple', search_fold(u.a)), 'A')
            || setweight(to_tsvector('simple', search_fold(u.b)), 'B')
            || setweight(to_tsvector('simple', search_fold(u.c)), 'C')
            || setweight(to_tsvector('simple', search_fold(u.d)), 'D')
        END
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[])
        AS u(kind, id, version, slug, title, summary, a, b, c, d)
    ORDER BY u.kind, u.id
    ON CONFLICT (kind, id) DO UPDATE
    SET version = EXCLUDED.version, slug = EXCLUDED.slug, title = EXCLUDED.title,
        summary = EXCLUDED.summary, tsv = EXCLUDED.tsv
    WHERE d.version < EXCLUDED.version
    RETURNING d.kind
),
words AS (
    SELECT DISTINCT w FROM unnest($11::text[]) AS n(names), unnest(search_words(n.names)) AS w
    WHERE length(w) BETWEEN 4 AND 40
),
terms AS (
    INSERT INTO {terms} (key, term)
    SELECT k, w FROM words, unnest(search_typo_keys(w)) AS k ORDER BY k, w
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM docs
"""
WRITES = {tables: WRITE_DOCUMENTS.format(docs=tables[0], terms=tables[1]) for tables in (LIVE, NEXT)}


async def write_documents(conn: asyncpg.Connection, docs: Sequence[Document], tables: tuple[str, str] = LIVE) -> int:
    """Write the documents that are newer than what the table holds; returns how many were."""
    latest: dict[tuple[str, int], Document] = {}
    for doc in docs:  # one row per key: an upsert cannot touch a row twice
        current = latest.get((doc.kind, doc.id))
        if current is None or current.version < doc.version:
            latest[(doc.kind, doc.id)] = doc
    columns: list[list[Any]] = [[] for _ in range(10)]
    names = []
    for doc in latest.values():
        body = doc.body
        columns[0].append(doc.kind)
        columns[1].append(doc.id)
        columns[2].append(doc.version)
        if body is None:
            for column in columns[3:]:
                column.append(None)
            continue
        for column, value in zip(columns[3:], (body.slug, body.title, body.summary, *body.texts), strict=True):
            column.append(value)
        names.append(f"{body.texts[0]} {body.texts[1]}")
    written: int = await conn.fetchval(WRITES[tables], *columns, names)
    return written


# The score and the hit, shared by search and live matching. ts_rank's weights are
# {D, C, B, A}. The hit is spliced as text: the stored summary is a JSON object whose
# members follow the fixed ones (PostgreSQL keeps `json` text as written).
SCORE = """(
    2 * ts_rank('{0.05, 0.2, 0.5, 1.0}', d.tsv, q.prefix) + ts_rank('{0.05, 0.2, 0.5, 1.0}', d.tsv, q.fuzzy)
)::numeric"""
HIT = """'{"type":' || to_json(d.kind) || ',"id":' || d.id || ',"slug":' || to_json(d.slug)
    || ',"title":' || to_json(d.title) || ',"score":' || round(s.score, 4)
    || CASE WHEN d.summary::text = '{}' THEN '}' ELSE ',' || substr(d.summary::text, 2) END"""

SEARCH = f"""
SELECT {HIT}
FROM (SELECT search_prefix_query($1) AS prefix, search_fuzzy_query($1) AS fuzzy) AS q
JOIN search_documents d ON d.tsv @@ q.fuzzy
CROSS JOIN LATERAL (SELECT {SCORE} AS score) AS s
WHERE $2::text[] IS NULL OR d.kind = ANY($2::text[])
ORDER BY s.score DESC, d.kind, d.id
LIMIT $3
"""

# Every live query against one batch's documents in one statement: the batch is a version
# range (a few rows through the version index), and each query is parsed once.
MATCH = f"""
SELECT h.n, h.hit
FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS u(text, kinds, lim, n)
CROSS JOIN LATERAL (
    SELECT u.n, {HIT} AS hit, s.score, d.kind, d.id
    FROM (SELECT search_prefix_query(u.text) AS prefix, search_fuzzy_query(u.text) AS fuzzy) AS q
    JOIN search_documents d ON d.version BETWEEN $4 AND $5 AND d.tsv @@ q.fuzzy
    CROSS JOIN LATERAL (SELECT {SCORE} AS score) AS s
    WHERE u.kinds IS NULL OR d.kind = ANY(string_to_array(u.kinds, ','))
    ORDER BY s.score DESC, d.kind, d.id
    LIMIT u.lim
) AS h
ORDER BY h.n, h.score DESC, h.kind, h.id
"""


class PostgresSearch:
    name = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def start(self) -> None:
        """The tables come with the migrations."""

    async def close(self) -> None:
        """The pool belongs to the application."""

    async def write(self, docs: Sequence[Document]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await write_documents(conn, docs)

    async def search(self, query: SearchQuery) -> list[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(SEARCH, query.q, list(query.kinds) or None, query.limit)
        return [row[0] for row in rows]

    async def match(self, queries: Sequence[SearchQuery], first: int, last: int) -> list[list[str]]:
        hits: list[list[str]] = [[] for _ in queries]
        if not queries:
            return hits
        texts = [query.q for query in queries]
        kinds = [",".join(query.kinds) or None for query in queries]
        limits = [query.limit for query in queries]
        async with self.pool.acquire() as conn:
            for row in await conn.fetch(MATCH, texts, kinds, limits, first, last):
                hits[row[0] - 1].append(row[1])
        return hits

    async def stage(self) -> PostgresStage:
        stage = PostgresStage(self.pool)
        await stage.prepare()
        return stage


class PostgresStage:
    """`reindex` fills `*_next` copies of the tables, then renames them in one transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def prepare(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._drop(conn)
            for live, staged in zip(LIVE, NEXT, strict=True):
                await conn.execute(f"CREATE TABLE {staged} (LIKE {live} INCLUDING ALL)")

    async def write(self, docs: Sequence[Document]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await write_documents(conn, docs, NEXT)

    async def publish(self) -> None:
        # Searches keep reading the old table until the renames commit, and wait a moment
        # for the lock then (the rename is instant); nothing sees a missing table.
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"LOCK TABLE {', '.join(LIVE)} IN ACCESS EXCLUSIVE MODE")
            for live, staged in zip(LIVE, NEXT, strict=True):
                indexes = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", staged)
                await conn.execute(f"DROP TABLE {live}")
                await conn.execute(f"ALTER TABLE {staged} RENAME TO {live}")
                for (index,) in indexes:
                    await conn.execute(f"ALTER INDEX {index} RENAME TO {index.replace(staged, live, 1)}")

    async def discard(self) -> None:
        async with self.pool.acquire() as conn:
            await self._drop(conn)

    @staticmethod
    async def _drop(conn: asyncpg.Connection) -> None:
        await conn.execute(f"DROP TABLE IF EXISTS {', '.join(NEXT)}")

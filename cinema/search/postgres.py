"""The PostgreSQL search backend: `search_documents` and its typo lexicon `search_terms`.

Matching (see migrations/0015_search.sql): every query word must match, the last one as a
prefix ("the godf" -> 'the' & 'godf':*, as it is typed); accents are folded on both sides
by `fold`; and a word of 4 letters or more also matches the title/name words one typo away
from it, found in `search_terms` by their one-deletion keys.

Ranking, in two tiers so that a search costs little whatever the catalog's size:
- documents whose titles or names (weights A and B) match come first, scored 1..2 by
  ts_rank over those words only (small vectors, a small GIN index);
- only when they do not fill the page, documents matching in descriptions and mentions
  (C and D) follow, scored 0..1 over all their words. For a query so common that it
  matches in thousands of descriptions, only the first 200 found are ranked: such a query
  has no meaningful best description match, and ranking them all would cost more than the
  whole search should.
Within a tier, exact prefix matches count twice, so a typo match never outranks a real one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import asyncpg

from cinema.search.backend import SearchQuery
from cinema.search.documents import Document

# After NFKD has split accented letters into letter + combining mark: drop the marks, and
# map the letters that have no decomposition (Ø, Ł, Đ, ß, Æ, ...) to ASCII.
_FOLD_MAP: dict[int | str, str | None] = {
    **dict.fromkeys(range(0x300, 0x370)),
    **dict(
        zip(
            "ÐØðøĐđĦħıĸŁłŊŋŦŧƀƁƇƈƊƑƒƓƗƘƙƚƝƞƤƥƫƬƭƮƲƳƴƵƶȡȤȥȴȵȶȷȺȻȼȽȾȿɀɃɄɆɇɈɉɊɋɌɍɎɏ",
            "DOdoDdHhikLlNnTtbBCcDFfGIKklNnPptTtTVYyZzdZzlntjACcLTszBUEeJjQqRrYy",
            strict=True,
        )
    ),
    **{"ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Þ": "TH", "þ": "th", "·": None},
}
_FOLD = str.maketrans(_FOLD_MAP)


def fold(text: str) -> str:
    """Lower case without diacritics: "Amélie Ærø STRAßE" -> "amelie aero strasse"."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKD", text).translate(_FOLD).lower()


LIVE = ("search_documents", "search_terms")
NEXT = ("search_documents_next", "search_terms_next")

# One roundtrip per batch: the documents (tombstones for deletions), then the new words of
# their titles and names into the lexicon. Rows go in key order, so that two writers (the
# indexer and a reindex catching up) lock rows in the same order and cannot deadlock.
WRITE_DOCUMENTS = """
WITH docs AS (
    INSERT INTO {docs} AS d (kind, id, version, slug, title, summary, names, tsv)
    SELECT u.kind, u.id, u.version, u.slug, u.title, u.summary::json, v.names,
        v.names || setweight(to_tsvector('simple', u.c), 'C') || setweight(to_tsvector('simple', u.d), 'D')
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[])
        AS u(kind, id, version, slug, title, summary, a, b, c, d)
    CROSS JOIN LATERAL (
        SELECT setweight(to_tsvector('simple', u.a), 'A') || setweight(to_tsvector('simple', u.b), 'B') AS names
    ) AS v
    ORDER BY u.kind, u.id
    ON CONFLICT (kind, id) DO UPDATE
    SET version = EXCLUDED.version, slug = EXCLUDED.slug, title = EXCLUDED.title,
        summary = EXCLUDED.summary, names = EXCLUDED.names, tsv = EXCLUDED.tsv
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
        texts = [fold(text) for text in body.texts]
        for column, value in zip(columns[3:], (body.slug, body.title, body.summary, *texts), strict=True):
            column.append(value)
        names.append(f"{texts[0]} {texts[1]}")
    written: int = await conn.fetchval(WRITES[tables], *columns, names)
    return written


# Scores: 1..2 for a match in titles and names, 0..1 for one in descriptions and mentions.
# ts_rank's weights are {D, C, B, A}.
WEIGHTS = "'{0.05, 0.2, 0.5, 1.0}'"
NAMES_SCORE = f"""(1 + least(2.999,
    2 * ts_rank({WEIGHTS}, d.names, q.prefix) + ts_rank({WEIGHTS}, d.names, q.fuzzy)) / 3)::numeric"""
MENTION_SCORE = f"""(least(2.999,
    2 * ts_rank({WEIGHTS}, d.tsv, q.prefix) + ts_rank({WEIGHTS}, d.tsv, q.fuzzy)) / 3)::numeric"""
MENTIONS_RANKED = 200
# The hit is spliced as text: the stored summary is a JSON object whose members follow the
# fixed ones (PostgreSQL keeps `json` text as written).
HIT = """'{"type":' || to_json(d.kind) || ',"id":' || d.id || ',"slug":' || to_json(d.slug)
    || ',"title":' || to_json(d.title) || ',"score":' || round(d.score, 4)
    || CASE WHEN d.summary::text = '{}' THEN '}' ELSE ',' || substr(d.summary::text, 2) END"""
KIND = "($2::text[] IS NULL OR d.kind = ANY($2::text[]))"

# The query is parsed once (MATERIALIZED: inlined, the fuzzy expansion would run per row).
SEARCH = f"""
WITH q AS MATERIALIZED (SELECT * FROM search_query($1)),
named AS MATERIALIZED (
    SELECT d.kind, d.id, d.slug, d.title, d.summary, {NAMES_SCORE} AS score
    FROM q JOIN search_documents d ON d.names @@ q.fuzzy
    WHERE {KIND}
    ORDER BY score DESC, d.kind, d.id
    LIMIT $3
),
mentioned AS (
    SELECT d.kind, d.id, d.slug, d.title, d.summary, {MENTION_SCORE} AS score
    FROM q CROSS JOIN LATERAL (
        SELECT d.* FROM search_documents d
        WHERE d.tsv @@ q.fuzzy AND NOT d.names @@ q.fuzzy AND {KIND}
        LIMIT {MENTIONS_RANKED}
    ) AS d
    WHERE (SELECT count(*) FROM named) < $3
    ORDER BY score DESC, d.kind, d.id
    LIMIT $3
)
SELECT {HIT}
FROM (SELECT * FROM named UNION ALL SELECT * FROM mentioned) AS d
ORDER BY d.score DESC, d.kind, d.id
LIMIT $3
"""

# Every live query against one batch's documents in one statement: the batch is a version
# range (a few rows through the version index), and each query is parsed once.
MATCH = f"""
WITH q AS MATERIALIZED (
    SELECT u.n, u.kinds, u.lim, p.prefix, p.fuzzy
    FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS u(text, kinds, lim, n)
    CROSS JOIN LATERAL search_query(u.text) AS p
)
SELECT q.n, h.hit
FROM q CROSS JOIN LATERAL (
    SELECT {HIT} AS hit, d.score, d.kind, d.id
    FROM (
        SELECT d.kind, d.id, d.slug, d.title, d.summary,
            CASE WHEN d.names @@ q.fuzzy THEN {NAMES_SCORE} ELSE {MENTION_SCORE} END AS score
        FROM search_documents d
        WHERE d.version BETWEEN $4 AND $5 AND d.tsv @@ q.fuzzy
            AND (q.kinds IS NULL OR d.kind = ANY(string_to_array(q.kinds, ',')))
    ) AS d
    ORDER BY d.score DESC, d.kind, d.id
    LIMIT q.lim
) AS h
ORDER BY q.n, h.score DESC, h.kind, h.id
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
            rows = await conn.fetch(SEARCH, fold(query.q), list(query.kinds) or None, query.limit)
        return [row[0] for row in rows]

    async def match(self, queries: Sequence[SearchQuery], first: int, last: int) -> list[list[str]]:
        hits: list[list[str]] = [[] for _ in queries]
        if not queries:
            return hits
        texts = [fold(query.q) for query in queries]
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


# The staged table's indexes renamed after the live one's, each statement quoted by PostgreSQL
# (`%I`): their names come from the catalog, so they never become SQL text on our side.
INDEX_RENAMES = """
SELECT format('ALTER INDEX %I RENAME TO %I', indexname,
              overlay(indexname PLACING $2 FROM strpos(indexname, $1) FOR length($1)))
FROM pg_indexes WHERE tablename = $1 AND strpos(indexname, $1) > 0
"""


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
                renames = await conn.fetch(INDEX_RENAMES, staged, live)
                await conn.execute(f"DROP TABLE {live}")
                await conn.execute(f"ALTER TABLE {staged} RENAME TO {live}")
                for (rename,) in renames:
                    await conn.execute(rename)

    async def discard(self) -> None:
        async with self.pool.acquire() as conn:
            await self._drop(conn)

    @staticmethod
    async def _drop(conn: asyncpg.Connection) -> None:
        await conn.execute(f"DROP TABLE IF EXISTS {', '.join(NEXT)}")

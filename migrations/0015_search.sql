-- depends: 0014_processed_commands

-- Search, maintained by the indexer (cinema/actors/indexer.py) from the outbox log. The
-- PostgreSQL search backend keeps its documents here; with Elasticsearch configured only
-- `search_positions` is used.
--
-- Only core PostgreSQL is used: the embedded server (pgserver's build) has neither
-- pg_trgm nor unaccent, and the embedded server is the default. Accents are folded before
-- text gets here (cinema/search/postgres.py `fold`, applied to documents and queries
-- alike: Python's NFKD and str.translate are far faster than translate() in SQL),
-- prefixes are tsquery prefix matches on a GIN index, and typos go through
-- `search_terms`, a lexicon keyed by each word's one-deletion variants (two words one typo
-- apart share a key).

-- How far each consumer of the outbox has got: the seq of the last event it finished.
CREATE TABLE search_positions (
    consumer   text NOT NULL,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT search_positions_pkey PRIMARY KEY (consumer)
);

-- The words of a text as the index holds them: split by the 'simple' parser, lower case
-- (no stemming and no stop words, so every word of a title can be typed as a prefix).
CREATE FUNCTION search_words(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT tsvector_to_array(to_tsvector('simple', value))
$$;

-- A word and every variant of it with one letter deleted. Two words within one typo
-- (a letter changed, added, removed or two swapped) have a variant in common.
-- (PL/pgSQL here and below: a SQL function that cannot be inlined is planned again at
-- every statement, which cost more than the search itself.)
CREATE FUNCTION search_typo_keys(word text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    keys text[] := ARRAY[word];
BEGIN
    FOR i IN 1..length(word) LOOP
        keys := keys || overlay(word PLACING '' FROM i FOR 1);
    END LOOP;
    RETURN keys;
END
$$;

-- A word quoted as a tsquery lexeme.
CREATE FUNCTION search_lexeme(word text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT '''' || replace(replace(word, '\', '\\'), '''', '''''') || ''''
$$;

-- The typo lexicon: each title/name word of 4 letters or more under each of its
-- `search_typo_keys`. Words are never removed (a stale word only widens a query to a
-- word no document has); `reindex` rebuilds it.
CREATE TABLE search_terms (
    key  text NOT NULL,
    term text NOT NULL,
    CONSTRAINT search_terms_pkey PRIMARY KEY (key, term)
);

-- The words of a query in the order typed; the last one is flagged: it may be unfinished.
-- A last word of one letter after other words is left out until it has a second letter:
-- as a prefix it would match a large part of the catalog, for nothing the words before it
-- do not already find.
CREATE FUNCTION search_query_words(q text) RETURNS TABLE (word text, last boolean)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
WITH w AS (
    SELECT t.lexeme, t.positions[array_length(t.positions, 1)] AS pos FROM unnest(to_tsvector('simple', q)) AS t
),
typed AS (
    SELECT * FROM w
    WHERE length(w.lexeme) > 1 OR w.pos < (SELECT max(pos) FROM w) OR (SELECT count(*) FROM w) = 1
)
SELECT typed.lexeme, typed.pos = max(typed.pos) OVER () FROM typed
$$;

-- A query as two tsqueries. `prefix`: every word required, the last one as a prefix, as
-- it is typed ("the godf" -> 'the' & 'godf':*). `fuzzy`: the same where each word of 4
-- letters or more also matches the title and name words one typo away from it
-- ("godfater" -> 'godfater':* | 'godfather').
CREATE FUNCTION search_query(q text, OUT prefix tsquery, OUT fuzzy tsquery)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE AS $$
BEGIN
    SELECT
        string_agg(e.exact, ' & ')::tsquery,
        string_agg('(' || e.exact || coalesce(e.typos, '') || ')', ' & ')::tsquery
    INTO prefix, fuzzy
    FROM search_query_words(q) AS w
    CROSS JOIN LATERAL (
        SELECT
            search_lexeme(w.word) || CASE WHEN w.last THEN ':*' ELSE '' END AS exact,
            (
                SELECT string_agg(' | ' || search_lexeme(t.term), '' ORDER BY t.term) FROM (
                    SELECT DISTINCT term FROM search_terms
                    WHERE length(w.word) >= 4 AND key = ANY(search_typo_keys(w.word)) AND term <> w.word
                    ORDER BY term LIMIT 16
                ) AS t
            ) AS typos
    ) AS e;
END
$$;

-- One row per indexed entity. A deleted entity leaves a tombstone (NULL slug, title,
-- summary, names and tsv) so that a replayed older event cannot bring it back: `version`
-- is the seq of the event that produced the row, and a write only replaces a lower version.
-- `names` holds the title and name words (weights A and B), `tsv` all the words (A to D).
CREATE TABLE search_documents (
    kind    text NOT NULL,
    id      bigint NOT NULL,
    version bigint NOT NULL,
    slug    text,
    title   text,
    summary json,
    names   tsvector,
    tsv     tsvector,
    CONSTRAINT search_documents_pkey PRIMARY KEY (kind, id)
);
-- Full-text matching (prefix and typo expansions are tsquery terms). Searches look among
-- titles and names first (a small index, small vectors to rank), and among descriptions
-- and mentions only when titles and names do not fill the page. fastupdate is off: with
-- it, a bulk import leaves a pending list that every search scans linearly until vacuum
-- merges it (searches were 4 times slower after an import); indexing directly costs the
-- indexer less than that costs searches.
CREATE INDEX search_documents_names_idx ON search_documents USING gin (names) WITH (fastupdate = off);
CREATE INDEX search_documents_tsv_idx ON search_documents USING gin (tsv) WITH (fastupdate = off);
-- Live searches match the documents of one indexing batch: a version range.
CREATE INDEX search_documents_version_idx ON search_documents (version);

-- depends: 0015_search
-- The identity of this catalog. Everything kept outside the database that is versioned by outbox
-- seqs (Redis cache entries and counters, Elasticsearch indices and their indexer position, ETags,
-- /changes cursors) is named by it, because seqs only mean something within one event log: another
-- database, or this one after `seed --replace` or a restore, numbers its events anew. Rewriting the
-- log therefore gives the catalog a new id (cinema/db/catalog.py). Exactly one row.
CREATE TABLE catalog (
    one        boolean NOT NULL DEFAULT true,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT catalog_pkey PRIMARY KEY (one),
    CONSTRAINT catalog_one_row CHECK (one)
);
INSERT INTO catalog DEFAULT VALUES;

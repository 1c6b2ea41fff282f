-- depends: 0008_shots
-- The domain event log. A change writes its events here in its own transaction, so an
-- event exists if and only if its change committed. Writers take the advisory lock
-- `outbox_writer` right before inserting (see cinema/db/outbox.py), which makes `seq`
-- order equal commit order: a reader that remembers the last seq it saw never skips a row
-- whose transaction committed late.
CREATE TABLE outbox (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    type               text NOT NULL,
    entity_id          bigint NOT NULL,
    occurred_at        timestamptz NOT NULL DEFAULT now(),
    data               jsonb,
    -- Movies whose representation embeds the changed entity (a renamed genre changes
    -- every movie that carries it): caches and the search index refresh these too.
    affected_movie_ids bigint[] NOT NULL DEFAULT '{}',
    published_at       timestamptz,
    CONSTRAINT outbox_type_format CHECK (type ~ '^[a-z]+\.(created|updated|deleted)$')
);
CREATE UNIQUE INDEX outbox_id_key ON outbox (id);
-- The relay's work list: rows not yet published, in order, without scanning the history.
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;

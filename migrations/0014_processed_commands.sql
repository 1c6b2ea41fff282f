-- depends: 0013_updated_at_at_write
-- Commands from other systems (RabbitMQ) that took effect, written in the same transaction as
-- the effect: a redelivered message (same message_id) is recognised, acknowledged without being
-- applied again, and answered with its first outcome. Rejected commands leave no row (they had
-- no effect, and go to the dead-letter queue with their reason).
CREATE TABLE processed_commands (
    message_id   text NOT NULL,
    command      text NOT NULL,
    entity_id    bigint,  -- null: a delete of an entity that did not exist
    processed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT processed_commands_pkey PRIMARY KEY (message_id)
);
-- Pruning removes the oldest entries past the deduplication window.
CREATE INDEX processed_commands_processed_at_idx ON processed_commands (processed_at);

-- depends: 0017_outbox_traceparent
-- Images: each resource with an image keeps its original's object key (content-addressed, so
-- the stored URL is immutable) and the URLs of its renditions. The key is what deletion and
-- the storage sweep go by; the URLs are what documents show.
ALTER TABLE movies ADD COLUMN poster_key text, ADD COLUMN poster_images json;
ALTER TABLE persons ADD COLUMN photo_key text, ADD COLUMN photo_images json;
ALTER TABLE shots ADD COLUMN image_key text, ADD COLUMN images json;

-- Background uploads: a row per accepted image, pending until the uploader actor has stored
-- its objects and set the URL on the resource (in one transaction with `done`). No foreign key
-- to the target: the row outlives a deleted movie, person or shot, and says why it failed.
CREATE TABLE uploads (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL,
    entity_id       bigint NOT NULL,  -- the movie (poster), person (photo) or shot (shot)
    status          text NOT NULL DEFAULT 'pending',
    content_type    text NOT NULL,
    width           integer NOT NULL,
    height          integer NOT NULL,
    size            bigint NOT NULL,
    key             text NOT NULL,  -- the original's object key
    spool_path      text NOT NULL,  -- the body as received, until the upload is done or failed
    node            text NOT NULL,  -- the host whose data folder holds the spool file
    url             text,  -- set when done, with the renditions' URLs
    images          json,
    error           text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT uploads_kind_valid CHECK (kind IN ('poster', 'photo', 'shot')),
    CONSTRAINT uploads_status_valid CHECK (status IN ('pending', 'done', 'failed'))
);
-- What the uploader polls: the pending uploads of its host that are due. Partial, so it holds
-- only the few rows in flight however long the history grows.
CREATE INDEX uploads_pending_idx ON uploads (node, next_attempt_at) WHERE status = 'pending';
-- Which upload of a resource is the latest: a poster or photo uploaded twice at once keeps the
-- one sent last, whichever finishes first.
CREATE INDEX uploads_entity_idx ON uploads (kind, entity_id, id);

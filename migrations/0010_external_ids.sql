-- depends: 0009_outbox
-- Ids that other systems use for our entities ("imdb", "tt0111161"). One nullable
-- foreign key per kind, exactly one set, so the database enforces the reference and
-- deleting an entity deletes its external ids.
CREATE TABLE external_ids (
    source      text NOT NULL,
    kind        text NOT NULL,
    external_id text NOT NULL,
    movie_id    bigint CONSTRAINT external_ids_movie_fkey REFERENCES movies ON DELETE CASCADE,
    person_id   bigint CONSTRAINT external_ids_person_fkey REFERENCES persons ON DELETE CASCADE,
    genre_id    bigint CONSTRAINT external_ids_genre_fkey REFERENCES genres ON DELETE CASCADE,
    country_id  bigint CONSTRAINT external_ids_country_fkey REFERENCES countries ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT external_ids_pkey PRIMARY KEY (source, kind, external_id),
    CONSTRAINT external_ids_kind_valid CHECK (kind IN ('movie', 'person', 'genre', 'country')),
    CONSTRAINT external_ids_one_target CHECK (
        (kind = 'movie') = (movie_id IS NOT NULL)
        AND (kind = 'person') = (person_id IS NOT NULL)
        AND (kind = 'genre') = (genre_id IS NOT NULL)
        AND (kind = 'country') = (country_id IS NOT NULL)
    )
);
-- Indexes for the cascades (and "which external ids does this entity have").
CREATE INDEX external_ids_movie_idx ON external_ids (movie_id) WHERE movie_id IS NOT NULL;
CREATE INDEX external_ids_person_idx ON external_ids (person_id) WHERE person_id IS NOT NULL;
CREATE INDEX external_ids_genre_idx ON external_ids (genre_id) WHERE genre_id IS NOT NULL;
CREATE INDEX external_ids_country_idx ON external_ids (country_id) WHERE country_id IS NOT NULL;

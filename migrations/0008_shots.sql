-- depends: 0007_credits
CREATE TABLE shots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    movie_id   bigint NOT NULL CONSTRAINT shots_movie_fkey REFERENCES movies ON DELETE CASCADE,
    caption    text,
    image_url  text,
    position   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shots_caption_length CHECK (char_length(caption) <= 255),
    CONSTRAINT shots_position_range CHECK (position >= 0)
);
CREATE INDEX shots_movie_position_idx ON shots (movie_id, position, id);

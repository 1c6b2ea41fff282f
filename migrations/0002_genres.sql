-- depends: 0001_updated_at
CREATE TABLE genres (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug text NOT NULL,
    name text NOT NULL,
    CONSTRAINT genres_slug_format CHECK (slug ~ '^[a-z0-9-]{2,64}$'),
    CONSTRAINT genres_name_length CHECK (char_length(name) BETWEEN 2 AND 64)
);
CREATE UNIQUE INDEX genres_slug_key ON genres (slug);
-- Names are unique regardless of case: "Drama" and "drama" are one genre.
CREATE UNIQUE INDEX genres_name_key ON genres (lower(name));

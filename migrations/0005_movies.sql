-- depends: 0004_persons
CREATE TABLE movies (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug           text NOT NULL,
    title          text NOT NULL,
    original_title text,
    description    text,
    release_year   smallint,
    premiere_date  date,
    duration       integer,
    age_rating     text,
    rating         numeric(3, 1),
    poster_url     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT movies_slug_format CHECK (slug ~ '^[a-z0-9-]+$' AND char_length(slug) BETWEEN 2 AND 300),
    CONSTRAINT movies_title_length CHECK (char_length(title) BETWEEN 1 AND 255),
    CONSTRAINT movies_original_title_length CHECK (char_length(original_title) BETWEEN 1 AND 255),
    -- 1888: the oldest surviving motion picture (Roundhay Garden Scene).
    CONSTRAINT movies_release_year_range CHECK (release_year BETWEEN 1888 AND 2100),
    CONSTRAINT movies_duration_range CHECK (duration BETWEEN 1 AND 1000),
    CONSTRAINT movies_age_rating_valid CHECK (age_rating IN ('G', 'PG', 'PG-13', 'R', 'NC-17')),
    CONSTRAINT movies_rating_range CHECK (rating BETWEEN 0 AND 10)
);
CREATE UNIQUE INDEX movies_slug_key ON movies (slug);
CREATE TRIGGER movies_updated_at BEFORE UPDATE ON movies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

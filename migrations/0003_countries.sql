-- depends: 0002_genres
CREATE TABLE countries (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL,
    slug text NOT NULL,
    name text NOT NULL,
    -- ISO 3166-1 alpha-2: two upper-case letters.
    CONSTRAINT countries_code_format CHECK (code ~ '^[A-Z]{2}$'),
    CONSTRAINT countries_slug_format CHECK (slug ~ '^[a-z0-9-]{2,64}$'),
    CONSTRAINT countries_name_length CHECK (char_length(name) BETWEEN 2 AND 100)
);
CREATE UNIQUE INDEX countries_code_key ON countries (code);
CREATE UNIQUE INDEX countries_slug_key ON countries (slug);
CREATE UNIQUE INDEX countries_name_key ON countries (lower(name));

-- depends: 0003_countries
CREATE TABLE persons (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text NOT NULL,
    full_name  text NOT NULL,
    birth_date date,
    death_date date,
    biography  text,
    photo_url  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT persons_slug_format CHECK (slug ~ '^[a-z0-9-]{2,160}$'),
    CONSTRAINT persons_full_name_length CHECK (char_length(full_name) BETWEEN 2 AND 150),
    CONSTRAINT persons_death_after_birth CHECK (death_date >= birth_date)
);
CREATE UNIQUE INDEX persons_slug_key ON persons (slug);
CREATE TRIGGER persons_updated_at BEFORE UPDATE ON persons
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

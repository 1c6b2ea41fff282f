-- depends: 0006_movie_genres_countries
CREATE TABLE credits (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    movie_id  bigint NOT NULL CONSTRAINT credits_movie_fkey REFERENCES movies ON DELETE CASCADE,
    -- RESTRICT: a person who has credits cannot be deleted (the API answers 409).
    person_id bigint NOT NULL CONSTRAINT credits_person_fkey REFERENCES persons ON DELETE RESTRICT,
    role      text NOT NULL,
    character text,
    position  integer NOT NULL DEFAULT 0,
    CONSTRAINT credits_role_valid CHECK (role IN ('actor', 'director', 'writer', 'producer')),
    CONSTRAINT credits_character_only_for_actors CHECK (character IS NULL OR role = 'actor'),
    CONSTRAINT credits_character_length CHECK (char_length(character) BETWEEN 1 AND 255),
    CONSTRAINT credits_position_range CHECK (position >= 0)
);
CREATE UNIQUE INDEX credits_movie_person_role_key ON credits (movie_id, person_id, role);
-- A movie's credits in display order.
CREATE INDEX credits_movie_position_idx ON credits (movie_id, position, id);
-- Filmographies, the person filter of the movie list, and the RESTRICT check.
CREATE INDEX credits_person_idx ON credits (person_id, role, movie_id);

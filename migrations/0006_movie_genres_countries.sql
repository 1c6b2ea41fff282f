-- depends: 0005_movies
-- Deleting a movie, genre or country removes its associations (API: "deleting a genre
-- removes it from its movies").
CREATE TABLE movie_genres (
    movie_id bigint NOT NULL CONSTRAINT movie_genres_movie_fkey REFERENCES movies ON DELETE CASCADE,
    genre_id bigint NOT NULL CONSTRAINT movie_genres_genre_fkey REFERENCES genres ON DELETE CASCADE,
    CONSTRAINT movie_genres_pkey PRIMARY KEY (movie_id, genre_id)
);
-- The primary key serves lookups by movie; this one serves "movies of a genre" and the cascade.
CREATE INDEX movie_genres_genre_idx ON movie_genres (genre_id, movie_id);

CREATE TABLE movie_countries (
    movie_id   bigint NOT NULL CONSTRAINT movie_countries_movie_fkey REFERENCES movies ON DELETE CASCADE,
    country_id bigint NOT NULL CONSTRAINT movie_countries_country_fkey REFERENCES countries ON DELETE CASCADE,
    CONSTRAINT movie_countries_pkey PRIMARY KEY (movie_id, country_id)
);
CREATE INDEX movie_countries_country_idx ON movie_countries (country_id, movie_id);

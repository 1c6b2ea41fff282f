-- depends: 0011_persons_sort_indexes
-- Keyset pages of movies (cinema/db/movies.py) read `(key, id) > ($n, $m) ORDER BY key, id
-- LIMIT k`; each sort key gets an index on exactly that pair, so a page at any depth is one
-- index range scan that stops after k rows. Nullable columns sort through a never-null
-- expression (an unknown value is the lowest), and the index is on that same expression.

-- sort=title: case-insensitive.
CREATE INDEX movies_title_idx ON movies ((lower(title)), id);
-- sort=release_year, and the year_from/year_to filters (written on the same expression).
CREATE INDEX movies_release_year_idx ON movies ((coalesce(release_year, 0)), id);
-- sort=rating: float8 so that the cursor carries a JSON number.
CREATE INDEX movies_rating_idx ON movies ((coalesce(rating::float8, -1)), id);
-- sort=created_at.
CREATE INDEX movies_created_at_idx ON movies (created_at, id);

-- The other filters are served by existing indexes: genre and country by
-- movie_genres_genre_idx / movie_countries_country_idx (starting from a rare value) or the
-- link tables' primary keys (probing each movie of a sort index walk); person by
-- credits_person_idx or credits_movie_person_role_key the same way; slug by
-- movies_slug_key. age_rating has no index: each of its five values holds a large share of
-- the movies, so walking the sort index and skipping the others is cheaper than a lookup.

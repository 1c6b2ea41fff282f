-- depends: 0010_external_ids
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

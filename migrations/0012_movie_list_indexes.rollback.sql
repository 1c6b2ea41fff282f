DROP INDEX movies_created_at_idx;
DROP INDEX movies_rating_idx;
DROP INDEX movies_release_year_idx;
DROP INDEX movies_title_idx;

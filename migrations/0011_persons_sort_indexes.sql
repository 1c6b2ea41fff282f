-- depends: 0010_external_ids
-- Keyset pages of persons (cinema/db/persons.py) read `(key, id) > ($2, $3) ORDER BY key, id`;
-- each sortable key gets an index on exactly that pair, so any page is an index range scan.

-- A null birth date sorts as 'infinity' (last ascending, first descending, like PostgreSQL's
-- own NULLS order): the keyset comparison needs a key that is never null, and this index is
-- on the same expression the list compares.
CREATE INDEX persons_birth_date_idx ON persons ((coalesce(birth_date, 'infinity'::date)), id);
CREATE INDEX persons_full_name_idx ON persons (full_name, id);
CREATE INDEX persons_created_at_idx ON persons (created_at, id);

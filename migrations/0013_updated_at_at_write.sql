-- depends: 0012_movie_list_indexes
-- `updated_at` is the time of the write, not of the transaction's start (now()): a
-- transaction that waited for a row lock would otherwise stamp its change earlier than
-- the change it waited for, and a row's updated_at would go back in time while its
-- events (in commit order) go forward. The trigger runs once the row is locked.
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;

-- A trigger function that keeps `updated_at` true on every UPDATE, whoever runs it
-- (the service, a migration, an operator in psql).
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

DROP INDEX persons_created_at_idx;
DROP INDEX persons_full_name_idx;
DROP INDEX persons_birth_date_idx;

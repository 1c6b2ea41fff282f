"""Every named constraint of the schema maps to a precise client error."""

from __future__ import annotations

import asyncpg
import pytest

from cinema.db.integrity import CONSTRAINTS, to_domain_error
from cinema.errors import Conflict, ValidationFailed

# Primary keys of tables whose ids the database generates can never be violated by a client.
GENERATED_KEYS = {
    f"{t}_pkey" for t in ("genres", "countries", "persons", "movies", "credits", "shots", "outbox", "uploads")
}


async def test_every_constraint_and_unique_index_is_in_the_table(db):
    names = await db.fetch(
        """
        SELECT conname AS name FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND contype IN ('c', 'f', 'u', 'p')
        UNION
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indisunique AND c.relnamespace = 'public'::regnamespace
        """
    )
    # yoyo's own bookkeeping tables are not the service's schema.
    schema = {r["name"] for r in names if not r["name"].lstrip("_").startswith("yoyo")} - GENERATED_KEYS
    assert schema - set(CONSTRAINTS) == set(), "constraints without a client-facing rule"
    assert set(CONSTRAINTS) - schema == set(), "rules for constraints that no longer exist"


async def test_unique_violation_is_a_409_naming_field_and_value(db):
    await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Other')")
    error = to_domain_error(caught.value)
    assert isinstance(error, Conflict)
    assert error.errors[0].field == "slug"
    assert "'drama'" in error.errors[0].message


async def test_check_violation_is_a_422_naming_the_field(db):
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute(
            "INSERT INTO persons (slug, full_name, birth_date, death_date)"
            " VALUES ('ab', 'Ab', '2000-01-02', '2000-01-01')"
        )
    error = to_domain_error(caught.value)
    assert isinstance(error, ValidationFailed)
    assert error.errors[0].field == "death_date"


async def test_restricted_delete_is_a_409(db):
    person = await db.fetchval("INSERT INTO persons (slug, full_name) VALUES ('al-pacino', 'Al Pacino') RETURNING id")
    movie = await db.fetchval("INSERT INTO movies (slug, title) VALUES ('heat', 'Heat') RETURNING id")
    await db.execute("INSERT INTO credits (movie_id, person_id, role) VALUES ($1, $2, 'actor')", movie, person)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
        await db.execute("DELETE FROM persons WHERE id = $1", person)
    error = to_domain_error(caught.value)
    assert isinstance(error, Conflict)
    assert error.errors[0].field == "person_id"

"""Applying commands: keyed by external ids, once per message id, references resolved in the transaction."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from cinema.bus.commands import COMMANDS
from cinema.db import genres
from cinema.db.commands import (
    Applied,
    Command,
    CommandRejected,
    Delete,
    Rejected,
    apply_commands,
    prune_processed,
)
from cinema.db.outbox import NewEvent
from cinema.errors import Conflict, ValidationFailed
from tests.conftest import eventually

GENRE_UPSERT = COMMANDS["genre.upsert"]
GENRE_DELETE = Delete("genre", genres.delete_genre)


def upsert(message_id: str, external_id: str, name: str, **data: object) -> Command:
    return Command(message_id, "genre.upsert", GENRE_UPSERT, "imdb", external_id, {"name": name, **data})


async def apply(db: asyncpg.Connection, *commands: Command) -> tuple[list, list[NewEvent]]:
    async with db.transaction():
        return await apply_commands(db, commands)


async def test_an_upsert_creates_then_replaces_the_entity_behind_its_external_id(db):
    [created], events = await apply(db, upsert("m1", "g1", "Drama"))
    assert created == Applied(created.entity_id)
    assert [(e.type, e.entity_id) for e in events] == [("genre.created", created.entity_id)]
    assert json.loads(events[0].data) == {"id": created.entity_id, "slug": "drama", "name": "Drama"}
    link = await db.fetchrow("SELECT source, kind, external_id, genre_id FROM external_ids")
    assert tuple(link) == ("imdb", "genre", "g1", created.entity_id)

    [updated], events = await apply(db, upsert("m2", "g1", "Dramas"))
    assert updated == Applied(created.entity_id)
    assert [e.type for e in events] == ["genre.updated"]
    # No slug in the command: the genre keeps the one it has (its URLs stay valid).
    row = await db.fetchrow("SELECT slug, name FROM genres")
    assert tuple(row) == ("drama", "Dramas")
    assert await db.fetchval("SELECT count(*) FROM genres") == 1


async def test_a_message_id_is_applied_once_and_its_outcome_remembered(db):
    [first], _ = await apply(db, upsert("m1", "g1", "Drama"))
    [again], events = await apply(db, upsert("m1", "g1", "Something else"))
    assert again == Applied(first.entity_id, duplicate=True)
    assert events == []
    assert await db.fetchval("SELECT name FROM genres") == "Drama"
    row = await db.fetchrow("SELECT command, entity_id FROM processed_commands WHERE message_id = 'm1'")
    assert tuple(row) == ("genre.upsert", first.entity_id)


async def test_within_a_batch_commands_apply_in_order(db):
    outcomes, events = await apply(
        db,
        upsert("m1", "g1", "Drama"),
        upsert("m1", "g1", "Drama"),  # the same message delivered twice
        upsert("m2", "g1", "Dramas"),  # the same entity again: an update
        upsert("m3", "g2", "Comedy"),
    )
    assert [o.duplicate for o in outcomes] == [False, True, False, False]
    assert outcomes[0].entity_id == outcomes[1].entity_id == outcomes[2].entity_id != outcomes[3].entity_id
    assert [e.type for e in events] == ["genre.created", "genre.updated", "genre.created"]
    assert await db.fetchval("SELECT count(*) FROM processed_commands") == 3


async def test_invalid_data_is_rejected_and_the_rest_of_the_batch_applies(db):
    outcomes, _ = await apply(db, upsert("m1", "g1", "D"), upsert("m2", "g2", "Drama", colour="red"))
    assert isinstance(outcomes[0], Rejected)
    assert isinstance(outcomes[0].error, ValidationFailed)
    assert [(e.field, e.message) for e in outcomes[0].error.errors] == [
        ("data.name", "must be at least 2 characters long")
    ]
    assert [e.field for e in outcomes[1].error.errors] == ["data.colour"]

    outcomes, _ = await apply(db, upsert("m3", "g3", "Drama"), upsert("m4", "g4", "Horror", slug="Not A Slug"))
    assert isinstance(outcomes[0], Applied)
    assert [e.field for e in outcomes[1].error.errors] == ["data.slug"]
    # A rejected command leaves nothing behind, not even its message id.
    assert await db.fetchval("SELECT array_agg(message_id) FROM processed_commands") == ["m3"]


async def test_a_conflict_found_by_the_database_names_the_command(db):
    await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
    batch = (upsert("m1", "g1", "Comedy"), upsert("m2", "g2", "drama"))
    # Creations in a row are inserted together: the database cannot say which one failed...
    with pytest.raises(CommandRejected) as caught:
        await apply(db, *batch)
    assert caught.value.index is None
    # ...one at a time, it can.
    with pytest.raises(CommandRejected) as caught:
        async with db.transaction():
            await apply_commands(db, batch, grouped=False)
    assert caught.value.index == 1
    assert isinstance(caught.value.error, Conflict)
    assert caught.value.error.errors[0].field == "name"
    # The transaction is gone, the first command with it.
    assert await db.fetchval("SELECT count(*) FROM genres") == 1


async def test_creations_in_a_row_are_inserted_together_with_the_same_result(db):
    outcomes, events = await apply(
        db,
        upsert("m1", "g1", "Drama"),
        upsert("m2", "g2", "Drama!"),  # the same slug derived: the group gives it the next free one
        upsert("m3", "g1", "Dramas"),  # an entity of the group again: the group is written first
        upsert("m4", "g3", "Comedy"),
    )
    assert [type(o) for o in outcomes] == [Applied] * 4
    assert outcomes[0].entity_id == outcomes[2].entity_id
    assert [e.type for e in events] == ["genre.created", "genre.created", "genre.updated", "genre.created"]
    rows = await db.fetch("SELECT id, slug, name FROM genres ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, "drama", "Dramas"), (2, "drama-2", "Drama!"), (3, "comedy", "Comedy")]
    links = await db.fetch("SELECT external_id, genre_id FROM external_ids ORDER BY external_id")
    assert [tuple(r) for r in links] == [("g1", 1), ("g2", 2), ("g3", 3)]


async def test_a_delete_removes_the_entity_and_its_external_id_and_is_a_no_op_when_unknown(db):
    [created], _ = await apply(db, upsert("m1", "g1", "Drama"))
    delete = Command("m2", "genre.delete", GENRE_DELETE, "imdb", "g1")
    [deleted], events = await apply(db, delete)
    assert deleted == Applied(created.entity_id)
    assert [(e.type, e.data) for e in events] == [("genre.deleted", None)]
    assert await db.fetchval("SELECT count(*) FROM external_ids") == 0
    [nothing], events = await apply(db, Command("m3", "genre.delete", GENRE_DELETE, "imdb", "g1"))
    assert (nothing, events) == (Applied(None), [])


# -- references by external id, through movie.upsert ----------------------------------


# The real movie.upsert: data validated as the REST create body, references by external id.
FILM_UPSERT = COMMANDS["movie.upsert"]


def film(message_id: str, external_id: str, data: dict) -> Command:
    return Command(message_id, "movie.upsert", FILM_UPSERT, "imdb", external_id, data)


@pytest.fixture
async def person(db) -> int:
    person_id = await db.fetchval("INSERT INTO persons (slug, full_name) VALUES ('ann', 'Ann') RETURNING id")
    await db.execute(
        "INSERT INTO external_ids (source, kind, external_id, person_id) VALUES ('imdb', 'person', 'nm1', $1)",
        person_id,
    )
    return person_id


async def test_references_by_external_id_resolve_in_the_same_transaction(db, person):
    data = {
        "title": "Heat",
        "genres": [{"source": "imdb", "external_id": "g1"}],
        "credits": [{"person": {"source": "imdb", "external_id": "nm1"}, "role": "director"}],
    }
    # The genre is created earlier in the same batch.
    outcomes, _ = await apply(db, upsert("m1", "g1", "Crime"), film("m2", "tt1", data))
    genre_id, film_id = (o.entity_id for o in outcomes)
    assert await db.fetchval("SELECT array_agg(genre_id) FROM movie_genres WHERE movie_id = $1", film_id) == [genre_id]
    assert tuple(await db.fetchrow("SELECT person_id, role FROM credits")) == (person, "director")
    assert data["genres"] == [{"source": "imdb", "external_id": "g1"}], "the command's own data is left as it was"


async def test_a_missing_reference_is_rejected_naming_where_it_is(db, person):
    data = {
        "title": "Heat",
        "genres": [{"source": "imdb", "external_id": "nope"}],
        "credits": [{"person": {"source": "imdb", "external_id": "nm1"}, "role": "actor"}],
    }
    [outcome], _ = await apply(db, film("m1", "tt1", data))
    assert isinstance(outcome.error, Conflict)
    assert [(e.field, e.message) for e in outcome.error.errors] == [
        ("data.genres[0]", "no genre has the external id imdb/nope")
    ]
    assert await db.fetchval("SELECT count(*) FROM movies") == 0


async def test_malformed_references_are_validation_errors(db, person):
    data = {
        "title": "Heat",
        "genres": [{"source": "imdb"}],
        "credits": [{"person": {"source": "imdb", "external_id": "nm1"}, "person_id": 1, "role": "actor"}],
    }
    [outcome], _ = await apply(db, film("m1", "tt1", data))
    assert isinstance(outcome.error, ValidationFailed)
    assert {(e.field, e.message) for e in outcome.error.errors} == {
        ("data.genres[0].external_id", "is required"),
        ("data.credits[0].person", "give person or person_id, not both"),
    }


# -- concurrency and housekeeping -----------------------------------------------------


async def test_processes_applying_the_same_new_key_at_once_take_turns(db, database_url):
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        tx = first.transaction()
        await tx.start()
        [created], _ = await apply_commands(first, [upsert("m1", "g1", "Drama")])

        async def other() -> list:
            async with second.transaction():
                outcomes, _ = await apply_commands(second, [upsert("m2", "g1", "Dramas")])
            return outcomes

        waiting = asyncio.create_task(other())
        await eventually(lambda: db.fetchval("SELECT count(*) > 0 FROM pg_locks WHERE NOT granted"))
        await tx.commit()
        # The second saw the first's genre once it got the key: an update, not a second genre.
        assert await waiting == [Applied(created.entity_id)]
        assert await db.fetchval("SELECT count(*) FROM genres") == 1
    finally:
        await first.close()
        await second.close()


async def test_old_message_ids_are_forgotten_in_slices(db):
    await apply(db, upsert("m1", "g1", "Drama"), upsert("m2", "g2", "Comedy"), upsert("m3", "g3", "Horror"))
    await db.execute("UPDATE processed_commands SET processed_at = now() - interval '2 hours' WHERE message_id <> 'm3'")
    assert await prune_processed(db, 3600, 1) == 1
    assert await prune_processed(db, 3600, 1) == 1
    assert await prune_processed(db, 3600, 1) == 0
    assert await db.fetchval("SELECT array_agg(message_id) FROM processed_commands") == ["m3"]

"""Events -> search documents, through the one table of kinds."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import orjson

from cinema.db.outbox import Event
from cinema.search.documents import KINDS, documents_for_events, load_documents


def event(seq, type_, entity_id, data=None, affected=()):
    return Event(
        seq=seq,
        id=uuid.uuid4(),
        type=type_,
        entity_id=entity_id,
        occurred_at=dt.datetime.now(dt.UTC),
        data=None if data is None else orjson.dumps(data).decode(),
        affected_movie_ids=tuple(affected),
    )


def test_each_kind_takes_its_fields_at_their_weights_and_shows_its_summary():
    movie = KINDS["movie"].document(
        7,
        3,
        {
            "slug": "heat",
            "title": "Heat",
            "original_title": "Heat (1995)",
            "description": "A thief and a detective.",
            "release_year": 1995,
            "poster_url": None,
            "genres": [{"name": "Crime"}, {"name": "Drama"}],
            "countries": [{"name": "United States"}],
            "credits": [{"person": {"full_name": "Al Pacino"}, "character": "Vincent Hanna"}],
            "rating": 8.3,
        },
    )
    assert (movie.kind, movie.id, movie.version) == ("movie", 7, 3)
    assert movie.body.texts == (
        "Heat",
        "Heat (1995)",
        "A thief and a detective.",
        "Crime Drama United States Al Pacino Vincent Hanna",
    )
    assert (movie.body.slug, movie.body.title) == ("heat", "Heat")
    assert json.loads(movie.body.summary) == {"original_title": "Heat (1995)", "release_year": 1995, "poster_url": None}
    person = KINDS["person"].document(1, 1, {"slug": "al", "full_name": "Al Pacino", "biography": None})
    assert person.body.texts == ("Al Pacino", "", "", "")
    assert json.loads(person.body.summary) == {"birth_date": None, "death_date": None, "photo_url": None}
    country = KINDS["country"].document(2, 1, {"slug": "fr", "code": "FR", "name": "France"})
    assert (country.body.title, country.body.texts[:2]) == ("France", ("France", "FR"))


async def test_the_latest_event_of_an_entity_wins_and_a_deletion_is_a_tombstone(db):
    docs = await documents_for_events(
        db,
        [
            event(1, "genre.created", 1, {"slug": "drama", "name": "Drama"}),
            event(2, "genre.updated", 1, {"slug": "drama", "name": "Dramas"}),
            event(3, "country.created", 4, {"slug": "fr", "code": "FR", "name": "France"}),
            event(4, "country.deleted", 4),
            event(5, "shot.created", 9, {"caption": "not searched"}),  # a kind search does not index
        ],
    )
    by_key = {(d.kind, d.id): d for d in docs}
    assert set(by_key) == {("genre", 1), ("country", 4)}
    assert (by_key["genre", 1].version, by_key["genre", 1].body.title) == (2, "Dramas")
    assert (by_key["country", 4].version, by_key["country", 4].body) == (4, None)


async def test_affected_movies_are_read_again_and_versioned_by_the_event_that_touched_them(db):
    genre = await db.fetchval("INSERT INTO genres (slug, name) VALUES ('heist', 'Heist') RETURNING id")
    movies = [
        await db.fetchval("INSERT INTO movies (slug, title) VALUES ($1, $2) RETURNING id", slug, title)
        for slug, title in (("heat", "Heat"), ("ronin", "Ronin"))
    ]
    for movie in movies:
        await db.execute("INSERT INTO movie_genres VALUES ($1, $2)", movie, genre)
    docs = await documents_for_events(
        db,
        [
            event(10, "genre.updated", genre, {"slug": "heist", "name": "Heist"}, movies),
            # A later event of the movie itself wins over the re-read of an earlier one.
            event(11, "movie.updated", movies[1], {"slug": "ronin", "title": "Ronin (1998)"}),
            event(12, "credit.created", 5, {"id": 5}, [movies[0]]),  # not indexed itself, but affects a movie
        ],
    )
    by_key = {(d.kind, d.id): d for d in docs}
    heat, ronin = by_key["movie", movies[0]], by_key["movie", movies[1]]
    assert (heat.version, heat.body.title, heat.body.texts[3]) == (12, "Heat", "Heist")
    assert (ronin.version, ronin.body.title) == (11, "Ronin (1998)")


async def test_an_event_whose_data_is_not_a_resource_is_skipped_not_blocking(db):
    docs = await documents_for_events(
        db, [event(1, "genre.created", 1, ["not", "an", "object"]), event(2, "genre.created", 2, {"name": "Drama"})]
    )
    assert [(d.kind, d.id) for d in docs] == [("genre", 2)]


async def test_the_sources_build_the_resource_json_from_the_tables(db):
    person = await db.fetchval(
        "INSERT INTO persons (slug, full_name, birth_date) VALUES ('al-pacino', 'Al Pacino', '1940-04-25') RETURNING id"
    )
    country = await db.fetchval("INSERT INTO countries (code, slug, name) VALUES ('US', 'us', 'USA') RETURNING id")
    movie = await db.fetchval("INSERT INTO movies (slug, title) VALUES ('heat', 'Heat') RETURNING id")
    await db.execute("INSERT INTO movie_countries VALUES ($1, $2)", movie, country)
    await db.execute(
        "INSERT INTO credits (movie_id, person_id, role, character) VALUES ($1, $2, 'actor', 'Hanna')", movie, person
    )
    [doc] = await load_documents(db, KINDS["movie"], 5, [movie])
    assert doc.body.texts[3] == "USA Al Pacino Hanna"
    [doc] = await load_documents(db, KINDS["person"], 5, None)
    assert json.loads(doc.body.summary)["birth_date"] == "1940-04-25"
    assert await load_documents(db, KINDS["person"], 5, None, after=person) == []

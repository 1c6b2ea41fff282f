"""What search promises (API.md), the same on every backend: prefixes, typos, accents, ranking, filters."""

from __future__ import annotations

import json

from cinema.search.backend import SearchQuery
from tests.search.conftest import doc

GODFATHER = doc(
    "movie",
    1,
    title="The Godfather",
    original_title="Il padrino",
    description="The aging patriarch of an organized crime dynasty transfers control to his son.",
    release_year=1972,
    poster_url=None,
    genres=[{"id": 1, "slug": "crime", "name": "Crime"}],
    countries=[{"id": 1, "code": "US", "slug": "us", "name": "United States"}],
    credits=[{"id": 1, "person": {"id": 1, "slug": "al-pacino", "full_name": "Al Pacino"}, "character": "Michael"}],
)
AMELIE = doc("movie", 2, title="Amélie", original_title="Le Fabuleux Destin d'Amélie Poulain", release_year=2001)
HEAT = doc("movie", 3, title="Heat", description="A thief and a detective.", release_year=1995)
FIRE = doc("movie", 4, title="Fire Walk", description="Summer heat in a small town.", release_year=1992)
PACINO = doc("person", 1, full_name="Al Pacino", biography="An actor known for The Godfather.", birth_date="1940-04-25")
CRIME = doc("genre", 1, name="Crime")
FRANCE = doc("country", 1, code="FR", name="France")
CATALOG = [GODFATHER, AMELIE, HEAT, FIRE, PACINO, CRIME, FRANCE]


async def search(backend, q, *kinds, limit=20):
    return [json.loads(hit) for hit in await backend.search(SearchQuery(q, kinds, limit))]


def refs(hits):
    return [(hit["type"], hit["id"]) for hit in hits]


async def test_a_prefix_finds_the_title_as_you_type(backend):
    await backend.write(CATALOG)
    hits = await search(backend, "godf")
    assert refs(hits)[0] == ("movie", 1)
    assert refs(await search(backend, "the godf"))[0] == ("movie", 1)


async def test_one_typo_in_a_longer_word_still_finds_it(backend):
    await backend.write(CATALOG)
    assert refs(await search(backend, "godfater"))[0] == ("movie", 1)  # a letter missing
    assert refs(await search(backend, "pacnio", "person")) == [("person", 1)]  # two letters swapped
    assert refs(await search(backend, "frence", "country")) == [("country", 1)]  # a letter changed


async def test_accents_do_not_matter_either_way(backend):
    await backend.write(CATALOG)
    assert refs(await search(backend, "amelie")) == [("movie", 2)]
    assert refs(await search(backend, "AMÉLIE")) == [("movie", 2)]
    await backend.write([doc("movie", 5, title="Leon", release_year=1994)])
    assert refs(await search(backend, "léon")) == [("movie", 5)]


async def test_a_title_match_ranks_above_a_description_match(backend):
    await backend.write(CATALOG)
    hits = await search(backend, "heat")
    assert refs(hits) == [("movie", 3), ("movie", 4)]
    assert hits[0]["score"] > hits[1]["score"]


async def test_the_type_filter_keeps_only_those_kinds(backend):
    await backend.write(CATALOG)
    assert {hit["type"] for hit in await search(backend, "crime")} == {"movie", "genre"}
    assert refs(await search(backend, "crime", "genre")) == [("genre", 1)]
    assert refs(await search(backend, "pacino", "person", "genre")) == [("person", 1)]


async def test_limit_caps_the_hits_best_first(backend):
    await backend.write([doc("genre", i, name=f"Drama {'x' * i}") for i in range(1, 8)])
    hits = await search(backend, "drama", limit=3)
    assert len(hits) == 3
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)


async def test_a_hit_carries_type_id_slug_title_score_and_its_kinds_summary(backend):
    await backend.write(CATALOG)
    [movie] = await search(backend, "godfather", "movie")
    assert list(movie)[:5] == ["type", "id", "slug", "title", "score"]
    assert movie | {"score": 0} == {
        "type": "movie",
        "id": 1,
        "slug": "movie-1",
        "title": "The Godfather",
        "score": 0,
        "original_title": "Il padrino",
        "release_year": 1972,
        "poster_url": None,
    }
    [person] = await search(backend, "pacino", "person")
    assert person["title"] == "Al Pacino"
    assert person["birth_date"] == "1940-04-25"
    [country] = await search(backend, "france", "country")
    assert (country["title"], country["code"]) == ("France", "FR")


async def test_a_movie_is_found_by_its_genre_country_and_people(backend):
    await backend.write(CATALOG)
    for q in ("pacino crime", "united states", "michael"):
        assert ("movie", 1) in refs(await search(backend, q, "movie")), q


async def test_nothing_matches_gives_no_hits(backend):
    await backend.write(CATALOG)
    assert await search(backend, "zzzqqq") == []
    assert await search(backend, "!!!") == []


async def test_an_older_version_never_replaces_a_newer_one_and_a_repeat_is_harmless(backend):
    await backend.write([doc("genre", 1, version=5, name="Western")])
    await backend.write([doc("genre", 1, version=3, name="Musical")])
    await backend.write([doc("genre", 1, version=5, name="Western")])
    assert refs(await search(backend, "western")) == [("genre", 1)]
    assert await search(backend, "musical") == []


async def test_a_deletion_removes_the_document_and_outranks_older_versions(backend):
    await backend.write(CATALOG)
    gone = GODFATHER.__class__("movie", 1, 10, None)
    await backend.write([gone])
    assert await search(backend, "godfather", "movie") == []
    await backend.write([GODFATHER])  # version 1: a replayed older event
    assert await search(backend, "godfather", "movie") == []


async def test_live_matching_sees_only_the_documents_of_the_given_versions(backend):
    await backend.write([doc("genre", 1, version=1, name="Drama"), doc("genre", 2, version=2, name="Dramedy")])
    await backend.write([doc("movie", 9, version=3, title="Drama Queen"), doc("genre", 3, version=3, name="Crime")])
    found = await backend.match(
        [SearchQuery("dram"), SearchQuery("dram", ("genre",)), SearchQuery("crime"), SearchQuery("zzz")], 2, 3
    )
    # Across kinds the order depends on each backend's scoring: compare as sets.
    assert [set(refs(json.loads(h) for h in hits)) for hits in found] == [
        {("movie", 9), ("genre", 2)},
        {("genre", 2)},
        {("genre", 3)},
        set(),
    ]

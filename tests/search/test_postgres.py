"""The PostgreSQL backend's own mechanics: folding, query parsing, the typo lexicon, the two ranking tiers."""

from __future__ import annotations

import json

import pytest

from cinema.search.backend import SearchQuery
from cinema.search.postgres import PostgresSearch, fold
from tests.search.conftest import doc


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("The Godfather", "the godfather"),
        ("Amélie Poulain", "amelie poulain"),
        ("Ærø STRAßE Œuvre", "aero strasse oeuvre"),
        ("Łódź Øresund Đakovo", "lodz oresund dakovo"),
        ("Việt Nam Şişli Ñandú", "viet nam sisli nandu"),
        ("ﬁlm Ｆｕｌｌ", "film full"),  # compatibility forms: ligatures, full-width letters
    ],
)
def test_fold_lowers_and_strips_diacritics(text, folded):
    assert fold(text) == folded


@pytest.mark.parametrize(
    ("q", "prefix"),
    [
        ("godf", "'godf':*"),
        ("the godf", "'the' & 'godf':*"),  # only the word being typed is a prefix
        ("godf the", "'godf' & 'the':*"),
        ("the godfather p", "'the' & 'godfather':*"),  # a one-letter word being typed waits for a second
        ("a", "'a':*"),
        ("o'neil", "'o' & 'neil':*"),
        ("!!!", None),
    ],
)
async def test_queries_parse_into_words_with_the_last_as_a_prefix(db, q, prefix):
    parsed = await db.fetchval("SELECT prefix::text FROM search_query($1)", q)
    # The words come in lexeme order; what matters is which words, and which one is a prefix.
    assert (set(parsed.split(" & ")) if parsed else None) == (set(prefix.split(" & ")) if prefix else None)


async def test_typo_expansions_come_from_the_title_and_name_words_only(pool, db):
    backend = PostgresSearch(pool)
    await backend.write([doc("movie", 1, title="Godfather", description="A family saga")])
    assert await db.fetchval("SELECT fuzzy::text FROM search_query('godfater')") == "'godfater':* | 'godfather'"
    # Description words are searchable but not in the lexicon: no typo tolerance for them.
    assert await db.fetchval("SELECT fuzzy::text FROM search_query('famly')") == "'famly':*"
    # Words under 4 letters are never expanded.
    await backend.write([doc("genre", 1, name="War")])
    assert await db.fetchval("SELECT fuzzy::text FROM search_query('wat')") == "'wat':*"


async def test_title_and_name_matches_fill_the_page_before_description_matches(pool):
    backend = PostgresSearch(pool)
    await backend.write(
        [doc("movie", i, title=f"Heat {i}") for i in range(1, 4)]
        + [doc("movie", i, title=f"Other {i}", description="heat and dust") for i in range(4, 7)]
    )
    hits = [json.loads(h) for h in await backend.search(SearchQuery("heat", limit=4))]
    assert [h["id"] for h in hits[:3]] == [1, 2, 3]
    assert all(h["score"] >= 1 for h in hits[:3])
    assert hits[3]["id"] in (4, 5, 6)
    assert hits[3]["score"] < 1
    # With a page the titles fill, descriptions are not even looked at.
    assert [json.loads(h)["id"] for h in await backend.search(SearchQuery("heat", limit=3))] == [1, 2, 3]


async def test_tombstones_keep_their_version_and_match_nothing(pool, db):
    backend = PostgresSearch(pool)
    await backend.write([doc("genre", 1, version=2, name="Drama")])
    await backend.write([doc("genre", 1, version=3, name="Drama").__class__("genre", 1, 3, None)])
    row = await db.fetchrow("SELECT version, title, names, tsv FROM search_documents WHERE kind = 'genre'")
    assert dict(row) == {"version": 3, "title": None, "names": None, "tsv": None}
    assert await backend.search(SearchQuery("drama")) == []

"""`cinema seed`: counts, constraints, determinism, and the service reading what it wrote."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import psycopg
import pytest

from cinema.seed import COUNTRIES, GENRES, MIN_PERSONS, CatalogNotEmpty, Progress, generate, write_catalog
from cinema.slugs import slugify
from tests.conftest import TABLES

MOVIES = 200
ROOT = Path(__file__).resolve().parents[1]

# Every seeded row but the timestamps, in a fixed order: equal digests mean equal rows.
DIGEST = """
SELECT md5(string_agg(x, E'\\n' ORDER BY x)) FROM (
    SELECT 'g' || row(g.*)::text FROM genres g
    UNION ALL SELECT 'c' || row(c.*)::text FROM countries c
    UNION ALL SELECT 'p' || row(p.id, p.slug, p.full_name, p.birth_date, p.death_date, p.biography)::text
        FROM persons p
    UNION ALL SELECT 'm' || row(m.id, m.slug, m.title, m.description, m.release_year, m.premiere_date,
        m.duration, m.age_rating, m.rating)::text FROM movies m
    UNION ALL SELECT 'mg' || row(mg.*)::text FROM movie_genres mg
    UNION ALL SELECT 'mc' || row(mc.*)::text FROM movie_countries mc
    UNION ALL SELECT 'cr' || row(cr.*)::text FROM credits cr
) rows(x)
"""


async def seed(db: asyncpg.Connection, seed: int = 1, replace: bool = False, persons: int | None = None) -> None:
    await write_catalog(db, generate(MOVIES, persons, seed), replace=replace)


async def count(db: asyncpg.Connection, table: str) -> int:
    return await db.fetchval(f"SELECT count(*) FROM {table}")


async def test_seeds_the_requested_counts(db):
    await seed(db)
    assert await count(db, "genres") == len(GENRES) >= 20
    assert await count(db, "countries") == len(COUNTRIES) == 50
    assert await count(db, "persons") == 2 * MOVIES
    assert await count(db, "movies") == MOVIES
    assert await count(db, "outbox") == 0


async def test_every_movie_has_genres_countries_and_a_full_crew(db):
    await seed(db)
    per_movie = await db.fetch(
        """
        SELECT m.id,
               (SELECT count(*) FROM movie_genres WHERE movie_id = m.id) AS genres,
               (SELECT count(*) FROM movie_countries WHERE movie_id = m.id) AS countries,
               (SELECT count(*) FROM credits WHERE movie_id = m.id AND role = 'director') AS directors,
               (SELECT count(*) FROM credits WHERE movie_id = m.id AND role = 'writer') AS writers,
               (SELECT count(*) FROM credits WHERE movie_id = m.id AND role = 'producer') AS producers,
               (SELECT count(*) FROM credits WHERE movie_id = m.id AND role = 'actor') AS actors,
               (SELECT array_agg(position ORDER BY position) FROM credits WHERE movie_id = m.id) AS positions
        FROM movies m
        """
    )
    assert len(per_movie) == MOVIES
    for row in per_movie:
        assert 1 <= row["genres"] <= 3
        assert 1 <= row["countries"] <= 2
        assert row["directors"] == 1
        assert 1 <= row["writers"] <= 2
        assert row["producers"] <= 1
        assert 4 <= row["actors"] <= 10
        assert row["positions"] == list(range(len(row["positions"])))
    assert {row["genres"] for row in per_movie} == {1, 2, 3}
    assert {row["producers"] for row in per_movie} == {0, 1}


async def test_rows_are_plausible(db):
    await seed(db)
    movies = await db.fetch("SELECT * FROM movies")
    assert all(1920 <= m["release_year"] <= 2025 for m in movies)
    assert all(m["premiere_date"] is None or m["premiere_date"].year == m["release_year"] for m in movies)
    assert all(m["slug"].startswith(f"{slugify(m['title'])}-{m['release_year']}") for m in movies)
    assert all(m["description"] and m["description"].endswith(".") for m in movies)
    assert all(m["release_year"] >= 1984 for m in movies if m["age_rating"] == "PG-13")
    assert all(60 <= m["duration"] <= 220 for m in movies)
    persons = await db.fetch("SELECT * FROM persons")
    assert all(" " in p["full_name"] for p in persons)
    assert any(p["death_date"] is not None for p in persons)
    assert all(p["death_date"] is None or p["death_date"] >= p["birth_date"] for p in persons)
    characters = await db.fetch("SELECT role, character FROM credits")
    assert all((c["character"] is not None) == (c["role"] == "actor") for c in characters)


async def test_identities_continue_after_the_seeded_ids(db):
    await seed(db)
    for table in ("genres", "countries", "persons", "movies", "credits"):
        highest = await db.fetchval(f"SELECT max(id) FROM {table}")
        assert highest == await count(db, table)
        assert await db.fetchval("SELECT nextval(pg_get_serial_sequence($1, 'id'))", table) == highest + 1


async def test_the_same_seed_writes_the_same_rows(db):
    await seed(db, seed=7)
    first = await db.fetchval(DIGEST)
    await seed(db, seed=7, replace=True)
    assert await db.fetchval(DIGEST) == first
    await seed(db, seed=8, replace=True)
    assert await db.fetchval(DIGEST) != first


async def test_refuses_a_catalog_that_has_rows(db):
    await db.execute("INSERT INTO genres (name, slug) VALUES ('Drama', 'drama')")
    with pytest.raises(CatalogNotEmpty):
        await seed(db)
    assert await count(db, "genres") == 1
    assert await count(db, "movies") == 0


async def test_replace_empties_the_catalog_and_the_outbox_first(db):
    await db.execute("INSERT INTO genres (name, slug) VALUES ('Kitchen Sink', 'kitchen-sink')")
    await db.execute("INSERT INTO outbox (type, entity_id) VALUES ('genre.created', 1)")
    seq = await db.fetchval("SELECT max(seq) FROM outbox")
    await seed(db, replace=True)
    assert await db.fetchval("SELECT count(*) FROM genres WHERE slug = 'kitchen-sink'") == 0
    assert await count(db, "outbox") == 0
    # The event log's positions move on: a consumer's stored position is never reused.
    next_seq = await db.fetchval("INSERT INTO outbox (type, entity_id) VALUES ('genre.created', 1) RETURNING seq")
    assert next_seq > seq


def test_generation_is_deterministic_and_depends_on_the_seed():
    assert generate(50, seed=3) == generate(50, seed=3)
    assert generate(50, seed=3) != generate(50, seed=4)


def test_small_catalogs_still_cast_distinct_actors():
    catalog = generate(30, MIN_PERSONS)
    credits = catalog.table("credits").rows
    keys = [(movie, person, role) for _, movie, person, role, _, _ in credits]
    assert len(keys) == len(set(keys))
    with pytest.raises(ValueError, match="persons"):
        generate(30, MIN_PERSONS - 1)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal():
    terminal = Terminal()
    progress = Progress(4, stream=terminal)
    progress.advance("movies", 1)
    progress.advance("credits", 3)
    progress.close()
    first, second = terminal.getvalue().split("\r")[1:]
    assert first.startswith("seeding [#######.......................]  25% movies")
    assert second.startswith("seeding [" + "#" * 30 + "] 100% credits")
    assert terminal.getvalue().endswith("\n")


def test_progress_is_silent_without_a_terminal(capsys):
    progress = Progress(10, stream=sys.stderr)
    progress.advance("movies", 10)
    progress.close()
    assert capsys.readouterr().err == ""


async def test_the_api_reads_the_seeded_catalog(db, client):
    await seed(db)
    resp = await client.get("/api/v1/genres", params={"limit": 100})
    assert resp.status == 200
    body = await resp.json()
    assert [g["name"] for g in body["items"]] == [name for name, _ in GENRES]
    drama = body["items"][0]
    assert drama == {"id": 1, "slug": "drama", "name": "Drama"}
    resp = await client.get("/api/v1/genres/1")
    assert await resp.json() == drama

    movie = await (await client.get("/api/v1/movies/1")).json()
    roles = {credit["role"] for credit in movie["credits"]}
    assert {"director", "writer", "actor"} <= roles
    assert movie["genres"]
    assert movie["countries"]
    page = await (await client.get("/api/v1/movies", params={"genre": "drama", "limit": 5})).json()
    assert all("drama" in [g["slug"] for g in m["genres"]] for m in page["items"])
    person = movie["credits"][0]["person"]["id"]
    filmography = await (await client.get(f"/api/v1/persons/{person}/credits")).json()
    assert 1 in [item["movie"]["id"] for item in filmography["items"]]


def test_the_command_line_seeds_and_then_refuses(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    env |= {"CINEMA_DATABASE_URL": database_url, "CINEMA_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "cinema", "seed", "--movies", "20", "--persons", "30", "--seed", "5"]
    run = {"env": env, "cwd": ROOT, "capture_output": True, "text": True, "timeout": 120, "check": False}
    done = subprocess.run(command, **run)
    assert done.returncode == 0, done.stderr
    assert '"event":"seeded"' in done.stdout
    assert done.stderr == ""  # no progress bar without a terminal
    again = subprocess.run(command, **run)
    assert again.returncode == 1
    assert "--replace" in again.stderr
    replaced = subprocess.run([*command, "--replace"], **run)
    assert replaced.returncode == 0, replaced.stderr
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM movies").fetchone() == (20,)
        assert conn.execute("SELECT count(*) FROM persons").fetchone() == (30,)

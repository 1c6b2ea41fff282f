"""`cinema seed`: a realistic, deterministic catalog written straight into the tables.

The rows are made in Python by one `random.Random(seed)` from the word lists at the end of
this module, so the same seed gives the same rows (except `created_at`/`updated_at`, the
time of seeding). They are written with COPY, ids included: COPY stores the given value
in a `GENERATED ALWAYS` identity column, as `INSERT ... OVERRIDING SYSTEM VALUE` would,
and explicit ids keep the credits' ids deterministic too. Each identity sequence is then
moved to the highest id, so the service's own inserts continue after the seeded rows.

Seeding writes no outbox events: a seeded catalog is a starting state, not a history.
Anything fed by events (search index, caches) starts from the tables instead.
"""

from __future__ import annotations

import bisect
import itertools
import random
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Generic, TextIO, TypeVar

import asyncpg
import attrs
import structlog

from cinema.db.catalog import get_catalog_id, renew_catalog_id
from cinema.slugs import slugify

log = structlog.get_logger("cinema.seed")

FIRST_YEAR, LAST_YEAR = 1920, 2025
# The latest date the generated lives reach: a fixed day, so that a seed gives the same
# catalog whatever day it runs.
LAST_DAY = date(LAST_YEAR, 12, 31)
MAX_ACTORS = 10
MIN_PERSONS = MAX_ACTORS  # every movie can then cast distinct actors
COPY_CHUNK = 5000  # rows per COPY: the progress bar moves at least this often


# The columns written, per table, in the order the rows' tuples hold them.
COLUMNS = {
    "genres": ("id", "slug", "name"),
    "countries": ("id", "code", "slug", "name"),
    "persons": ("id", "slug", "full_name", "birth_date", "death_date", "biography"),
    "movies": (
        "id",
        "slug",
        "title",
        "description",
        "release_year",
        "premiere_date",
        "duration",
        "age_rating",
        "rating",
    ),
    "movie_genres": ("movie_id", "genre_id"),
    "movie_countries": ("movie_id", "country_id"),
    "credits": ("id", "movie_id", "person_id", "role", "character", "position"),
}


class CatalogNotEmpty(Exception):
    """The target catalog has rows and replacing them was not asked for."""


Row = tuple[Any, ...]
T = TypeVar("T")


@attrs.frozen
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[Row]


@attrs.frozen
class Catalog:
    """Every generated row, per table, in the order the tables are written (referenced ones first)."""

    tables: tuple[Table, ...]

    def counts(self) -> dict[str, int]:
        return {t.name: len(t.rows) for t in self.tables}

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


# -- generation ----------------------------------------------------------------------


def generate(movies: int, persons: int | None = None, seed: int = 1) -> Catalog:
    """The whole catalog for `movies` movies and `persons` persons (default twice as many)."""
    persons = 2 * movies if persons is None else persons
    if movies < 1:
        raise ValueError("movies must be at least 1")
    if persons < MIN_PERSONS:
        raise ValueError(f"persons must be at least {MIN_PERSONS}")
    rng = random.Random(seed)
    genres = [(i, slugify(name), name) for i, (name, _) in enumerate(GENRES, 1)]
    countries = [(i, code, slugify(name), name) for i, (code, name, _) in enumerate(COUNTRIES, 1)]
    people = _Persons(rng, persons)
    films = _Movies(rng, movies, people)
    tables: dict[str, list[Row]] = {
        "genres": genres,
        "countries": countries,
        "persons": people.rows,
        "movies": films.rows,
        "movie_genres": films.genres,
        "movie_countries": films.countries,
        "credits": films.credits,
    }
    return Catalog(tuple(Table(name, COLUMNS[name], rows) for name, rows in tables.items()))


class _Slugs:
    """Unique slugs, with the lowest free numeric suffix on a clash, as the service makes them."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.next_suffix: dict[str, int] = {}

    def make(self, text: str) -> str:
        base = slugify(text)
        slug, n = base, self.next_suffix.get(base, 1)  # every suffix up to n is taken
        while slug in self.taken:
            n += 1
            slug = f"{base[: 64 - len(str(n)) - 1]}-{n}"
        self.next_suffix[base] = n
        self.taken.add(slug)
        return slug


class _Weighted(Generic[T]):
    """A population with weights: one member, or several distinct ones."""

    def __init__(self, items: Sequence[tuple[T, int]]) -> None:
        self.items = [item for item, _ in items]
        self.cumulative = list(itertools.accumulate(weight for _, weight in items))

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]

    def distinct(self, rng: random.Random, k: int) -> list[T]:
        chosen: list[T] = []
        while len(chosen) < k:  # ends: k never exceeds the population, every weight is positive
            item = self.pick(rng)
            if item not in chosen:
                chosen.append(item)
        return chosen


def _day_in(rng: random.Random, year: int) -> date:
    return min(date(year, 1, 1) + timedelta(days=rng.randrange(365)), LAST_DAY)


class _Persons:
    """Persons with a main profession and the years they can work in."""

    PROFESSIONS = _Weighted([("actor", 62), ("director", 12), ("writer", 16), ("producer", 10)])

    def __init__(self, rng: random.Random, count: int) -> None:
        self.rows: list[Row] = []
        self.career: list[tuple[int, int]] = [(0, 0)]  # by person id (1-based)
        self.pools: dict[str, list[int]] = {"actor": [], "director": [], "writer": [], "producer": []}
        slugs = _Slugs()
        for person_id in range(1, count + 1):
            profession = self.PROFESSIONS.pick(rng)
            full_name = _full_name(rng)
            birth = death = None
            if rng.random() < 0.97:  # a few persons have no known birth date
                birth_year = round(rng.triangular(1870, 2005, 1965))
                birth = _day_in(rng, birth_year)
                lifespan = min(104, max(30, round(rng.gauss(78, 12))))
                if birth_year + lifespan <= LAST_YEAR:
                    death = max(birth, _day_in(rng, birth_year + lifespan))
                self.career.append((birth_year + 18, min(birth_year + 85, death.year if death else LAST_YEAR)))
            else:
                self.career.append((FIRST_YEAR, LAST_YEAR))
            biography = _biography(rng, full_name, profession, birth, death) if rng.random() < 0.9 else None
            self.rows.append((person_id, slugs.make(full_name), full_name, birth, death, biography))
            self.pools[profession].append(person_id)
        everyone = list(range(1, count + 1))
        for name, pool in self.pools.items():
            # Popular persons come first in their pool (see `cast`); shuffled so that
            # popularity does not follow ids. A pool too small to cast a movie is everyone.
            needed = MAX_ACTORS if name == "actor" else 2
            self.pools[name] = pool if len(pool) >= needed else list(everyone)
            rng.shuffle(self.pools[name])

    def cast(self, rng: random.Random, role: str, year: int, taken: set[int]) -> int:
        """A person of `role`'s pool working in `year`, not in `taken`; popular ones more often."""
        pool = self.pools[role]
        for _ in range(30):
            person_id = pool[int(len(pool) * rng.random() ** 2.2)]
            start, end = self.career[person_id]
            if person_id not in taken and start <= year <= end:
                return person_id
        # Rare (old movies, small catalogs): anyone free in the pool, careers aside.
        first = rng.randrange(len(pool))
        return next(p for p in itertools.chain(pool[first:], pool[:first]) if p not in taken)


def _full_name(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if rng.random() < 0.2:
        return f"{first} {rng.choice('ABCDEFGHJKLMNOPRSTW')}. {last}"
    return f"{first} {last}"


def _biography(rng: random.Random, name: str, profession: str, birth: date | None, death: date | None) -> str:
    surname = name.rsplit(" ", 1)[-1]
    city = rng.choice(CITIES)
    if birth is None:
        opening = f"{name} is {_a(profession)} from {city}."
    elif death is None:
        opening = f"{name} (born {birth.year}) is {_a(profession)} from {city}."
    else:
        opening = f"{name} ({birth.year}–{death.year}) was {_a(profession)} from {city}."
    sentences = [opening, rng.choice(CAREER_SENTENCES[profession]).format(surname=surname)]
    if rng.random() < 0.5:
        sentences.append(rng.choice(LIFE_SENTENCES).format(surname=surname, city=rng.choice(CITIES)))
    return " ".join(sentences)


class _Movies:
    def __init__(self, rng: random.Random, count: int, persons: _Persons) -> None:
        self.rows: list[Row] = []
        self.genres: list[Row] = []
        self.countries: list[Row] = []
        self.credits: list[Row] = []
        slugs = _Slugs()
        for movie_id in range(1, count + 1):
            year = round(rng.triangular(FIRST_YEAR, LAST_YEAR, 2015))
            title = _title(rng)
            self.rows.append(
                (
                    movie_id,
                    slugs.make(f"{title} {year}"),
                    title,
                    _description(rng),
                    year,
                    _day_in(rng, year) if rng.random() < 0.85 else None,
                    min(220, max(62, round(rng.gauss(108, 20)))),
                    _age_rating(rng, year),
                    Decimal(f"{min(9.7, max(1.0, rng.gauss(6.4, 1.1))):.1f}") if rng.random() < 0.97 else None,
                )
            )
            for genre_id in GENRE_WEIGHTS.distinct(rng, rng.choice((1, 1, 2, 2, 2, 3))):
                self.genres.append((movie_id, genre_id))
            for country_id in COUNTRY_WEIGHTS.distinct(rng, 1 if rng.random() < 0.75 else 2):
                self.countries.append((movie_id, country_id))
            self._credit(rng, movie_id, year, persons)

    def _credit(self, rng: random.Random, movie_id: int, year: int, persons: _Persons) -> None:
        """Director, writers, maybe a producer, then the cast in billing order."""
        crew: list[tuple[int, str, str | None]] = []
        director = persons.cast(rng, "director", year, set())
        crew.append((director, "director", None))
        writers: set[int] = set()
        if rng.random() < 0.3:  # the director wrote it too (another role, so another credit)
            writers.add(director)
        writer_count = 1 if rng.random() < 0.65 else 2
        while len(writers) < writer_count:
            writers.add(persons.cast(rng, "writer", year, writers))
        crew.extend((w, "writer", None) for w in sorted(writers))
        if rng.random() < 0.4:
            crew.append((persons.cast(rng, "producer", year, set()), "producer", None))
        actors: set[int] = set()
        for _ in range(rng.randint(4, MAX_ACTORS)):
            actor = persons.cast(rng, "actor", year, actors)
            actors.add(actor)
            crew.append((actor, "actor", _character(rng)))
        first_id = len(self.credits) + 1
        self.credits.extend(
            (first_id + position, movie_id, person_id, role, character, position)
            for position, (person_id, role, character) in enumerate(crew)
        )


def _title(rng: random.Random) -> str:
    noun, other = rng.sample(NOUNS, 2)
    adjective = rng.choice(ADJECTIVES)
    pattern = rng.choice(TITLE_PATTERNS)
    title = pattern.format(
        noun=noun, other=other, adjective=adjective, place=rng.choice(CITIES), name=rng.choice(FIRST_NAMES)
    )
    if rng.random() < 0.03:
        title += rng.choice((" II", " III", " 2", ": Part Two"))
    return title


def _description(rng: random.Random) -> str:
    hero = _a(rng.choice(HEROES)).capitalize()
    sentences = [f"{hero} {rng.choice(GOALS)} in {rng.choice(CITIES)}."]
    sentences.extend(rng.sample(TWISTS, rng.randint(1, 2)))
    if rng.random() < 0.4:
        sentences.append(rng.choice(CLOSINGS))
    return " ".join(sentences)


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _age_rating(rng: random.Random, year: int) -> str | None:
    return next(ratings for since, ratings in AGE_RATINGS if year >= since).pick(rng)


def _character(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.6:
        return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if draw < 0.85:
        return f"{rng.choice(CHARACTER_TITLES)} {rng.choice(LAST_NAMES)}"
    return rng.choice(CHARACTER_PARTS)


# -- writing -------------------------------------------------------------------------

# EXCLUSIVE blocks writers (not readers) until commit, so the catalog cannot gain rows
# between the emptiness check and the COPY.
LOCK_CATALOG = "LOCK TABLE genres, countries, persons, movies IN EXCLUSIVE MODE"
CATALOG_IS_EMPTY = """
SELECT NOT EXISTS (SELECT FROM genres) AND NOT EXISTS (SELECT FROM countries)
   AND NOT EXISTS (SELECT FROM persons) AND NOT EXISTS (SELECT FROM movies)
"""
EMPTY_CATALOG = """
TRUNCATE genres, countries, persons, movies, movie_genres, movie_countries, credits, shots, external_ids
RESTART IDENTITY
"""
# With --replace, the old events and the outcomes of processed commands describe rows that are gone.
# The outbox's sequence is not restarted (a consumer holding a position never sees one repeat).
EMPTY_HISTORY = "TRUNCATE outbox, processed_commands"
# Seeding writes rows without events, so whatever was built from the event log no longer describes
# the catalog: the search documents and positions go (each backend starts again from a snapshot),
# and the catalog gets a new id (cinema/db/catalog.py), so that nothing kept outside the database
# (cache entries, Elasticsearch indices, ETags, `/changes` cursors) carries over.
EMPTY_DERIVED = "TRUNCATE search_positions, search_documents, search_terms"


# Fresh statistics, so the first queries after seeding get good plans (every table seeding writes).
ANALYZE_CATALOG = "ANALYZE " + ", ".join(COLUMNS)


async def write_catalog(
    conn: asyncpg.Connection, catalog: Catalog, *, replace: bool = False, progress: Progress | None = None
) -> None:
    """Write every row in one transaction; refuse a non-empty catalog unless `replace`."""
    progress = progress or Progress(sum(catalog.counts().values()), stream=None)
    async with conn.transaction():
        if replace:
            await conn.execute(EMPTY_CATALOG)
            await conn.execute(EMPTY_HISTORY)
        else:
            await conn.execute(LOCK_CATALOG)
            if not await conn.fetchval(CATALOG_IS_EMPTY):
                raise CatalogNotEmpty("The catalog already has rows; --replace deletes them first.")
        await conn.execute(EMPTY_DERIVED)
        await renew_catalog_id(conn, await get_catalog_id(conn))
        for table in catalog.tables:
            await _copy(conn, table, progress)
        await conn.execute(ANALYZE_CATALOG)
    progress.close()


# The table name is an argument here (pg_get_serial_sequence takes text).
MOVE_IDENTITY = "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)"


async def _copy(conn: asyncpg.Connection, table: Table, progress: Progress) -> None:
    started = time.monotonic()
    for first in range(0, len(table.rows), COPY_CHUNK):
        chunk = table.rows[first : first + COPY_CHUNK]
        await conn.copy_records_to_table(table.name, records=chunk, columns=table.columns)
        progress.advance(table.name, len(chunk))
    if table.columns[0] == "id" and table.rows:
        await conn.execute(MOVE_IDENTITY, table.name, max(row[0] for row in table.rows))
    progress.table_done(table.name, len(table.rows), time.monotonic() - started)


class Progress:
    """Rows written: a bar on a terminal, else (stream not a tty, or None) one log line per table."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = sys.stderr) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None and stream.isatty() else None

    def advance(self, table: str, rows: int) -> None:
        self.done += rows
        if self.stream is not None:
            filled = self.WIDTH * self.done // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\rseeding [{bar}] {100 * self.done // self.total:3d}% {table:<16}")
            self.stream.flush()

    def table_done(self, table: str, rows: int, seconds: float) -> None:
        if self.stream is None:
            log.info("seed_table_written", table=table, rows=rows, seconds=round(seconds, 3))

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


async def seed(dsn: str, movies: int, persons: int | None, seed: int, replace: bool) -> dict[str, int]:
    """Generate and write a catalog; returns the row count per table."""
    started = time.monotonic()
    catalog = generate(movies, persons, seed)
    log.info("seed_generated", seconds=round(time.monotonic() - started, 3), seed=seed)
    conn = await asyncpg.connect(dsn)
    try:
        await write_catalog(conn, catalog, replace=replace, progress=Progress(sum(catalog.counts().values())))
    finally:
        await conn.close()
    counts = catalog.counts()
    log.info("seeded", seconds=round(time.monotonic() - started, 3), **counts)
    return counts


# -- word lists ----------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Comma-separated words or phrases, over as many lines as needed."""
    return tuple(word.strip() for word in text.split(","))


# (name, how often movies carry it)
GENRES = (
    ("Drama", 20),
    ("Comedy", 15),
    ("Thriller", 10),
    ("Action", 9),
    ("Romance", 8),
    ("Crime", 8),
    ("Horror", 6),
    ("Adventure", 6),
    ("Science Fiction", 5),
    ("Mystery", 5),
    ("Fantasy", 4),
    ("Documentary", 4),
    ("Family", 4),
    ("Animation", 3),
    ("Biography", 3),
    ("History", 3),
    ("War", 2),
    ("Music", 2),
    ("Musical", 2),
    ("Western", 2),
    ("Sport", 2),
    ("Film Noir", 1),
)
GENRE_WEIGHTS = _Weighted([(i, weight) for i, (_, weight) in enumerate(GENRES, 1)])

# (ISO 3166-1 alpha-2 code, name, how often movies come from there)
COUNTRIES = (
    ("US", "United States", 30),
    ("GB", "United Kingdom", 10),
    ("FR", "France", 8),
    ("DE", "Germany", 5),
    ("IT", "Italy", 5),
    ("JP", "Japan", 5),
    ("IN", "India", 4),
    ("CA", "Canada", 4),
    ("ES", "Spain", 3),
    ("KR", "South Korea", 3),
    ("CN", "China", 2),
    ("HK", "Hong Kong", 2),
    ("AU", "Australia", 2),
    ("SE", "Sweden", 2),
    ("MX", "Mexico", 2),
    ("BR", "Brazil", 2),
    ("NZ", "New Zealand", 1),
    ("IE", "Ireland", 1),
    ("NO", "Norway", 1),
    ("DK", "Denmark", 1),
    ("FI", "Finland", 1),
    ("IS", "Iceland", 1),
    ("NL", "Netherlands", 1),
    ("BE", "Belgium", 1),
    ("CH", "Switzerland", 1),
    ("AT", "Austria", 1),
    ("PL", "Poland", 1),
    ("CZ", "Czechia", 1),
    ("HU", "Hungary", 1),
    ("RO", "Romania", 1),
    ("GR", "Greece", 1),
    ("PT", "Portugal", 1),
    ("RU", "Russia", 1),
    ("UA", "Ukraine", 1),
    ("TR", "Türkiye", 1),
    ("IL", "Israel", 1),
    ("IR", "Iran", 1),
    ("EG", "Egypt", 1),
    ("ZA", "South Africa", 1),
    ("NG", "Nigeria", 1),
    ("MA", "Morocco", 1),
    ("AR", "Argentina", 1),
    ("CL", "Chile", 1),
    ("CO", "Colombia", 1),
    ("CU", "Cuba", 1),
    ("PE", "Peru", 1),
    ("TW", "Taiwan", 1),
    ("TH", "Thailand", 1),
    ("PH", "Philippines", 1),
    ("ID", "Indonesia", 1),
)
COUNTRY_WEIGHTS = _Weighted([(i, weight) for i, (_, _, weight) in enumerate(COUNTRIES, 1)])

# Ratings as they were introduced: the MPAA system in 1968, PG-13 in 1984, NC-17 in 1990;
# older films are mostly unrated.
_RATED: list[tuple[str | None, int]] = [("G", 8), ("PG", 22), ("R", 35), (None, 3)]
AGE_RATINGS = (
    (1990, _Weighted([*_RATED, ("PG-13", 30), ("NC-17", 2)])),
    (1984, _Weighted([*_RATED, ("PG-13", 30)])),
    (1968, _Weighted(_RATED)),
    (0, _Weighted([(None, 10), ("G", 2), ("PG", 3), ("R", 1)])),
)

FIRST_NAMES = _words(
    """
    James, Mary, John, Patricia, Robert, Jennifer, Michael, Linda, William, Elizabeth, David, Barbara, Richard,
    Susan, Joseph, Jessica, Thomas, Sarah, Charles, Karen, Daniel, Nancy, Matthew, Margaret, Anthony, Lisa, Mark,
    Betty, Paul, Dorothy, Steven, Sandra, Andrew, Ashley, Kenneth, Emily, George, Donna, Edward, Michelle, Henry,
    Carol, Walter, Amanda, Arthur, Helen, Harold, Grace, Samuel, Rose, Jean, Claire, Pierre, Isabelle, Louis,
    Camille, François, Amélie, Luc, Juliette, Hans, Greta, Klaus, Ingrid, Jürgen, Liesel, Marco, Giulia, Luca,
    Sofia, Federico, Chiara, Alessandro, Francesca, Javier, Lucía, Carlos, Carmen, Pedro, Pilar, Diego, Valentina,
    Mateo, Inés, João, Beatriz, Lars, Astrid, Sven, Freya, Akira, Yuki, Hiroshi, Haruka, Kenji, Sakura, Min-jun,
    Ji-woo, Wei, Mei, Raj, Priya, Arjun, Ananya, Omar, Leila, Youssef, Nadia, Ivan, Olga, Dmitri, Natasha, Kwame,
    Amara, Chinedu, Zara, Tomás, Aoife, Declan, Siobhan
    """
)
LAST_NAMES = _words(
    """
    Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Anderson, Taylor, Thomas, Moore, Martin, Jackson,
    Thompson, White, Harris, Clark, Lewis, Robinson, Walker, Young, Allen, King, Wright, Scott, Hill, Green, Adams,
    Baker, Nelson, Carter, Mitchell, Roberts, Turner, Phillips, Campbell, Parker, Evans, Edwards, Collins, Stewart,
    Morris, Murphy, Cook, Rogers, Morgan, Cooper, Peterson, Reed, Bailey, Kelly, Howard, Ward, Cox, Richardson,
    Wood, Watson, Brooks, Bennett, Gray, Hughes, Price, Sanders, Myers, Long, Ross, Foster, Hayes, Fisher, Dubois,
    Moreau, Laurent, Lefèvre, Girard, Bonnet, Rousseau, Fontaine, Chevalier, Mercier, Müller, Schmidt, Schneider,
    Fischer, Weber, Wagner, Becker, Hoffmann, Richter, Krüger, Rossi, Russo, Ferrari, Esposito, Bianchi, Romano,
    Colombo, Ricci, Marino, Greco, García, Fernández, López, Martínez, Sánchez, Pérez, Gómez, Ruiz, Navarro, Torres,
    Silva, Santos, Oliveira, Costa, Almeida, Johansson, Lindqvist, Nielsen, Hansen, Berg, Tanaka, Suzuki, Watanabe,
    Yamamoto, Nakamura, Kim, Park, Choi, Chen, Wang, Li, Zhang, Sharma, Patel, Kapoor, Khan, Haddad, Mansour,
    Ivanov, Petrova, Kowalski, Nowak, Novák, Horváth, Popescu, Papadopoulos, O'Brien, Byrne, Okafor, Mensah
    """
)
CITIES = _words(
    """
    New York, Los Angeles, Chicago, New Orleans, San Francisco, Boston, London, Manchester, Edinburgh, Dublin,
    Paris, Marseille, Lyon, Berlin, Hamburg, Munich, Vienna, Zurich, Rome, Milan, Naples, Venice, Madrid, Barcelona,
    Seville, Lisbon, Porto, Amsterdam, Brussels, Copenhagen, Stockholm, Oslo, Helsinki, Reykjavik, Warsaw, Prague,
    Budapest, Athens, Istanbul, Cairo, Casablanca, Lagos, Cape Town, Mumbai, Kolkata, Tokyo, Osaka, Kyoto, Seoul,
    Busan, Shanghai, Hong Kong, Taipei, Bangkok, Manila, Jakarta, Sydney, Melbourne, Auckland, Toronto, Montreal,
    Vancouver, Mexico City, Havana, Bogotá, Lima, Santiago, Buenos Aires, Rio de Janeiro, São Paulo, Moscow, Kyiv,
    Tehran, Tel Aviv
    """
)
ADJECTIVES = _words(
    """
    Last, Silent, Broken, Hidden, Golden, Crimson, Dark, Endless, Lost, Forgotten, Burning, Frozen, Wild, Quiet,
    Distant, Hollow, Secret, Eternal, Bitter, Sweet, Restless, Fallen, Rising, Electric, Midnight, Velvet, Iron,
    Glass, Paper, Stolen, Perfect, Strange, Little, Great, Long, Final, First, Lonely, Savage, Gentle, Invisible,
    Scarlet, Blue, Black, White, Silver, Northern, Southern, Winter, Summer
    """
)
NOUNS = _words(
    """
    River, Shadow, Road, Heart, Storm, Dream, Garden, Night, Kingdom, Island, Mirror, Letter, Promise, Secret, Song,
    Silence, Fire, Harbor, Horizon, Journey, Stranger, Witness, Hunter, Dancer, Soldier, Detective, Widow, Prophet,
    Thief, Queen, King, Child, Ghost, Angel, Wolf, Sparrow, Crow, Tiger, Lion, Serpent, City, House, Tower, Bridge,
    Station, Hotel, Train, Ship, Border, Frontier, Summer, Winter, Autumn, Spring, Morning, Evening, Season, Hour,
    Moment, Year, Game, Heist, Contract, Verdict, Signal, Code, Protocol, Machine, Empire, Colony, Ocean, Desert,
    Mountain, Valley, Forest, Sky, Moon, Star, Planet, Orbit, Memory, Truth, Lie, Fortune, Glory, Honor, Revenge,
    Mercy, Escape, Return
    """
)
TITLE_PATTERNS = (
    "The {noun}",
    "The {adjective} {noun}",
    "{adjective} {noun}",
    "{noun} of the {other}",
    "The {noun} and the {other}",
    "{noun} in {place}",
    "The {noun} of {place}",
    "A {noun} for {name}",
    "{name}'s {noun}",
    "Return of the {noun}",
    "Beyond the {noun}",
    "The Last {noun}",
    "{name}",
    "{place} {noun}",
    "Under the {adjective} {noun}",
)
HEROES = _words(
    """
    retired detective, young pianist, small-town teacher, disgraced surgeon, ambitious journalist, grieving widow,
    former boxer, idealistic lawyer, lonely astronaut, runaway heiress, aging rock star, rookie cop, exiled prince,
    struggling writer, single father, street magician, undercover agent, eccentric inventor, orphaned girl,
    burned-out spy, unemployed chef, famous painter, night-shift nurse, con artist, marine biologist, high-school
    coach, reluctant priest, taxi driver, war photographer, teenage hacker
    """
)
GOALS = (
    "must find a missing sister",
    "is drawn into a conspiracy that reaches the top",
    "tries to win back an estranged family",
    "sets out to clear a dead friend's name",
    "plans one last job before leaving for good",
    "falls in love with the wrong person",
    "inherits a crumbling house full of secrets",
    "witnesses a murder that nobody else believes",
    "joins a ragtag team for an impossible race",
    "has one week to save the family business",
    "returns home for a funeral and stays for the truth",
    "discovers a door to another world",
    "becomes the target of a ruthless gang",
    "must survive a winter cut off from the world",
    "chases a dream everyone else has given up on",
)
TWISTS = (
    "But an old rival has other plans.",
    "Nothing is what it seems.",
    "Time is running out.",
    "Every answer raises a darker question.",
    "An unlikely friendship changes everything.",
    "The past refuses to stay buried.",
    "Loyalties are tested to breaking point.",
    "A single mistake could cost everything.",
    "Help comes from the last place anyone expected.",
    "The closer the truth, the greater the danger.",
)
CLOSINGS = (
    "Based on a true story.",
    "A tale of love, loss and second chances.",
    "A tense thriller that keeps its secrets to the end.",
    "A warm comedy about family and forgiveness.",
    "An epic of ambition and betrayal.",
    "A haunting meditation on memory.",
)
CAREER_SENTENCES = {
    "actor": (
        "{surname} began on stage before moving to film.",
        "{surname} is best known for intense dramatic roles.",
        "Audiences know {surname} from a long run of comedies.",
        "{surname} won wide acclaim for a breakthrough supporting role.",
        "{surname} moves easily between blockbusters and independent films.",
    ),
    "director": (
        "{surname} started out making documentaries.",
        "{surname} is known for long takes and quiet, precise images.",
        "{surname} directed commercials before a first feature.",
        "Critics often praise {surname} for work with young actors.",
    ),
    "writer": (
        "{surname} wrote novels before turning to screenplays.",
        "{surname} is known for sharp, fast dialogue.",
        "{surname} began in television writers' rooms.",
        "{surname} often adapts classic literature for the screen.",
    ),
    "producer": (
        "{surname} founded an independent production company.",
        "{surname} is known for championing first-time directors.",
        "{surname} produced several international co-productions.",
    ),
}
LIFE_SENTENCES = (
    "{surname} studied at a drama school in {city}.",
    "{surname} later settled in {city}.",
    "{surname} also teaches film in {city}.",
    "{surname} grew up in {city} in a family of musicians.",
)
CHARACTER_TITLES = _words(
    """
    Detective, Dr., Captain, Mrs., Mr., Professor, Agent, Sergeant, Father, Judge
    """
)
CHARACTER_PARTS = _words(
    """
    The Stranger, Bartender, Nurse, Taxi Driver, Young Boy, Young Girl, Receptionist, Police Officer, Narrator,
    Himself, Herself, Waitress, Old Man, Old Woman, Guard, Reporter, Doctor, Pilot, Shopkeeper, Neighbor
    """
)

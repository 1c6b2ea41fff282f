"""Movies: their documents, lists, writes, and the genre/country/credit sets they carry.

The movie row is the lock of its whole aggregate (genres, countries, credits, shots):
every write to any of them locks the row first (`lock_movie`), so changes to one movie
are serialised, its `movie.updated` events follow commit order, and an `If-Match`
compared after the lock cannot lose a concurrent update. The document is read in a
statement after the lock, never in the locking one: a row lock that waited re-reads
the row but not the subqueries that build the document.

A change to a movie's sets touches `updated_at`, since the movie's document changed.
Credits written through a movie body emit their own `credit.*` events too, so that a
consumer of credits sees every credit change whichever endpoint made it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import asyncpg
import attrs

from cinema.db.integrity import to_domain_error, violated_value
from cinema.db.outbox import NewEvent
from cinema.db.pages import Page, PageQuery, SortKey, keyset_clauses, keyset_params, make_page
from cinema.db.slugs import free_slugs
from cinema.errors import Conflict, DomainError, FieldError, NotFound, ValidationFailed
from cinema.etags import IfMatch, check_if_match
from cinema.models import BIGINT_MAX, UNSET, CreditCreate, MovieCreate, MoviePatch, Unset
from cinema.slugs import slugify

# -- documents: PostgreSQL renders every shape the API returns -----------------------


def json_array(rows: str, order: str) -> str:
    """A JSON array of the rows of the subquery `rows` (seen as `x`), `[]` when there are none.

    Not json_agg: it puts a newline between elements, while row_to_json is compact and keeps
    the declared key order, so documents stay byte-stable (strong ETags) and small.
    """
    return (
        f"(SELECT coalesce('[' || string_agg(row_to_json(x)::text, ',' ORDER BY {order}) || ']', '[]')::json"
        f" FROM ({rows}) x)"
    )


GENRES_OF_MOVIE = json_array(
    "SELECT g.id, g.slug, g.name FROM movie_genres mg JOIN genres g ON g.id = mg.genre_id WHERE mg.movie_id = m.id",
    "x.name, x.id",
)
COUNTRIES_OF_MOVIE = json_array(
    "SELECT k.id, k.code, k.slug, k.name FROM movie_countries mk JOIN countries k ON k.id = mk.country_id"
    " WHERE mk.movie_id = m.id",
    "x.name, x.id",
)
# The columns of a credit (alias c) as the API shows it, with its person.
CREDIT_COLUMNS = (
    "c.id, (SELECT row_to_json(q) FROM (SELECT p.id, p.slug, p.full_name, p.photo_url"
    " FROM persons p WHERE p.id = c.person_id) q) AS person, c.role, c.character, c.position"
)
CREDIT_JSON = f"(SELECT row_to_json(d) FROM (SELECT {CREDIT_COLUMNS}) d)::text"
CREDITS_OF_MOVIE = json_array(f"SELECT {CREDIT_COLUMNS} FROM credits c WHERE c.movie_id = m.id", "x.position, x.id")
SHOT_COLUMNS = "s.id, s.movie_id, s.caption, s.image_url, s.images, s.position"
SHOT_JSON = f"(SELECT row_to_json(d) FROM (SELECT {SHOT_COLUMNS}) d)::text"
SHOTS_OF_MOVIE = json_array(f"SELECT {SHOT_COLUMNS} FROM shots s WHERE s.movie_id = m.id", "x.position, x.id")

# The list view: no description, credits or shots.
SUMMARY_COLUMNS = f"""m.id, m.slug, m.title, m.original_title, m.release_year, m.premiere_date, m.duration,
m.age_rating, m.rating, m.poster_url, m.poster_images AS images, {GENRES_OF_MOVIE} AS genres,
{COUNTRIES_OF_MOVIE} AS countries, m.created_at, m.updated_at"""
SUMMARY_JSON = f"(SELECT row_to_json(d) FROM (SELECT {SUMMARY_COLUMNS}) d)::text"
MOVIE_JSON = f"""(SELECT row_to_json(d) FROM (SELECT m.id, m.slug, m.title, m.original_title, m.description,
m.release_year, m.premiere_date, m.duration, m.age_rating, m.rating, m.poster_url, m.poster_images AS images,
{GENRES_OF_MOVIE} AS genres, {COUNTRIES_OF_MOVIE} AS countries, {CREDITS_OF_MOVIE} AS credits,
{SHOTS_OF_MOVIE} AS shots, m.created_at, m.updated_at) d)::text"""

GET_MOVIE = f"SELECT {MOVIE_JSON} FROM movies m WHERE m.id = $1"


async def get_movie(conn: asyncpg.Connection, movie_id: int) -> str:
    """The whole document in one statement."""
    doc: str | None = await conn.fetchval(GET_MOVIE, movie_id)
    if doc is None:
        raise NotFound(f"Movie {movie_id} does not exist.")
    return doc


LOCK_MOVIE = "SELECT true FROM movies WHERE id = $1 FOR UPDATE"


async def lock_movie(conn: asyncpg.Connection, movie_id: int) -> None:
    """Lock the movie's aggregate for this transaction (see the module's docstring)."""
    if not await conn.fetchval(LOCK_MOVIE, movie_id):
        raise NotFound(f"Movie {movie_id} does not exist.")


TOUCH_MOVIE = f"UPDATE movies m SET updated_at = clock_timestamp() WHERE m.id = $1 RETURNING {MOVIE_JSON}"


async def movie_updated(conn: asyncpg.Connection, movie_id: int) -> NewEvent:
    """Mark the locked movie as changed by a write to one of its parts; its `movie.updated` event."""
    doc = await conn.fetchval(TOUCH_MOVIE, movie_id)
    return NewEvent("movie.updated", movie_id, doc)


# -- the list ------------------------------------------------------------------------

# Nullable keys sort through a never-null expression (a row comparison with a null in it
# is null, so keyset pages would skip those rows): an unknown year or rating sorts as the
# lowest value, so `-release_year` and `-rating` (newest, best first) end with the
# unknown ones. migrations/0012_movie_list_indexes.sql indexes each expression with id.
# The rating key is float8 so that cursors carry a JSON number (numeric is a Decimal).
SORTS = {
    "id": SortKey("m.id", int),
    "title": SortKey("lower(m.title)", str),
    "release_year": SortKey("coalesce(m.release_year, 0)", int),
    "rating": SortKey("coalesce(m.rating::float8, -1)", float),
    "created_at": SortKey("m.created_at", dt.datetime),
}


MAX_VALUES = 10  # of genre, country and person in one list request


@attrs.frozen
class MovieFilter:
    """The list's filters; empty ones do not filter."""

    # Each value adds a condition: the HTTP layer bounds them (MAX_VALUES).
    genres: tuple[str, ...] = ()  # slugs or ids: movies having all of them
    countries: tuple[str, ...] = ()  # likewise
    persons: tuple[int, ...] = ()  # movies crediting all of them
    role: str | None = None  # ... in this role
    year_from: int | None = None
    year_to: int | None = None
    age_ratings: tuple[str, ...] = ()  # any of them
    slug: str | None = None


# Each filter's condition; {0}, {1} are its parameters. Genres, countries and persons give
# one condition per value (a movie must match all of them): as semi-joins, the planner can
# either walk the sort key's index and probe each movie (common values), or start from the
# value's index (rare ones). A genre or country value is a slug or an id: it comes as the
# text and, when it is a number, the id, and matches either.
FILTERS = {
    "genre": """EXISTS (SELECT FROM movie_genres mg WHERE mg.movie_id = m.id
        AND mg.genre_id IN (SELECT g.id FROM genres g WHERE g.slug = {0}::text OR g.id = {1}::bigint))""",
    "country": """EXISTS (SELECT FROM movie_countries mk WHERE mk.movie_id = m.id
        AND mk.country_id IN (SELECT k.id FROM countries k WHERE k.slug = {0}::text OR k.id = {1}::bigint))""",
    "person": "EXISTS (SELECT FROM credits c WHERE c.movie_id = m.id AND c.person_id = {0}::bigint)",
    "person_in_role": """EXISTS (SELECT FROM credits c WHERE c.movie_id = m.id AND c.person_id = {0}::bigint
        AND c.role = {1}::text)""",
    # On the same expression as the release_year sort key, so its index serves both;
    # an unknown year (0) is outside every range.
    "year_from": "coalesce(m.release_year, 0) >= {0}::int",
    "year_to": "coalesce(m.release_year, 0) BETWEEN 1 AND {0}::int",
    "age_ratings": "m.age_rating = ANY({0}::text[])",
    "slug": "m.slug = {0}::text",
}


def _slug_or_id(value: str) -> list[Any]:
    return [value, int(value) if value.isdigit() and int(value) <= BIGINT_MAX else None]


def _filter_params(f: MovieFilter) -> list[tuple[str, list[Any]]]:
    """The conditions a filter needs, each with its parameters."""
    present: list[tuple[str, list[Any]]] = []
    present += [("genre", _slug_or_id(v)) for v in f.genres]
    present += [("country", _slug_or_id(v)) for v in f.countries]
    if f.role is None:
        present += [("person", [p]) for p in f.persons]
    else:
        present += [("person_in_role", [p, f.role]) for p in f.persons]
    for name in ("year_from", "year_to", "slug"):
        if getattr(f, name) is not None:
            present.append((name, [getattr(f, name)]))
    if f.age_ratings:
        present.append(("age_ratings", [list(f.age_ratings)]))
    return present


@lru_cache(maxsize=512)
def page_sql(template: str, key: str, id_expr: str, descending: bool, has_cursor: bool, first_param: int) -> str:
    """`template` (with `{key}`, `{where}` and `{order}` slots) for one sort and direction; built once.

    `$first_param` is the limit, then the cursor's key and id; the template's own parameters come first.
    """
    where, order = keyset_clauses(key, id_expr, descending, has_cursor, first_param)
    return template.format(key=key, where=where, order=order)


LIST_MOVIES = "SELECT {key} AS key, m.id, " + SUMMARY_JSON + " FROM movies m WHERE {where} {order}"


@lru_cache(maxsize=1024)
def _list_sql(filters: tuple[tuple[str, int], ...], key: str, descending: bool, has_cursor: bool) -> str:
    """The statement for one combination of filters (name, parameter count) and sort; built once."""
    conditions, n = [], 1
    for name, count in filters:
        conditions.append(FILTERS[name].format(*(f"${n + i}" for i in range(count))))
        n += count
    where, order = keyset_clauses(key, "m.id", descending, has_cursor, n)
    return LIST_MOVIES.format(key=key, where=" AND ".join([*conditions, where]), order=order)


async def list_movies(conn: asyncpg.Connection, movie_filter: MovieFilter, query: PageQuery) -> Page:
    """One page in one statement, summaries rendered by PostgreSQL."""
    present = _filter_params(movie_filter)
    shape = tuple((name, len(params)) for name, params in present)
    sql = _list_sql(shape, SORTS[query.field].expr, query.descending, query.after is not None)
    params = [p for _, ps in present for p in ps]
    return make_page(query, await conn.fetch(sql, *params, *keyset_params(query)))


# -- checks in front of the database -------------------------------------------------


def check_credits(credits: Sequence[CreditCreate], path: str | None = "credits") -> None:
    """What the database would refuse with a less precise error: a character for a non-actor
    (422), the same person twice in one role (409). Fields are named `credits[i].character`,
    or `character` with no path (a single credit)."""

    def field(i: int, name: str) -> str:
        return name if path is None else f"{path}[{i}].{name}"

    invalid = [
        FieldError(field(i, "character"), "only actors have a character")
        for i, credit in enumerate(credits)
        if credit.character is not None and credit.role != "actor"
    ]
    if invalid:
        raise ValidationFailed("Only actors have a character.", errors=invalid)
    seen: dict[tuple[int, str], int] = {}
    for i, credit in enumerate(credits):
        first = seen.setdefault((credit.person_id, credit.role), i)
        if first != i:
            raise Conflict(
                f"{path}[{first}] and {path}[{i}] credit the same person in the same role.",
                errors=[FieldError(field(i, "person_id"), f"the same person and role as {path}[{first}]")],
            )


@attrs.frozen
class References:
    """Ids a body refers to, each with the field that names it ("[2].credits[0].person_id")."""

    genres: list[tuple[int, str]] = attrs.Factory(list)
    countries: list[tuple[int, str]] = attrs.Factory(list)
    persons: list[tuple[int, str]] = attrs.Factory(list)

    def add(
        self, prefix: str, genre_ids: Iterable[int], country_ids: Iterable[int], credits: Iterable[CreditCreate]
    ) -> None:
        self.genres.extend((id_, f"{prefix}genre_ids[{i}]") for i, id_ in enumerate(genre_ids))
        self.countries.extend((id_, f"{prefix}country_ids[{i}]") for i, id_ in enumerate(country_ids))
        self.persons.extend((c.person_id, f"{prefix}credits[{i}].person_id") for i, c in enumerate(credits))


# FOR KEY SHARE keeps the rows found from being deleted before this transaction commits,
# so the inserts that follow cannot fail on their foreign keys.
FIND_REFERENCES = """
WITH g AS (SELECT id FROM genres WHERE id = ANY($1::bigint[]) FOR KEY SHARE),
     k AS (SELECT id FROM countries WHERE id = ANY($2::bigint[]) FOR KEY SHARE),
     p AS (SELECT id FROM persons WHERE id = ANY($3::bigint[]) FOR KEY SHARE)
SELECT array(SELECT id FROM g), array(SELECT id FROM k), array(SELECT id FROM p)
"""


async def check_references(conn: asyncpg.Connection, refs: References) -> None:
    """422 naming every field whose id does not exist (one statement)."""
    kinds = (("genre", refs.genres), ("country", refs.countries), ("person", refs.persons))
    if not any(ids for _, ids in kinds):
        return
    # Ids beyond bigint cannot exist (and cannot be sent as parameters).
    wanted = [sorted({id_ for id_, _ in ids if 1 <= id_ <= BIGINT_MAX}) for _, ids in kinds]
    found = [set(ids) for ids in await conn.fetchrow(FIND_REFERENCES, *wanted)]
    errors = [
        FieldError(field, f"{kind} {id_} does not exist")
        for (kind, ids), existing in zip(kinds, found, strict=True)
        for id_, field in ids
        if id_ not in existing
    ]
    if errors:
        raise ValidationFailed("The body refers to rows that do not exist.", errors=errors)


# -- create --------------------------------------------------------------------------

INSERT_MOVIES = """
INSERT INTO movies AS m (title, slug, original_title, description, release_year, premiere_date, duration,
    age_rating, rating)
SELECT t, s, ot, d, y, pd, du, ar, r::numeric(3, 1)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::date[], $7::int[], $8::text[],
    $9::float8[]) WITH ORDINALITY AS i(t, s, ot, d, y, pd, du, ar, r, n)
ORDER BY n
RETURNING m.id, m.slug
"""
INSERT_GENRE_LINKS = """
INSERT INTO movie_genres (movie_id, genre_id) SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING
"""
INSERT_COUNTRY_LINKS = """
INSERT INTO movie_countries (movie_id, country_id) SELECT * FROM unnest($1::bigint[], $2::bigint[])
ON CONFLICT DO NOTHING
"""
INSERT_CREDITS = f"""
INSERT INTO credits AS c (movie_id, person_id, role, character, position)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[])
RETURNING c.movie_id, c.position, c.id, {CREDIT_JSON}
"""
MOVIE_DOCS = f"SELECT m.id, {MOVIE_JSON} FROM movies m WHERE m.id = ANY($1::bigint[])"


def _slug_source(title: str, year: int | None) -> str:
    """ "Heat", 1995 -> "heat-1995", the title shortened so that the year survives."""
    base = slugify(title, 59) or "movie"
    return base if year is None else f"{base} {year}"


async def create_movies(
    conn: asyncpg.Connection, items: Sequence[MovieCreate], bulk: bool
) -> tuple[list[tuple[int, str]], list[NewEvent]]:
    """Insert all items with their sets in a fixed number of statements; (id, document) in the items' order.

    Errors name the item ("[3].title") when the client sent an array (`bulk`).
    """

    def at(i: int) -> str:
        return f"[{i}]." if bulk else ""

    refs = References()
    for i, item in enumerate(items):
        try:
            check_credits(item.credits)
        except DomainError as exc:
            raise (exc.prefixed(f"[{i}]") if bulk else exc) from None
        refs.add(at(i), item.genre_ids, item.country_ids, item.credits)
    _check_slugs_in_batch(items)
    await check_references(conn, refs)
    slugs = await free_slugs(
        conn, "movies", [(item.slug, _slug_source(item.title, item.release_year)) for item in items]
    )
    columns = [
        [getattr(item, name) for item in items]
        for name in (
            "title",
            "original_title",
            "description",
            "release_year",
            "premiere_date",
            "duration",
            "age_rating",
            "rating",
        )
    ]
    try:
        rows = await conn.fetch(INSERT_MOVIES, columns[0], slugs, *columns[1:])
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise _locate(to_domain_error(exc), exc, slugs, bulk) from None
    id_of_slug = {row["slug"]: row["id"] for row in rows}
    ids = [id_of_slug[slug] for slug in slugs]

    genre_links = [(movie_id, g) for movie_id, item in zip(ids, items, strict=True) for g in item.genre_ids]
    if genre_links:
        await conn.execute(INSERT_GENRE_LINKS, *map(list, zip(*genre_links, strict=True)))
    country_links = [(movie_id, k) for movie_id, item in zip(ids, items, strict=True) for k in item.country_ids]
    if country_links:
        await conn.execute(INSERT_COUNTRY_LINKS, *map(list, zip(*country_links, strict=True)))
    credit_rows = [
        (movie_id, c.person_id, c.role, c.character, i if c.position is None else c.position)
        for movie_id, item in zip(ids, items, strict=True)
        for i, c in enumerate(item.credits)
    ]
    credits_of: dict[int, list[NewEvent]] = {}
    if credit_rows:
        created = await conn.fetch(INSERT_CREDITS, *map(list, zip(*credit_rows, strict=True)))
        for row in sorted(created, key=lambda r: (r["movie_id"], r["position"], r["id"])):
            event = NewEvent("credit.created", row["id"], row[3], (row["movie_id"],))
            credits_of.setdefault(row["movie_id"], []).append(event)

    docs = dict(await conn.fetch(MOVIE_DOCS, ids))
    events = []
    for movie_id in ids:
        events.append(NewEvent("movie.created", movie_id, docs[movie_id]))
        events += credits_of.get(movie_id, [])
    return [(movie_id, docs[movie_id]) for movie_id in ids], events


def _check_slugs_in_batch(items: Sequence[MovieCreate]) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.slug is None:
            continue
        first = seen.setdefault(item.slug, i)
        if first != i:
            raise Conflict(
                f"Items {first} and {i} have the same slug.",
                errors=[FieldError(f"[{i}].slug", f"the same slug as item {first}")],
            )


def _locate(
    error: DomainError, exc: asyncpg.IntegrityConstraintViolationError, slugs: Sequence[str], bulk: bool
) -> DomainError:
    """Prefix a bulk insert's error (a slug taken meanwhile) with the index of its item."""
    if not bulk:
        return error
    value = violated_value(exc)
    if value in slugs:
        return error.prefixed(f"[{slugs.index(value)}]")
    return error


# -- patch ---------------------------------------------------------------------------

# The columns a patch may set, and how each parameter is typed (a float becomes numeric
# by PostgreSQL's rounding, as on insert; asyncpg would send its binary expansion).
COLUMNS = {
    "title": "text",
    "slug": "text",
    "original_title": "text",
    "description": "text",
    "release_year": "int",
    "premiere_date": "date",
    "duration": "int",
    "age_rating": "text",
    "rating": "float8::numeric(3, 1)",
}


@lru_cache(maxsize=512)
def _update_sql(columns: tuple[str, ...]) -> str:
    """$1 the movie, $2 whether its sets changed, then one parameter per column.

    A row whose values do not change is not updated (updated_at and the document stay).
    """
    if not columns:
        return "UPDATE movies SET updated_at = clock_timestamp() WHERE id = $1 AND $2"
    params = [f"${i}::{COLUMNS[name]}" for i, name in enumerate(columns, start=3)]
    sets = ", ".join(f"{name} = {param}" for name, param in zip(columns, params, strict=True))
    old = ", ".join(f"m.{name}" for name in columns)
    return (
        f"UPDATE movies m SET {sets} WHERE m.id = $1 AND ($2 OR ROW({old}) IS DISTINCT FROM ROW({', '.join(params)}))"
    )


async def patch_movie(
    conn: asyncpg.Connection, movie_id: int, patch: MoviePatch, if_match: IfMatch | None
) -> tuple[str, list[NewEvent]]:
    await lock_movie(conn, movie_id)
    current = await get_movie(conn, movie_id)
    check_if_match(current, if_match)
    genre_ids = given(patch.genre_ids)
    country_ids = given(patch.country_ids)
    credits = given(patch.credits)
    refs = References()
    if credits is not None:
        check_credits(credits)
    refs.add("", genre_ids or (), country_ids or (), credits or ())
    await check_references(conn, refs)

    sets_changed = False
    if genre_ids is not None:
        sets_changed |= await _replace_links(conn, REPLACE_GENRES, movie_id, genre_ids)
    if country_ids is not None:
        sets_changed |= await _replace_links(conn, REPLACE_COUNTRIES, movie_id, country_ids)
    credit_events = [] if credits is None else await replace_credits(conn, movie_id, credits)
    sets_changed |= bool(credit_events)
    columns = tuple(name for name in COLUMNS if getattr(patch, name) is not UNSET)
    if columns or sets_changed:
        try:
            await conn.execute(_update_sql(columns), movie_id, sets_changed, *(getattr(patch, c) for c in columns))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise to_domain_error(exc) from None
    doc = await get_movie(conn, movie_id)
    if doc == current:
        return doc, []  # nothing changed: no event, caches stay valid
    return doc, [*credit_events, NewEvent("movie.updated", movie_id, doc)]


def given(value: Any) -> Any:
    return None if isinstance(value, Unset) else value


def _replace_links_sql(table: str, column: str) -> str:
    """Make the movie's set exactly the given ids; returns how many links were added or removed."""
    return f"""
WITH wanted AS (SELECT DISTINCT unnest($2::bigint[]) AS id),
removed AS (
    DELETE FROM {table} t WHERE t.movie_id = $1 AND t.{column} NOT IN (SELECT id FROM wanted) RETURNING 1
),
added AS (
    INSERT INTO {table} (movie_id, {column}) SELECT $1, id FROM wanted ON CONFLICT DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM removed) + (SELECT count(*) FROM added)
"""


REPLACE_GENRES = _replace_links_sql("movie_genres", "genre_id")
REPLACE_COUNTRIES = _replace_links_sql("movie_countries", "country_id")


async def _replace_links(conn: asyncpg.Connection, sql: str, movie_id: int, ids: Sequence[int]) -> bool:
    return bool(await conn.fetchval(sql, movie_id, list(ids)))


# Credits keep their id when the same person stays in the same role (only character and
# position change), so that clients holding credit ids are not disturbed by a resend.
# All parts of one statement see the credits as they were before it.
REPLACE_CREDITS = f"""
WITH wanted AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[]) AS w(person_id, role, character, position)
),
removed AS (
    DELETE FROM credits c
    WHERE c.movie_id = $1 AND NOT EXISTS (SELECT FROM wanted w WHERE w.person_id = c.person_id AND w.role = c.role)
    RETURNING c.id, c.position
),
kept AS (
    UPDATE credits c SET character = w.character, position = w.position
    FROM wanted w
    WHERE c.movie_id = $1 AND c.person_id = w.person_id AND c.role = w.role
        AND ROW(c.character, c.position) IS DISTINCT FROM ROW(w.character, w.position)
    RETURNING c.id, c.position, {CREDIT_JSON} AS doc
),
added AS (
    INSERT INTO credits AS c (movie_id, person_id, role, character, position)
    SELECT $1, w.person_id, w.role, w.character, w.position FROM wanted w
    WHERE NOT EXISTS (
        SELECT FROM credits o WHERE o.movie_id = $1 AND o.person_id = w.person_id AND o.role = w.role
    )
    RETURNING c.id, c.position, {CREDIT_JSON} AS doc
)
SELECT 'credit.deleted' AS type, id, position, NULL AS doc FROM removed
UNION ALL SELECT 'credit.updated', id, position, doc FROM kept
UNION ALL SELECT 'credit.created', id, position, doc FROM added
"""
_EVENT_ORDER = {"credit.deleted": 0, "credit.updated": 1, "credit.created": 2}


async def replace_credits(conn: asyncpg.Connection, movie_id: int, credits: Sequence[CreditCreate]) -> list[NewEvent]:
    """Make the movie's credits exactly `credits` (checked already); the events of what changed."""
    rows = await conn.fetch(
        REPLACE_CREDITS,
        movie_id,
        [c.person_id for c in credits],
        [c.role for c in credits],
        [c.character for c in credits],
        [i if c.position is None else c.position for i, c in enumerate(credits)],
    )
    rows = sorted(rows, key=lambda r: (_EVENT_ORDER[r["type"]], r["position"], r["id"]))
    return [NewEvent(row["type"], row["id"], row["doc"], (movie_id,)) for row in rows]


# -- delete --------------------------------------------------------------------------

# Every part of the statement sees the movie as it was before it: the SELECT lists the
# credits and shots that the cascade then deletes.
DELETE_MOVIE = """
WITH gone AS (DELETE FROM movies WHERE id = $1)
SELECT array(SELECT id FROM credits WHERE movie_id = $1 ORDER BY id),
       array(SELECT id FROM shots WHERE movie_id = $1 ORDER BY id)
"""


async def delete_movie(
    conn: asyncpg.Connection, movie_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    """Delete the movie with its links, credits and shots; each credit and shot gets its event."""
    await lock_movie(conn, movie_id)
    check_if_match(await get_movie(conn, movie_id), if_match)
    credit_ids, shot_ids = await conn.fetchrow(DELETE_MOVIE, movie_id)
    affected = (movie_id,)
    return None, [
        *(NewEvent("credit.deleted", credit_id, None, affected) for credit_id in credit_ids),
        *(NewEvent("shot.deleted", shot_id, None, affected) for shot_id in shot_ids),
        NewEvent("movie.deleted", movie_id, None),
    ]


# -- a movie's genres and countries, one at a time ------------------------------------


@attrs.frozen
class Link:
    """A set of the movie's that clients change one member at a time (PUT/DELETE)."""

    noun: str
    find: str  # the member's row, locked against deletion
    add: str
    remove: str


LINKS = {
    "genre": Link(
        "Genre",
        "SELECT true FROM genres WHERE id = $1 FOR KEY SHARE",
        "INSERT INTO movie_genres (movie_id, genre_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        "DELETE FROM movie_genres WHERE movie_id = $1 AND genre_id = $2",
    ),
    "country": Link(
        "Country",
        "SELECT true FROM countries WHERE id = $1 FOR KEY SHARE",
        "INSERT INTO movie_countries (movie_id, country_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        "DELETE FROM movie_countries WHERE movie_id = $1 AND country_id = $2",
    ),
}


async def link(
    conn: asyncpg.Connection, kind: str, movie_id: int, target_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    """Add the genre or country (idempotent: present already, nothing changes and no event)."""
    return await _change_link(conn, LINKS[kind], LINKS[kind].add, movie_id, target_id, if_match)


async def unlink(
    conn: asyncpg.Connection, kind: str, movie_id: int, target_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    """Remove the genre or country (idempotent as well)."""
    return await _change_link(conn, LINKS[kind], LINKS[kind].remove, movie_id, target_id, if_match)


async def _change_link(
    conn: asyncpg.Connection, kind: Link, sql: str, movie_id: int, target_id: int, if_match: IfMatch | None
) -> tuple[None, list[NewEvent]]:
    await lock_movie(conn, movie_id)
    # A missing member is a 404 whatever If-Match says: preconditions apply to requests that would
    # otherwise succeed (RFC 9110, 13.2.1).
    if not await conn.fetchval(kind.find, target_id):
        raise NotFound(f"{kind.noun} {target_id} does not exist.")
    if if_match is not None:
        check_if_match(await get_movie(conn, movie_id), if_match)
    status = await conn.execute(sql, movie_id, target_id)
    if status.endswith(" 0"):
        return None, []
    return None, [await movie_updated(conn, movie_id)]

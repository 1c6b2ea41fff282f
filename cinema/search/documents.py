"""Search documents: what each kind of entity contributes to the index, and how events become documents.

One table, `KINDS`, says per kind which fields of the resource's JSON (as GET returns it,
and as its events carry it) are searched and with what weight, which field is the hit's
title, which fields a hit shows, and the SQL that builds the same JSON from the catalog
tables (used to re-index movies whose embedded genre/person/country changed, and by
`reindex`). Adding a kind to search is adding an entry here; both backends and the indexer
work from `Document`s only.

Weights: A titles and names, B original titles and codes, C descriptions and biographies,
D what a document mentions (a movie's genres, countries, people and characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import asyncpg
import attrs
import orjson
import structlog

from cinema.db.genres import GENRE_JSON
from cinema.db.outbox import Event

log = structlog.get_logger("cinema.search")

Weight = Literal["A", "B", "C", "D"]
WEIGHTS: tuple[Weight, ...] = ("A", "B", "C", "D")
# The kind whose documents embed the others: events list the movies they affect.
EMBEDDING_KIND = "movie"


@attrs.frozen
class Body:
    slug: str
    title: str
    texts: tuple[str, str, str, str]  # the searchable text under weights A, B, C, D
    summary: str  # a JSON object: the fields a hit shows besides type, id, slug, title, score


@attrs.frozen
class Document:
    kind: str
    id: int
    version: int  # the seq of the event it reflects: a write never replaces a higher version
    body: Body | None  # None: the entity is gone (a tombstone)


def _compile(path: str) -> tuple[tuple[str, bool], ...]:
    """ "credits[].person.full_name" -> (("credits", True), ("person", False), ("full_name", False))."""
    return tuple((step.removesuffix("[]"), step.endswith("[]")) for step in path.split("."))


def _values(value: Any, steps: tuple[tuple[str, bool], ...]) -> Iterable[str]:
    if not steps:
        if value is not None and value != "":
            yield str(value)
        return
    if not isinstance(value, dict):  # decoded JSON: objects are dicts (and the exact check is fast)
        return
    (key, many), rest = steps[0], steps[1:]
    found = value.get(key)
    if many:
        for item in found or ():
            yield from _values(item, rest)
    else:
        yield from _values(found, rest)


@attrs.frozen
class Kind:
    name: str
    title: str  # the field shown as the hit's title
    fields: tuple[tuple[str, Weight], ...]  # (path, weight); "genres[].name" walks a list
    summary: tuple[str, ...]  # top-level fields a hit shows
    # SQL returning (id, resource JSON) in id order: $1 ids (NULL for all), $2 ids after, $3 limit.
    source: str
    _paths: tuple[tuple[tuple[tuple[str, bool], ...], int], ...] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        paths = tuple((_compile(path), WEIGHTS.index(weight)) for path, weight in self.fields)
        object.__setattr__(self, "_paths", paths)

    def document(self, entity_id: int, version: int, data: Mapping[str, Any]) -> Document:
        texts: tuple[list[str], ...] = ([], [], [], [])
        for steps, weight in self._paths:
            texts[weight].extend(_values(data, steps))
        body = Body(
            slug=str(data.get("slug") or ""),
            title=str(data.get(self.title) or ""),
            texts=(" ".join(texts[0]), " ".join(texts[1]), " ".join(texts[2]), " ".join(texts[3])),
            summary=orjson.dumps({key: data.get(key) for key in self.summary}).decode(),
        )
        return Document(self.name, entity_id, version, body)


def _source(table: str, alias: str, doc: str) -> str:
    return (
        f"SELECT {alias}.id, {doc} FROM {table} {alias}"
        f" WHERE ($1::bigint[] IS NULL OR {alias}.id = ANY($1::bigint[])) AND {alias}.id > $2"
        f" ORDER BY {alias}.id LIMIT $3"
    )


# The representations below carry the fields search uses, under the API's names (API.md).
COUNTRY_JSON = "(SELECT row_to_json(d) FROM (SELECT c.id, c.code, c.slug, c.name) d)::text"
PERSON_JSON = """(SELECT row_to_json(d) FROM (
    SELECT p.id, p.slug, p.full_name, p.birth_date, p.death_date, p.biography, p.photo_url
) d)::text"""
MOVIE_JSON = """(SELECT row_to_json(d) FROM (
    SELECT m.id, m.slug, m.title, m.original_title, m.description, m.release_year, m.poster_url,
        (SELECT coalesce(json_agg(json_build_object('id', g.id, 'slug', g.slug, 'name', g.name) ORDER BY g.name), '[]')
         FROM movie_genres mg JOIN genres g ON g.id = mg.genre_id WHERE mg.movie_id = m.id) AS genres,
        (SELECT coalesce(json_agg(json_build_object('id', c.id, 'code', c.code, 'slug', c.slug, 'name', c.name)
                ORDER BY c.name), '[]')
         FROM movie_countries mc JOIN countries c ON c.id = mc.country_id WHERE mc.movie_id = m.id) AS countries,
        (SELECT coalesce(json_agg(json_build_object(
                    'id', cr.id, 'person', json_build_object('id', p.id, 'slug', p.slug, 'full_name', p.full_name),
                    'role', cr.role, 'character', cr.character, 'position', cr.position)
                ORDER BY cr.position, cr.id), '[]')
         FROM credits cr JOIN persons p ON p.id = cr.person_id WHERE cr.movie_id = m.id) AS credits
) d)::text"""

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="movie",
            title="title",
            fields=(
                ("title", "A"),
                ("original_title", "B"),
                ("description", "C"),
                ("genres[].name", "D"),
                ("countries[].name", "D"),
                ("credits[].person.full_name", "D"),
                ("credits[].character", "D"),
            ),
            summary=("original_title", "release_year", "poster_url"),
            source=_source("movies", "m", MOVIE_JSON),
        ),
        Kind(
            name="person",
            title="full_name",
            fields=(("full_name", "A"), ("biography", "C")),
            summary=("birth_date", "death_date", "photo_url"),
            source=_source("persons", "p", PERSON_JSON),
        ),
        Kind(
            name="genre",
            title="name",
            fields=(("name", "A"),),
            summary=(),
            source=_source("genres", "g", GENRE_JSON),
        ),
        Kind(
            name="country",
            title="name",
            fields=(("name", "A"), ("code", "B")),
            summary=("code",),
            source=_source("countries", "c", COUNTRY_JSON),
        ),
    )
}


async def load_documents(
    conn: asyncpg.Connection, kind: Kind, version: int, ids: Sequence[int] | None, after: int = 0, limit: int = 1000
) -> list[Document]:
    """Current documents of `kind` built from the catalog tables: the given ids, or the next page of all."""
    rows = await conn.fetch(kind.source, ids, after, len(ids) if ids is not None else limit)
    return [kind.document(row[0], version, orjson.loads(row[1])) for row in rows]


async def documents_for_events(conn: asyncpg.Connection, events: Sequence[Event]) -> list[Document]:
    """The documents a batch of events asks for, one per entity (the latest wins).

    An event of an indexed kind gives its entity's document from the event's data (a
    tombstone on delete). The movies it affects (a renamed genre, a person's new name) are
    read again from PostgreSQL as they are now, versioned by the event's seq: whatever
    happened to them later comes with a higher seq, so the final document is the same in
    whatever order a replay goes.
    """
    latest: dict[tuple[str, int], Document] = {}
    affected: dict[int, int] = {}
    for event in events:
        name = event.type.partition(".")[0]
        kind = KINDS.get(name)
        if kind is not None:
            data = None if event.data is None else orjson.loads(event.data)
            if data is None:
                latest[(name, event.entity_id)] = Document(name, event.entity_id, event.seq, None)
            elif isinstance(data, dict):
                latest[(name, event.entity_id)] = kind.document(event.entity_id, event.seq, data)
            else:  # not a resource: indexing it is impossible, and it must not block the events after it
                log.error("search_event_unusable", seq=event.seq, type=event.type)
        for movie_id in event.affected_movie_ids:
            affected[movie_id] = event.seq
    if affected:
        movies = KINDS[EMBEDDING_KIND]
        ids = sorted(affected)
        for start in range(0, len(ids), 1000):
            for doc in await load_documents(conn, movies, 0, ids[start : start + 1000]):
                version = affected[doc.id]
                current = latest.get((EMBEDDING_KIND, doc.id))
                if current is None or current.version < version:
                    latest[(EMBEDDING_KIND, doc.id)] = attrs.evolve(doc, version=version)
    return list(latest.values())

"""What the cache holds and which events invalidate it: two tables, extended by adding entries.

A **kind** is a family of cached responses (one genre, genre list pages). Every key of a kind
depends on named **counters**:
- `<entity>:<ident>` when the kind's ident is that entity's id (`genre:5`, `movie:7`);
- each collection it lists (`genres`): a collection counter is the list's generation, so one
  bump drops every page of every list over it, whatever its sort or cursor, without a scan.

A **rule** says which counters an event bumps: the entity it names, the collections it changes,
and always `movie:<id>` for every id in its `affected_movie_ids` (a renamed genre changes the
movies that embed it).

Adding a cached resource is: a `Kind` here (plus a README row for its TTL), the rules of its
events, and `cached(...)` in its GET handlers (cinema/http/cached.py). For example, movies:

    MOVIE = Kind("movie", ttl=300, entity="movie")
    MOVIES = Kind("movies", ttl=60, collections=("movies",))
    "movie.created": Rule(collections=("movies",)),
    "movie.updated": Rule(entity="movie", collections=("movies",)),
"""

from __future__ import annotations

import attrs

# Part of every shared key: bump it whenever a cached document changes shape, so a deploy
# never serves a shape its code does not produce (old keys simply stop being read).
SCHEMA_VERSION = 2  # 2: movies, persons and shots carry `images`


@attrs.frozen
class Kind:
    name: str
    ttl: float  # seconds; CINEMA_CACHE_TTLS overrides
    entity: str | None = None  # the ident is this entity's id: `<entity>:<ident>` invalidates the key
    collections: tuple[str, ...] = ()  # list generations: a bump drops every key of the kind

    def counters(self, ident: str) -> tuple[str, ...]:
        """The counters a key of this kind depends on."""
        if self.entity is None:
            return self.collections
        return (f"{self.entity}:{ident}", *self.collections)


@attrs.frozen
class Rule:
    entity: str | None = None  # bumps `<entity>:<event entity_id>`
    collections: tuple[str, ...] = ()  # bumps these collection generations


GENRE = Kind("genre", ttl=3600, entity="genre")
GENRES = Kind("genres", ttl=600, collections=("genres",))
COUNTRY = Kind("country", ttl=3600, entity="country")
COUNTRIES = Kind("countries", ttl=600, collections=("countries",))
PERSON = Kind("person", ttl=600, entity="person")
PERSONS = Kind("persons", ttl=300, collections=("persons",))
MOVIE = Kind("movie", ttl=300, entity="movie")
# Movie list items embed genre and country names: their changes bump "movies" too.
MOVIES = Kind("movies", ttl=60, collections=("movies",))
# A filmography's items are movie summaries next to the person's credits: any movie or
# person change drops them all (coarse, and cheap next to tracking each page's movies).
FILMOGRAPHY = Kind("filmography", ttl=300, collections=("movies", "persons"))
# Search answers change when the indexer makes a batch searchable (search.indexed), not at commit.
SEARCH = Kind("search", ttl=60, collections=("search",))

KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (GENRE, GENRES, COUNTRY, COUNTRIES, PERSON, PERSONS, MOVIE, MOVIES, FILMOGRAPHY, SEARCH)
}

RULES: dict[str, Rule] = {
    "genre.created": Rule(collections=("genres",)),
    "genre.updated": Rule(entity="genre", collections=("genres", "movies")),
    "genre.deleted": Rule(entity="genre", collections=("genres", "movies")),
    "country.created": Rule(collections=("countries",)),
    "country.updated": Rule(entity="country", collections=("countries", "movies")),
    "country.deleted": Rule(entity="country", collections=("countries", "movies")),
    "person.created": Rule(collections=("persons",)),
    "person.updated": Rule(entity="person", collections=("persons",)),
    "person.deleted": Rule(entity="person", collections=("persons",)),
    "movie.created": Rule(collections=("movies",)),
    # Credit and shot changes also emit movie.updated with the new document.
    "movie.updated": Rule(entity="movie", collections=("movies",)),
    "movie.deleted": Rule(entity="movie", collections=("movies",)),
    # Not a domain event: the indexer's announcement (cinema/search/live.py), from any process.
    "search.indexed": Rule(collections=("search",)),
}


def bumped(event_type: str, entity_id: int, affected_movie_ids: tuple[int, ...]) -> list[str]:
    """The counters an event bumps; an event no rule names bumps only the movies it affects."""
    rule = RULES.get(event_type)
    counters = [f"movie:{movie_id}" for movie_id in affected_movie_ids]
    if rule is not None:
        if rule.entity is not None:
            counters.append(f"{rule.entity}:{entity_id}")
        counters.extend(rule.collections)
    return counters

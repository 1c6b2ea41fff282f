"""Database constraint violations -> precise domain errors, driven by one table.

Every constraint in migrations/ has a stable name; this table says which field it guards
and what a client should read. A violation of a constraint missing here is a bug in the
service (the validation in front of the database should have caught it): it surfaces as a
500 with the constraint named in the log, and a test (tests/db/test_integrity.py) keeps
the table complete.
"""

from __future__ import annotations

import re

import asyncpg
import attrs

from cinema.errors import Conflict, DomainError, FieldError, ValidationFailed


@attrs.frozen
class Rule:
    field: str
    message: str  # "{value}" is replaced by the offending value where the database reports it


CONSTRAINTS: dict[str, Rule] = {
    # unique -> 409
    "genres_slug_key": Rule("slug", "a genre with slug {value!r} already exists"),
    "genres_name_key": Rule("name", "a genre named {value!r} already exists"),
    "countries_code_key": Rule("code", "a country with code {value!r} already exists"),
    "countries_slug_key": Rule("slug", "a country with slug {value!r} already exists"),
    "countries_name_key": Rule("name", "a country named {value!r} already exists"),
    "persons_slug_key": Rule("slug", "a person with slug {value!r} already exists"),
    "movies_slug_key": Rule("slug", "a movie with slug {value!r} already exists"),
    "credits_movie_person_role_key": Rule("person_id", "this person already has this role in the movie"),
    "movie_genres_pkey": Rule("genre_ids", "the movie already has this genre"),
    "movie_countries_pkey": Rule("country_ids", "the movie already has this country"),
    "external_ids_pkey": Rule("external_id", "this external id is already taken"),
    "outbox_id_key": Rule("id", "duplicate event id"),
    "processed_commands_pkey": Rule("message_id", "a command with this message id was already processed"),
    # foreign keys -> 409 (a referenced row is missing, or still referenced)
    "movie_genres_movie_fkey": Rule("movie_id", "the movie does not exist"),
    "movie_genres_genre_fkey": Rule("genre_ids", "the genre does not exist"),
    "movie_countries_movie_fkey": Rule("movie_id", "the movie does not exist"),
    "movie_countries_country_fkey": Rule("country_ids", "the country does not exist"),
    "credits_movie_fkey": Rule("movie_id", "the movie does not exist"),
    "credits_person_fkey": Rule("person_id", "the person does not exist or still has credits"),
    "shots_movie_fkey": Rule("movie_id", "the movie does not exist"),
    "external_ids_movie_fkey": Rule("movie_id", "the movie does not exist"),
    "external_ids_person_fkey": Rule("person_id", "the person does not exist"),
    "external_ids_genre_fkey": Rule("genre_id", "the genre does not exist"),
    "external_ids_country_fkey": Rule("country_id", "the country does not exist"),
    # checks -> 422
    "genres_slug_format": Rule("slug", "must be 2 to 64 characters of a-z, 0-9 and -"),
    "genres_name_length": Rule("name", "must be 2 to 64 characters long"),
    "countries_code_format": Rule("code", "must be an ISO 3166-1 alpha-2 code in upper case"),
    "countries_slug_format": Rule("slug", "must be 2 to 64 characters of a-z, 0-9 and -"),
    "countries_name_length": Rule("name", "must be 2 to 100 characters long"),
    "persons_slug_format": Rule("slug", "must be 2 to 160 characters of a-z, 0-9 and -"),
    "persons_full_name_length": Rule("full_name", "must be 2 to 150 characters long"),
    "persons_death_after_birth": Rule("death_date", "must not be before birth_date"),
    "movies_slug_format": Rule("slug", "must be 2 to 300 characters of a-z, 0-9 and -"),
    "movies_title_length": Rule("title", "must be 1 to 255 characters long"),
    "movies_original_title_length": Rule("original_title", "must be 1 to 255 characters long"),
    "movies_release_year_range": Rule("release_year", "must be between 1888 and 2100"),
    "movies_duration_range": Rule("duration", "must be between 1 and 1000 minutes"),
    "movies_age_rating_valid": Rule("age_rating", "must be one of G, PG, PG-13, R, NC-17"),
    "movies_rating_range": Rule("rating", "must be between 0 and 10"),
    "credits_role_valid": Rule("role", "must be one of actor, director, writer, producer"),
    "credits_character_only_for_actors": Rule("character", "only actors have a character"),
    "credits_character_length": Rule("character", "must be 1 to 255 characters long"),
    "credits_position_range": Rule("position", "must not be negative"),
    "shots_caption_length": Rule("caption", "must be at most 255 characters long"),
    "shots_position_range": Rule("position", "must not be negative"),
    "outbox_type_format": Rule("type", "is not an event type"),
    "external_ids_kind_valid": Rule("kind", "is not an entity kind"),
    "external_ids_one_target": Rule("kind", "must reference exactly one entity of its kind"),
    # search tables: written by the indexer only, from its own data (never a client's)
    "search_positions_pkey": Rule("consumer", "this outbox consumer already has a position"),
    "search_documents_pkey": Rule("id", "this document is already indexed"),
    "search_terms_pkey": Rule("term", "this word is already in the lexicon"),
    # the catalog's identity: one row, written by migrations and `seed` only
    "catalog_pkey": Rule("one", "the catalog already has an id"),
    "catalog_one_row": Rule("one", "there is only one catalog"),
    # uploads: written by the upload path and the uploader only, from values they chose
    "uploads_kind_valid": Rule("kind", "must be poster, photo or shot"),
    "uploads_status_valid": Rule("status", "must be pending, done or failed"),
}

_KEY_VALUE = re.compile(r"Key \((?P<columns>.*)\)=\((?P<value>.*)\) ")


def violated_value(exc: asyncpg.IntegrityConstraintViolationError) -> str | None:
    """The value PostgreSQL names in a unique or foreign-key violation ("Key (slug)=(drama) ...")."""
    match = _KEY_VALUE.search(getattr(exc, "detail", None) or "")
    return match.group("value") if match else None


def to_domain_error(exc: asyncpg.IntegrityConstraintViolationError) -> DomainError:
    """The client-facing error for a violated constraint; re-raises the unknown ones."""
    name = getattr(exc, "constraint_name", None)
    rule = CONSTRAINTS.get(name or "")
    if rule is None:
        raise exc
    value = violated_value(exc)
    message = rule.message.format(value=value) if "{value" in rule.message else rule.message
    error = FieldError(rule.field, message)
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.NotNullViolationError):
        return ValidationFailed(f"{rule.field} {message}", errors=[error])
    return Conflict(message[0].upper() + message[1:] + ".", errors=[error])

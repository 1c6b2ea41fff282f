"""The catalog's attrs classes: resources as clients see them, and the bodies they send.

Constraints sit in field metadata under their JSON Schema names (`minLength`,
`pattern`, ...): `cinema.convert` checks them on every structured body and the OpenAPI
document is generated from the same metadata, so the two cannot disagree. The database
enforces the same rules again with named constraints (see migrations/).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Final

import attrs

from cinema.images import KINDS as IMAGE_KINDS


class Unset(enum.Enum):
    """A field absent from a PATCH body (as opposed to one sent as null)."""

    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET

SLUG = {"minLength": 2, "maxLength": 64, "pattern": "^[a-z0-9-]+$"}


def meta(**schema: Any) -> dict[str, Any]:
    return {"schema": schema}


def images_meta(kind: str) -> dict[str, Any]:
    """The `images` field of a resource with an image: its renditions' URLs by size (null without an image)."""
    names = [size.name for size in IMAGE_KINDS[kind].sizes]
    return meta(
        readOnly=True,
        propertyNames={"enum": names},
        description=f"WebP renditions of the {kind} by size ({', '.join(names)}: `w` bounds the width, `h` the "
        "height, in pixels; never enlarged), without metadata; null without an image. Set by the upload.",
    )


# -- genres ------------------------------------------------------------------------


@attrs.frozen
class Genre:
    id: int
    slug: str
    name: str


@attrs.frozen
class GenreCreate:
    name: str = attrs.field(metadata=meta(minLength=2, maxLength=64))
    slug: str | None = attrs.field(default=None, metadata=meta(**SLUG))


@attrs.frozen
class GenrePatch:
    name: str | Unset = attrs.field(default=UNSET, metadata=meta(minLength=2, maxLength=64))
    slug: str | Unset = attrs.field(default=UNSET, metadata=meta(**SLUG))


# -- countries ---------------------------------------------------------------------

# Upper case only: a lower-case code is a 422, not silently converted, so a client reads
# back exactly what it sent. The format is checked, not the assignment list, which changes
# and has user-assigned codes in real use (XK for Kosovo).
COUNTRY_CODE = {
    "pattern": "^[A-Z]{2}$",
    "description": "ISO 3166-1 alpha-2 code in upper case (lower case is rejected, not converted)",
}


@attrs.frozen
class Country:
    id: int
    code: str
    slug: str
    name: str


@attrs.frozen
class CountryCreate:
    code: str = attrs.field(metadata=meta(**COUNTRY_CODE))
    name: str = attrs.field(metadata=meta(minLength=2, maxLength=100))
    slug: str | None = attrs.field(default=None, metadata=meta(**SLUG))


@attrs.frozen
class CountryPatch:
    code: str | Unset = attrs.field(default=UNSET, metadata=meta(**COUNTRY_CODE))
    name: str | Unset = attrs.field(default=UNSET, metadata=meta(minLength=2, maxLength=100))
    slug: str | Unset = attrs.field(default=UNSET, metadata=meta(**SLUG))


# -- persons -----------------------------------------------------------------------

PERSON_SLUG = {"minLength": 2, "maxLength": 160, "pattern": "^[a-z0-9-]+$"}
FULL_NAME = {"minLength": 2, "maxLength": 150}


@attrs.frozen
class Person:
    id: int
    slug: str
    full_name: str
    birth_date: dt.date | None
    death_date: dt.date | None  # never before birth_date
    biography: str | None
    photo_url: str | None = attrs.field(metadata=meta(readOnly=True))  # set by the photo upload only
    images: dict[str, str] | None = attrs.field(metadata=images_meta("photo"))
    created_at: dt.datetime
    updated_at: dt.datetime


# No photo_url in the bodies: sending it is a 422 on that field.
@attrs.frozen
class PersonCreate:
    full_name: str = attrs.field(metadata=meta(**FULL_NAME))
    slug: str | None = attrs.field(default=None, metadata=meta(**PERSON_SLUG))
    birth_date: dt.date | None = None
    death_date: dt.date | None = None
    biography: str | None = None


@attrs.frozen
class PersonPatch:
    full_name: str | Unset = attrs.field(default=UNSET, metadata=meta(**FULL_NAME))
    slug: str | Unset = attrs.field(default=UNSET, metadata=meta(**PERSON_SLUG))
    birth_date: dt.date | Unset | None = UNSET
    death_date: dt.date | Unset | None = UNSET
    biography: str | Unset | None = UNSET


# -- movies ------------------------------------------------------------------------

AGE_RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
ROLES = ("actor", "director", "writer", "producer")
BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL bigints
INT_MAX = 2**31 - 1  # positions are PostgreSQL integers

ID = {"minimum": 1, "maximum": BIGINT_MAX}
MOVIE_SLUG = {"minLength": 2, "maxLength": 300, "pattern": "^[a-z0-9-]+$"}
TITLE = {"minLength": 1, "maxLength": 255}
# 1888: the oldest surviving motion picture (Roundhay Garden Scene).
RELEASE_YEAR = {"minimum": 1888, "maximum": 2100}
DURATION = {"minimum": 1, "maximum": 1000, "description": "minutes"}
AGE_RATING = {"enum": list(AGE_RATINGS)}
# Stored with one decimal (numeric(3,1)): 7.25 is kept as 7.3.
RATING = {"minimum": 0, "maximum": 10}
POSITION = {"minimum": 0, "maximum": INT_MAX}
ROLE = {"enum": list(ROLES)}
CHARACTER = {"minLength": 1, "maxLength": 255, "description": "actors only"}
CAPTION = {"maxLength": 255}


@attrs.frozen
class CreditPerson:
    """The person as a credit shows it."""

    id: int
    slug: str
    full_name: str
    photo_url: str | None


@attrs.frozen
class Credit:
    id: int
    person: CreditPerson
    role: str = attrs.field(metadata=meta(**ROLE))
    character: str | None = attrs.field(metadata=meta(**CHARACTER))
    position: int = attrs.field(metadata=meta(**POSITION))


@attrs.frozen
class Shot:
    id: int
    movie_id: int
    caption: str | None = attrs.field(metadata=meta(**CAPTION))
    image_url: str | None = attrs.field(metadata=meta(readOnly=True))
    images: dict[str, str] | None = attrs.field(metadata=images_meta("shot"))
    position: int = attrs.field(metadata=meta(**POSITION))


@attrs.frozen
class MovieSummary:
    """A movie in lists: no description, credits or shots."""

    id: int
    slug: str
    title: str
    original_title: str | None
    release_year: int | None
    premiere_date: dt.date | None
    duration: int | None
    age_rating: str | None
    rating: float | None
    poster_url: str | None = attrs.field(metadata=meta(readOnly=True))
    images: dict[str, str] | None = attrs.field(metadata=images_meta("poster"))
    genres: list[Genre]
    countries: list[Country]
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class Movie:
    id: int
    slug: str
    title: str
    original_title: str | None
    description: str | None
    release_year: int | None
    premiere_date: dt.date | None
    duration: int | None
    age_rating: str | None
    rating: float | None
    poster_url: str | None = attrs.field(metadata=meta(readOnly=True))
    images: dict[str, str] | None = attrs.field(metadata=images_meta("poster"))
    genres: list[Genre]  # by name
    countries: list[Country]  # by name
    credits: list[Credit]  # by position, then id
    shots: list[Shot]  # by position, then id
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class PersonCredit:
    """A line of a filmography: the credit as seen from the person."""

    id: int
    movie: MovieSummary
    role: str = attrs.field(metadata=meta(**ROLE))
    character: str | None = attrs.field(metadata=meta(**CHARACTER))
    position: int = attrs.field(metadata=meta(**POSITION))


@attrs.frozen
class CreditCreate:
    person_id: int = attrs.field(metadata=meta(**ID))
    role: str = attrs.field(metadata=meta(**ROLE))
    character: str | None = attrs.field(default=None, metadata=meta(**CHARACTER))
    # Absent: the item's index in a movie body, or after the last credit when added alone.
    position: int | None = attrs.field(default=None, metadata=meta(**POSITION))


@attrs.frozen
class CreditPatch:
    person_id: int | Unset = attrs.field(default=UNSET, metadata=meta(**ID))
    role: str | Unset = attrs.field(default=UNSET, metadata=meta(**ROLE))
    character: str | Unset | None = attrs.field(default=UNSET, metadata=meta(**CHARACTER))
    position: int | Unset = attrs.field(default=UNSET, metadata=meta(**POSITION))


# `genre_ids`, `country_ids` and `credits` are whole sets: given, they replace the movie's.
@attrs.frozen
class MovieCreate:
    title: str = attrs.field(metadata=meta(**TITLE))
    slug: str | None = attrs.field(default=None, metadata=meta(**MOVIE_SLUG))
    original_title: str | None = attrs.field(default=None, metadata=meta(**TITLE))
    description: str | None = None
    release_year: int | None = attrs.field(default=None, metadata=meta(**RELEASE_YEAR))
    premiere_date: dt.date | None = None
    duration: int | None = attrs.field(default=None, metadata=meta(**DURATION))
    age_rating: str | None = attrs.field(default=None, metadata=meta(**AGE_RATING))
    rating: float | None = attrs.field(default=None, metadata=meta(**RATING))
    genre_ids: tuple[int, ...] = ()
    country_ids: tuple[int, ...] = ()
    credits: tuple[CreditCreate, ...] = ()


@attrs.frozen
class MoviePatch:
    title: str | Unset = attrs.field(default=UNSET, metadata=meta(**TITLE))
    slug: str | Unset = attrs.field(default=UNSET, metadata=meta(**MOVIE_SLUG))
    original_title: str | Unset | None = attrs.field(default=UNSET, metadata=meta(**TITLE))
    description: str | Unset | None = UNSET
    release_year: int | Unset | None = attrs.field(default=UNSET, metadata=meta(**RELEASE_YEAR))
    premiere_date: dt.date | Unset | None = UNSET
    duration: int | Unset | None = attrs.field(default=UNSET, metadata=meta(**DURATION))
    age_rating: str | Unset | None = attrs.field(default=UNSET, metadata=meta(**AGE_RATING))
    rating: float | Unset | None = attrs.field(default=UNSET, metadata=meta(**RATING))
    genre_ids: tuple[int, ...] | Unset = UNSET
    country_ids: tuple[int, ...] | Unset = UNSET
    credits: tuple[CreditCreate, ...] | Unset = UNSET


@attrs.frozen
class ShotPatch:
    caption: str | Unset | None = attrs.field(default=UNSET, metadata=meta(**CAPTION))
    position: int | Unset = attrs.field(default=UNSET, metadata=meta(**POSITION))


# -- uploads -----------------------------------------------------------------------

UPLOAD_STATUSES = ("pending", "done", "failed")


@attrs.frozen
class Upload:
    """An image on its way to storage: `pending` until the uploader has stored it and set it on its resource."""

    id: int
    status: str = attrs.field(metadata=meta(enum=list(UPLOAD_STATUSES)))
    kind: str = attrs.field(metadata=meta(enum=["poster", "photo", "shot"]))
    resource: str = attrs.field(
        metadata=meta(format="uri-reference", description="The movie, person or shot the image is for.")
    )
    url: str | None = attrs.field(metadata=meta(description="The original's URL, once done."))
    images: dict[str, str] | None = attrs.field(metadata=meta(description="The renditions' URLs, once done."))
    error: str | None = attrs.field(
        metadata=meta(description="Why it failed; while pending, why the last attempt did (it is retried).")
    )
    created_at: dt.datetime
    finished_at: dt.datetime | None

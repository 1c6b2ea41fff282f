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


class Unset(enum.Enum):
    """A field absent from a PATCH body (as opposed to one sent as null)."""

    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET

SLUG = {"minLength": 2, "maxLength": 64, "pattern": "^[a-z0-9-]+$"}


def meta(**schema: Any) -> dict[str, Any]:
    return {"schema": schema}


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

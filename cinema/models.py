"""The catalog's attrs classes: resources as clients see them, and the bodies they send.

Constraints sit in field metadata under their JSON Schema names (`minLength`,
`pattern`, ...): `cinema.convert` checks them on every structured body and the OpenAPI
document is generated from the same metadata, so the two cannot disagree. The database
enforces the same rules again with named constraints (see migrations/).
"""

from __future__ import annotations

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

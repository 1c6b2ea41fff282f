"""The search backend interface, shared by PostgreSQL and Elasticsearch (cinema/search/configured.py chooses).

Both take `Document`s (cinema/search/documents.py) and answer hits as JSON object texts,
`{"type", "id", "slug", "title", "score", ...summary}`, best first, so that the HTTP
layer and the websocket splice them into responses without decoding them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from cinema.search.documents import Document


@attrs.frozen
class SearchQuery:
    q: str
    kinds: tuple[str, ...] = ()  # empty: every kind
    limit: int = 20


class SearchUnavailable(Exception):
    """The backend did not answer a search (HTTP 503)."""


class SearchWriteFailed(Exception):
    """A write did not reach the index (or only partly); writing the same documents again is safe."""


class Stage(Protocol):
    """A fresh, empty index being filled by `reindex`, not yet visible to searches."""

    async def write(self, docs: Sequence[Document]) -> None: ...

    async def publish(self) -> None:
        """Make this index the one searches and writes use, atomically; drop the old one."""

    async def discard(self) -> None: ...


class SearchBackend(Protocol):
    # Names the indexer's position (`search_positions.consumer`): each backend has its own.
    name: str

    async def start(self) -> None:
        """Make sure the index exists (idempotent; several processes may call it at once)."""

    async def close(self) -> None: ...

    async def write(self, docs: Sequence[Document]) -> None:
        """Upsert or delete each document unless the index holds a higher version of it.

        Raises `SearchWriteFailed` (or a connection error) when any document may not be written.
        """

    async def search(self, query: SearchQuery) -> list[str]: ...

    async def match(self, queries: Sequence[SearchQuery], first: int, last: int) -> list[list[str]]:
        """For each query, its hits among the documents whose version is in [first, last]."""

    async def stage(self) -> Stage: ...

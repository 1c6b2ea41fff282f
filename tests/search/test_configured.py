"""The configured backend: Elasticsearch indices and their indexer position are named by the catalog."""

from __future__ import annotations

import uuid

from cinema.search.configured import open_backend
from cinema.settings import Settings


async def test_elasticsearch_indices_and_position_are_named_by_the_catalog():
    settings = Settings(elasticsearch_url="http://127.0.0.1:9", elasticsearch_prefix="films")
    one, other = uuid.uuid4(), uuid.uuid4()
    first, second = open_backend(settings, None, one), open_backend(settings, None, other)
    try:
        assert first.alias("movie") == f"films-{one.hex}-movie"  # type: ignore[attr-defined]
        assert first.name != second.name  # a new catalog's indices start from a snapshot
    finally:
        await first.close()
        await second.close()


def test_without_elasticsearch_the_postgres_backend_is_chosen():
    assert open_backend(Settings(), None, uuid.uuid4()).name == "postgres"

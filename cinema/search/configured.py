"""The search backend the settings choose: Elasticsearch when CINEMA_ELASTICSEARCH_URL is set, else PostgreSQL.

The one module that knows both backends; they know only the interface (cinema/search/backend.py).
"""

from __future__ import annotations

import uuid

import asyncpg

from cinema.search.backend import SearchBackend
from cinema.search.postgres import PostgresSearch
from cinema.settings import Settings


def open_backend(settings: Settings, pool: asyncpg.Pool, catalog_id: uuid.UUID) -> SearchBackend:
    """The configured backend for the catalog `catalog_id`.

    Elasticsearch indices live outside the database, so their names carry the catalog id: two
    databases behind one cluster and prefix, or a catalog whose event log was rewritten, never
    write into (or search) each other's documents, which are versioned by outbox seq.
    """
    if settings.elasticsearch_url:
        # Imported only when chosen: the client library adds about 25 MB and 0.4 s to every process.
        from cinema.search.elastic import ElasticsearchSearch

        return ElasticsearchSearch(settings.elasticsearch_url, f"{settings.elasticsearch_prefix}-{catalog_id.hex}")
    return PostgresSearch(pool)

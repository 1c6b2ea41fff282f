"""The Elasticsearch backend: one index per kind behind an alias (`<prefix>-movie`, ...).

- Mappings are explicit and strict. Text is folded (lower case, `asciifolding`: "Amélie"
  matches "amelie"); titles and original titles also have an edge n-gram subfield, so
  every word can be typed as a prefix ("godf" finds "The Godfather").
- A query matches when one of four clauses does: whole words with `fuzziness: AUTO`
  (typos), the last word as a prefix over every field (`bool_prefix`), every word as a
  prefix of a title word (the n-grams), or every word in some field (`cross_fields`: words
  spread over a title and a cast list). Titles weigh 4, original titles 2, descriptions 1, mentions 0.5.
- Writes are bulk NDJSON with external versioning: the version is the event's seq, so
  Elasticsearch itself refuses an older event over a newer document (a 409 for that item,
  which is success for us), and replays are harmless. `refresh=true` makes each flush
  searchable when it returns (flushes are batches, so refreshes stay few).
- `reindex` creates new indices (`<alias>-<timestamp>`), fills them, and then moves each
  alias and removes the old index in one atomic `_aliases` request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import elasticsearch
import orjson
import structlog
from elasticsearch import AsyncElasticsearch

from cinema.search.backend import SearchQuery, SearchUnavailable, SearchWriteFailed
from cinema.search.documents import KINDS, Document

log = structlog.get_logger("cinema.search")


FOLDED = "cinema_folded"
PREFIX = "cinema_prefix"
_TITLE_FIELD = {
    "type": "text",
    "analyzer": FOLDED,
    "fields": {"prefix": {"type": "text", "analyzer": PREFIX, "search_analyzer": FOLDED}},
}
INDEX_BODY: dict[str, Any] = {
    "settings": {
        "number_of_shards": 1,
        "analysis": {
            "filter": {"cinema_edge": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20}},
            "analyzer": {
                FOLDED: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
                PREFIX: {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "cinema_edge"],
                },
            },
        },
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "kind": {"type": "keyword"},
            "id": {"type": "long"},
            "seq": {"type": "long"},  # the version, searchable: live queries match one batch's range
            "slug": {"type": "keyword", "index": False},
            "label": {"type": "keyword", "index": False},  # the hit's title
            "title": _TITLE_FIELD,  # weight A
            "subtitle": _TITLE_FIELD,  # weight B
            "body": {"type": "text", "analyzer": FOLDED},  # weight C
            "extra": {"type": "text", "analyzer": FOLDED},  # weight D
            "summary": {"type": "object", "enabled": False},  # shown in hits, not searched
        },
    },
}
FIELDS = ["title^4", "subtitle^2", "body", "extra^0.5"]
SOURCE = ["kind", "id", "slug", "label", "summary"]


def es_query(q: str) -> dict[str, Any]:
    return {
        "bool": {
            "should": [
                {
                    "multi_match": {
                        "query": q,
                        "fields": FIELDS,
                        "fuzziness": "AUTO",
                        "prefix_length": 1,
                        "operator": "and",
                    }
                },
                {"multi_match": {"query": q, "type": "bool_prefix", "fields": FIELDS, "operator": "and"}},
                {"multi_match": {"query": q, "fields": ["title.prefix^2", "subtitle.prefix"], "operator": "and"}},
                {"multi_match": {"query": q, "type": "cross_fields", "fields": FIELDS, "operator": "and"}},
            ],
            "minimum_should_match": 1,
        }
    }


def _source(doc: Document) -> dict[str, Any]:
    assert doc.body is not None
    body = doc.body
    return {
        "kind": doc.kind,
        "id": doc.id,
        "seq": doc.version,
        "slug": body.slug,
        "label": body.title,
        "title": body.texts[0],
        "subtitle": body.texts[1],
        "body": body.texts[2],
        "extra": body.texts[3],
        "summary": orjson.loads(body.summary),
    }


def _hit(hit: dict[str, Any]) -> str:
    source = hit["_source"]
    fixed = {"type": source["kind"], "id": source["id"], "slug": source["slug"], "title": source["label"]}
    return orjson.dumps({**fixed, "score": round(hit["_score"] or 0.0, 4), **source.get("summary", {})}).decode()


def bulk_operations(docs: Sequence[Document], index_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """NDJSON lines for `_bulk`: one action per document (plus its source for an upsert)."""
    lines: list[dict[str, Any]] = []
    for doc in docs:
        meta = {"_index": index_of(doc.kind), "_id": str(doc.id), "version": doc.version, "version_type": "external"}
        if doc.body is None:
            lines.append({"delete": meta})
        else:
            lines.append({"index": meta})
            lines.append(_source(doc))
    return lines


def _failures(response: dict[str, Any]) -> list[str]:
    """Items that did not land. A version conflict means a newer document is already there,
    and deleting a missing document leaves it missing: both are what we wanted."""
    if not response.get("errors"):
        return []
    failed = []
    for item in response["items"]:
        action, result = next(iter(item.items()))
        status = result.get("status", 500)
        if status < 300 or status == 409 or (action == "delete" and status == 404):
            continue
        failed.append(f"{action} {result.get('_index')}/{result.get('_id')}: {status} {result.get('error')}")
    return failed


class ElasticsearchSearch:
    def __init__(self, url: str, prefix: str = "cinema", *, client: AsyncElasticsearch | None = None) -> None:
        # The indexer's position is per name: indices under another prefix (another catalog, or a
        # changed CINEMA_ELASTICSEARCH_PREFIX) start from a snapshot, not from this one's position.
        self.name = f"elasticsearch:{prefix}"
        # No client-side retries: the indexer retries whole flushes with back-off, and a
        # search that fails is answered with 503 at once.
        self.es = client or AsyncElasticsearch(url, request_timeout=10, max_retries=0)
        self.prefix = prefix

    def alias(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    def _aliases(self, kinds: Sequence[str]) -> str:
        return ",".join(self.alias(kind) for kind in (kinds or KINDS))

    async def start(self) -> None:
        for kind in KINDS:
            alias = self.alias(kind)
            if await self.es.indices.exists_alias(name=alias):
                continue
            try:
                await self.es.indices.create(index=f"{alias}-0", aliases={alias: {}}, **INDEX_BODY)
            except elasticsearch.BadRequestError as exc:
                if exc.error != "resource_already_exists_exception":  # another process was first
                    raise
            log.info("search_index_created", index=f"{alias}-0", alias=alias)

    async def close(self) -> None:
        await self.es.close()

    async def write(self, docs: Sequence[Document]) -> None:
        await self._bulk(bulk_operations(docs, self.alias), require_alias=True)

    async def _bulk(self, operations: list[dict[str, Any]], **params: Any) -> None:
        if not operations:
            return
        try:
            response = await self.es.bulk(operations=operations, refresh=True, **params)
        except elasticsearch.TransportError as exc:
            raise SearchWriteFailed(f"Elasticsearch is unreachable: {exc}") from exc
        except elasticsearch.ApiError as exc:
            raise SearchWriteFailed(f"Elasticsearch refused the bulk request: {exc}") from exc
        failed = _failures(response.body)
        if failed:
            raise SearchWriteFailed(f"{len(failed)} documents were not written, first: {failed[0]}")

    async def search(self, query: SearchQuery) -> list[str]:
        try:
            response = await self.es.search(
                index=self._aliases(query.kinds),
                query=es_query(query.q),
                size=query.limit,
                source={"includes": SOURCE},
                track_total_hits=False,
                ignore_unavailable=True,
            )
        except (elasticsearch.TransportError, elasticsearch.ApiError) as exc:
            raise SearchUnavailable(str(exc)) from exc
        return [_hit(hit) for hit in response.body["hits"]["hits"]]

    async def match(self, queries: Sequence[SearchQuery], first: int, last: int) -> list[list[str]]:
        if not queries:
            return []
        searches: list[dict[str, Any]] = []
        for query in queries:
            searches.append({"index": self._aliases(query.kinds), "ignore_unavailable": True})
            searches.append(
                {
                    "size": query.limit,
                    "query": {
                        "bool": {
                            "must": [es_query(query.q)],
                            "filter": [{"range": {"seq": {"gte": first, "lte": last}}}],
                        }
                    },
                    "_source": {"includes": SOURCE},
                    "track_total_hits": False,
                }
            )
        try:
            response = await self.es.msearch(searches=searches)
        except (elasticsearch.TransportError, elasticsearch.ApiError) as exc:
            raise SearchUnavailable(str(exc)) from exc
        # Live pushes are best effort: one failed sub-search loses only its own pushes.
        return [[_hit(hit) for hit in r["hits"]["hits"]] if "hits" in r else [] for r in response.body["responses"]]

    async def stage(self) -> ElasticsearchStage:
        stage = ElasticsearchStage(self, f"{int(time.time() * 1000)}")
        await stage.prepare()
        return stage


class ElasticsearchStage:
    def __init__(self, backend: ElasticsearchSearch, stamp: str) -> None:
        self.backend = backend
        self.indices = {kind: f"{backend.alias(kind)}-{stamp}" for kind in KINDS}

    async def prepare(self) -> None:
        for index in self.indices.values():
            await self.backend.es.indices.create(index=index, **INDEX_BODY)

    async def write(self, docs: Sequence[Document]) -> None:
        await self.backend._bulk(bulk_operations(docs, self.indices.__getitem__))

    async def publish(self) -> None:
        es = self.backend.es
        await es.indices.refresh(index=",".join(self.indices.values()))
        aliases = ",".join(self.backend.alias(kind) for kind in self.indices)
        try:
            current = dict((await es.indices.get_alias(name=aliases)).body)
        except elasticsearch.NotFoundError as exc:  # some alias is missing: the body lists the others
            current = {k: v for k, v in exc.body.items() if isinstance(v, dict) and "aliases" in v}
        actions: list[dict[str, Any]] = []
        for kind, index in self.indices.items():
            actions.append({"add": {"index": index, "alias": self.backend.alias(kind)}})
        for old, entry in current.items():
            if old not in self.indices.values() and entry.get("aliases"):
                actions.append({"remove_index": {"index": old}})
        # One request, applied atomically: searches see the old indices, then the new ones.
        await es.indices.update_aliases(actions=actions)

    async def discard(self) -> None:
        await self.backend.es.indices.delete(index=",".join(self.indices.values()), ignore_unavailable=True)

"""The exact requests the Elasticsearch backend sends, checked against the documented API.

No Elasticsearch can run here, so the backend (through the real `elasticsearch` client)
talks to a local aiohttp server that records every request and answers as Elasticsearch
9 does. Each recorded request is checked against the REST API specification (the method,
path and query parameters each endpoint documents, in rest-api-spec) and against the
documented body rules: the index mappings and analyzers, bulk NDJSON with external
versions that obey the strict mapping, the query DSL, and the atomic alias swap.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cinema.actors.indexer import IndexerActor, WaitIndexed
from cinema.bus.local import LocalBus
from cinema.db.outbox import NewEvent
from cinema.search.backend import SearchQuery, SearchUnavailable, SearchWriteFailed
from cinema.search.documents import KINDS, Document
from cinema.search.elastic import ElasticsearchSearch
from cinema.search.reindex import reindex
from tests.search.conftest import commit, doc

PREFIX = "ct"

# -- the documented API (rest-api-spec/api/*.json, Elasticsearch 9) ------------------------

# endpoint: (methods, path pattern, documented query parameters)
ENDPOINTS: dict[str, tuple[set[str], str, set[str]]] = {
    "indices.exists_alias": (
        {"HEAD"},
        r"/_alias/(?P<name>[^/_][^/]*)",
        {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "master_timeout"},
    ),
    "indices.get_alias": (
        {"GET"},
        r"/_alias/(?P<name>[^/_][^/]*)",
        {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "master_timeout"},
    ),
    "indices.create": ({"PUT"}, r"/(?P<index>[a-z0-9][^/]*)", {"wait_for_active_shards", "timeout", "master_timeout"}),
    "indices.delete": (
        {"DELETE"},
        r"/(?P<index>[a-z0-9][^/]*)",
        {"timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards"},
    ),
    "indices.refresh": (
        {"POST", "GET"},
        r"/(?P<index>[a-z0-9][^/]*)/_refresh",
        {"ignore_unavailable", "allow_no_indices", "expand_wildcards"},
    ),
    "indices.update_aliases": ({"POST"}, r"/_aliases", {"timeout", "master_timeout"}),
    "bulk": (
        {"POST", "PUT"},
        r"/_bulk",
        {
            "wait_for_active_shards",
            "refresh",
            "routing",
            "timeout",
            "_source",
            "_source_excludes",
            "_source_includes",
            "pipeline",
            "require_alias",
            "require_data_stream",
            "list_executed_pipelines",
            "include_source_on_error",
        },
    ),
    "search": (
        {"GET", "POST"},
        r"/(?P<index>[a-z0-9][^/]*)/_search",
        {
            "allow_no_indices",
            "expand_wildcards",
            "ignore_unavailable",
            "preference",
            "routing",
            "search_type",
            "timeout",
            "track_total_hits",
            "typed_keys",
            "request_cache",
            "max_concurrent_shard_requests",
            "pre_filter_shard_size",
            "rest_total_hits_as_int",
        },
    ),
    "msearch": (
        {"GET", "POST"},
        r"/_msearch",
        {
            "search_type",
            "max_concurrent_searches",
            "typed_keys",
            "pre_filter_shard_size",
            "max_concurrent_shard_requests",
            "rest_total_hits_as_int",
            "ccs_minimize_roundtrips",
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "routing",
            "include_named_queries_score",
        },
    ),
}
JSON_TYPE = re.compile(r"application/(vnd\.elasticsearch\+)?json(; ?compatible-with=9)?$")
NDJSON_TYPE = re.compile(r"application/(vnd\.elasticsearch\+)?x-ndjson(; ?compatible-with=9)?$")

# Mapping rules (reference/elasticsearch/mapping-reference): field types and their parameters.
FIELD_PARAMS = {
    "keyword": {"index", "doc_values", "store", "null_value", "ignore_above", "normalizer", "fields"},
    "long": {"index", "doc_values", "store", "null_value", "coerce", "ignore_malformed"},
    "text": {"analyzer", "search_analyzer", "search_quote_analyzer", "index", "store", "fields", "norms"},
    "object": {"enabled", "properties", "dynamic"},
}
BUILTIN_TOKENIZERS = {"standard", "whitespace", "letter", "lowercase", "keyword"}
BUILTIN_FILTERS = {"lowercase", "asciifolding", "trim", "unique"}
FILTER_PARAMS = {"edge_ngram": {"type", "min_gram", "max_gram", "preserve_original"}}
MULTI_MATCH_PARAMS = {
    "query",
    "fields",
    "type",
    "operator",
    "minimum_should_match",
    "fuzziness",
    "prefix_length",
    "max_expansions",
    "fuzzy_transpositions",
    "analyzer",
    "boost",
    "tie_breaker",
    "zero_terms_query",
    "lenient",
}
MULTI_MATCH_TYPES = {"best_fields", "most_fields", "cross_fields", "phrase", "phrase_prefix", "bool_prefix"}
SEARCH_BODY = {"query", "size", "from", "_source", "track_total_hits", "sort", "timeout"}
BULK_META = {"_index", "_id", "version", "version_type", "routing", "require_alias", "if_seq_no", "if_primary_term"}
ALIAS_ACTIONS = {
    "add": {"index", "alias", "is_write_index", "filter", "routing", "must_exist"},
    "remove": {"index", "alias", "must_exist"},
    "remove_index": {"index", "must_exist"},
}


@attrs.frozen
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        text = self.body.decode()
        assert text.endswith("\n"), "the documented NDJSON format ends every line with a newline"
        return [json.loads(line) for line in text.splitlines()]


def endpoint(request: Recorded) -> str:
    """The one documented endpoint this request is, with its query parameters checked."""
    matches = [
        name
        for name, (methods, pattern, _) in ENDPOINTS.items()
        if request.method in methods and re.fullmatch(pattern, request.path)
    ]
    assert len(matches) == 1, f"not a documented endpoint: {request.method} {request.path} ({matches})"
    undocumented = set(request.query) - ENDPOINTS[matches[0]][2]
    assert not undocumented, f"{matches[0]}: undocumented parameters {undocumented}"
    return matches[0]


# -- the fake server -----------------------------------------------------------------------


class FakeElasticsearch:
    """Records requests and answers like Elasticsearch 9 (status, body, product header)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.aliases: dict[str, str] = {}  # alias -> index
        self.item_status: dict[str, int] = {}  # document id -> status of its bulk item
        self.fail_next: list[int] = []  # HTTP statuses to answer the next requests with
        self.fail_bulk: list[int] = []  # ... the next bulk requests with
        self.hits: list[dict[str, Any]] = []

    def of(self, name: str) -> list[Recorded]:
        return [r for r in self.requests if endpoint(r) == name]

    async def handle(self, request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        recorded = Recorded(request.method, request.path, dict(request.query), content_type, await request.read())
        self.requests.append(recorded)
        if self.fail_next:
            status = self.fail_next.pop(0)
            return self._reply({"error": {"type": "unavailable", "reason": "down"}, "status": status}, status)
        name = endpoint(recorded)
        if name == "bulk" and self.fail_bulk:
            status = self.fail_bulk.pop(0)
            return self._reply({"error": {"type": "es_rejected_execution_exception"}, "status": status}, status)
        return getattr(self, name.replace(".", "_"))(recorded)

    def _reply(self, body: Any, status: int = 200) -> web.Response:
        headers = {"X-Elastic-Product": "Elasticsearch"}
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def indices_exists_alias(self, r: Recorded) -> web.Response:
        return self._reply(None, 200 if r.path.split("/")[-1] in self.aliases else 404)

    def indices_get_alias(self, r: Recorded) -> web.Response:
        names = r.path.split("/")[-1].split(",")
        body: dict[str, Any] = {}
        for alias in names:
            if alias in self.aliases:
                body.setdefault(self.aliases[alias], {"aliases": {}})["aliases"][alias] = {}
        return self._reply(body)

    def indices_create(self, r: Recorded) -> web.Response:
        index = r.path.strip("/")
        for alias in (r.json().get("aliases") or {}) if r.body else {}:
            self.aliases[alias] = index
        return self._reply({"acknowledged": True, "shards_acknowledged": True, "index": index})

    def indices_delete(self, r: Recorded) -> web.Response:
        return self._reply({"acknowledged": True})

    def indices_refresh(self, r: Recorded) -> web.Response:
        return self._reply({"_shards": {"total": 1, "successful": 1, "failed": 0}})

    def indices_update_aliases(self, r: Recorded) -> web.Response:
        for action in r.json()["actions"]:
            if "add" in action:
                self.aliases[action["add"]["alias"]] = action["add"]["index"]
        return self._reply({"acknowledged": True})

    def bulk(self, r: Recorded) -> web.Response:
        items = []
        for line in r.ndjson():
            if len(line) != 1 or next(iter(line)) not in ("index", "delete"):
                continue  # a source line
            action, meta = next(iter(line.items()))
            status = self.item_status.get(meta["_id"], 201 if action == "index" else 200)
            result: dict[str, Any] = {"_index": meta["_index"], "_id": meta["_id"], "status": status}
            if status >= 300:
                result["error"] = {"type": "version_conflict_engine_exception" if status == 409 else "es_rejected"}
            items.append({action: result})
        errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
        return self._reply({"took": 1, "errors": errors, "items": items})

    def search(self, r: Recorded) -> web.Response:
        return self._reply({"took": 1, "timed_out": False, "hits": {"hits": self.hits}})

    def msearch(self, r: Recorded) -> web.Response:
        lines = r.ndjson()
        return self._reply({"took": 1, "responses": [{"hits": {"hits": self.hits}} for _ in lines[::2]]})


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeElasticsearch, ElasticsearchSearch]]:
    server = FakeElasticsearch()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    async with TestServer(app, host="127.0.0.1") as test_server:
        backend = ElasticsearchSearch(str(test_server.make_url("")), PREFIX)
        try:
            yield server, backend
        finally:
            await backend.close()


# -- checks of bodies against the documented rules ------------------------------------------


def check_index_body(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) <= {"settings", "mappings", "aliases"}
    analysis = body["settings"]["analysis"]
    filters, analyzers = analysis.get("filter", {}), analysis["analyzer"]
    for name, definition in filters.items():
        assert set(definition) <= FILTER_PARAMS[definition["type"]], name
        assert 1 <= definition["min_gram"] <= definition["max_gram"], name
    for name, analyzer in analyzers.items():
        assert analyzer["type"] == "custom", name
        assert analyzer["tokenizer"] in BUILTIN_TOKENIZERS, name
        for used in analyzer["filter"]:
            assert used in BUILTIN_FILTERS or used in filters, f"{name}: unknown filter {used}"
    mappings = body["mappings"]
    assert mappings["dynamic"] in (True, False, "strict", "runtime")

    def check(properties: dict[str, Any], path: str) -> None:
        for field, spec in properties.items():
            assert set(spec) - {"type"} <= FIELD_PARAMS[spec["type"]], f"{path}{field}"
            for key in ("analyzer", "search_analyzer"):
                if key in spec:
                    assert spec[key] in analyzers, f"{path}{field}: undefined analyzer {spec[key]}"
            check(spec.get("fields", {}), f"{path}{field}.")
            check(spec.get("properties", {}), f"{path}{field}.")

    check(mappings["properties"], "")
    return mappings["properties"]


def check_query(query: dict[str, Any], fields: set[str]) -> list[dict[str, Any]]:
    """Walk a query; returns its multi_match clauses after checking each against the DSL rules."""
    [(kind, clause)] = query.items()
    if kind == "bool":
        assert set(clause) <= {"must", "should", "filter", "must_not", "minimum_should_match", "boost"}
        found = []
        for occur in ("must", "should", "filter", "must_not"):
            for sub in clause.get(occur, []):
                found += check_query(sub, fields)
        return found
    if kind == "range":
        [(field, bounds)] = clause.items()
        assert field in fields
        assert set(bounds) <= {"gte", "gt", "lte", "lt"}
        return []
    assert kind == "multi_match", kind
    assert set(clause) <= MULTI_MATCH_PARAMS
    assert clause.get("type", "best_fields") in MULTI_MATCH_TYPES
    if clause.get("type") in ("cross_fields", "phrase", "phrase_prefix"):
        assert "fuzziness" not in clause, "fuzziness is not allowed for this multi_match type"
    for field in clause["fields"]:
        assert field.split("^")[0] in fields, field
    return [clause]


def field_names(properties: dict[str, Any], prefix: str = "") -> set[str]:
    names = set()
    for name, spec in properties.items():
        names.add(prefix + name)
        names |= field_names(spec.get("fields", {}), f"{prefix}{name}.")
    return names


# -- the tests -----------------------------------------------------------------------------


async def test_start_creates_one_index_per_kind_behind_its_alias_with_explicit_mappings(fake):
    server, backend = fake
    await backend.start()
    creates = server.of("indices.create")
    assert [r.path for r in creates] == [f"/{PREFIX}-{kind}-0" for kind in KINDS]
    for request in creates:
        assert JSON_TYPE.match(request.content_type)
        body = request.json()
        kind = request.path.split("-")[1]
        assert body["aliases"] == {f"{PREFIX}-{kind}": {}}
        properties = check_index_body(body)
        assert properties["title"]["fields"]["prefix"]["search_analyzer"] == "cinema_folded"
        assert body["settings"]["analysis"]["filter"]["cinema_edge"]["type"] == "edge_ngram"
        assert "asciifolding" in body["settings"]["analysis"]["analyzer"]["cinema_folded"]["filter"]
    # Started again (another process, a restart): the aliases exist, nothing is created.
    await backend.start()
    assert len(server.of("indices.create")) == len(KINDS)


async def test_a_concurrent_creation_of_the_same_index_is_not_an_error(fake):
    server, backend = fake
    server.fail_next = [404, 400]  # the alias is missing, then "resource_already_exists_exception"
    original = server._reply

    def already_exists(body: Any, status: int = 200) -> web.Response:
        if status == 400:
            body = {"error": {"type": "resource_already_exists_exception", "reason": "exists"}, "status": 400}
        return original(body, status)

    server._reply = already_exists  # type: ignore[method-assign]
    await backend.start()
    assert len(server.requests) == 2 + 2 * (len(KINDS) - 1)


async def test_bulk_is_ndjson_with_external_versions_obeying_the_strict_mapping(fake):
    server, backend = fake
    await backend.start()
    properties = check_index_body(server.of("indices.create")[0].json())
    docs = [
        doc("movie", 7, version=41, title="Heat", original_title=None, description="A thief.", release_year=1995),
        doc("genre", 3, version=42, name="Crime"),
        Document("person", 5, 43, None),
    ]
    await backend.write(docs)
    [bulk] = server.of("bulk")
    assert NDJSON_TYPE.match(bulk.content_type)
    assert bulk.query == {"refresh": "true", "require_alias": "true"}
    lines = bulk.ndjson()
    assert lines[0] == {"index": {"_index": f"{PREFIX}-movie", "_id": "7", "version": 41, "version_type": "external"}}
    assert lines[2] == {"index": {"_index": f"{PREFIX}-genre", "_id": "3", "version": 42, "version_type": "external"}}
    assert lines[4] == {"delete": {"_index": f"{PREFIX}-person", "_id": "5", "version": 43, "version_type": "external"}}
    assert len(lines) == 5  # a delete has no source line
    for meta in (lines[0]["index"], lines[2]["index"], lines[4]["delete"]):
        assert set(meta) <= BULK_META
    for source in (lines[1], lines[3]):
        assert set(source) <= set(properties), "the strict mapping would reject unknown fields"
    assert lines[1] | {"summary": None} == {
        "kind": "movie",
        "id": 7,
        "seq": 41,
        "slug": "movie-7",
        "label": "Heat",
        "title": "Heat",
        "subtitle": "",
        "body": "A thief.",
        "extra": "",
        "summary": None,
    }
    assert lines[1]["summary"] == {"original_title": None, "release_year": 1995, "poster_url": None}


async def test_a_version_conflict_or_a_missing_delete_is_success_other_item_errors_fail_the_write(fake):
    server, backend = fake
    server.item_status = {"1": 409, "2": 404}
    await backend.write([doc("genre", 1, version=3, name="Drama"), Document("genre", 2, 4, None)])
    server.item_status = {"1": 429}
    with pytest.raises(SearchWriteFailed, match="1 documents were not written"):
        await backend.write([doc("genre", 1, version=5, name="Drama")])
    server.fail_next = [503]
    with pytest.raises(SearchWriteFailed, match="refused"):
        await backend.write([doc("genre", 1, version=5, name="Drama")])


async def test_search_queries_the_kinds_aliases_with_typos_prefixes_and_title_boosts(fake):
    server, backend = fake
    await backend.start()
    properties = check_index_body(server.of("indices.create")[0].json())
    server.hits = [
        {
            "_index": f"{PREFIX}-movie-0",
            "_id": "1",
            "_score": 3.14159,
            "_source": {"kind": "movie", "id": 1, "slug": "the-godfather", "label": "The Godfather", "summary": {}},
        }
    ]
    hits = await backend.search(SearchQuery("godf", ("movie", "person"), 7))
    assert [json.loads(h) for h in hits] == [
        {"type": "movie", "id": 1, "slug": "the-godfather", "title": "The Godfather", "score": 3.1416}
    ]
    [request] = server.of("search")
    assert request.path == f"/{PREFIX}-movie,{PREFIX}-person/_search"
    assert request.query == {"ignore_unavailable": "true"}
    body = request.json()
    assert set(body) <= SEARCH_BODY
    assert body["size"] == 7
    assert body["track_total_hits"] is False
    assert set(body["_source"]["includes"]) <= set(properties)
    clauses = check_query(body["query"], field_names(properties))
    types = [c.get("type", "best_fields") for c in clauses]
    assert types == ["best_fields", "bool_prefix", "best_fields", "cross_fields"]
    assert clauses[0]["fuzziness"] == "AUTO"
    assert clauses[0]["fields"] == ["title^4", "subtitle^2", "body", "extra^0.5"]
    assert clauses[2]["fields"] == ["title.prefix^2", "subtitle.prefix"]
    assert all(c["query"] == "godf" for c in clauses)
    await backend.search(SearchQuery("godf"))
    assert server.of("search")[1].path == "/" + ",".join(f"{PREFIX}-{kind}" for kind in KINDS) + "/_search"


async def test_a_search_that_elasticsearch_cannot_answer_is_unavailable(fake):
    server, backend = fake
    server.fail_next = [503]
    with pytest.raises(SearchUnavailable):
        await backend.search(SearchQuery("godf"))


async def test_live_matching_is_one_msearch_filtered_to_the_batchs_versions(fake):
    server, backend = fake
    await backend.start()
    properties = check_index_body(server.of("indices.create")[0].json())
    found = await backend.match([SearchQuery("godf", ("movie",), 5), SearchQuery("crime")], 10, 12)
    assert found == [[], []]
    [request] = server.of("msearch")
    assert NDJSON_TYPE.match(request.content_type)
    header, body, header2, _ = request.ndjson()
    assert header == {"index": f"{PREFIX}-movie", "ignore_unavailable": True}
    assert header2["index"] == ",".join(f"{PREFIX}-{kind}" for kind in KINDS)
    assert set(body) <= SEARCH_BODY
    assert body["size"] == 5
    check_query(body["query"], field_names(properties))
    assert body["query"]["bool"]["filter"] == [{"range": {"seq": {"gte": 10, "lte": 12}}}]


async def test_reindex_fills_new_indices_then_swaps_every_alias_in_one_atomic_request(fake):
    server, backend = fake
    await backend.start()
    stage = await backend.stage()
    await stage.write([doc("genre", 1, version=9, name="Drama")])
    await stage.publish()
    new = stage.indices
    creates = server.of("indices.create")[len(KINDS) :]
    assert [r.path for r in creates] == [f"/{index}" for index in new.values()]
    for request in creates:
        assert "aliases" not in request.json(), "a new index stays invisible until the swap"
        check_index_body(request.json())
    [bulk] = server.of("bulk")
    assert bulk.ndjson()[0]["index"]["_index"] == new["genre"]  # the concrete new index, not the alias
    [refresh] = server.of("indices.refresh")
    assert refresh.path == "/" + ",".join(new.values()) + "/_refresh"
    [swap] = server.of("indices.update_aliases")
    actions = swap.json()["actions"]
    for action in actions:
        [(name, params)] = action.items()
        assert set(params) <= ALIAS_ACTIONS[name]
    assert [a for a in actions if "add" in a] == [
        {"add": {"index": new[kind], "alias": f"{PREFIX}-{kind}"}} for kind in KINDS
    ]
    assert [a for a in actions if "remove_index" in a] == [
        {"remove_index": {"index": f"{PREFIX}-{kind}-0"}} for kind in KINDS
    ]
    assert server.aliases == {f"{PREFIX}-{kind}": new[kind] for kind in KINDS}


async def test_a_failed_reindex_deletes_its_new_indices(fake):
    server, backend = fake
    await backend.start()
    stage = await backend.stage()
    await stage.discard()
    [delete] = server.of("indices.delete")
    assert delete.path == "/" + ",".join(stage.indices.values())
    assert delete.query == {"ignore_unavailable": "true"}


async def test_the_whole_reindex_writes_the_snapshot_to_new_indices_then_catches_up_through_the_aliases(fake, pool, db):
    server, backend = fake
    await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
    await commit(db, NewEvent("genre.created", 1, '{"id": 1, "slug": "drama", "name": "Drama"}'))
    report = await reindex(pool, backend)
    assert (report.backend, report.seq, report.documents, report.replayed_through) == (
        f"elasticsearch:{PREFIX}",
        1,
        1,
        1,
    )
    names = [endpoint(r) for r in server.requests]
    assert names == [
        *["indices.exists_alias", "indices.create"] * len(KINDS),  # start: the first indices
        *["indices.create"] * len(KINDS),  # the new ones
        "bulk",  # the snapshot
        "indices.refresh",
        "indices.get_alias",
        "indices.update_aliases",
    ]
    [bulk] = server.of("bulk")
    action, source = bulk.ndjson()
    assert action["index"]["version"] == 1  # the snapshot's seq
    assert action["index"]["_index"].startswith(f"{PREFIX}-genre-")
    assert action["index"]["_index"] != f"{PREFIX}-genre-0"
    assert source["label"] == "Drama"
    # The event is not after the snapshot, so there is nothing to catch up: no second bulk.


async def test_the_indexer_retries_a_refused_bulk_with_the_same_documents(fake, database_url, db):
    server, backend = fake
    bus = LocalBus()
    indexer = IndexerActor(database_url, backend, bus, "here", flush_delay=0, poll_interval=0.05)
    async with indexer:
        await indexer.ask(WaitIndexed(0), timeout=5)
        server.fail_bulk = [503, 429]
        await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
        await commit(db, NewEvent("genre.created", 1, '{"id": 1, "slug": "drama", "name": "Drama"}'))
        assert await indexer.ask(WaitIndexed(1), timeout=10) == 1
        stats = indexer.indexer_stats()
    bulks = server.of("bulk")
    assert len(bulks) == 3
    assert bulks[0].body == bulks[1].body == bulks[2].body
    assert bulks[2].ndjson()[0] == {
        "index": {"_index": f"{PREFIX}-genre", "_id": "1", "version": 1, "version_type": "external"}
    }
    assert (stats.failed_flushes, stats.events, stats.backend) == (2, 1, f"elasticsearch:{PREFIX}")
    consumer = f"indexer:elasticsearch:{PREFIX}"  # a position per prefix: another prefix starts from a snapshot
    assert await db.fetchval("SELECT seq FROM search_positions WHERE consumer = $1", consumer) == 1

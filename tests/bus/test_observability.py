"""Tracing, metrics and error reports of the RabbitMQ side: one trace from an HTTP write to the
event another system receives and from a command to its reply (in-memory span exporter); the
request's log lines carry its trace id; the relay's and the consumer's counters match the traffic."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from cinema.actors.catalog import ApplyCommands, CatalogActor
from cinema.app import create_app
from cinema.http.keys import COMMAND_CONSUMER, RELAY
from tests.bus.conftest import events_queue, running, take
from tests.bus.test_commands import genre_upsert, reply_queue, send
from tests.conftest import eventually
from tests.prometheus import scrape
from tests.test_logs import recording

SENDER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SENDER_TRACEPARENT = f"00-{SENDER_TRACE:032x}-00f067aa0ba902b7-01"


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [found] = [s for s in spans if s.name == name]
    return found


async def test_an_http_write_and_its_event_share_one_trace(
    spans, aiohttp_client, amqp_settings, amqp, topology, db, tmp_path
):
    with recording(tmp_path) as stdout:
        client = await aiohttp_client(create_app(amqp_settings))
        await running(client.app)
        queue = await events_queue(amqp, topology)
        resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers={"X-Request-ID": "write-1"})
        assert resp.status == 201
        [message] = await take(queue, 1)

    finished = list(spans.get_finished_spans())
    server = one(finished, "POST /api/v1/genres")
    actor = one(finished, "catalog CreateGenres")
    publish = one(finished, f"{topology.events} publish")
    trace_id = server.context.trace_id
    assert server.kind == SpanKind.SERVER
    assert actor.context.trace_id == publish.context.trace_id == trace_id
    assert actor.parent is not None
    assert actor.parent.span_id == server.context.span_id
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id != server.context.span_id
    sql = [s for s in finished if s.attributes and s.attributes.get("db.system") == "postgresql"]
    assert any(s.context.trace_id == trace_id and s.parent.span_id == actor.context.span_id for s in sql)
    # What the consumer receives continues the trace, as a child of the publication.
    flags = int(publish.context.trace_flags)
    assert message.headers["traceparent"] == f"00-{trace_id:032x}-{publish.context.span_id:016x}-{flags:02x}"
    # Every line about the request names its trace.
    lines = [line for line in stdout.lines() if line.get("request_id") == "write-1"]
    assert "http_request" in [line["event"] for line in lines]
    assert {line["trace_id"] for line in lines} == {f"{trace_id:032x}"}
    assert all(len(line["span_id"]) == 16 for line in lines)


async def test_a_consumed_command_continues_its_senders_trace_to_the_reply(
    spans, aiohttp_client, amqp_settings, amqp, topology, db
):
    client = await aiohttp_client(create_app(amqp_settings))
    await running(client.app)
    events = await events_queue(amqp, topology)
    replies = await reply_queue(amqp)
    await send(amqp, topology, "genre.upsert", genre_upsert("g1", "Drama"), reply_to=replies.name,
               correlation_id="c1", headers={"traceparent": SENDER_TRACEPARENT})  # fmt: skip
    [reply] = await take(replies, 1)
    [event] = await take(events, 1)

    finished = list(spans.get_finished_spans())
    process = one(finished, f"{topology.commands} process")
    actor = one(finished, "catalog ApplyCommands")
    assert process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == actor.context.trace_id == SENDER_TRACE
    assert process.parent is not None
    assert process.parent.span_id == 0x00F067AA0BA902B7
    assert reply.headers["traceparent"] == f"00-{SENDER_TRACE:032x}-{process.context.span_id:016x}-01"
    # The change the command made is published within the same trace.
    assert event.headers["traceparent"].split("-")[1] == f"{SENDER_TRACE:032x}"


@pytest.mark.usefixtures("db")
async def test_without_tracing_an_event_carries_a_stable_traceparent(client_without_tracing):
    client, queue = client_without_tracing
    assert (await client.post("/api/v1/genres", json={"name": "Drama"})).status == 201
    [message] = await take(queue, 1)
    # Synthetic (derived from the event id and seq), so a re-publication repeats it.
    assert message.headers["traceparent"].endswith(f"-{1:016x}-01")


@pytest.fixture
async def client_without_tracing(aiohttp_client, amqp_settings, amqp, topology):
    client = await aiohttp_client(create_app(amqp_settings))
    await running(client.app)
    return client, await events_queue(amqp, topology)


async def test_the_relays_and_the_consumers_metrics_match_the_traffic(service_with_queues, amqp, topology):
    client, events, replies = service_with_queues
    for name in ("Drama", "Comedy", "Western"):
        assert (await client.post("/api/v1/genres", json={"name": name})).status == 201
    await take(events, 3)
    relay, consumer = client.app[RELAY], client.app[COMMAND_CONSUMER]
    await eventually(lambda: relay.published == 3)
    for n, body in enumerate([genre_upsert("g1", "Noir"), genre_upsert("g2", "Horror"), b"{not json"]):
        await send(amqp, topology, "genre.upsert", body, reply_to=replies.name, correlation_id=str(n))
    await take(replies, 3)
    await eventually(lambda: consumer.acked == 3)
    await eventually(lambda: relay.published == 5)

    metrics = await scrape(client)
    assert metrics.value("cinema_relay_leader") == 1
    assert metrics.value("cinema_relay_published_total") == 5
    assert metrics.value("cinema_relay_lag_seconds_count") == 5
    assert metrics.value("cinema_relay_lag_seconds_bucket", le="+Inf") == 5
    assert metrics.value("cinema_outbox_backlog") == 0
    assert metrics.value("cinema_amqp_commands_consumed_total") == 3
    assert metrics.value("cinema_amqp_commands_acked_total") == 3
    assert metrics.value("cinema_amqp_commands_dead_lettered_total", reason="bad-request") == 1
    assert metrics.get("cinema_amqp_commands_dead_lettered_total", reason="internal-error") is None


async def test_a_poison_command_reaches_sentry_and_is_counted(sentry, service_with_queues, amqp, topology, monkeypatch):
    client, _, replies = service_with_queues
    original = CatalogActor.handle

    async def broken(self: CatalogActor, msg: object) -> object:
        if isinstance(msg, ApplyCommands):
            raise RuntimeError("a bug")
        return await original(self, msg)

    monkeypatch.setattr(CatalogActor, "handle", broken)
    message_id = await send(amqp, topology, "genre.upsert", genre_upsert("g1", "Noir"), reply_to=replies.name)
    [reply] = await take(replies, 1)
    assert json.loads(reply.body)["problem"]["type"] == "/problems/internal-error"
    await eventually(lambda: len(sentry.events) == 1)
    [event] = sentry.events
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert (event["tags"]["command"], event["tags"]["message_id"]) == ("genre.upsert", message_id)
    await eventually(lambda: client.app[COMMAND_CONSUMER].acked == 1)
    metrics = await scrape(client)
    assert metrics.value("cinema_amqp_commands_dead_lettered_total", reason="internal-error") == 1


@pytest.fixture
async def service_with_queues(aiohttp_client, amqp_settings, amqp, topology, db):
    client = await aiohttp_client(create_app(amqp_settings))
    await running(client.app)
    return client, await events_queue(amqp, topology), await reply_queue(amqp)

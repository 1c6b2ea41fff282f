"""Sentry reports through a local transport; tracing configured by the OTEL_* variables, or off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from cinema import telemetry
from cinema.actors.catalog import CatalogActor
from cinema.app import create_app
from cinema.settings import Settings
from tests.actors.test_base import Echo, FlakyStart
from tests.conftest import SENTRY_DSN as DSN
from tests.conftest import eventually, memory_tracing
from tests.test_logs import recording


def exceptions(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in event["exception"]["values"]]


async def test_an_actor_crash_reaches_sentry_tagged_with_the_actor(sentry):
    actor = FlakyStart(failures=1, backoff=(0.01, 0.02))
    async with actor:
        assert await actor.ask(Echo("ok"), timeout=2) == "ok"
    [event] = sentry.events
    assert exceptions(event) == ["ConnectionError"]
    assert event["tags"]["actor"] == "worker"


async def test_an_unhandled_request_error_reaches_sentry_with_the_request_id(
    sentry, aiohttp_client, settings, db, monkeypatch
):
    async def broken(self: CatalogActor, msg: object) -> object:
        raise RuntimeError("a bug")

    client = await aiohttp_client(create_app(settings))
    monkeypatch.setattr(CatalogActor, "handle", broken)
    resp = await client.get("/api/v1/genres", headers={"X-Request-ID": "req-500"})
    assert resp.status == 500
    await eventually(lambda: len(sentry.events) == 1)
    [event] = sentry.events
    assert exceptions(event) == ["RuntimeError"]
    assert event["tags"]["request_id"] == "req-500"


def test_without_a_dsn_nothing_is_reported(monkeypatch):
    monkeypatch.setenv("SENTRY_DSN", "")
    assert not telemetry.configure_errors(Settings.from_env({}))
    telemetry.report(RuntimeError("nobody hears this"))  # no client: a no-op
    assert not telemetry.SENTRY


def test_sentrys_own_variable_configures_the_dsn():
    assert Settings.from_env({"SENTRY_DSN": DSN}).sentry_dsn == DSN
    assert Settings.from_env({"SENTRY_DSN": DSN, "CINEMA_SENTRY_DSN": "https://k@other.invalid/2"}).sentry_dsn == (
        "https://k@other.invalid/2"
    )
    assert DSN not in repr(Settings(sentry_dsn=DSN))  # the key is in the DSN: redacted


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_when_a_collector_is_named(environ, wanted):
    assert telemetry.tracing_requested(environ) is wanted


def test_unset_variables_leave_tracing_off():
    assert not telemetry.configure_tracing({})
    assert telemetry.TRACER is None
    assert telemetry.server_spans() is None
    assert telemetry.current_traceparent() is None


def test_a_configured_collector_turns_tracing_on_until_shutdown(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "cinema-test")
    assert telemetry.configure_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert telemetry.TRACER is not None
        provider = telemetry._provider
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "cinema-test"
    finally:
        telemetry.uninstall_tracing()
        provider.shutdown()  # no span was made: nothing to send to the absent collector
    assert telemetry.TRACER is None


def test_a_grpc_protocol_is_refused_with_the_variable_named():
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(telemetry.TracingConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc"):
        telemetry.configure_tracing(environ)
    assert telemetry.TRACER is None


@pytest.fixture
def half_sampled() -> Iterator[InMemorySpanExporter]:
    with memory_tracing(TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))) as exporter:
        yield exporter


async def test_an_unsampled_request_is_not_traced_and_its_actor_messages_follow_it(
    half_sampled, aiohttp_client, settings, db, tmp_path
):
    with recording(tmp_path) as stdout:
        client = await aiohttp_client(create_app(settings))
        for n in range(20):  # misses: each request asks the cache actor, which asks the catalog
            assert (await client.get(f"/api/v1/genres/{n + 1}", headers={"X-Request-ID": f"r{n}"})).status == 404
    finished = half_sampled.get_finished_spans()
    servers = {s.context.trace_id for s in finished if s.kind == SpanKind.SERVER}
    assert 0 < len(servers) < 20  # 2**-19 of a chance to fail either way
    # Every actor span belongs to a sampled request: none was sampled on its own.
    actors = [s for s in finished if s.name in ("cache Fetch", "catalog GetGenre")]
    assert {s.context.trace_id for s in actors} == servers
    assert len(actors) == 2 * len(servers)
    lines = [line for line in stdout.lines() if line["event"] == "http_request"]
    assert len({line["trace_id"] for line in lines if "trace_id" in line}) == len(servers)
    assert {int(line["trace_id"], 16) for line in lines if "trace_id" in line} == servers

"""Traces (OpenTelemetry) and error reports (Sentry), each off, at no cost, unless configured.

Tracing is on when the standard OTLP variables name a collector (`OTEL_EXPORTER_OTLP_ENDPOINT`
or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
turn it off). The SDK reads the rest itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`. These are the only
variables outside `CINEMA_*` the service reads, because they are the SDK's own contract.

What is traced, once `install_tracing` ran: every HTTP request (the aiohttp-server
instrumentation's middleware, called by the edge rather than installed as a middleware chain),
every actor message (a child of its sender's span: the context travels in the envelope), every
SQL statement (the asyncpg instrumentation), every Redis round trip, each event published to
RabbitMQ (a child of the write that committed it: the outbox row keeps its `traceparent`) and
each command consumed (a child of the `traceparent` its publisher sent). With tracing off,
`TRACER` is None and each of those places costs one global read.

Sentry is on when `CINEMA_SENTRY_DSN` (or `SENTRY_DSN`) is set: unhandled request errors,
actor crashes and poison commands are reported, tagged with the request id and the actor.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware
    from opentelemetry.sdk.trace import TracerProvider
    from sentry_sdk.transport import Transport

    from cinema.settings import Settings

# The tracer of the process while tracing is installed, else None (the test every hook makes).
TRACER: trace.Tracer | None = None
_provider: TracerProvider | None = None
_instrumentors: list[Any] = []
_PROPAGATOR = TraceContextTextMapPropagator()
SENTRY = False  # whether errors are reported to Sentry


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether the standard OTel variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINTS)


_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class TracingConfigError(ValueError):
    """The OTel variables ask for something this installation cannot do."""


def configure_tracing(environ: Mapping[str, str]) -> bool:
    """Export traces over OTLP/HTTP as the OTEL_* variables say; False (and nothing done) when unset."""
    if not tracing_requested(environ):
        return False
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip()
    if protocol not in ("", "http/protobuf"):
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is installed")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "cinema"}))
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install_tracing(provider)
    return True


def install_tracing(provider: TracerProvider) -> None:
    """Trace through `provider` from now on (tests pass one with an in-memory exporter)."""
    global TRACER, _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    uninstall_tracing()
    asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    asyncpg_instrumentor.instrument(tracer_provider=provider)
    _instrumentors.append(asyncpg_instrumentor)
    _provider = provider
    TRACER = provider.get_tracer("cinema")


def uninstall_tracing() -> None:
    global TRACER, _provider
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    TRACER, _provider = None, None


def shutdown_tracing() -> None:
    """Export what is still buffered (at a worker's exit)."""
    provider = _provider
    uninstall_tracing()
    if provider is not None:
        provider.shutdown()


def server_middleware() -> Middleware | None:
    """The aiohttp-server instrumentation's middleware, for the edge to call; None with tracing off.

    Its `instrument()` sets the module state the middleware needs (the broken module-level
    `middleware` lacks it) and swaps `web.Application` for a subclass that would add the
    middleware to every application; the swap is undone at once: the edge calls the
    middleware itself, which saves the middleware chain on every request.
    """
    if _provider is None:
        return None
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor, create_aiohttp_middleware

    instrumentor = AioHttpServerInstrumentor()
    with warnings.catch_warnings():
        # "Inheritance class _InstrumentedApplication from web.Application is discouraged"
        warnings.simplefilter("ignore", DeprecationWarning)
        instrumentor.instrument(tracer_provider=_provider)
    instrumentor.uninstrument()
    middleware: Middleware = create_aiohttp_middleware(tracer_provider=_provider)
    return middleware


def current_context() -> otel_context.Context | None:
    """The caller's trace context, to travel with a message; None with tracing off."""
    return None if TRACER is None else otel_context.get_current()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, if tracing is on and a span is current."""
    if TRACER is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def activate(current: trace.Span) -> Any:
    """Make `current` the current span; returns the token `deactivate` takes."""
    return otel_context.attach(trace.set_span_in_context(current))


def deactivate(token: Any) -> None:
    otel_context.detach(token)


def traceparent_of(current: trace.Span) -> str:
    """The W3C `traceparent` naming `current` as the parent."""
    context = current.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def inject(headers: MutableMapping[str, Any]) -> None:
    """Write the current span's `traceparent` (and `tracestate`) into message headers."""
    _PROPAGATOR.inject(headers)


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The trace context a message's headers carry (an empty one when they carry none)."""
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (headers or {}).items()}
    return _PROPAGATOR.extract(carrier)


@contextlib.contextmanager
def span(name: str, **kwargs: Any) -> Iterator[trace.Span | None]:
    """A span as the current one, or nothing with tracing off (the hooks outside the hot path)."""
    tracer = TRACER
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, **kwargs) as current:
        yield current


def add_trace_ids(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: `trace_id` and `span_id` of the current span on every line inside one."""
    if TRACER is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = f"{context.trace_id:032x}"
            event["span_id"] = f"{context.span_id:016x}"
    return event


# -- Sentry ---------------------------------------------------------------------------


def configure_errors(settings: Settings, transport: Transport | None = None) -> bool:
    """Report errors to Sentry when a DSN is configured; False (and nothing done) otherwise."""
    global SENTRY
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        sample_rate=settings.sentry_sample_rate,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        profiles_sample_rate=settings.sentry_profiles_sample_rate,
        integrations=[AioHttpIntegration()],
        transport=transport,
    )
    SENTRY = True
    return True


def report(exc: BaseException, **tags: str) -> None:
    """Send an exception to Sentry with the request id (when there is one) and `tags`."""
    if not SENTRY:
        return
    import sentry_sdk

    from cinema.logs import REQUEST_CONTEXT  # cinema.logs imports this module

    with sentry_sdk.new_scope() as scope:
        request = REQUEST_CONTEXT.get()
        if request is not None and "request_id" in request:
            scope.set_tag("request_id", str(request["request_id"]))
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.capture_exception(exc)


def close_errors() -> None:
    global SENTRY
    if SENTRY:
        import sentry_sdk

        sentry_sdk.flush(timeout=2)
        SENTRY = False

"""Traces (OpenTelemetry) and error reports (Sentry), each off, at no cost, unless configured.

Tracing is on when the standard OTLP variables name a collector (`OTEL_EXPORTER_OTLP_ENDPOINT`
or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
turn it off). The SDK reads the rest itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`. These are the only
variables outside `CINEMA_*` the service reads, because they are the SDK's own contract.

What is traced, once `install_tracing` ran: every HTTP request (spans as the aiohttp-server
instrumentation makes them, begun and ended by the edge, see `server_spans`),
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
import functools
import random
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cinema.context import REQUEST_CONTEXT

if TYPE_CHECKING:
    from aiohttp import web
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler
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

    global _ids
    uninstall_tracing()
    _ids = _PresetIds(provider.id_generator)
    provider.id_generator = _ids  # type: ignore[assignment]  # read by the tracers made after this
    asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    asyncpg_instrumentor.instrument(tracer_provider=provider)
    _instrumentors.append(asyncpg_instrumentor)
    _provider = provider
    TRACER = provider.get_tracer("cinema")


def uninstall_tracing() -> None:
    global TRACER, _provider, _ids
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    if _provider is not None and _ids is not None:
        _provider.id_generator = _ids.generator  # type: ignore[assignment]
    TRACER, _provider, _ids = None, None, None


def shutdown_tracing() -> None:
    """Export what is still buffered (at a worker's exit)."""
    provider = _provider
    uninstall_tracing()
    if provider is not None:
        provider.shutdown()


def server_spans() -> Callable[[], RouteSpans] | None:
    """What makes the SERVER spans of one route (call it once per route); None with tracing off.

    The spans are named as the aiohttp-server instrumentation names them, with its status rules,
    but not made by its middleware: that one builds a span object and collects every attribute
    (parsing the URL four times) for every request, sampled or not, and records two histograms:
    at a 10% sampling ratio it cost a cached read half its throughput. Here the edge asks
    `RouteSpans.begin` inline (no coroutine of its own): a new trace is decided first
    (`_root_decision`), a dropped request costs that decision and one context attach, and
    attributes are collected for recorded spans only.
    """
    tracer = TRACER
    if tracer is None or _provider is None or _ids is None:
        return None
    samples = _root_decision(_provider.sampler)
    return functools.partial(RouteSpans, tracer, samples, _ids)


class RouteSpans:
    """The server spans of one route: `begin` when a request arrives, `end` with its outcome."""

    __slots__ = ("_ids", "_names", "_samples", "_tracer")

    def __init__(self, tracer: trace.Tracer, samples: Callable[[int, str], bool], ids: _PresetIds) -> None:
        self._tracer = tracer
        self._samples = samples
        self._ids = ids
        self._names: dict[str, str] = {}  # per method (a GET route also serves HEAD)

    def begin(self, request: web.Request, context: dict[str, object]) -> tuple[trace.Span, object] | None:
        """The request's span made current, or None when the sampler drops the request.

        A sampled span's ids go into `context` (the request's log context), so that every line
        of the request, its access line included, names them without asking for the current span.
        A dropped request runs in the shared unsampled context, so that nothing under it (actor
        messages, SQL, Redis) is sampled on its own; aiohttp serves each request in a task of its
        own, so that context goes with the request's task and needs no detach.
        """
        name = self._names.get(request.method)
        if name is None:
            name = self._names[request.method] = _instrumentation().get_default_span_name(request)
        parent = _ROOT
        if _TRACEPARENT in request.headers:
            parent = _extract_http(request)
        else:
            # A new trace: decided here first, as the sampler would (the SDK builds a span object
            # to drop it: several microseconds). Ratio samplers read the low 64 bits only.
            low = _random_bits(64)
            if not self._samples(low, name):
                otel_context.attach(UNSAMPLED)
                return None
            self._ids.preset = (_random_bits(64) << 64) | low or 1  # the SDK samples it again: same verdict
        current = self._tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER)
        if not current.is_recording():  # a sampler that decides otherwise, or a dropped parent
            otel_context.attach(trace.set_span_in_context(current))
            current.end()
            return None
        current.set_attributes(_request_attributes(request, name))
        ids = current.get_span_context()
        if ids.trace_flags.sampled:
            context["trace_id"] = f"{ids.trace_id:032x}"
            context["span_id"] = f"{ids.span_id:016x}"
        return current, otel_context.attach(trace.set_span_in_context(current))

    @staticmethod
    def end(begun: tuple[trace.Span, object], status: int | None, exc: BaseException | None = None) -> None:
        """End a span `begin` made: with the response's status, or the exception that ended it."""
        current, token = begun
        if status is not None:
            _instrumentation().set_status_code(current, status, None, _stable_http_mode())
        if exc is not None:
            current.record_exception(exc)
        otel_context.detach(token)  # type: ignore[arg-type]
        current.end()


@functools.cache
def _instrumentation() -> Any:
    from opentelemetry.instrumentation import aiohttp_server

    return aiohttp_server


@functools.cache
def _stable_http_mode() -> Any:
    from opentelemetry.instrumentation._semconv import _StabilityMode

    return _StabilityMode.HTTP  # the stable conventions' names, as in `_request_attributes`


def _extract_http(request: web.Request) -> otel_context.Context:
    from opentelemetry.propagate import extract

    return extract(request, getter=_instrumentation().getter)


_ROOT = otel_context.Context()  # the parent of a new trace, whatever context the task carries
_TRACEPARENT = "traceparent"
_random_bits = random.getrandbits


def _request_attributes(request: web.Request, name: str) -> dict[str, str]:
    """The request's attributes (stable HTTP semantic conventions), from what aiohttp parsed.

    The instrumentation's own collection parses and redacts the URL four times over (a fifth
    of a traced request); these come from the request's fields, and the query string (which
    may hold anything) is left out.
    """
    attributes = {
        "http.request.method": request.method,
        "url.scheme": request.scheme,
        "url.path": request.path,
        "http.route": name.partition(" ")[2],
        "network.protocol.version": f"{request.version.major}.{request.version.minor}",
    }
    if request.host:
        attributes["server.address"] = request.host
    if (agent := request.headers.get("User-Agent")) is not None:
        attributes["user_agent.original"] = agent
    return attributes


# The context of every request the sampler dropped: a valid, unsampled parent, so that what
# runs under it (actor messages, SQL, Redis) is dropped too, at the cost of one attach. Its ids
# are never exported nor propagated (`current_traceparent` and the logs skip unsampled spans).
UNSAMPLED = trace.set_span_in_context(
    trace.NonRecordingSpan(trace.SpanContext(1, 1, False, trace.TraceFlags(trace.TraceFlags.DEFAULT)))
)


def _root_decision(sampler: Sampler) -> Callable[[int, str], bool]:
    """Whether `sampler` samples a new trace of this id: the common samplers' rule, inlined."""
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler, TraceIdRatioBased

    root = getattr(sampler, "_root", sampler)  # a ParentBased sampler decides new traces by its root
    if isinstance(root, TraceIdRatioBased):
        bound, limit = root.bound, root.TRACE_ID_LIMIT
        return lambda trace_id, name: trace_id & limit < bound
    if isinstance(root, StaticSampler) and root.get_description() in ("AlwaysOnSampler", "AlwaysOffSampler"):
        always = root.get_description() == "AlwaysOnSampler"
        return lambda trace_id, name: always

    def ask(trace_id: int, name: str) -> bool:
        decision = sampler.should_sample(None, trace_id, name, trace.SpanKind.SERVER).decision
        return decision is Decision.RECORD_AND_SAMPLE

    return ask


class _PresetIds:
    """The provider's id generator, which hands out a trace id chosen beforehand once."""

    def __init__(self, generator: IdGenerator) -> None:
        self.generator = generator
        self.preset = 0

    def generate_trace_id(self) -> int:
        preset, self.preset = self.preset, 0
        return preset or self.generator.generate_trace_id()

    def generate_span_id(self) -> int:
        return self.generator.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return self.generator.is_trace_id_random()


_ids: _PresetIds | None = None


def current_context() -> otel_context.Context | None:
    """The caller's trace context, to travel with a message; None with tracing off."""
    return None if TRACER is None else otel_context.get_current()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, if tracing is on and the span is sampled."""
    if TRACER is None:
        return None
    current = trace.get_current_span()
    return traceparent_of(current) if current.get_span_context().trace_flags.sampled else None


def dropped(context: otel_context.Context) -> bool:
    """Whether `context` (a message's) is within a trace the sampler dropped."""
    span = trace.get_current_span(context).get_span_context()
    return span.is_valid and not span.trace_flags.sampled


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
    """structlog processor: `trace_id` and `span_id` of the current span on every line inside one.

    Only for sampled spans: an unsampled trace is never exported, and a log line naming it
    would lead nowhere in Tempo.
    """
    if TRACER is not None:
        context = trace.get_current_span().get_span_context()
        if context.trace_flags.sampled:
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

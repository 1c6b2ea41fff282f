"""structlog configuration: one JSON object per line on stdout (for Loki), or a console view.

Configured once by the CLI. Library logs (aiohttp, asyncio, yoyo) go through the same
renderer, so every line of the process has the same shape. Context bound with
`structlog.contextvars` (request_id in the HTTP edge, actor and message in the actor
loop) appears on every line logged within it; inside a span (tracing on) so do `trace_id` and
`span_id`. The keys are stable, for promtail and LogQL: `ts`, `level`, `event`, `logger`, then
the context (`request_id`, `subject`, `actor`, `message`, `trace_id`, `span_id`) and the event's
own fields; the README lists them.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog
from structlog.dev import RichTracebackFormatter, plain_traceback
from structlog.tracebacks import ExceptionDictTransformer

from cinema import telemetry
from cinema.context import REQUEST_CONTEXT
from cinema.settings import Settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _json_bytes(event: dict[str, Any], **_: Any) -> bytes:
    return orjson.dumps(event, default=repr)


class _NamedBytesLogger(structlog.BytesLogger):
    def __init__(self, name: str) -> None:
        super().__init__(_Stdout())  # type: ignore[arg-type]  # it only calls write and flush
        self.name = name


class _Stdout:
    """stdout for every line but the access lines: access lines still pending go out first."""

    def write(self, data: bytes) -> None:
        flush_access_lines()
        sys.stdout.buffer.write(data)

    def flush(self) -> None:
        sys.stdout.buffer.flush()


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The standard library's lines (aiohttp, asyncio, yoyo), after any pending access lines."""

    def emit(self, record: logging.LogRecord) -> None:
        flush_access_lines()
        super().emit(record)


class _NamedPrintLogger(structlog.PrintLogger):
    def __init__(self, name: str) -> None:
        super().__init__(sys.stdout)
        self.name = name


def _add_logger_name(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    # `structlog.get_logger("cinema.http")` passes the name to the factories above.
    event.setdefault("logger", getattr(logger, "name", "cinema"))
    return event


def merge_request_context(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    context = REQUEST_CONTEXT.get()
    if context is not None:
        for key, value in context.items():
            event.setdefault(key, value)
    return event


# Credentials never reach a log line: values under these keys, bearer tokens and anything shaped
# like a JWT in any string (an aiohttp parse error quoting a header, an exception message) are
# replaced before rendering. Access lines carry the path without its query string, and no header.
SENSITIVE_KEYS = frozenset({"authorization", "cookie", "password", "secret", "token", "jwt_secret", "api_key"})
_CREDENTIALS = re.compile(
    r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)
REDACTED = "[redacted]"


def redact_secrets(logger: Any, method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {key: REDACTED if key.lower() in SENSITIVE_KEYS else _redact(value) for key, value in event.items()}


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _CREDENTIALS.sub(REDACTED, value) if ("ey" in value or "earer" in value or "asic" in value) else value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in SENSITIVE_KEYS else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


# The access line's fast path: set by configure_logging when lines are JSON at info level.
_access_out: _BatchedStdout | None = None
_access_log = structlog.get_logger("cinema.http")


def log_request(method: str, path: str, status: int, started: float) -> None:
    """The one `http_request` line per request; `started` is its time.perf_counter() on arrival.

    In production (JSON lines) it is rendered straight to bytes: the same fields, in the same
    shape as every other line, without the processor chain, which cost a quarter of the
    throughput of a cached read. Elsewhere (console, tests) it goes through structlog.
    """
    duration_ms = int((time.perf_counter() - started) * 100_000) / 100  # round() costs twice as much
    out = _access_out
    if out is None:
        _access_log.info("http_request", method=method, path=path, status=status, duration_ms=duration_ms)
        return
    context = REQUEST_CONTEXT.get() or {}
    event = {
        "event": "http_request",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        **context,
        "level": "info",
        "ts": _timestamp(),
        "logger": "cinema.http",
    }
    # A sampled request's trace ids are in its context (the edge put them there).
    line = orjson.dumps(event, default=repr, option=orjson.OPT_APPEND_NEWLINE)
    if out.pending:
        out.lines.append(line)
    else:
        out.write(line)


_second = -1
_second_text = ""


def _timestamp() -> str:
    """Now as structlog's TimeStamper(fmt="iso", utc=True) writes it, with the date part formatted once a second."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:
        _second, _second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second_text}.{int((now - second) * 1_000_000):06d}Z"


class _BatchedStdout:
    """Access lines written to stdout once per event-loop pass, not one system call per line.

    Under load a pass serves many requests, and their lines share one write. Lines stay whole
    and in order: every other log line flushes these first (see `_FlushFirst`), and a write
    stays under PIPE_BUF bytes so lines of several workers sharing a pipe never interleave.
    """

    LIMIT = 4096  # PIPE_BUF on Linux: writes up to this size to a pipe are atomic

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.pending = False
        self._size = 0

    def write(self, line: bytes) -> None:
        """The first line of a pass: queue it and flush at the end of the pass."""
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop (logged outside the server): write it now
            _write_stdout(line)
            return
        self.pending = True
        self.lines.append(line)

    def flush(self) -> None:
        # Taken first: a write that fails (stdout gone) must not leave lines to be written twice.
        lines, self.lines, self.pending = self.lines, [], False
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > self.LIMIT:
                _write_stdout(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            _write_stdout(b"".join(chunk))


def flush_access_lines() -> None:
    if _access_out is not None and _access_out.pending:
        _access_out.flush()


atexit.register(flush_access_lines)  # a stop between a request and the end of its loop pass


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def configure_logging(settings: Settings) -> None:
    global _access_out
    level = LEVELS[settings.log_level]
    console = settings.log_format == "console" or (settings.log_format == "auto" and sys.stdout.isatty())
    # Tracebacks name the frames only: locals would write request data and secrets into the log.
    tracebacks = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=settings.log_locals))
    shared: list[Any] = [
        merge_request_context,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        telemetry.add_trace_ids,
    ]
    if console:
        rich = importlib.util.find_spec("rich") is not None  # as structlog decides: rich when installed
        formatter = RichTracebackFormatter(show_locals=settings.log_locals) if rich else plain_traceback
        renderer: Any = structlog.dev.ConsoleRenderer(exception_formatter=formatter)
        final = [*shared, _add_logger_name, structlog.processors.StackInfoRenderer(), redact_secrets, renderer]
        logger_class: Any = _NamedPrintLogger
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_bytes)
        final = [
            *shared,
            _add_logger_name,
            structlog.processors.StackInfoRenderer(),
            tracebacks,
            redact_secrets,
            renderer,
        ]
        logger_class = _NamedBytesLogger
    structlog.configure(
        processors=final,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda name="cinema", *_: logger_class(name),
        cache_logger_on_first_use=True,
    )

    # Standard-library loggers (aiohttp, asyncio, yoyo) render through the same processors.
    stdlib_renderer = renderer if console else structlog.processors.JSONRenderer(serializer=_json_str)
    handler = _StdlibHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if console else [tracebacks]),
                redact_secrets,
                stdlib_renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The access log is our own http_request line; pgserver and yoyo narrate every step at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("yoyo").setLevel(logging.WARNING)  # migrate logs one migrations_applied line
    _access_out = _BatchedStdout() if not console and level <= logging.INFO else None


def _json_str(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()

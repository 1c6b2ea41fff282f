"""structlog configuration: one JSON object per line on stdout (for Loki), or a console view.

Configured once by the CLI. Library logs (aiohttp, asyncio, yoyo) go through the same
renderer, so every line of the process has the same shape. Context bound with
`structlog.contextvars` (request_id in the HTTP middleware, actor and message in the actor
loop) appears on every line logged within it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

from cinema.settings import Settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _json_bytes(event: dict[str, Any], **_: Any) -> bytes:
    return orjson.dumps(event, default=repr)


class _NamedBytesLogger(structlog.BytesLogger):
    def __init__(self, name: str) -> None:
        super().__init__(sys.stdout.buffer)
        self.name = name


class _NamedPrintLogger(structlog.PrintLogger):
    def __init__(self, name: str) -> None:
        super().__init__(sys.stdout)
        self.name = name


def _add_logger_name(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    # `structlog.get_logger("cinema.http")` passes the name to the factories above.
    event.setdefault("logger", getattr(logger, "name", "cinema"))
    return event


# The request being served, for every line logged while serving it: one ContextVar set once per
# request (cheaper than clearing and binding structlog's context variables on the hot path).
REQUEST_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("cinema_request", default=None)


def merge_request_context(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    context = REQUEST_CONTEXT.get()
    if context is not None:
        for key, value in context.items():
            event.setdefault(key, value)
    return event


# The access line's fast path: set by configure_logging when lines are JSON at info level.
_access_out: Any = None
_access_log = structlog.get_logger("cinema.http")


def log_request(method: str, path: str, status: int, duration_ms: float) -> None:
    """The one `http_request` line per request.

    In production (JSON lines) it is rendered straight to bytes: the same fields, in the same
    shape as every other line, without the processor chain, which cost a quarter of the
    throughput of a cached read. Elsewhere (console, tests) it goes through structlog.
    """
    if _access_out is None:
        _access_log.info("http_request", method=method, path=path, status=status, duration_ms=duration_ms)
        return
    event: dict[str, Any] = {"method": method, "path": path, "status": status, "duration_ms": duration_ms}
    context = REQUEST_CONTEXT.get()
    if context is not None:
        event.update(context)
    event["event"] = "http_request"
    event["level"] = "info"
    event["timestamp"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    event["logger"] = "cinema.http"
    _access_out(_json_bytes(event) + b"\n")


def _write_and_flush(line: bytes) -> None:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()


def configure_logging(settings: Settings) -> None:
    global _access_out
    level = LEVELS[settings.log_level]
    console = settings.log_format == "console" or (settings.log_format == "auto" and sys.stdout.isatty())
    shared: list[Any] = [
        merge_request_context,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if console:
        renderer: Any = structlog.dev.ConsoleRenderer()
        final = [*shared, _add_logger_name, structlog.processors.StackInfoRenderer(), renderer]
        logger_class: Any = _NamedPrintLogger
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_bytes)
        final = [
            *shared,
            _add_logger_name,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.dict_tracebacks,
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
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if console else [structlog.processors.dict_tracebacks]),
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
    _access_out = _write_and_flush if not console and level <= logging.INFO else None


def _json_str(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()

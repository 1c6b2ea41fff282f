"""Configuration: one frozen `Settings`, read from `CINEMA_*` variables once at start-up.

Nothing else in the package reads `os.environ`; tests build `Settings(...)` directly.
Each field's environment variable is `CINEMA_<FIELD NAME IN UPPER CASE>`; the README's
configuration table lists them all (a test keeps the two in step).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import attrs

PREFIX = "CINEMA_"


class SettingsError(ValueError):
    """A `CINEMA_*` variable has a value the service cannot use; the message names it."""


def redact_url(url: str | None) -> str:
    """The URL with its password replaced, safe to print or log."""
    if not url:
        return repr(url)
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return repr(urlunsplit(parts._replace(netloc=netloc)))


def _between(low: float, high: float) -> typing.Callable[[typing.Any, attrs.Attribute[typing.Any], float], None]:
    def check(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: float) -> None:
        if not low <= value <= high:
            raise SettingsError(f"{env_name(attribute.name)}: must be between {low} and {high}, got {value}")

    return check


def _one_of(*choices: str) -> typing.Callable[[typing.Any, attrs.Attribute[typing.Any], str], None]:
    def check(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str) -> None:
        if value not in choices:
            raise SettingsError(f"{env_name(attribute.name)}: must be one of {', '.join(choices)}, got {value!r}")

    return check


def _postgres_url(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    if value is not None and urlsplit(value).scheme not in ("postgres", "postgresql"):
        raise SettingsError(f"{env_name(attribute.name)}: must be a postgresql:// URL, got {redact_url(value)}")


def _http_url(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    if value is not None and urlsplit(value).scheme not in ("http", "https"):
        raise SettingsError(f"{env_name(attribute.name)}: must be an http:// or https:// URL, got {redact_url(value)}")


@attrs.frozen(kw_only=True)
class Settings:
    # HTTP front end
    host: str = attrs.field(default="127.0.0.1", metadata={"doc": "Address to listen on."})
    port: int = attrs.field(default=8080, validator=_between(0, 65535), metadata={"doc": "Port to listen on."})
    workers: int = attrs.field(
        default=1, validator=_between(1, 64), metadata={"doc": "Processes sharing the port (`serve --workers`)."}
    )
    max_json_bytes: int = attrs.field(
        default=2 * 1024 * 1024,
        validator=_between(1024, 64 * 1024 * 1024),
        metadata={"doc": "Largest JSON request body accepted; larger bodies get 413."},
    )
    # PostgreSQL
    database_url: str | None = attrs.field(
        default=None,
        repr=redact_url,
        validator=_postgres_url,
        metadata={"doc": "PostgreSQL server to use. Unset: an embedded PostgreSQL in `CINEMA_DATA_DIR`."},
    )
    data_dir: Path = attrs.field(
        default=Path(".cinema"), metadata={"doc": "Folder for local state (the embedded database lives here)."}
    )
    db_pool_size: int = attrs.field(
        default=10,
        validator=_between(1, 500),
        metadata={"doc": "Connections per process; also how many catalog messages run at once."},
    )
    migrate_on_start: bool = attrs.field(
        default=True,
        metadata={"doc": "Apply pending migrations when `serve` starts (off where `migrate` runs as a job)."},
    )
    # Actors
    mailbox_size: int = attrs.field(
        default=1000,
        validator=_between(1, 1_000_000),
        metadata={"doc": "Capacity of each actor's mailbox; a full mailbox answers HTTP with 503."},
    )
    ask_timeout: float = attrs.field(
        default=10.0, validator=_between(0.01, 600), metadata={"doc": "Seconds a request waits for an actor's reply."}
    )
    shutdown_timeout: float = attrs.field(
        default=10.0,
        validator=_between(0, 600),
        metadata={"doc": "Seconds given to in-flight work to finish on stop."},
    )
    # Search
    elasticsearch_url: str | None = attrs.field(
        default=None,
        repr=redact_url,
        validator=_http_url,
        metadata={"doc": "Elasticsearch 9 server to search with. Unset: the PostgreSQL search table."},
    )
    elasticsearch_prefix: str = attrs.field(
        default="cinema",
        metadata={"doc": "Prefix of the Elasticsearch aliases (`<prefix>-movie`, ...) and indices."},
    )
    search_batch_size: int = attrs.field(
        default=500,
        validator=_between(1, 10_000),
        metadata={"doc": "Events the indexer reads and writes in one batch."},
    )
    search_flush_delay: float = attrs.field(
        default=0.02,
        validator=_between(0, 5),
        metadata={"doc": "Seconds the indexer lets more events gather before writing a batch that is not full."},
    )
    search_poll_interval: float = attrs.field(
        default=5.0,
        validator=_between(0.05, 3600),
        metadata={"doc": "Seconds between the indexer's checks of the outbox when no event wakes it (a safety net)."},
    )
    search_stream_buffer: int = attrs.field(
        default=256,
        validator=_between(1, 100_000),
        metadata={"doc": "Frames a streaming-search socket may have unsent; a client further behind is disconnected."},
    )
    search_stream_queries: int = attrs.field(
        default=16,
        validator=_between(1, 1000),
        metadata={"doc": "Queries open at once on one streaming-search socket."},
    )
    search_stream_send_timeout: float = attrs.field(
        default=10.0,
        validator=_between(0.01, 600),
        metadata={"doc": "Seconds a frame may wait for a streaming-search client to take it; then it is dropped."},
    )
    search_stream_heartbeat: float = attrs.field(
        default=20.0,
        validator=_between(0.1, 600),
        metadata={"doc": "Seconds between pings on a streaming-search socket; a missed pong closes it."},
    )
    # Logging
    log_level: str = attrs.field(
        default="info",
        validator=_one_of("debug", "info", "warning", "error"),
        metadata={"doc": "Lowest level logged."},
    )
    log_format: str = attrs.field(
        default="auto",
        validator=_one_of("auto", "json", "console"),
        metadata={"doc": "`json` (one object per line), `console`, or `auto` (console on a terminal)."},
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read every field from `CINEMA_<NAME>`; unset or empty variables keep the default."""
        hints = typing.get_type_hints(cls)
        values: dict[str, typing.Any] = {}
        for field in attrs.fields(cls):
            raw = environ.get(env_name(field.name), "").strip()
            if raw:
                values[field.name] = _parse(field.name, hints[field.name], raw)
        unknown = sorted(
            k for k in environ if k.startswith(PREFIX) and k not in ENV_NAMES and not k.startswith(_TEST_ONLY)
        )
        if unknown:
            raise SettingsError(f"{unknown[0]}: unknown setting (known: {', '.join(sorted(ENV_NAMES))})")
        return cls(**values)


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


ENV_NAMES = frozenset(env_name(f.name) for f in attrs.fields(Settings))
# Read by the test suite and CI only, never by the service.
_TEST_ONLY = ("CINEMA_TEST_", "CINEMA_REQUIRE_SERVICES")


def _parse(name: str, hint: typing.Any, raw: str) -> typing.Any:
    if isinstance(hint, types.UnionType):  # `str | None`: a set variable is the str
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    try:
        if hint is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(raw)
        return raw
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(hint, "a value")
        raise SettingsError(f"{env_name(name)}: expected {kind}, got {raw!r}") from None

"""Configuration: one frozen `Settings`, read from `CINEMA_*` variables once at start-up.

Nothing else in the package reads `os.environ` (but for the OpenTelemetry SDK's own `OTEL_*`
variables, see cinema/telemetry.py); tests build `Settings(...)` directly. `SENTRY_DSN`, Sentry's
own variable, is read here as the fallback of `CINEMA_SENTRY_DSN`.
Each field's environment variable is `CINEMA_<FIELD NAME IN UPPER CASE>`; the README's
configuration table lists them all (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import re
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


def _redis_url(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"{env_name(attribute.name)}: must be a redis://, rediss:// or unix:// URL, got {redact_url(value)}"
        )


def _cache_ttls(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str) -> None:
    try:
        parse_ttls(value)
    except ValueError as exc:
        raise SettingsError(f"{env_name(attribute.name)}: {exc}") from None


def parse_ttls(value: str) -> dict[str, float]:
    """`kind=seconds,kind=seconds` -> {kind: seconds}; kinds are those of cinema.cache.kinds."""
    from cinema.cache.kinds import KINDS  # the kinds table imports nothing of the settings

    ttls = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, seconds = item.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ValueError(f"unknown cache kind {name!r} (known: {', '.join(sorted(KINDS))})")
        try:
            ttls[name] = float(seconds)
        except ValueError:
            raise ValueError(f"expected kind=seconds, got {item!r}") from None
        if not 1 <= ttls[name] <= 7 * 86400:
            raise ValueError(f"the TTL of {name!r} must be between 1 and 604800 seconds, got {seconds.strip()}")
    return ttls


def _amqp_url(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    if value is not None and urlsplit(value).scheme not in ("amqp", "amqps"):
        raise SettingsError(f"{env_name(attribute.name)}: must be an amqp:// or amqps:// URL, got {redact_url(value)}")


def _amqp_name(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value):
        raise SettingsError(f"{env_name(attribute.name)}: must be 1 to 100 of A-Z a-z 0-9 _ . -, got {value!r}")


def _postgres_url(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    if value is not None and urlsplit(value).scheme not in ("postgres", "postgresql"):
        raise SettingsError(f"{env_name(attribute.name)}: must be a postgresql:// URL, got {redact_url(value)}")


def _long_enough(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    # Shorter HMAC keys can be brute-forced (RFC 7518 section 3.2 asks for at least 256 bits).
    if value is not None and len(value.encode()) < 32:
        raise SettingsError(f"{env_name(attribute.name)}: must be at least 32 bytes long")


def _networks(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str) -> None:
    try:
        parse_networks(value)
    except ValueError as exc:
        raise SettingsError(f"{env_name(attribute.name)}: {exc}") from None


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`10.0.0.0/8, ::1` -> the networks (a bare address is a network of one)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def _public_key(_: typing.Any, attribute: attrs.Attribute[typing.Any], value: str | None) -> None:
    if value is None:
        return
    from cinema.http.auth import load_public_key  # imports nothing of the settings at module level

    try:
        load_public_key(value)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{env_name(attribute.name)}: not a usable PEM public key or file: {exc}") from None


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
    rate_limit: int = attrs.field(
        default=6000,
        validator=_between(0, 10_000_000),
        metadata={"doc": "Reads per client per window (shared by every process through Redis); 0: no limit."},
    )
    rate_limit_window: float = attrs.field(
        default=60.0, validator=_between(1, 86400), metadata={"doc": "Length of the rate-limit window in seconds."}
    )
    rate_limit_writes: int = attrs.field(
        default=600, validator=_between(0, 10_000_000), metadata={"doc": "Writes per client per window; 0: no limit."}
    )
    rate_limit_search: int = attrs.field(
        default=1200,
        validator=_between(0, 10_000_000),
        metadata={"doc": "Searches (HTTP and websocket queries) per client per window; 0: no limit."},
    )
    rate_limit_uploads: int = attrs.field(
        default=60, validator=_between(0, 10_000_000), metadata={"doc": "Uploads per client per window; 0: no limit."}
    )
    trusted_proxies: str = attrs.field(
        default="",
        validator=_networks,
        metadata={"doc": "Networks (CIDR, comma-separated) whose X-Forwarded-For/Forwarded name the client."},
    )
    max_header_bytes: int = attrs.field(
        default=8190,
        validator=_between(256, 65536),
        metadata={"doc": "Longest request line and header field accepted; longer ones are refused."},
    )
    max_headers: int = attrs.field(
        default=64, validator=_between(8, 1024), metadata={"doc": "Most header fields a request may have."}
    )
    cors_origins: str = attrs.field(
        default="",
        metadata={"doc": "Origins allowed to call the API from a browser (comma-separated, or `*`). Empty: no CORS."},
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
    db_statement_timeout: float = attrs.field(
        default=60.0,
        validator=_between(0.1, 3600),
        metadata={"doc": "Seconds a statement may take before its connection is given up as lost (a silent network)."},
    )
    migrate_on_start: bool = attrs.field(
        default=True,
        metadata={"doc": "Apply pending migrations when `serve` starts (off where `migrate` runs as a job)."},
    )
    # Authentication of writes
    jwt_secret: str | None = attrs.field(
        default=None,
        repr=lambda value: "None" if value is None else "'***'",
        validator=_long_enough,
        metadata={"doc": "HS256 key (32+ bytes) that write tokens are signed with. Unset: writes need no token."},
    )
    jwt_public_key: str | None = attrs.field(
        default=None,
        validator=_public_key,
        metadata={"doc": "RSA or EC public key (PEM, or a file holding it) verifying RS256/ES256 tokens."},
    )
    jwt_jwks_url: str | None = attrs.field(
        default=None,
        validator=_http_url,
        metadata={"doc": "JWKS URL of an identity provider (Keycloak, Auth0, Cognito) whose tokens are accepted."},
    )
    jwt_jwks_refresh: float = attrs.field(
        default=30.0,
        validator=_between(1, 86400),
        metadata={"doc": "Fewest seconds between two fetches of the JWKS (a token with an unknown `kid` fetches)."},
    )
    jwt_issuer: str | None = attrs.field(default=None, metadata={"doc": "Required `iss` claim of tokens, if set."})
    jwt_audience: str | None = attrs.field(default=None, metadata={"doc": "Required `aud` claim of tokens, if set."})
    jwt_leeway: float = attrs.field(
        default=30.0,
        validator=_between(0, 600),
        metadata={"doc": "Seconds of clock skew allowed when checking `exp`, `nbf` and `iat`."},
    )
    auth: str = attrs.field(
        default="auto",
        validator=_one_of("auto", "off"),
        metadata={
            "doc": "`auto`: tokens are checked when a key is set, and `serve` refuses a non-loopback address "
            "without one; `off`: writes are open on any address and no token is checked."
        },
    )
    # RabbitMQ
    amqp_url: str | None = attrs.field(
        default=None,
        repr=redact_url,
        validator=_amqp_url,
        metadata={"doc": "RabbitMQ server. Unset: no relay and no command consumer (events stay in-process)."},
    )
    amqp_prefix: str = attrs.field(
        default="cinema",
        validator=_amqp_name,
        metadata={"doc": "First part of every exchange and queue name (`<prefix>.events`, `<prefix>.commands`)."},
    )
    amqp_prefetch: int = attrs.field(
        default=256,
        validator=_between(1, 65535),
        metadata={"doc": "Unacknowledged commands a process holds; up to half are applied per transaction."},
    )
    relay_batch_size: int = attrs.field(
        default=500,
        validator=_between(1, 10_000),
        metadata={"doc": "Outbox events published per batch (confirmed together, then marked published)."},
    )
    relay_poll_interval: float = attrs.field(
        default=5.0,
        validator=_between(0.01, 3600),
        metadata={"doc": "Seconds between the relay's safety-net polls; also how often a standby tries to lead."},
    )
    outbox_retention_hours: float = attrs.field(
        default=168.0,
        validator=_between(0, 87_600),
        metadata={"doc": "Hours published events stay in the outbox (the window `GET /changes` serves)."},
    )
    command_dedup_hours: float = attrs.field(
        default=168.0,
        validator=_between(0, 87_600),
        metadata={"doc": "Hours a processed command's message_id is remembered to recognise redeliveries."},
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
    # Cache
    cache_enabled: bool = attrs.field(
        default=True,
        metadata={"doc": "Serve cached reads through the cache actor; off: every read goes to PostgreSQL."},
    )
    cache_entries: int = attrs.field(
        default=10_000,
        validator=_between(0, 10_000_000),
        metadata={"doc": "Most entries the in-process cache layer holds per process (0: no in-process layer)."},
    )
    cache_bytes: int = attrs.field(
        default=64 * 1024 * 1024,
        validator=_between(0, 64 * 1024 * 1024 * 1024),
        metadata={"doc": "Most bytes of bodies the in-process cache layer holds per process."},
    )
    cache_ttls: str = attrs.field(
        default="",
        validator=_cache_ttls,
        metadata={"doc": "Per-kind TTL overrides in seconds, `kind=seconds,...` (defaults in the README)."},
    )
    redis_url: str | None = attrs.field(
        default=None,
        repr=redact_url,
        validator=_redis_url,
        metadata={"doc": "Redis shared by every process as the cache. Unset: the in-process layer alone."},
    )
    redis_prefix: str = attrs.field(
        default="cinema", metadata={"doc": "Prefix of every Redis key, so deployments can share a Redis."}
    )
    redis_timeout: float = attrs.field(
        default=0.1,
        validator=_between(0.001, 10),
        metadata={"doc": "Seconds one Redis operation may take before the cache treats Redis as down."},
    )
    redis_retry: float = attrs.field(
        default=1.0,
        validator=_between(0.001, 600),
        metadata={"doc": "Seconds the cache leaves Redis alone after a failure before trying it again."},
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
    search_stream_live: int = attrs.field(
        default=4,
        validator=_between(0, 1000),
        metadata={"doc": "Live queries open at once on one streaming-search socket (within the queries allowed)."},
    )
    search_stream_rate: int = attrs.field(
        default=20,
        validator=_between(1, 10_000),
        metadata={"doc": "Frames per second a streaming-search client may send (a burst of as many, then that rate)."},
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
    # Images: uploads and object storage
    s3_bucket: str | None = attrs.field(
        default=None,
        metadata={"doc": "S3 (or MinIO) bucket that images are stored in. Unset: files under `<data dir>/media`."},
    )
    s3_endpoint_url: str | None = attrs.field(
        default=None,
        validator=_http_url,
        metadata={"doc": "S3 endpoint (MinIO: `http://minio:9000`); path-style addressing. Unset: AWS S3."},
    )
    s3_region: str | None = attrs.field(
        default=None, metadata={"doc": "Region of the bucket. Unset: the standard AWS configuration, else us-east-1."}
    )
    s3_access_key_id: str | None = attrs.field(
        default=None,
        metadata={"doc": "Access key of the bucket. Unset: the standard AWS variables and credential chain."},
    )
    s3_secret_access_key: str | None = attrs.field(
        default=None,
        repr=lambda value: "None" if value is None else "'***'",
        metadata={"doc": "Secret key going with `CINEMA_S3_ACCESS_KEY_ID`."},
    )
    s3_multipart_threshold: int = attrs.field(
        default=8 * 1024 * 1024,
        validator=_between(5 * 1024 * 1024, 5 * 1024**3),
        metadata={"doc": "Objects at least this large are stored by multipart upload, in parts of this size."},
    )
    media_base_url: str | None = attrs.field(
        default=None,
        validator=_http_url,
        metadata={"doc": "Public base URL of the images (a CDN); an image's URL is this plus its key."},
    )
    media_url_ttl: int = attrs.field(
        default=3600,
        validator=_between(60, 604_800),
        metadata={"doc": "Lifetime in seconds of the presigned URLs that `/media/` redirects to (S3, no base URL)."},
    )
    upload_max_bytes: int = attrs.field(
        default=10 * 1024 * 1024,
        validator=_between(1024, 1024**3),
        metadata={"doc": "Largest image accepted; a larger body gets 413 as soon as it passes the limit."},
    )
    upload_max_pixels: int = attrs.field(
        default=50_000_000,
        # Pillow's own decompression-bomb guard starts at 89,478,485 pixels.
        validator=_between(1, 89_000_000),
        metadata={"doc": "Most pixels (width x height) an image may have (decompression bombs); more gets 422."},
    )
    upload_concurrency: int = attrs.field(
        default=2,
        validator=_between(1, 64),
        metadata={"doc": "Uploads a process stores at once (each holds a database connection of the uploader's)."},
    )
    upload_retry_delay: float = attrs.field(
        default=1.0,
        validator=_between(0.01, 3600),
        metadata={"doc": "Seconds before the first retry of an upload the storage failed; doubles up to 60 s."},
    )
    upload_poll_interval: float = attrs.field(
        default=5.0,
        validator=_between(0.05, 3600),
        metadata={"doc": "Seconds between the uploader's looks for pending uploads nobody is storing."},
    )
    storage_sweep_interval: float = attrs.field(
        default=3600.0,
        validator=_between(0, 7 * 86400),
        metadata={"doc": "Seconds between sweeps of objects no row refers to (one process sweeps); 0: never."},
    )
    storage_sweep_grace: float = attrs.field(
        default=86400.0,
        validator=_between(0, 365 * 86400),
        metadata={"doc": "Age in seconds an unreferenced object (or spool file) must have before a sweep deletes it."},
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
    # Observability (traces are configured by the standard OTEL_* variables: see cinema/telemetry.py)
    metrics: bool = attrs.field(
        default=True, metadata={"doc": "Serve `GET /metrics` (Prometheus) and count per route; off: neither."}
    )
    metrics_port: int = attrs.field(
        default=0,
        validator=_between(0, 65535),
        metadata={"doc": "If set, worker i also serves `/metrics` on this port + i (scrape each). 0: main port only."},
    )
    sentry_dsn: str | None = attrs.field(
        default=None,
        repr=lambda value: "None" if value is None else "'***'",
        metadata={"doc": "Sentry DSN errors are reported to (`SENTRY_DSN` is read too). Unset: no reports."},
    )
    sentry_environment: str | None = attrs.field(
        default=None, metadata={"doc": "The environment Sentry files reports under (`production`, ...)."}
    )
    sentry_sample_rate: float = attrs.field(
        default=1.0, validator=_between(0, 1), metadata={"doc": "Share of errors sent to Sentry."}
    )
    sentry_traces_sample_rate: float = attrs.field(
        default=0.0,
        validator=_between(0, 1),
        metadata={"doc": "Share of requests Sentry traces as transactions (0: none; traces go to OTLP)."},
    )
    sentry_profiles_sample_rate: float = attrs.field(
        default=0.0,
        validator=_between(0, 1),
        metadata={"doc": "Share of Sentry transactions profiled (0: none; profiling is costly under load)."},
    )
    log_locals: bool = attrs.field(
        default=False,
        metadata={"doc": "Show each frame's local variables in logged tracebacks (development only: they hold data)."},
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
        if "sentry_dsn" not in values and environ.get("SENTRY_DSN", "").strip():  # Sentry's own variable
            values["sentry_dsn"] = environ["SENTRY_DSN"].strip()
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

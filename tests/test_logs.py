"""Production log lines: JSON, whole, in order, and access lines batched per event-loop pass."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import structlog

from cinema import logs
from cinema.app import create_app
from cinema.context import REQUEST_CONTEXT
from cinema.http.auth import TokenVerifier
from cinema.logs import configure_logging, log_request
from cinema.settings import Settings


class RecordingStdout:
    """A stand-in for sys.stdout whose binary buffer records every write system call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffer = self
        self.text = io.StringIO()

    def write(self, data: bytes | str) -> int:
        if isinstance(data, str):  # the standard library's handler writes text
            data = data.encode()
        self.writes.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in b"".join(self.writes).splitlines()]


@contextlib.contextmanager
def recording(tmp_path: Path, **settings: object) -> Iterator[RecordingStdout]:
    """Production logging onto a recording stdout (inside the test: pytest swaps sys.stdout per phase)."""
    out = RecordingStdout()
    saved_stdout, root = sys.stdout, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sys.stdout = out  # type: ignore[assignment]
    try:
        defaults = {"database_url": "postgresql://x@127.0.0.1/x", "log_format": "json", "data_dir": tmp_path}
        configure_logging(Settings(**{**defaults, **settings}))  # type: ignore[arg-type]
        # Module-level loggers first used here must not keep this configuration for later tests.
        structlog.configure(cache_logger_on_first_use=False)
        yield out
    finally:
        sys.stdout = saved_stdout
        logs._access_out = None
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level


async def test_access_lines_of_one_pass_share_a_write_and_stay_before_later_lines(tmp_path):
    token = REQUEST_CONTEXT.set({"request_id": "r-1"})
    with recording(tmp_path) as stdout:
        started = time.perf_counter()
        for status in (200, 201, 404):
            log_request("GET", "/api/v1/genres", status, started)
        assert stdout.writes == []  # not yet: at the end of this pass
        structlog.get_logger("cinema.test").warning("something_else")  # flushes the pending lines first
        logging.getLogger("aiohttp.server").error("from the standard library")
    REQUEST_CONTEXT.reset(token)
    lines = stdout.lines()
    assert [line["event"] for line in lines] == [
        "http_request",
        "http_request",
        "http_request",
        "something_else",
        "from the standard library",
    ]
    assert [line["status"] for line in lines[:3]] == [200, 201, 404]
    assert len(stdout.writes[0].splitlines()) == 3  # one write for the three access lines
    access = lines[0]
    assert access["request_id"] == "r-1"
    assert access["level"] == "info"
    assert access["logger"] == "cinema.http"
    assert isinstance(access["duration_ms"], float)
    assert access["ts"].endswith("Z")
    assert time.strptime(access["ts"][:19], "%Y-%m-%dT%H:%M:%S")


async def test_the_end_of_the_pass_flushes_in_writes_a_pipe_keeps_whole(tmp_path):
    started = time.perf_counter()
    paths = [f"/api/v1/movies/{i}?{'x' * 150}" for i in range(100)]
    with recording(tmp_path) as stdout:
        for path in paths:
            log_request("GET", path, 200, started)
        await asyncio.sleep(0)  # the pass ends
    assert [line["path"] for line in stdout.lines()] == paths
    assert len(stdout.writes) > 1
    for write in stdout.writes:
        assert len(write) <= logs._BatchedStdout.LIMIT
        assert write.endswith(b"\n")


def test_without_an_event_loop_a_line_is_written_at_once(tmp_path):
    with recording(tmp_path) as stdout:
        log_request("GET", "/health/live", 200, time.perf_counter())
    [line] = stdout.lines()
    assert line["path"] == "/health/live"


def test_the_timestamp_has_structlogs_shape():
    ours = logs._timestamp()
    theirs = structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", {})["timestamp"]
    assert len(ours) == len(theirs) == len("2026-11-26T09:16:39.112177Z")
    assert ours[:16] == theirs[:16] or ours[:13] != theirs[:13]  # same minute, unless it just turned


async def test_lines_a_failed_write_took_are_not_written_twice(tmp_path):
    with recording(tmp_path) as stdout:
        failing = stdout.write

        def broken(data):
            raise BrokenPipeError

        stdout.write = broken  # type: ignore[method-assign]
        log_request("GET", "/lost", 200, time.perf_counter())
        with pytest.raises(BrokenPipeError):
            logs.flush_access_lines()
        stdout.write = failing  # type: ignore[method-assign]
        log_request("GET", "/kept", 200, time.perf_counter())
        logs.flush_access_lines()
    assert [line["path"] for line in stdout.lines()] == ["/kept"]


def _fail_holding(password: str) -> None:
    request_body = {"name": "private data"}
    raise RuntimeError(f"failed with {len(request_body)} field")


@pytest.mark.parametrize("show_locals", [False, True])
def test_tracebacks_show_frame_locals_only_when_asked(tmp_path, show_locals):
    with recording(tmp_path, log_locals=show_locals) as stdout:
        try:
            _fail_holding("hunter2")
        except RuntimeError:
            structlog.get_logger("cinema.test").exception("it_failed")
            logging.getLogger("aiohttp.server").exception("from the standard library")
    for line in stdout.lines():
        [exception] = line["exception"]
        assert exception["exc_value"] == "failed with 1 field"
        assert [frame["name"] for frame in exception["frames"]][-1] == "_fail_holding"
        assert all(("locals" in frame) is show_locals for frame in exception["frames"])
        assert ("private data" in json.dumps(line)) is show_locals
        assert "hunter2" not in json.dumps(line)  # shown locals still go through the secrets' redaction


async def test_an_error_line_holds_neither_the_secret_nor_the_authorization_header(
    tmp_path, aiohttp_client, settings, db, monkeypatch
):
    secret = "the-signing-key-" + "k" * 32
    app = create_app(attrs.evolve(settings, jwt_secret=secret))
    authorization = "Bearer " + TokenVerifier(secret).issue("tester", ttl=60)

    def broken_decode(jwt: str, key: str, **options: object) -> dict[str, object]:
        raise RuntimeError("the token library failed")  # a bug, with the token and the key in its frame

    monkeypatch.setattr("cinema.http.auth.jwt.decode", broken_decode)
    with recording(tmp_path, jwt_secret=secret) as stdout:
        client = await aiohttp_client(app)
        resp = await client.post("/api/v1/genres", json={"name": "Drama"}, headers={"Authorization": authorization})
        assert resp.status == 500
        logs.flush_access_lines()
    [error] = [line for line in stdout.lines() if line["event"] == "unhandled_error"]
    assert error["level"] == "error"
    assert error["exception"][0]["exc_value"] == "the token library failed"
    written = b"".join(stdout.writes)
    assert secret.encode() not in written
    assert authorization.split()[1].encode() not in written

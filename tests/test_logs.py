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

import pytest
import structlog

from cinema import logs
from cinema.context import REQUEST_CONTEXT
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
def recording(tmp_path: Path) -> Iterator[RecordingStdout]:
    """Production logging onto a recording stdout (inside the test: pytest swaps sys.stdout per phase)."""
    out = RecordingStdout()
    saved_stdout, root = sys.stdout, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sys.stdout = out  # type: ignore[assignment]
    try:
        configure_logging(Settings(database_url="postgresql://x@127.0.0.1/x", log_format="json", data_dir=tmp_path))
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

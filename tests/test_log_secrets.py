"""Tokens, secrets and Authorization headers never reach a log line, whatever logs them."""

from __future__ import annotations

import logging

import structlog

from cinema.http.auth import TokenVerifier
from tests.test_logs import recording

TOKEN = TokenVerifier("k" * 32).issue("someone")
SIGNATURE = TOKEN.rsplit(".", 1)[1]


def test_credentials_are_redacted_from_every_kind_of_line(tmp_path):
    with recording(tmp_path) as stdout:
        log = structlog.get_logger("cinema.test")
        log.warning("request_failed", authorization=f"Bearer {TOKEN}", headers={"Authorization": "Basic dXNlcjpw"})
        log.info("bad_header", detail=f"Invalid header: 'Authorization: Bearer {TOKEN}'", secret="hunter2")
        try:
            raise ValueError(f"could not use {TOKEN}")
        except ValueError:
            log.exception("unexpected")
        logging.getLogger("aiohttp.server").error("Error handling request: Authorization: bearer %s", TOKEN)
    text = b"".join(stdout.writes).decode()
    lines = stdout.lines()
    assert [line["event"] for line in lines] == ["request_failed", "bad_header", "unexpected", lines[3]["event"]]
    for secret in (SIGNATURE, "dXNlcjpw", "hunter2"):
        assert secret not in text
    assert lines[0]["authorization"] == "[redacted]"
    assert lines[1]["detail"] == "Invalid header: 'Authorization: [redacted]'"
    assert "[redacted]" in lines[3]["event"]

"""Hostile input for the property-based fuzzing of every way in: HTTP, the websocket, RabbitMQ.

The strategies make what a careless or malicious client sends: any Unicode (NUL, lone
surrogates, combining marks, right-to-left marks, 1 MB strings), any JSON shape, any bytes.
The tests using them (tests/http/test_fuzz.py, tests/bus/test_fuzz_commands.py) hold the
service to one property: never a 5xx or an internal error, never a dead actor or a closed
consumer, every refusal a documented problem, and a normal request still works afterwards.

CI runs a few examples per target, derandomized (a run depends on the code only). To explore,
set CINEMA_TEST_FUZZ_EXAMPLES=2000 (or more): that many examples per target, from a random seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cinema.actors.system import ActorSystem
from cinema.http.problems import PROBLEM_TYPES
from cinema.settings import Settings
from tests.conftest import TABLES

EXPLORE = int(os.environ.get("CINEMA_TEST_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int, **overrides: Any) -> settings:
    """`examples` in CI (reproducible), CINEMA_TEST_FUZZ_EXAMPLES from a random seed when set."""
    return settings(
        **overrides,
        max_examples=EXPLORE or examples,
        derandomize=not EXPLORE,
        database=None,
        deadline=None,
        # One service serves every example of a test (its state carries over, as in production).
        suppress_health_check=list(HealthCheck),
    )


# Characters that break naive code: NUL (PostgreSQL text cannot hold it), lone surrogates (not
# encodable as UTF-8), a combining mark with nothing to combine with, right-to-left and
# bidi-override marks, a byte-order mark, noncharacters, and ones that look like syntax.
NASTY = (
    "\x00", "\ud800", "\udfff", "\u0301", "\u200f", "\u202e", "\u2066", "\ufeff", "\uffff", "\U0010ffff",
    "\u00e9", "e\u0301", "\u0130", "\u1e9e", "\n", "\r\n", "\t", " ", "%", "%00", "'", '"', "\\", "/", "..",
    "{", "}", "[", "]", ",", ":", "&", "=", "?", "#", "+", "-", "*", "_", "a", "Z", "0", "9", "drama",
    "' OR 1=1 --", "$1", "<script>", "😀", "اختبار", "テスト",
)  # fmt: skip
# Values an endpoint may take, for `text` to spike.
WORDS = ("drama", "dr", "1", "20", "-id", "title", "movie", "genre,movie", "actor", "FR", "2001", "e1", "x")
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # surrogates included
MEGABYTE = 2**20


def text(*, surrogates: bool = True, huge: bool = True) -> st.SearchStrategy[str]:
    """Any text, leaning towards the nasty kind (a plausible word with a nasty character in it, most
    often); now and then about a megabyte of it."""
    alphabet = ANY_CHARACTER if surrogates else st.characters(codec="utf-8")
    nasty = NASTY if surrogates else tuple(c for c in NASTY if c not in ("\ud800", "\udfff"))
    worst = nasty[:10]  # NUL, surrogates, marks: the characters most likely to break something
    spiked = st.builds(lambda word, c, at: word[:at] + c + word[at:], st.sampled_from(WORDS), st.sampled_from(worst),
                       st.integers(0, 8))  # fmt: skip
    options = [
        spiked,
        spiked,
        spiked,
        st.text(alphabet, max_size=40),
        st.lists(st.sampled_from(nasty), max_size=12).map("".join),
        st.integers(-(2**70), 2**70).map(str),
    ]
    if huge:
        options.append(st.builds(lambda piece, extra: piece * (MEGABYTE // len(piece)) + extra,
                                 st.sampled_from(nasty), st.sampled_from(nasty)))  # fmt: skip
    return st.one_of(options)


def json_values(keys: st.SearchStrategy[str] | None = None, *, huge: bool = True) -> st.SearchStrategy[Any]:
    """Any JSON value: nested arrays and objects of nasty strings, numbers past 64 bits, floats."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        text(huge=huge),
    )
    names = st.one_of(keys, text(huge=False)) if keys is not None else text(huge=False)
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(names, children, max_size=6)),
        max_leaves=12,
    )


def json_bytes(value: Any) -> st.SearchStrategy[bytes]:
    """`value` as JSON bytes, several ways: escaped (lone surrogates as \\ud800), raw UTF-8 where it can
    be (surrogates then make it invalid UTF-8), and a truncated copy (malformed JSON)."""
    escaped = json.dumps(value).encode()  # Infinity for infinite floats: not JSON either
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return st.sampled_from([escaped, raw, escaped[: len(escaped) // 2]])


def module_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a fuzzed service that lives for its test module, on an emptied database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return Settings(database_url=database_url, migrate_on_start=False, data_dir=data_dir, ask_timeout=5, **overrides)


def assert_documented_problem(status: int, content_type: str, body: Any, documented: set[int] | None) -> None:
    """A refusal is a problem of a known type and its status, documented for the operation."""
    assert status < 500, body
    if status < 400:
        return
    if documented is not None:
        assert status in documented, (status, body)
    assert content_type == "application/problem+json", (status, content_type, body)
    assert isinstance(body, dict), body
    slug = str(body.get("type", "")).removeprefix("/problems/")
    assert slug in PROBLEM_TYPES, body
    assert body["status"] == status, body
    assert PROBLEM_TYPES[slug].status in (None, status), body


def assert_actors_alive(system: ActorSystem) -> None:
    """No actor crashed its loop (a handler's failure fails only its message)."""
    for stats in system.stats():
        assert stats.restarts == 0, stats

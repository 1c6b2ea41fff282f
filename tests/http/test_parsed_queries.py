"""List queries are parsed once per raw query string, within a bound, and never remembered when they fail."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import MultiMapping

from cinema.errors import BadRequest
from cinema.http.cached import ParsedQueries
from cinema.http.movies import LIST_QUERIES


def counting(size: int = 1024) -> tuple[ParsedQueries[tuple[str, ...]], list[str]]:
    calls: list[str] = []

    def parse(params: MultiMapping[str]) -> tuple[str, ...]:
        calls.append(",".join(params.getall("genre", [])))
        if "bad" in params:
            raise BadRequest("bad parameter")
        return tuple(params.getall("genre", []))

    return ParsedQueries(parse, size), calls


def get(path: str):
    return make_mocked_request("GET", path)


def test_a_query_string_is_parsed_once():
    parsed, calls = counting()
    assert parsed(get("/api/v1/movies?genre=drama&genre=crime")) == ("drama", "crime")
    assert parsed(get("/api/v1/movies?genre=drama&genre=crime")) == ("drama", "crime")
    assert calls == ["drama,crime"]


def test_the_raw_string_is_the_key_so_an_encoded_ampersand_stays_one_value():
    parsed, _ = counting()
    assert parsed(get("/api/v1/movies?genre=a%26b")) == ("a&b",)
    assert parsed(get("/api/v1/movies?genre=a&b")) == ("a",)


def test_a_failing_query_raises_every_time():
    parsed, calls = counting()
    for _ in range(2):
        with pytest.raises(BadRequest):
            parsed(get("/api/v1/movies?bad=1"))
    assert len(calls) == 2


def test_the_oldest_goes_first_past_the_bound():
    parsed, calls = counting(size=2)
    for genre in ("a", "b", "c", "c", "b", "a"):
        parsed(get(f"/api/v1/movies?genre={genre}"))
    assert calls == ["a", "b", "c", "a"]  # "a" was dropped when "c" came; "b" and "c" stayed


def test_the_movie_list_keys_equal_pages_alike_and_different_filters_apart():
    ident, message = LIST_QUERIES(get("/api/v1/movies?genre=drama&limit=20"))
    same, _ = LIST_QUERIES(get("/api/v1/movies?limit=20&genre=drama"))
    other, _ = LIST_QUERIES(get("/api/v1/movies?genre=crime&limit=20"))
    assert ident == same != other
    assert message.filter.genres == ("drama",)

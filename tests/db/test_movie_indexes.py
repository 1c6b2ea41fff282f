"""Each sort key and range filter of the movie list is served by an index on the same expression.

An index only serves a query whose expression is exactly the indexed one; a sort key
changed in cinema/db/movies.py without its index (or the reverse) would silently turn
every page into a scan and a sort. With scans and sorts priced out, the planner shows
whether a matching index exists.
"""

from __future__ import annotations

import pytest

from cinema.db.movies import SORTS, MovieFilter, _filter_params, _list_sql

INDEXES = {
    "id": "movies_pkey",
    "title": "movies_title_idx",
    "release_year": "movies_release_year_idx",
    "rating": "movies_rating_idx",
    "created_at": "movies_created_at_idx",
}


async def plan(db, sql, *params):
    await db.execute("SET enable_seqscan = off; SET enable_sort = off; SET enable_bitmapscan = off")
    try:
        return "\n".join(r[0] for r in await db.fetch("EXPLAIN " + sql, *params))
    finally:
        await db.execute("RESET ALL")


def test_every_sort_has_an_index():
    assert set(INDEXES) == set(SORTS)


@pytest.mark.parametrize("field", sorted(INDEXES))
@pytest.mark.parametrize("descending", [False, True])
async def test_each_page_is_a_range_scan_of_its_sort_index(db, field, descending):
    key = SORTS[field]
    value = {int: 1, str: "a", float: 1.0}.get(key.type)
    if value is None:
        value = await db.fetchval("SELECT now()")
    first = await plan(db, _list_sql((), key.expr, descending, False), 21)
    after = await plan(db, _list_sql((), key.expr, descending, True), 21, value, 1)
    for shown in (first, after):
        assert f"Index Scan{' Backward' if descending else ''} using {INDEXES[field]}" in shown, shown
        assert "Sort" not in shown.split("SubPlan")[0], shown


async def test_year_range_filters_use_the_release_year_index(db):
    present = _filter_params(MovieFilter(year_from=1990, year_to=1999))
    sql = _list_sql(tuple((n, len(p)) for n, p in present), SORTS["release_year"].expr, False, False)
    shown = await plan(db, sql, 1990, 1999, 21)
    assert "movies_release_year_idx" in shown, shown
    assert "Index Cond: ((COALESCE((release_year)::integer, 0) >= 1990)" in shown, shown

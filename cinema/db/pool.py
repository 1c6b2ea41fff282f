"""The connection pool every process uses, and the session its connections keep."""

from __future__ import annotations

import asyncpg

# Timestamps rendered by PostgreSQL (row_to_json) are RFC 3339 in UTC whatever the server's zone.
# No JIT: on short queries its compilation (hundreds of ms when the planner's estimates are
# high, as on tables not analyzed yet) costs far more than it saves.
# Generic plans: the catalog's statements are prepared once per connection, and their plans do
# not depend on the values given (keyset pages, ids, filters as semi-joins); replanning every
# execution cost more than the queries themselves (a list page: 0.75 ms -> 0.51 ms).
SESSION = {"timezone": "UTC", "jit": "off", "plan_cache_mode": "force_generic_plan"}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is: no reset query, one round trip less per request.

    asyncpg's default reset (UNLISTEN, RESET ALL, unlock advisory locks, CLOSE ALL) costs a
    round trip on every release. Pooled connections never change their session: settings come
    from SESSION at connect, advisory locks are transaction-scoped or released in `finally`,
    and LISTEN runs on dedicated connections. asyncpg still rolls back a transaction left open.
    """


def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    """A pool of up to `size` connections (await it, or use it as `async with`)."""
    return asyncpg.create_pool(dsn, min_size=min(2, size), max_size=size, server_settings=SESSION, reset=_keep_session)

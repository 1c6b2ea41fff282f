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


# Seconds a pooled session may stay idle inside a transaction before the server ends it.
IDLE_IN_TRANSACTION = 2.0


def create_pool(dsn: str, size: int, deadline: float | None = None) -> asyncpg.Pool:
    """A pool of up to `size` connections (await it, or use it as `async with`).

    With a `deadline`: a deadline on connecting and on every statement, so a connection the network
    dropped without a reset fails its statement (503) and is replaced, instead of holding a catalog
    worker until the kernel gives up on it, many minutes later. And the server ends a transaction
    its client left idle (a frozen process or network) after IDLE_IN_TRANSACTION seconds at most:
    it may hold the lock that orders the outbox, which every writer of every instance waits for,
    and the frozen instance's other writers queue for it after it, each to hold it as long (the
    service's transactions never idle between their statements; `reindex`'s snapshot does, while
    it writes to the index, so it runs without one).
    """
    if deadline is None:
        return asyncpg.create_pool(
            dsn, min_size=min(2, size), max_size=size, server_settings=SESSION, reset=_keep_session
        )
    idle_ms = round(min(IDLE_IN_TRANSACTION, deadline / 2) * 1000)
    return asyncpg.create_pool(
        dsn,
        min_size=min(2, size),
        max_size=size,
        server_settings=SESSION | {"idle_in_transaction_session_timeout": str(idle_ms)},
        reset=_keep_session,
        timeout=deadline,
        command_timeout=deadline,
    )

"""The request being served, as every part of a process sees it (logs, actors, error reports).

One ContextVar set once per request by the edge (cheaper than clearing and binding structlog's
context variables on the hot path); actor messages carry their sender's, so an actor's work is
attributed to the request that asked for it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

REQUEST_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("cinema_request", default=None)

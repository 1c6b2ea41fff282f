"""/api/v1/search/stream: streaming and live search over a websocket (API.md, "Streaming search").

Per socket, the handler reads frames and one writer task sends what is queued, in order,
from a bounded queue (`search_stream_buffer` frames). Query results wait for room in the
queue (a query cannot outrun its client); live hits cannot wait (they come from the
process's one dispatcher), so a live hit that finds the queue full disconnects the client,
and so does a frame the client does not take within `search_stream_send_timeout`. Memory
per client is therefore bounded: the queue plus the transport's own high-water mark.

Each query runs as one task; a newer query with the same id cancels it, and frames it had
queued are dropped by the writer. Live queries register with the process's `LiveSearch`
dispatcher, which pushes new hits into the same queue: no task per query per document.
Hits that arrive for a live query before its `done` are held until then (up to its
limit), so every query answers hits, then `done`, then live hits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from functools import partial
from typing import Any

import attrs
import orjson
import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from cinema.actors.base import ActorError
from cinema.actors.indexer import IndexerActor, Search
from cinema.convert import structure
from cinema.errors import (
    BadRequest,
    Conflict,
    DomainError,
    FieldError,
    RateLimited,
    Unavailable,
    ValidationFailed,
    problem_document,
)
from cinema.http.edge import CLIENT
from cinema.http.keys import INDEXER, LIVE_SEARCH, RATE_LIMITER, SETTINGS, STREAM_CLIENTS
from cinema.http.ratelimit import Budget, LocalLimiter
from cinema.http.search import TAG, search_query
from cinema.http.spec import describe
from cinema.models import meta
from cinema.search.backend import SearchQuery
from cinema.search.live import Clients, LiveQuery, LiveSearch
from cinema.settings import Settings

log = structlog.get_logger("cinema.http")

routes = web.RouteTableDef()

STREAM = "/api/v1/search/stream"
MAX_FRAME = 16 * 1024
QUERY_ID = meta(minLength=1, maxLength=64)


@attrs.frozen
class StreamQuery:
    id: str = attrs.field(metadata=QUERY_ID)
    q: str
    type: list[str] = attrs.field(factory=list)
    limit: int = 20
    live: bool = False


@attrs.frozen
class StreamCancel:
    id: str = attrs.field(metadata=QUERY_ID)
    cancel: bool


class InternalError(DomainError):
    status, slug, title = 500, "internal-error", "Internal server error"


class _Query:
    """One query of a socket, from its frame until it is done (or, when live, cancelled)."""

    __slots__ = ("cancelled", "done", "held", "id", "live", "prefix", "query", "task")

    def __init__(self, query_id: str, query: SearchQuery) -> None:
        self.id = query_id
        self.query = query
        self.prefix = '{"id":' + orjson.dumps(query_id).decode()  # every frame of this query starts so
        self.cancelled = False
        self.done = False
        self.held: list[str] = []  # live hits that came before `done`
        self.live: LiveQuery | None = None
        self.task: asyncio.Task[None] | None = None

    def hit(self, hit: str) -> str:
        return f'{self.prefix},"event":"hit","hit":{hit}}}'


class StreamSession:
    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        indexer: IndexerActor,
        live: LiveSearch,
        clients: Clients,
        settings: Settings,
    ) -> None:
        self.request = request
        self.ws = ws
        self.indexer = indexer
        self.live = live
        self.clients = clients
        self.max_queries = settings.search_stream_queries
        self.max_live = settings.search_stream_live
        # Frames this client may send: its own budget, counted on this socket alone.
        self.frames, self.frame_budget = LocalLimiter(), Budget("frames", settings.search_stream_rate, 1.0)
        # Each query also spends the client's search budget, shared with GET /search.
        limiter = request.app.get(RATE_LIMITER)
        self.limiter = limiter
        self.search_budget = limiter.budgets.get("search") if limiter is not None else None
        self.client = request.get(CLIENT, "unknown")
        self.send_timeout = settings.search_stream_send_timeout
        # The frames waiting to be sent. Not an asyncio.Queue: when the client is dropped,
        # every sender waiting for room must be released at once (`room` wakes them all).
        self.outbox: deque[tuple[_Query | None, str]] = deque()
        self.buffer = settings.search_stream_buffer
        self.room = asyncio.Event()
        self.waiting = asyncio.Event()
        self.queries: dict[str, _Query] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.writer: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self.clients.open.add(self)
        self.writer = asyncio.create_task(self._write(), name="search-stream:writer")
        try:
            async for message in self.ws:
                if message.type is WSMsgType.TEXT:
                    await self._receive(message.data)
                elif message.type is WSMsgType.BINARY:
                    await self._error(None, BadRequest("Send queries as JSON text frames."))
                else:  # an error on the connection
                    break
        finally:
            self.closing = True
            self.clients.open.discard(self)
            for state in list(self.queries.values()):
                self._stop(state)
            for task in (self.writer, *self.tasks):
                task.cancel()
            await asyncio.gather(self.writer, *self.tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # -- frames in ---------------------------------------------------------------

    async def _receive(self, text: str) -> None:
        try:
            self.frames.admit(self.frame_budget, "")
        except RateLimited as exc:
            await self._error(None, exc)
            return
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await self._error(None, BadRequest(f"The frame is not valid JSON: {exc}."))
            return
        frame_id = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        try:
            if isinstance(data, dict) and "cancel" in data:
                cancel = structure(data, StreamCancel)
                if not cancel.cancel:
                    raise ValidationFailed("Nothing to do.", errors=[FieldError("cancel", "must be true")])
                state = self.queries.pop(cancel.id, None)
                if state is not None:
                    self._stop(state)
            else:
                if isinstance(data, dict) and not isinstance(data.get("type", []), list):
                    # cattrs would take a string as a list of its characters.
                    raise ValidationFailed("Invalid query.", errors=[FieldError("type", "must be a list")])
                query = structure(data, StreamQuery)
                if self.search_budget is not None:
                    await self.limiter.admit(self.search_budget, self.client)  # type: ignore[union-attr]
                self._start(query)
        except DomainError as exc:
            await self._error(frame_id, exc)

    def _start(self, frame: StreamQuery) -> None:
        query = search_query(frame.q, frame.type, frame.limit)
        replaced = self.queries.pop(frame.id, None)
        if replaced is not None:
            self._stop(replaced)
        if len(self.queries) >= self.max_queries:
            raise Conflict(f"At most {self.max_queries} queries may be open on one socket; cancel one first.")
        if frame.live and sum(q.live is not None for q in self.queries.values()) >= self.max_live:
            raise Conflict(f"At most {self.max_live} live queries may be open on one socket; cancel one first.")
        state = _Query(frame.id, query)
        self.queries[frame.id] = state
        if frame.live:
            state.live = LiveQuery(state.query, partial(self._push_live, state))
            self.live.add(state.live)
        state.task = asyncio.create_task(self._search(state), name="search-stream:query")
        self.tasks.add(state.task)
        state.task.add_done_callback(self.tasks.discard)

    def _stop(self, state: _Query) -> None:
        state.cancelled = True
        if state.task is not None:
            state.task.cancel()
        if state.live is not None:
            self.live.discard(state.live)

    # -- a query -----------------------------------------------------------------

    async def _search(self, state: _Query) -> None:
        started = time.perf_counter()
        try:
            hits = (await self.indexer.ask(Search(state.query))).items
        except (DomainError, ActorError) as exc:
            error = exc if isinstance(exc, DomainError) else Unavailable("Search is busy; retry shortly.")
            await self._fail(state, error)
            return
        except Exception:  # a bug: the client gets no internals, the log gets the traceback
            log.exception("search_stream_query_failed")
            await self._fail(state, InternalError("An unexpected error occurred; it was logged."))
            return
        for hit in hits:
            await self._send(state, state.hit(hit))
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        await self._send(state, f'{state.prefix},"event":"done","count":{len(hits)},"took_ms":{took_ms}}}')
        state.done = True
        for hit in state.held:
            await self._send(state, state.hit(hit))
        state.held.clear()
        if state.live is None:
            self._forget(state)

    async def _fail(self, state: _Query, error: DomainError) -> None:
        self._forget(state)
        await self._error(state.id, error, state)

    def _forget(self, state: _Query) -> None:
        if self.queries.get(state.id) is state:
            del self.queries[state.id]
        if state.live is not None:
            self.live.discard(state.live)

    def _push_live(self, state: _Query, hit: str) -> None:
        """Called by the dispatcher, which must not wait: a full queue means the client is gone."""
        if state.cancelled or self.closing:
            return
        if not state.done:
            if len(state.held) < state.query.limit:
                state.held.append(hit)
            return
        if len(self.outbox) >= self.buffer:
            self._drop_client("its send buffer is full")
            return
        self._queue(state, state.hit(hit))

    # -- frames out --------------------------------------------------------------

    async def _error(self, query_id: str | None, exc: DomainError, state: _Query | None = None) -> None:
        problem = problem_document(exc.status, exc.slug, exc.title, exc.detail, STREAM, exc.errors)
        frame: dict[str, Any] = {"id": query_id, "event": "error", "problem": problem}
        await self._send(state, orjson.dumps(frame).decode())

    async def _send(self, state: _Query | None, frame: str) -> None:
        """Queue a frame, waiting for room (the client reads slowly) unless the client is gone."""
        while len(self.outbox) >= self.buffer and not self.closing:
            self.room.clear()
            await self.room.wait()
        if not self.closing:
            self._queue(state, frame)

    def _queue(self, state: _Query | None, frame: str) -> None:
        self.outbox.append((state, frame))
        self.waiting.set()

    def full(self) -> bool:
        return len(self.outbox) >= self.buffer

    def _drop_client(self, reason: str) -> None:
        """Disconnect a client that stopped reading (a close frame would wait behind the backlog)."""
        if self.closing:
            return
        self.closing = True
        self.room.set()  # senders waiting for room give up
        self.clients.dropped += 1
        log.warning("search_stream_client_dropped", reason=reason, waiting=len(self.outbox))
        if self.request.transport is not None:
            self.request.transport.abort()

    async def _write(self) -> None:
        while True:
            while not self.outbox:
                self.waiting.clear()
                await self.waiting.wait()
            state, frame = self.outbox.popleft()
            self.room.set()
            if state is not None and state.cancelled:
                continue  # a replaced or cancelled query's leftovers
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self.ws.send_str(frame)
            except TimeoutError:
                self._drop_client(f"a frame waited {self.send_timeout:g}s to be taken")
                return
            except ConnectionError:
                return


@routes.get(STREAM)
@describe(
    "Streaming and live search (a websocket; frames as in API.md)", tag=TAG, status=101, errors=(400,), budget="search"
)
async def stream(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=settings.search_stream_heartbeat, max_msg_size=MAX_FRAME)
    if not ws.can_prepare(request).ok:
        raise BadRequest("This endpoint is a websocket: send an Upgrade request.")
    await ws.prepare(request)
    app = request.app
    session = StreamSession(request, ws, app[INDEXER], app[LIVE_SEARCH], app[STREAM_CLIENTS], settings)
    with contextlib.suppress(ConnectionError):
        await session.run()
    return ws

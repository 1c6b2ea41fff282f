"""A TCP proxy a test controls, between the service and one server, to inject network faults.

Each test starts proxies of its own and points the service's settings at them, so a fault
never touches the servers other tests (and other test sessions) share:

    cut()      drop every connection through the proxy now (both sides see a reset)
    refuse()   close new connections as soon as they are accepted (a server that is gone)
    stall()    accept, but forward nothing either way: a hung server or a silent partition;
               what was held is delivered on restore(), as TCP would after a partition heals
    heal()     after stall(): new connections work again; the server forgets the stalled ones
               (they are closed on its side, as after a failover or its keepalive giving up),
               while the client's side stays open and silent for good, never reset
    slow(s)    forward each chunk `s` seconds late
    restore()  forward normally again
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from yarl import URL


class _Link:
    """One connection through the proxy."""

    def __init__(self, upstream: asyncio.StreamWriter, flowing: bool) -> None:
        self.upstream = upstream
        self.flowing = asyncio.Event()  # set while it forwards
        if flowing:
            self.flowing.set()
        self.forgotten = False  # closed on the server's side, silent on the client's


class Proxy:
    """Forwards 127.0.0.1:<port> to `target`."""

    def __init__(self, host: str, port: int | None = None) -> None:
        self.target = (host, port)  # no port: `host` is a Unix socket's path
        self.refusing = False
        self.delay = 0.0
        self.port = 0
        self.connections = 0  # accepted and forwarded, since start
        self._stalled = False
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @classmethod
    async def to(cls, url: str) -> Proxy:
        """A started proxy to the server of `url` (its `via(url)` is the URL through the proxy)."""
        parsed = URL(url)
        if "host" in parsed.query:  # libpq's socket folder (the embedded PostgreSQL)
            return await cls(f"{parsed.query['host']}/.s.PGSQL.{parsed.port or 5432}").start()
        assert parsed.port is not None, f"{url} names no port"
        return await cls(parsed.host or "127.0.0.1", parsed.port).start()

    def via(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        parsed = URL(url)
        query = {key: value for key, value in parsed.query.items() if key != "host"}
        return str(parsed.with_host("127.0.0.1").with_port(self.port).with_query(query))

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    # -- faults ---------------------------------------------------------------------

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def refuse(self) -> None:
        self.refusing = True

    def stall(self) -> None:
        self._stalled = True
        for link in self._links:
            link.flowing.clear()

    def heal(self) -> None:
        self._stalled = False
        for link in self._links:
            link.forgotten = True
            link.upstream.transport.abort()
        self._links.clear()  # never to flow again

    def slow(self, delay: float) -> None:
        self.delay = delay

    def restore(self) -> None:
        self.refusing = False
        self.delay = 0.0
        self._stalled = False
        for link in self._links:
            link.flowing.set()

    def down(self) -> None:
        """The server went away: every connection cut, new ones refused."""
        self.refuse()
        self.cut()

    # -- plumbing -------------------------------------------------------------------

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            host, port = self.target
            if port is None:
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(host)
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, upstream_writer}
        link = _Link(upstream_writer, flowing=not self._stalled)
        self._links.add(link)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink, link))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                await link.flowing.wait()
                if sink.transport.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        if link.forgotten:  # the client's side hears nothing more, not even a reset
            await asyncio.Event().wait()
        sink.transport.abort()
        self._writers.discard(sink)
        self._links.discard(link)

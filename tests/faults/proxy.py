"""A TCP proxy a test controls, between the service and one server, to inject network faults.

Each test starts proxies of its own and points the service's settings at them, so a fault
never touches the servers other tests (and other test sessions) share:

    cut()      drop every connection through the proxy now (both sides see a reset)
    refuse()   close new connections as soon as they are accepted (a server that is gone)
    stall()    accept, but forward nothing either way: a hung server or a silent partition;
               what was held is delivered on restore(), as TCP would after a partition heals
    slow(s)    forward each chunk `s` seconds late
    restore()  forward normally again
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from yarl import URL


class Proxy:
    """Forwards 127.0.0.1:<port> to `target`."""

    def __init__(self, host: str, port: int | None = None) -> None:
        self.target = (host, port)  # no port: `host` is a Unix socket's path
        self.refusing = False
        self.delay = 0.0
        self.port = 0
        self.connections = 0  # accepted and forwarded, since start
        self._flowing = asyncio.Event()
        self._flowing.set()
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
        self._flowing.clear()

    def slow(self, delay: float) -> None:
        self.delay = delay

    def restore(self) -> None:
        self.refusing = False
        self.delay = 0.0
        self._flowing.set()

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
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                await self._flowing.wait()
                if sink.transport.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._writers.discard(sink)

"""A coredis client held by an owner task: coredis 6 requires a client to be entered and exited in one task.

aiohttp's cleanup contexts (and pytest-aiohttp) start and stop resources in different tasks, so the
shared cache and the rate limiter each keep their client inside a task of its own, which enters it,
waits for `stop`, and exits it.
"""

from __future__ import annotations

import asyncio

import coredis


async def open_owned(
    url: str, timeout: float, stop: asyncio.Event, name: str
) -> tuple[coredis.Redis[bytes], asyncio.Task[None]]:
    """A client for `url` with `timeout` on every step, and the task that owns it until `stop` is set.

    No connection is made yet; raises what ended the owner when it could not even enter the client.
    """
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url, connect_timeout=timeout, stream_timeout=timeout, pool_timeout=timeout
    )
    ready = asyncio.Event()

    async def own() -> None:
        async with client:
            ready.set()
            await stop.wait()

    owner = asyncio.create_task(own(), name=name)
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([waiting, owner], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if owner.done():
        owner.result()
    return client, owner

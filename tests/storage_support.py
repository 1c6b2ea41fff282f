"""What the upload and storage tests share: moto's S3 server, both backends' settings, test images."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from PIL import Image

from cinema.http.keys import STORAGE
from cinema.settings import Settings
from cinema.storage import open_storage
from tests.conftest import eventually


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free 127.0.0.1 port, for the session (each test has its own bucket)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # it logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[union-attr]
    finally:
        server.stop()


def s3(settings: Settings, endpoint: str, bucket: str | None = None) -> Settings:
    return attrs.evolve(
        settings,
        s3_bucket=bucket or f"cinema-test-{secrets.token_hex(4)}",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )


async def create_bucket(settings: Settings) -> None:
    async with open_storage(settings) as storage:
        await storage.client.create_bucket(Bucket=settings.s3_bucket)  # type: ignore[attr-defined]


@pytest.fixture
async def s3_settings(settings: Settings, moto_endpoint: str) -> Settings:
    configured = s3(settings, moto_endpoint)
    await create_bucket(configured)
    return configured


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage_settings(request: pytest.FixtureRequest, backend: str, settings: Settings) -> Settings:
    """The test settings with local storage, then with moto's S3 (the test runs once with each)."""
    chosen: Settings = request.getfixturevalue("s3_settings") if backend == "s3" else settings
    return attrs.evolve(chosen, upload_retry_delay=0.05, upload_poll_interval=0.2, storage_sweep_interval=0)


# -- images ----------------------------------------------------------------------------------


def image(
    fmt: str, width: int = 640, height: int = 960, color: tuple[int, int, int] = (200, 30, 30), **save: Any
) -> bytes:
    picture = Image.new("RGB", (width, height), color)
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **save)
    return buffer.getvalue()


def png(width: int = 640, height: int = 960, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    return image("PNG", width, height, color)


def jpeg_with_gps(width: int = 800, height: int = 600) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    gps = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 7.0)}
    exif[0x8825] = gps  # GPSInfo
    return image("JPEG", width, height, exif=exif.tobytes())


def noise_png(width: int, height: int) -> bytes:
    """Incompressible: a PNG about width * height * 3 bytes long."""
    picture = Image.frombytes("RGB", (width, height), secrets.token_bytes(width * height * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


# -- waiting and looking -----------------------------------------------------------------------


async def finished(client: Any, location: str, timeout: float = 10.0) -> dict[str, Any]:
    """The upload at `location` once it is no longer pending."""
    body: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal body
        resp = await client.get(location)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return body["status"] != "pending"

    await eventually(done, timeout)
    return body


async def stored_keys(app: web.Application, prefix: str = "") -> set[str]:
    return {item.key async for item in app[STORAGE].list(prefix)}


async def fetch(client: Any, url: str) -> tuple[int, str, bytes]:
    """GET an image URL as a browser would (following /media/'s redirect to S3): status, type, bytes."""
    resp = await client.get(url)
    return resp.status, resp.content_type, await resp.read()


async def aiter_chunks(total: int, chunk: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """A request body streamed in chunks (no Content-Length)."""
    block = b"\xff\xd8\xff" + b"\0" * (chunk - 3)
    sent = 0
    while sent < total:
        yield block
        sent += len(block)

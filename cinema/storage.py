"""Object storage: S3 (AWS, MinIO; through aiobotocore) or the local filesystem, behind one small interface.

The local backend is the embedded default (no `CINEMA_S3_BUCKET`): objects are files under
`<data dir>/media/<key>`, written to a temporary name and renamed, so a key never shows half an
object; the app serves them at `/media/<key>`.

Failures come out as two kinds: `TransientStorageError` (the store is unreachable, slow or
overloaded: retry later) and `PermanentStorageError` (the request itself is refused: access
denied, no such bucket), which the uploader turns into retries or a failed upload.

`media_url(key)` is the one place a key becomes the URL documents show (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol

import attrs
import botocore.exceptions
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from cinema.settings import Settings

log = structlog.get_logger("cinema.storage")

MEDIA_PATH = "/media/"
DELETE_BATCH = 1000  # S3's DeleteObjects takes at most this many keys


class StorageError(Exception):
    pass


class TransientStorageError(StorageError):
    """Worth retrying: the store did not answer, or answered that it cannot serve now."""


class PermanentStorageError(StorageError):
    """Retrying the same request will fail the same way (refused, misconfigured)."""


@attrs.frozen
class StoredObject:
    key: str
    modified: dt.datetime  # aware, UTC
    size: int


class Storage(Protocol):
    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; a key that does not exist is no error."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (which ends with "/"); returns how many."""

    def list(self, prefix: str = "") -> AsyncIterator[StoredObject]: ...

    async def presigned_get(self, key: str, ttl: int) -> str | None:
        """A time-limited GET URL of the object, or None where the app serves it itself (local)."""


def media_url(settings: Settings, key: str) -> str:
    """The URL of an object, as resources show it: immutable, because keys are content-addressed.

    The configured public base URL (a CDN in front of the bucket) when there is one; otherwise the
    service's own `/media/<key>`, which serves the file (local storage) or redirects to a presigned
    GET URL valid for `CINEMA_MEDIA_URL_TTL` (S3). A presigned URL is made per request there and
    never stored: stored documents, cached bodies and events would outlive its expiry.
    """
    if settings.media_base_url is not None:
        return settings.media_base_url.rstrip("/") + "/" + key
    return MEDIA_PATH + key


# -- local files -----------------------------------------------------------------------


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(self._write, key, lambda target: shutil.copyfile(path, target))

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, key, lambda target: target.write_bytes(data))

    def _write(self, key: str, write: Any) -> None:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            try:
                write(temporary)
                os.replace(temporary, target)  # atomic: readers see the whole object or none
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as exc:
            raise TransientStorageError(f"writing {key}: {exc}") from exc

    async def delete(self, keys: Iterable[str]) -> None:
        def remove(paths: list[Path]) -> None:
            for path in paths:
                path.unlink(missing_ok=True)
                _remove_empty_parents(path.parent, self.root)

        await asyncio.to_thread(remove, [self.path(key) for key in keys])

    async def delete_prefix(self, prefix: str) -> int:
        def remove() -> int:
            folder = self.path(prefix.rstrip("/"))
            if not folder.is_dir():
                return 0
            count = sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder, ignore_errors=True)
            _remove_empty_parents(folder.parent, self.root)
            return count

        return await asyncio.to_thread(remove)

    async def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        def walk() -> list[StoredObject]:
            """Files under the prefix's folder; os.walk and the stat tolerate what a concurrent delete removes."""
            found = []
            start = self.root / prefix.rpartition("/")[0]
            for folder, _, names in os.walk(start):
                for name in names:
                    path = Path(folder, name)
                    key = path.relative_to(self.root).as_posix()
                    if name.startswith(".") or not key.startswith(prefix):
                        continue
                    try:
                        stat = path.stat()
                    except FileNotFoundError:
                        continue
                    found.append(StoredObject(key, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC), stat.st_size))
            return sorted(found, key=lambda item: item.key)

        for item in await asyncio.to_thread(walk):
            yield item

    async def presigned_get(self, key: str, ttl: int) -> str | None:
        return None


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# -- S3 --------------------------------------------------------------------------------

# S3 error codes worth retrying although they come as a client error.
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "SlowDown", "Throttling", "ThrottlingException", "RequestTimeTooSkewed"}
)


def _translate(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = str(error.get("Code", ""))
        message = f"{action}: {code or status} {error.get('Message', '')}".strip()
        if status >= 500 or code in _TRANSIENT_CODES:
            return TransientStorageError(message)
        return PermanentStorageError(message)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return PermanentStorageError(f"{action}: {exc}")
    return TransientStorageError(f"{action}: {exc}")


# What a storage call can raise besides a client error: connection failures and timeouts.
_FAILURES = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError, asyncio.TimeoutError)


class S3Storage:
    """A bucket reached through an aiobotocore client that `open_storage` owns."""

    def __init__(self, client: Any, bucket: str, multipart_threshold: int) -> None:
        self.client = client
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        size = (await asyncio.to_thread(path.stat)).st_size
        if size < self.multipart_threshold:
            await self.put_bytes(key, await asyncio.to_thread(path.read_bytes), content_type)
            return
        await self._put_multipart(key, path, content_type)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except _FAILURES as exc:
            raise _translate(f"storing {key}", exc) from exc

    async def _put_multipart(self, key: str, path: Path, content_type: str) -> None:
        """Part by part (each `multipart_threshold` bytes, read when sent): memory stays at one part."""
        try:
            created = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        except _FAILURES as exc:
            raise _translate(f"starting the multipart upload of {key}", exc) from exc
        upload_id = created["UploadId"]
        try:
            parts = []
            with path.open("rb") as file:
                number = 1
                while chunk := await asyncio.to_thread(file.read, self.multipart_threshold):
                    sent = await self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append({"PartNumber": number, "ETag": sent["ETag"]})
                    number += 1
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            with contextlib.suppress(*_FAILURES):  # best effort; a bucket lifecycle rule cleans up the rest
                await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, _FAILURES):
                raise _translate(f"storing {key} in parts", exc) from exc
            raise

    async def delete(self, keys: Iterable[str]) -> None:
        pending = list(keys)
        for i in range(0, len(pending), DELETE_BATCH):
            batch = [{"Key": key} for key in pending[i : i + DELETE_BATCH]]
            try:
                answer = await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except _FAILURES as exc:
                raise _translate("deleting objects", exc) from exc
            errors = answer.get("Errors") or []
            if errors:
                raise TransientStorageError(f"deleting {errors[0].get('Key')}: {errors[0].get('Code')}")

    async def delete_prefix(self, prefix: str) -> int:
        keys = [item.key async for item in self.list(prefix)]
        await self.delete(keys)
        return len(keys)

    async def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"], item["LastModified"], item["Size"])
        except _FAILURES as exc:
            raise _translate("listing objects", exc) from exc

    async def presigned_get(self, key: str, ttl: int) -> str:
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl
        )
        return url


@contextlib.asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """The configured storage for as long as the block runs (an S3 client is closed after it)."""
    if settings.s3_bucket is None:
        root = settings.data_dir / "media"
        root.mkdir(parents=True, exist_ok=True)
        yield LocalStorage(root)
        return
    config = AioConfig(
        s3={"addressing_style": "path"},  # MinIO and IP endpoints need it; AWS accepts it
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=30,
        # One quick retry inside botocore; longer outages are the uploader's back-off.
        retries={"max_attempts": 2, "mode": "standard"},
    )
    session = get_session()
    async with session.create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=config,
    ) as client:
        yield S3Storage(client, settings.s3_bucket, settings.s3_multipart_threshold)

"""The uploader actor: owns object storage; stores uploaded images and deletes the ones nobody needs.

An upload arrives as a pending `uploads` row and its spool file (cinema/http/uploads.py), and a
`StoreUpload` message. Handling it, the actor claims the row (`FOR UPDATE SKIP LOCKED`, held in a
transaction on a connection of its own pool), renders the WebP renditions in a thread, stores the
original (multipart above `CINEMA_S3_MULTIPART_THRESHOLD`) and the renditions, then, in that same
transaction, sets the URL on the resource, marks the upload done and appends the resource's events
to the outbox: the cache, the search index and RabbitMQ consumers hear of the new image like of
any other change. Only after the commit are the replaced image's objects deleted.

- A transient storage failure (unreachable, 5xx, throttled) leaves the upload pending with the
  reason in `error` and a retry time, doubling from `CINEMA_UPLOAD_RETRY_DELAY` up to a minute.
  A permanent one (refused by the store, not an image after all, its resource deleted) fails it.
- A poll loop (`CINEMA_UPLOAD_POLL_INTERVAL`, and at every start) finds pending uploads of this
  host that nobody holds: those of a process that stopped or crashed, and retries that are due.
  Several workers may be told the same upload; the row lock lets exactly one store it.
- Deleting a movie, person or shot deletes its objects after the commit (a commit hook sees the
  `*.deleted` events of every writer of this process). A sweep (`CINEMA_STORAGE_SWEEP_INTERVAL`,
  one process at a time, or `python -m cinema storage sweep`) deletes objects that no row refers
  to once they are older than `CINEMA_STORAGE_SWEEP_GRACE`: what a crash between a commit and its
  deletions left behind. It only ever touches keys of the shape this service writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import structlog

from cinema.actors.base import Actor, ActorError
from cinema.bus.local import LocalBus
from cinema.db import uploads
from cinema.db.outbox import Event, append_events
from cinema.errors import NotFound
from cinema.images import KINDS, ImageError, image_keys, image_stem_of, render, rendition_key, stem, valid_key
from cinema.settings import Settings
from cinema.storage import PermanentStorageError, Storage, TransientStorageError, media_url, open_storage

log = structlog.get_logger("cinema.uploader")

MAX_RETRY_DELAY = 60.0
POLL_BATCH = 100
SWEEP_DELETE_BATCH = 1000
# A session advisory lock: one sweeping process at a time (a different key from the outbox's and the relay's).
SWEEP_LOCK = 0x63696E656D6173  # "cinemas"
# Errors that mean the database is not reachable now: the loops wait and try again.
DATABASE_DOWN = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def spool_dir(settings: Settings) -> Path:
    """Where request bodies wait for the uploader (on the host that received them)."""
    return settings.data_dir / "uploads"


def this_node() -> str:
    """The host whose data folder holds this process's spool files: only its processes resume them."""
    return socket.gethostname()


# -- messages ----------------------------------------------------------------------------


@attrs.frozen
class StoreUpload:
    id: int


@attrs.frozen
class DeleteImage:
    """The original's key and, derived from it, its renditions' (an image taken off or replaced)."""

    kind: str
    key: str


@attrs.frozen
class DeletePrefixes:
    """Everything under these folders (a deleted movie, person or shot)."""

    prefixes: tuple[str, ...]


@attrs.frozen
class Sweep:
    """Answers a `SweepReport`."""


@attrs.frozen
class SweepReport:
    objects: int = 0  # objects deleted
    spools: int = 0  # spool files deleted
    kept: int = 0  # objects seen and kept
    skipped: bool = False  # another process was sweeping


class SpoolLost(Exception):
    """The spool file of a pending upload is gone (a wiped data folder)."""


# -- the actor ---------------------------------------------------------------------------


class UploaderActor(Actor):
    def __init__(
        self,
        dsn: str,
        storage: Storage,
        bus: LocalBus,
        settings: Settings,
        origin: str = "",
        *,
        server_settings: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("concurrency", settings.upload_concurrency)
        super().__init__("uploader", **options)
        self.dsn = dsn
        self.storage = storage
        self.bus = bus
        self.settings = settings
        self.origin = origin
        self.server_settings = dict(server_settings or {})
        self.node = this_node()
        self.pool: asyncpg.Pool | None = None
        self.outcomes = {"done": 0, "failed": 0, "retried": 0}  # uploads this process finished, retries
        self._queued: set[int] = set()  # told by the poll and not handled yet
        self._wake = asyncio.Event()  # a retry was scheduled: the poll looks again
        bus.on_commit(self._after_commit)

    async def on_start(self) -> None:
        # Its own connections: each upload in flight holds one for its claim, which must not
        # starve the catalog's pool. One more for the poll and the sweep.
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=0, max_size=self.concurrency + 1, server_settings=self.server_settings
        )

    async def on_stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def loops(self) -> Sequence[Any]:
        loops: list[Any] = [self._poll]
        if self.settings.storage_sweep_interval > 0:
            loops.append(self._sweep_periodically)
        return loops

    async def handle(self, msg: Any) -> Any:
        match msg:
            case StoreUpload(id=upload_id):
                try:
                    await self._store(upload_id)
                finally:
                    self._queued.discard(upload_id)
            case DeleteImage(kind=kind, key=key):
                await self._delete(image_keys(kind, key))
            case DeletePrefixes(prefixes=prefixes):
                for prefix in prefixes:
                    with _logged_failure("storage_delete_failed", prefix=prefix):
                        await self.storage.delete_prefix(prefix)
            case Sweep():
                assert self.pool is not None
                async with self.pool.acquire() as conn:
                    return await sweep(conn, self.storage, self.settings, self.node)
            case _:
                return await super().handle(msg)

    # -- storing ---------------------------------------------------------------------------

    async def _store(self, upload_id: int) -> None:
        assert self.pool is not None
        events: list[Event] = []
        replaced: str | None = None
        orphaned: list[str] = []
        url: str | None = None
        failed = False
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                upload = await uploads.claim(conn, upload_id, self.node)
                if upload is None:
                    return  # another worker holds it, or it is done, failed or not due yet
                try:
                    url, images = await self._put_objects(upload)
                except TransientStorageError as exc:
                    delay = min(self.settings.upload_retry_delay * 2**upload.attempts, MAX_RETRY_DELAY)
                    await uploads.retry_later(conn, upload.id, delay, f"{exc} (retried in {delay:g} s)")
                    log.warning("upload_retried", upload=upload.id, error=str(exc), delay=delay)
                    self.outcomes["retried"] += 1
                    self._wake.set()
                    return
                except (PermanentStorageError, ImageError, SpoolLost) as exc:
                    failed = True
                    await uploads.fail(conn, upload.id, str(exc))
                    log.warning("upload_failed", upload=upload.id, error=str(exc))
                else:
                    try:
                        async with conn.transaction():  # a savepoint: a vanished resource only fails the upload
                            replaced, new_events = await uploads.complete(conn, upload, url, images)
                            events = await append_events(conn, new_events, self.origin)
                    except (NotFound, uploads.Superseded) as exc:
                        reason = f"{exc} The image was not kept."
                        failed = True
                        await uploads.fail(conn, upload.id, reason)
                        log.info("upload_failed", upload=upload.id, error=reason)
                        if not await uploads.key_in_use(conn, upload, upload.key):
                            orphaned = image_keys(upload.kind, upload.key)
            # Committed: the image is on its resource (or the upload failed) and the events are in the log.
            # `done` only once they have reached this process's cache: a client polling the upload never
            # sees it done and then the old image.
            await self.bus.committed(events)
            if url is not None and not failed:
                await uploads.mark_done(conn, upload.id)
            self.outcomes["failed" if failed else "done"] += 1
            if replaced is not None and not await uploads.key_in_use(conn, upload, replaced):
                orphaned = image_keys(upload.kind, replaced)
        if orphaned:
            await self._delete(orphaned)
        await asyncio.to_thread(Path(upload.spool_path).unlink, missing_ok=True)
        if events:
            log.info("upload_done", upload=upload.id, kind=upload.kind, entity_id=upload.entity_id)

    async def _put_objects(self, upload: uploads.Claimed) -> tuple[str, dict[str, str]]:
        path = Path(upload.spool_path)
        if not await asyncio.to_thread(path.is_file):
            raise SpoolLost("The uploaded file was lost before it could be stored (its spool file is gone).")
        sizes = KINDS[upload.kind].sizes
        renditions = await asyncio.to_thread(render, path, sizes)
        await self.storage.put_file(upload.key, path, upload.content_type)
        images = {}
        for size in sizes:
            key = rendition_key(upload.key, size)
            await self.storage.put_bytes(key, renditions[size.name], "image/webp")
            images[size.name] = media_url(self.settings, key)
        return media_url(self.settings, upload.key), images

    async def _delete(self, keys: list[str]) -> None:
        with _logged_failure("storage_delete_failed", keys=len(keys)):  # the sweep gets them later
            await self.storage.delete(keys)

    async def _after_commit(self, events: Sequence[Any]) -> None:
        """Delete the objects of what this process's writers deleted (a movie takes its shots along)."""
        movies = {e.entity_id for e in events if e.type == "movie.deleted"}
        prefixes = [f"movies/{movie}/" for movie in sorted(movies)]
        for e in events:
            if e.type == "person.deleted":
                prefixes.append(f"persons/{e.entity_id}/")
            elif e.type == "shot.deleted" and e.affected_movie_ids and e.affected_movie_ids[0] not in movies:
                prefixes.append(f"movies/{e.affected_movie_ids[0]}/shots/{e.entity_id}/")
        if prefixes:
            try:
                await self.tell(DeletePrefixes(tuple(prefixes)))
            except ActorError as exc:  # stopping: the sweep deletes them later
                log.warning("storage_delete_skipped", prefixes=prefixes, reason=str(exc))

    # -- the loops -------------------------------------------------------------------------

    async def _poll(self) -> None:
        """Tell this actor about due pending uploads nobody holds; at start, then as they come due."""
        assert self.pool is not None
        while True:
            wait = self.settings.upload_poll_interval
            try:
                async with self.pool.acquire() as conn:
                    due = await uploads.due_uploads(conn, self.node, POLL_BATCH)
                    until_next = await uploads.seconds_until_due(conn, self.node)
            except DATABASE_DOWN as exc:
                log.warning("uploader_poll_failed", error=repr(exc))
            else:
                for upload_id in due:
                    if upload_id not in self._queued:
                        self._queued.add(upload_id)
                        await self.tell(StoreUpload(upload_id))
                if until_next is not None and until_next > 0:
                    wait = min(wait, until_next)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _sweep_periodically(self) -> None:
        assert self.pool is not None
        while True:
            with contextlib.suppress(TimeoutError):  # sleep on "stop requested or time for a sweep"
                async with asyncio.timeout(self.settings.storage_sweep_interval):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            with _logged_failure("storage_sweep_failed"):
                async with self.pool.acquire() as conn:
                    report = await sweep(conn, self.storage, self.settings, self.node)
                if not report.skipped:
                    log.info("storage_swept", **attrs.asdict(report))


@contextlib.contextmanager
def _logged_failure(event: str, **context: Any) -> Any:
    """Storage or database trouble in background work: a warning, and the work goes on."""
    try:
        yield
    except (TransientStorageError, PermanentStorageError, *DATABASE_DOWN) as exc:
        log.warning(event, error=str(exc) or repr(exc), **context)


# -- the sweep -----------------------------------------------------------------------------


async def sweep(conn: asyncpg.Connection, storage: Storage, settings: Settings, node: str) -> SweepReport:
    """Delete objects (and this host's spool files) that nothing refers to and that are older than the grace.

    Only objects whose keys have the shape this service writes are considered: a bucket shared
    with other data keeps that data.
    """
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK):
        return SweepReport(skipped=True)
    try:
        referenced = {stem(key) for key in await uploads.referenced_keys(conn)}
        spools = await uploads.pending_spools(conn, node)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.storage_sweep_grace)
        doomed: list[str] = []
        deleted = kept = 0
        async for item in storage.list():
            image = image_stem_of(item.key)
            if valid_key(item.key) and image not in referenced and item.modified < cutoff:
                doomed.append(item.key)
                if len(doomed) >= SWEEP_DELETE_BATCH:
                    await storage.delete(doomed)
                    deleted, doomed = deleted + len(doomed), []
            else:
                kept += 1
        if doomed:
            await storage.delete(doomed)
            deleted += len(doomed)
        removed_spools = await asyncio.to_thread(_sweep_spools, spool_dir(settings), spools, cutoff)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
    return SweepReport(objects=deleted, spools=removed_spools, kept=kept)


async def sweep_command(settings: Settings, dsn: str) -> SweepReport:
    """`python -m cinema storage sweep`: one sweep, from outside the service."""
    async with open_storage(settings) as storage:
        conn = await asyncpg.connect(dsn)
        try:
            return await sweep(conn, storage, settings, this_node())
        finally:
            await conn.close()


def _sweep_spools(folder: Path, pending: set[str], cutoff: dt.datetime) -> int:
    """Spool files of no pending upload (a request that died before recording it, a lost delete)."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if path.is_file() and str(path) not in pending and modified < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed

"""The uploader actor: resuming after a crash, storage outages, exactly-once claims, failures, the sweep."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import attrs
import pytest

from cinema.actors.uploader import SWEEP_LOCK, StoreUpload, UploaderActor, spool_dir, sweep, this_node
from cinema.app import SESSION, create_app
from cinema.bus.local import LocalBus
from cinema.db import uploads
from cinema.db.uploads import NewUpload
from cinema.images import PNG, image_keys, original_key
from cinema.settings import Settings
from cinema.storage import LocalStorage, open_storage
from tests.conftest import eventually
from tests.faults.proxy import Proxy
from tests.http.movie_support import MOVIES, create_movie
from tests.storage_support import create_bucket, finished, noise_png, png, s3, stored_keys


async def accepted(resp) -> str:
    assert resp.status == 202, await resp.text()
    return resp.headers["Location"]


async def record(db: asyncpg.Connection, settings: Settings, movie_id: int, data: bytes) -> tuple[int, str]:
    """A pending poster upload as the HTTP layer records it, without telling any uploader: (id, key)."""
    folder = spool_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(8)}.part"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    new = NewUpload("poster", movie_id, PNG, 1, 1, len(data), sha, str(path), this_node())
    async with db.transaction():
        (upload_id, _), _ = await uploads.record_upload(db, new, None)
    return upload_id, original_key(f"movies/{movie_id}/poster", sha, PNG)


async def new_movie(db: asyncpg.Connection) -> int:
    return await db.fetchval("INSERT INTO movies (slug, title) VALUES ('heat', 'Heat') RETURNING id")


def uploader(settings: Settings, storage, bus: LocalBus | None = None) -> UploaderActor:
    assert settings.database_url is not None
    return UploaderActor(settings.database_url, storage, bus or LocalBus(), settings, server_settings=SESSION)


class GatedStorage(LocalStorage):
    """Local files, with every original's store counted and held until `gate` opens."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = asyncio.Event()
        self.stores: collections.Counter[str] = collections.Counter()

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.stores[key] += 1
        await self.gate.wait()
        await super().put_file(key, path, content_type)


async def test_an_upload_stored_but_not_committed_is_resumed_at_the_next_start(
    aiohttp_client, storage_settings, db, monkeypatch
):
    settings = attrs.evolve(storage_settings, upload_poll_interval=3600)  # only the start-up looks
    app = create_app(settings)
    client = await aiohttp_client(app)
    movie = await create_movie(client)
    crashed = asyncio.Event()
    complete = uploads.complete

    async def die(*args, **kwargs):
        crashed.set()
        raise ConnectionResetError("the process died after storing the objects")

    monkeypatch.setattr(uploads, "complete", die)
    location = await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=png()))
    async with asyncio.timeout(10):
        await crashed.wait()
    assert len(await stored_keys(app, f"movies/{movie['id']}/")) == 4
    assert (await (await client.get(location)).json())["status"] == "pending"
    await client.close()

    monkeypatch.setattr(uploads, "complete", complete)
    restarted = await aiohttp_client(create_app(settings))
    upload = await finished(restarted, location)
    assert upload["status"] == "done", upload
    doc = await (await restarted.get(f"{MOVIES}/{movie['id']}")).json()
    assert doc["poster_url"] == upload["url"]


async def test_s3_unreachable_then_back_ends_done(aiohttp_client, settings, moto_endpoint, db):
    host, port = moto_endpoint.removeprefix("http://").split(":")
    proxy = await Proxy(host, int(port)).start()
    try:
        direct = s3(settings, moto_endpoint)
        await create_bucket(direct)
        through_proxy = attrs.evolve(
            direct, s3_endpoint_url=f"http://127.0.0.1:{proxy.port}", upload_retry_delay=0.05, upload_poll_interval=0.1
        )
        client = await aiohttp_client(create_app(through_proxy))
        movie = await create_movie(client)
        proxy.refusing = True
        location = await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=png()))

        async def retrying() -> bool:
            body = await (await client.get(location)).json()
            assert body["status"] == "pending"
            return body["error"] is not None

        await eventually(retrying)
        proxy.refusing = False
        upload = await finished(client, location, timeout=20)
        assert upload["status"] == "done", upload
        assert upload["error"] is None
    finally:
        await proxy.close()


async def test_two_workers_never_store_one_upload_twice(settings, db, tmp_path):
    movie_id = await new_movie(db)
    upload_id, key = await record(db, settings, movie_id, png())
    storage = GatedStorage(tmp_path / "media")
    first, second = uploader(settings, storage), uploader(settings, storage)
    async with first, second:
        for actor in (first, second, first, second):
            await actor.tell(StoreUpload(upload_id))
        await eventually(lambda: storage.stores[key] == 1)
        # Every other message (and each poll's) has been handled while one worker holds the row.
        await eventually(
            lambda: (
                first.stats().mailbox + second.stats().mailbox == 0
                and first.stats().in_flight + second.stats().in_flight == 1
            )
        )
        storage.gate.set()
        await eventually(lambda: first.stats().in_flight + second.stats().in_flight == 0)
        for actor in (first, second):  # done: told again, nobody stores it
            await actor.tell(StoreUpload(upload_id))
        await eventually(lambda: first.stats().mailbox + second.stats().mailbox == 0)
    assert storage.stores == {key: 1}
    assert await db.fetchval("SELECT status FROM uploads WHERE id = $1", upload_id) == "done"
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE type = 'movie.updated'") == 1


async def test_a_resource_deleted_meanwhile_fails_the_upload_and_keeps_nothing(settings, db, tmp_path):
    movie_id = await new_movie(db)
    upload_id, _ = await record(db, settings, movie_id, png())
    await db.execute("DELETE FROM movies WHERE id = $1", movie_id)
    storage = LocalStorage(tmp_path / "media")
    async with uploader(settings, storage) as actor:
        await actor.tell(StoreUpload(upload_id))
        await eventually(lambda: db.fetchval("SELECT status = 'failed' FROM uploads WHERE id = $1", upload_id))
    error = await db.fetchval("SELECT error FROM uploads WHERE id = $1", upload_id)
    assert error == f"Movie {movie_id} does not exist. The image was not kept."
    assert [item async for item in storage.list()] == []
    assert list(spool_dir(settings).iterdir()) == []


async def test_a_lost_spool_file_fails_the_upload(settings, db, tmp_path):
    upload_id, _ = await record(db, settings, await new_movie(db), png())
    for path in spool_dir(settings).iterdir():
        path.unlink()
    async with uploader(settings, LocalStorage(tmp_path / "media")) as actor:
        await actor.tell(StoreUpload(upload_id))
        await eventually(lambda: db.fetchval("SELECT status = 'failed' FROM uploads WHERE id = $1", upload_id))
    assert "spool file is gone" in await db.fetchval("SELECT error FROM uploads WHERE id = $1", upload_id)


async def test_a_permanent_storage_error_fails_the_upload_with_the_reason(aiohttp_client, settings, moto_endpoint, db):
    client = await aiohttp_client(create_app(s3(settings, moto_endpoint, bucket="no-such-bucket")))  # never created
    movie = await create_movie(client)
    upload = await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=png())))
    assert upload["status"] == "failed"
    assert "NoSuchBucket" in upload["error"]


async def test_large_objects_go_to_s3_in_parts(aiohttp_client, s3_settings, db):
    settings = attrs.evolve(s3_settings, s3_multipart_threshold=5 * 1024 * 1024)
    app = create_app(settings)
    client = await aiohttp_client(app)
    movie = await create_movie(client)
    data = noise_png(1400, 1300)
    assert len(data) > settings.s3_multipart_threshold
    upload = await finished(
        client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=io.BytesIO(data)))
    )
    assert upload["status"] == "done", upload
    key = upload["url"].removeprefix("/media/")
    async with open_storage(settings) as storage:
        head = await storage.client.head_object(Bucket=settings.s3_bucket, Key=key)  # type: ignore[attr-defined]
        body = await storage.client.get_object(Bucket=settings.s3_bucket, Key=key)  # type: ignore[attr-defined]
        async with body["Body"] as stream:
            assert await stream.read() == data
    assert head["ETag"].strip('"').endswith("-2")  # two parts
    assert head["ContentType"] == "image/png"


# -- the sweep ---------------------------------------------------------------------------


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def swept(storage_settings, db):
    """Objects of every sort in the configured storage: (settings, storage, {name: key})."""
    async with open_storage(storage_settings) as storage:
        movie_id = await new_movie(db)
        sha = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]
        kept = original_key(f"movies/{movie_id}/poster", sha[0], PNG)
        await db.execute("UPDATE movies SET poster_key = $2 WHERE id = $1", movie_id, kept)
        orphan = original_key("movies/999/poster", sha[1], PNG)
        _, in_flight = await record(db, storage_settings, movie_id, b"in flight")
        keys = {
            "kept": image_keys("poster", kept),
            "orphan": image_keys("poster", orphan),
            "in_flight": image_keys("poster", in_flight),
            "foreign": ["backups/catalog.sql"],
        }
        for group in keys.values():
            for key in group:
                await storage.put_bytes(key, b"x", "application/octet-stream")
        yield storage_settings, storage, keys


async def test_the_sweep_deletes_only_old_objects_no_row_refers_to(swept, db, database_url):
    settings, storage, keys = swept
    stray_spool = spool_dir(settings) / "stray.part"
    stray_spool.write_bytes(b"left by a request that died")
    fresh = await sweep(db, storage, attrs.evolve(settings, storage_sweep_grace=3600), this_node())
    assert (fresh.objects, fresh.spools) == (0, 0)  # all younger than the grace

    other = await asyncpg.connect(database_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", SWEEP_LOCK)
        assert (await sweep(db, storage, attrs.evolve(settings, storage_sweep_grace=0), this_node())).skipped
    finally:
        await other.close()

    report = await sweep(db, storage, attrs.evolve(settings, storage_sweep_grace=0), this_node())
    assert (report.objects, report.spools) == (4, 1)
    left = {item.key async for item in storage.list()}
    assert left == {*keys["kept"], *keys["in_flight"], *keys["foreign"]}
    assert not stray_spool.exists()
    assert len(list(spool_dir(settings).iterdir())) == 1  # the pending upload's


async def test_storage_sweep_command(swept):
    settings, storage, keys = swept
    # Its own process, as an operator runs it: the command configures logging for the whole process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    env |= {
        "CINEMA_DATABASE_URL": str(settings.database_url),
        "CINEMA_DATA_DIR": str(settings.data_dir),
        "CINEMA_STORAGE_SWEEP_GRACE": "0",
    }
    for name in ("s3_bucket", "s3_endpoint_url", "s3_region", "s3_access_key_id", "s3_secret_access_key"):
        if getattr(settings, name) is not None:
            env[f"CINEMA_{name.upper()}"] = getattr(settings, name)
    command = [sys.executable, "-m", "cinema", "storage", "sweep"]
    run = subprocess.run
    result = await asyncio.to_thread(run, command, env=env, cwd=ROOT, capture_output=True, timeout=60, text=True)
    assert result.returncode == 0, result.stderr
    assert "deleted 4 objects and 0 spool files, kept" in result.stdout
    assert {item.key async for item in storage.list()} == {*keys["kept"], *keys["in_flight"], *keys["foreign"]}


def test_objects_older_than_the_grace_are_recognised_by_their_time(tmp_path):
    storage = LocalStorage(tmp_path)
    path = tmp_path / "movies" / "1" / "x"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp()
    os.utime(path, (old, old))

    async def listed():
        return [item async for item in storage.list()]

    [item] = asyncio.run(listed())
    assert item.modified == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert item.key == "movies/1/x"


async def test_the_upload_sent_last_wins_whichever_finishes_first(settings, db, tmp_path):
    movie_id = await new_movie(db)
    earlier, _ = await record(db, settings, movie_id, png(color=(255, 0, 0)))
    later, later_key = await record(db, settings, movie_id, png(color=(0, 0, 255)))
    # Not due yet: nobody takes them until the test says so, one after the other.
    await db.execute("UPDATE uploads SET next_attempt_at = now() + interval '1 hour'")
    storage = LocalStorage(tmp_path / "media")
    async with uploader(settings, storage) as actor:
        for upload_id, outcome in ((later, "done"), (earlier, "failed")):
            await db.execute("UPDATE uploads SET next_attempt_at = now() WHERE id = $1", upload_id)
            await actor.tell(StoreUpload(upload_id))
            query = ("SELECT status = $2 FROM uploads WHERE id = $1", upload_id, outcome)
            await eventually(lambda query=query: db.fetchval(*query))
    assert await db.fetchval("SELECT poster_key FROM movies WHERE id = $1", movie_id) == later_key
    error = await db.fetchval("SELECT error FROM uploads WHERE id = $1", earlier)
    assert error == f"Upload {later}, sent later, replaced this image first. The image was not kept."
    assert {item.key async for item in storage.list()} == set(image_keys("poster", later_key))

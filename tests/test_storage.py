"""Storage backends, media URLs, image keys and formats (the parts below the actor)."""

from __future__ import annotations

import attrs
import botocore.exceptions
import pytest

from cinema.images import (
    JPEG,
    KINDS,
    PNG,
    WEBP,
    image_keys,
    image_stem_of,
    original_key,
    owner_prefix,
    sniff,
    valid_key,
)
from cinema.settings import Settings
from cinema.storage import (
    LocalStorage,
    PermanentStorageError,
    TransientStorageError,
    _translate,
    media_url,
    open_storage,
)
from tests.storage_support import image

SHA = "ab" * 32


def test_media_urls_use_the_public_base_when_there_is_one():
    key = original_key("movies/1/poster", SHA, PNG)
    assert media_url(Settings(), key) == f"/media/movies/1/poster/{SHA}.png"
    cdn = Settings(media_base_url="https://cdn.example.org/images/")
    assert media_url(cdn, key) == f"https://cdn.example.org/images/movies/1/poster/{SHA}.png"
    assert media_url(attrs.evolve(cdn, media_base_url="https://cdn.example.org"), key).startswith(
        "https://cdn.example.org/movies/"
    )


def test_keys_name_the_owner_and_the_content_only():
    assert owner_prefix("poster", 7) == "movies/7/poster"
    assert owner_prefix("photo", 7) == "persons/7/photo"
    assert owner_prefix("shot", 9, movie_id=7) == "movies/7/shots/9"
    key = original_key(owner_prefix("shot", 9, movie_id=7), SHA, JPEG)
    assert image_keys("shot", key) == [
        f"movies/7/shots/9/{SHA}.jpg",
        f"movies/7/shots/9/{SHA}/w300.webp",
        f"movies/7/shots/9/{SHA}/w1280.webp",
    ]
    assert all(valid_key(k) and image_stem_of(k) == f"movies/7/shots/9/{SHA}" for k in image_keys("shot", key))
    for foreign in (
        "movies/7/../../etc/passwd",
        "backups/db.sql",
        f"movies/x/poster/{SHA}.png",
        "movies/7/poster/a.png",
    ):
        assert not valid_key(foreign)
    assert image_stem_of("backups/db.sql") is None
    assert [s.name for s in KINDS["poster"].sizes] == ["w185", "w342", "w780"]


@pytest.mark.parametrize(("fmt", "expected"), [("PNG", PNG), ("JPEG", JPEG), ("WEBP", WEBP), ("GIF", None)])
def test_formats_are_recognised_by_their_signature(fmt, expected):
    assert sniff(image(fmt, 8, 8)[:12]) == expected
    assert sniff(b"") is None


def test_s3_errors_are_told_apart():
    def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
        response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return botocore.exceptions.ClientError(response, "PutObject")  # type: ignore[arg-type]

    assert isinstance(_translate("x", client_error("NoSuchBucket", 404)), PermanentStorageError)
    assert isinstance(_translate("x", client_error("AccessDenied", 403)), PermanentStorageError)
    assert isinstance(_translate("x", client_error("InternalError", 500)), TransientStorageError)
    assert isinstance(_translate("x", client_error("SlowDown", 503)), TransientStorageError)
    assert isinstance(_translate("x", client_error("RequestTimeout", 400)), TransientStorageError)
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert isinstance(_translate("x", unreachable), TransientStorageError)
    assert isinstance(_translate("x", botocore.exceptions.NoCredentialsError()), PermanentStorageError)


async def test_local_storage_writes_whole_files_and_deletes_by_key_and_prefix(tmp_path):
    async with open_storage(Settings(data_dir=tmp_path)) as storage:
        assert isinstance(storage, LocalStorage)
        source = tmp_path / "source"
        source.write_bytes(b"original")
        await storage.put_file("movies/1/poster/a.png", source, "image/png")
        await storage.put_bytes("movies/1/poster/a/w185.webp", b"small", "image/webp")
        await storage.put_bytes("movies/2/poster/b.png", b"other", "image/png")
        assert (tmp_path / "media" / "movies/1/poster/a.png").read_bytes() == b"original"
        assert sorted([item.key async for item in storage.list()]) == [
            "movies/1/poster/a.png",
            "movies/1/poster/a/w185.webp",
            "movies/2/poster/b.png",
        ]
        assert [p.name for p in (tmp_path / "media" / "movies/1/poster").iterdir() if p.name.startswith(".")] == []
        await storage.delete(["movies/2/poster/b.png", "movies/9/nothing.png"])
        assert not (tmp_path / "media" / "movies/2").exists()  # empty folders go too
        assert await storage.delete_prefix("movies/1/") == 2
        assert await storage.delete_prefix("movies/1/") == 0
        assert [item async for item in storage.list()] == []
        assert await storage.presigned_get("movies/1/poster/a.png", 60) is None


async def test_a_local_write_that_fails_is_transient_and_leaves_nothing(tmp_path):
    storage = LocalStorage(tmp_path / "media")
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "movies").write_bytes(b"a file where a folder should be")
    with pytest.raises(TransientStorageError):
        await storage.put_bytes("movies/1/poster/a.png", b"x", "image/png")

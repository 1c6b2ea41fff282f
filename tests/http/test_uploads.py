"""Uploads over HTTP against both storage backends: local files and S3 (moto's server)."""

from __future__ import annotations

import io
import json

import aiohttp
import psutil
import pytest
from PIL import Image

from cinema.actors.uploader import spool_dir
from cinema.app import create_app
from cinema.http.keys import UPLOADER
from tests.conftest import eventually
from tests.http.helpers import assert_problem
from tests.http.movie_support import MOVIES, create_movie
from tests.storage_support import aiter_chunks, fetch, finished, image, jpeg_with_gps, png, stored_keys

PERSONS = "/api/v1/persons"


@pytest.fixture
async def app(storage_settings, db):
    return create_app(storage_settings)


@pytest.fixture
async def movie(client):
    return await create_movie(client, "Heat")


@pytest.fixture
async def person(client):
    resp = await client.post(PERSONS, json={"full_name": "Al Pacino"})
    assert resp.status == 201
    return await resp.json()


def multipart(data: bytes, filename: str = "image.jpg", content_type: str = "image/jpeg", **fields: str):
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", data, filename=filename, content_type=content_type)
    return form


async def accepted(resp) -> str:
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["status"] == "pending"
    assert resp.headers["Location"] == f"/api/v1/uploads/{body['id']}"
    return resp.headers["Location"]


async def assert_image(client, url: str, content_type: str, size: tuple[int, int] | None = None) -> bytes:
    status, served_type, data = await fetch(client, url)
    assert status == 200
    assert served_type == content_type
    if size is not None:
        assert Image.open(io.BytesIO(data)).size == size
    return data


@pytest.mark.parametrize("form", ["raw", "multipart"])
async def test_a_poster_is_stored_with_renditions_and_shown_on_the_movie(client, movie, form):
    original = png(400, 600)
    body = original if form == "raw" else multipart(original, "poster.png", "image/png")
    before = await (await client.get(f"{MOVIES}/{movie['id']}")).json()  # cached from here on
    assert (before["poster_url"], before["images"]) == (None, None)
    location = await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=body))
    upload = await finished(client, location)
    assert upload["status"] == "done", upload
    assert upload["error"] is None
    assert upload["resource"] == f"{MOVIES}/{movie['id']}"
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert doc["poster_url"] == upload["url"]
    assert doc["poster_url"].endswith(".png")
    assert f"movies/{movie['id']}/poster/" in doc["poster_url"]
    assert doc["images"] == upload["images"]
    assert list(doc["images"]) == ["w185", "w342", "w780"]
    assert await assert_image(client, doc["poster_url"], "image/png") == original
    await assert_image(client, doc["images"]["w185"], "image/webp", (185, 278))
    await assert_image(client, doc["images"]["w342"], "image/webp", (342, 513))
    await assert_image(client, doc["images"]["w780"], "image/webp", (400, 600))  # never enlarged
    listed = await (await client.get(MOVIES)).json()
    assert listed["items"][0]["images"] == doc["images"]
    changes = await (await client.get("/api/v1/changes")).json()
    assert json.loads(json.dumps(changes["items"][-1]["data"]))["poster_url"] == doc["poster_url"]


@pytest.mark.parametrize("form", ["raw", "multipart"])
async def test_a_photo_is_stored_and_shown_on_the_person_and_in_credits(client, person, form):
    movie = await create_movie(client, "Heat", credits=[{"person_id": person["id"], "role": "actor"}])
    original = image("WEBP", 300, 900)
    body = original if form == "raw" else multipart(original, "me.webp", "image/webp")
    upload = await finished(client, await accepted(await client.put(f"{PERSONS}/{person['id']}/photo", data=body)))
    assert upload["status"] == "done", upload
    doc = await (await client.get(f"{PERSONS}/{person['id']}")).json()
    assert doc["photo_url"] == upload["url"]
    assert doc["photo_url"].endswith(".webp")
    assert list(doc["images"]) == ["w185", "h632"]
    await assert_image(client, doc["images"]["h632"], "image/webp", (211, 632))
    credits = (await (await client.get(f"{MOVIES}/{movie['id']}")).json())["credits"]
    assert credits[0]["person"]["photo_url"] == doc["photo_url"]


@pytest.mark.parametrize("form", ["raw", "multipart"])
async def test_a_shot_is_created_at_once_and_gets_its_image(client, movie, form):
    original = image("JPEG", 1600, 900)
    body = original if form == "raw" else multipart(original, caption="The heist")
    resp = await client.post(f"{MOVIES}/{movie['id']}/shots", data=body)
    location = await accepted(resp)
    shot_path = (await resp.json())["resource"]
    shot = await (await client.get(shot_path)).json()
    assert shot["caption"] == (None if form == "raw" else "The heist")
    upload = await finished(client, location)
    assert upload["status"] == "done", upload
    shot = await (await client.get(shot_path)).json()
    assert shot["image_url"] == upload["url"]
    assert shot["image_url"].endswith(".jpg")
    assert f"movies/{movie['id']}/shots/{shot['id']}/" in shot["image_url"]
    await assert_image(client, shot["images"]["w300"], "image/webp", (300, 169))
    await assert_image(client, shot["images"]["w1280"], "image/webp", (1280, 720))
    doc = await (await client.get(f"{MOVIES}/{movie['id']}")).json()
    assert doc["shots"] == [shot]


async def test_the_type_comes_from_the_bytes_not_the_name(client, movie):
    form = multipart(png(50, 75), "poster.jpg", "image/jpeg")
    upload = await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=form)))
    assert upload["url"].endswith(".png")
    await assert_image(client, upload["url"], "image/png")


@pytest.mark.parametrize("form", ["raw", "multipart"])
async def test_a_text_file_named_png_is_415(client, movie, app, form):
    text = b"just some text, no image here\n" * 10
    body = text if form == "raw" else multipart(text, "poster.png", "image/png")
    resp = await client.put(f"{MOVIES}/{movie['id']}/poster", data=body)
    await assert_problem(resp, 415)
    assert list(spool_dir(app[UPLOADER].settings).iterdir()) == []  # nothing left behind


async def test_too_many_pixels_is_422(aiohttp_client, storage_settings, db):
    import attrs

    client = await aiohttp_client(create_app(attrs.evolve(storage_settings, upload_max_pixels=10_000)))
    movie = await create_movie(client)
    resp = await client.put(f"{MOVIES}/{movie['id']}/poster", data=png(200, 100))
    body = await assert_problem(resp, 422, "file")
    assert "200x100" in body["detail"]


async def test_a_decompression_bomb_is_422_without_decoding_it(client, movie):
    bomb = Image.new("1", (12000, 12000))  # 144 Mpx (past Pillow's own warning), a few kB as PNG
    buffer = io.BytesIO()
    bomb.save(buffer, "PNG")
    assert len(buffer.getvalue()) < 100_000
    resp = await client.put(f"{MOVIES}/{movie['id']}/poster", data=buffer.getvalue())
    await assert_problem(resp, 422, "file")


async def test_a_signature_without_an_image_behind_it_is_422(client, movie):
    resp = await client.put(f"{MOVIES}/{movie['id']}/poster", data=b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    await assert_problem(resp, 422, "file")


async def test_an_image_that_cannot_be_decoded_fails_with_the_reason(client, movie):
    whole = png(300, 300)
    truncated = whole[: len(whole) // 2]
    upload = await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=truncated)))
    assert upload["status"] == "failed"
    assert "cannot be decoded" in upload["error"]
    assert (await (await client.get(f"{MOVIES}/{movie['id']}")).json())["poster_url"] is None


async def test_a_body_over_the_limit_is_413_and_never_buffered(aiohttp_client, storage_settings, db):
    import attrs

    app = create_app(attrs.evolve(storage_settings, upload_max_bytes=1024 * 1024))
    client = await aiohttp_client(app)
    movie = await create_movie(client)
    url = f"{MOVIES}/{movie['id']}/poster"
    # Declared too large: refused before a byte of the body is read.
    resp = await client.put(url, data=io.BytesIO(b"x" * (2 * 1024 * 1024)))
    await assert_problem(resp, 413)
    # Streamed without a length: refused once past the limit, the rest left unread.
    process = psutil.Process()
    before = process.memory_info().rss
    resp = await client.put(url, data=aiter_chunks(200 * 1024 * 1024))
    await assert_problem(resp, 413)
    assert process.memory_info().rss - before < 50 * 1024 * 1024
    assert list(spool_dir(app[UPLOADER].settings).iterdir()) == []


async def test_multipart_needs_exactly_a_file_field(client, movie):
    url = f"{MOVIES}/{movie['id']}/poster"
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("caption", "no file")
    await assert_problem(await client.put(url, data=form), 400, "caption")
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("other", "x")
    await assert_problem(await client.put(url, data=form), 400, "other")
    empty = aiohttp.FormData()
    empty.add_field("file", b"", filename="x.png", content_type="image/png")
    await assert_problem(await client.put(url, data=empty), 415)


async def test_a_caption_over_255_characters_is_422(client, movie):
    resp = await client.post(f"{MOVIES}/{movie['id']}/shots", data=multipart(png(10, 10), caption="x" * 256))
    await assert_problem(resp, 422, "caption")


async def test_uploads_to_unknown_resources_are_404(client):
    await assert_problem(await client.put(f"{MOVIES}/999/poster", data=png(10, 10)), 404)
    await assert_problem(await client.put(f"{PERSONS}/999/photo", data=png(10, 10)), 404)
    await assert_problem(await client.post(f"{MOVIES}/999/shots", data=png(10, 10)), 404)
    await assert_problem(await client.get("/api/v1/uploads/999"), 404)


async def test_if_match_guards_an_upload(client, movie):
    url = f"{MOVIES}/{movie['id']}/poster"
    await assert_problem(await client.put(url, data=png(10, 10), headers={"If-Match": '"stale"'}), 412)
    tag = (await client.get(f"{MOVIES}/{movie['id']}")).headers["ETag"]
    await accepted(await client.put(url, data=png(10, 10), headers={"If-Match": tag}))


async def test_a_replaced_poster_is_deleted_once_the_new_one_is_set(client, movie, app):
    url = f"{MOVIES}/{movie['id']}/poster"
    first = await finished(client, await accepted(await client.put(url, data=png(100, 150, (255, 0, 0)))))
    old_keys = await stored_keys(app, f"movies/{movie['id']}/poster/")
    assert len(old_keys) == 4  # the original and three renditions
    second = await finished(client, await accepted(await client.put(url, data=png(100, 150, (0, 0, 255)))))
    assert second["url"] != first["url"]

    async def only_the_new_image() -> bool:
        keys = await stored_keys(app, f"movies/{movie['id']}/poster/")
        return len(keys) == 4 and not keys & old_keys

    await eventually(only_the_new_image)
    assert (await fetch(client, first["url"]))[0] in (403, 404)
    # The same image again changes nothing and deletes nothing.
    again = await finished(client, await accepted(await client.put(url, data=png(100, 150, (0, 0, 255)))))
    assert again["url"] == second["url"]
    assert (await fetch(client, second["url"]))[0] == 200


async def test_deleting_a_poster_deletes_its_objects(client, movie, app):
    url = f"{MOVIES}/{movie['id']}/poster"
    await finished(client, await accepted(await client.put(url, data=png(100, 150))))
    resp = await client.delete(url)
    assert resp.status == 204
    assert (await (await client.get(f"{MOVIES}/{movie['id']}")).json())["poster_url"] is None

    async def gone() -> bool:
        return not await stored_keys(app, f"movies/{movie['id']}/")

    await eventually(gone)
    assert (await client.delete(url)).status == 204  # no poster: nothing to do
    await assert_problem(await client.delete(f"{MOVIES}/999/poster"), 404)


async def test_deleting_a_photo_deletes_its_objects(client, person, app):
    url = f"{PERSONS}/{person['id']}/photo"
    await finished(client, await accepted(await client.put(url, data=png(100, 150))))
    assert (await client.delete(url)).status == 204
    assert (await (await client.get(f"{PERSONS}/{person['id']}")).json())["images"] is None

    async def gone() -> bool:
        return not await stored_keys(app, f"persons/{person['id']}/")

    await eventually(gone)


async def test_deleting_a_movie_deletes_its_images(client, movie, app):
    await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=png(80, 120))))
    shot = await accepted(await client.post(f"{MOVIES}/{movie['id']}/shots", data=png(320, 180)))
    await finished(client, shot)
    other = await create_movie(client, "Ronin")
    await finished(client, await accepted(await client.put(f"{MOVIES}/{other['id']}/poster", data=png(80, 120))))
    assert len(await stored_keys(app, f"movies/{movie['id']}/")) == 4 + 3
    assert (await client.delete(f"{MOVIES}/{movie['id']}")).status == 204

    async def gone() -> bool:
        return not await stored_keys(app, f"movies/{movie['id']}/")

    await eventually(gone)
    assert len(await stored_keys(app, f"movies/{other['id']}/")) == 4


async def test_deleting_a_shot_or_a_person_deletes_their_images(client, movie, person, app):
    resp = await client.post(f"{MOVIES}/{movie['id']}/shots", data=png(320, 180))
    await finished(client, await accepted(resp))
    shot_path = (await resp.json())["resource"]
    await finished(client, await accepted(await client.put(f"{PERSONS}/{person['id']}/photo", data=png(80, 80))))
    assert (await client.delete(shot_path)).status == 204
    assert (await client.delete(f"{PERSONS}/{person['id']}")).status == 204

    async def gone() -> bool:
        return not await stored_keys(app)

    await eventually(gone)


async def test_renditions_carry_no_metadata(client, movie):
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif()  # the original has EXIF with GPS
    upload = await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=original)))
    for url in upload["images"].values():
        rendition = Image.open(io.BytesIO(await assert_image(client, url, "image/webp")))
        assert not rendition.getexif()
        assert "exif" not in rendition.info
        assert "xmp" not in rendition.info


async def test_media_urls_are_immutable_and_only_for_keys_the_service_writes(client, movie, backend):
    upload = await finished(client, await accepted(await client.put(f"{MOVIES}/{movie['id']}/poster", data=png())))
    resp = await client.get(upload["url"], allow_redirects=False)
    if backend == "local":
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.content_type == "image/png"
    else:
        assert resp.status == 302
        assert resp.headers["Location"].startswith("http://127.0.0.1:")
        assert "X-Amz-Signature=" in resp.headers["Location"]
    for bad in (
        "/media/../../etc/passwd",
        "/media/movies/1/poster/x.png",
        "/media/movies/1/poster/" + "a" * 64 + ".png",
    ):
        assert (await client.get(bad, allow_redirects=False)).status in (302, 404)
    await assert_problem(await client.get("/media/secrets.txt"), 404)

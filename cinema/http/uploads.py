"""Image uploads (posters, photos, shots), their status (/api/v1/uploads/{id}) and `/media/` (the stored files).

The request path never holds an image in memory: the body (a raw image, or the `file` field of
`multipart/form-data`) streams into a spool file under the data folder, hashed as it goes, and
the request is refused with 413 as soon as it passes `CINEMA_UPLOAD_MAX_BYTES` (at once when its
Content-Length says so, without asking a client that sent `Expect: 100-continue` for the body).
The type comes from the first bytes (JPEG, PNG or WebP, else 415), the dimensions from the
header alone (more than `CINEMA_UPLOAD_MAX_PIXELS` is a 422); then the catalog records a pending
upload, the uploader actor is told, and the answer is 202 with the upload's URL. The uploader
(cinema/actors/uploader.py) does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_urldispatcher import _default_expect_handler

from cinema.actors.base import ActorError
from cinema.actors.catalog import GetUpload, RecordUpload, RemoveImage
from cinema.actors.uploader import DeleteImage, StoreUpload, spool_dir
from cinema.db.uploads import NewUpload
from cinema.errors import BadRequest, FieldError, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from cinema.http.io import if_match, json_response, path_id, reject_unknown
from cinema.http.keys import CATALOG, SETTINGS, STORAGE, UPLOADER
from cinema.http.spec import Raw, describe
from cinema.images import FORMATS, KINDS, SNIFF_BYTES, ImageError, content_type_of, dimensions, sniff, valid_key
from cinema.models import CAPTION, Upload
from cinema.storage import MEDIA_PATH, LocalStorage

routes = web.RouteTableDef()

TAG = "uploads"
CHUNK = 64 * 1024
# Room for the multipart envelope around the file (boundaries, part headers, a caption).
MULTIPART_OVERHEAD = 16 * 1024
MAX_CAPTION_BYTES = 4 * CAPTION["maxLength"]  # UTF-8: at most 4 bytes a character
IMMUTABLE = "public, max-age=31536000, immutable"

IMAGE_TYPES = tuple(f.content_type for f in FORMATS.values())
_FILE = {"type": "string", "contentMediaType": "application/octet-stream", "description": "JPEG, PNG or WebP."}
_RAW = {"type": "string", "contentMediaType": "application/octet-stream"}
_MEDIA_TYPES = (*IMAGE_TYPES, "application/octet-stream", "multipart/form-data")
IMAGE_BODY = Raw(
    _MEDIA_TYPES,
    _RAW,
    {"multipart/form-data": {"type": "object", "properties": {"file": _FILE}, "required": ["file"]}},
)
SHOT_BODY = Raw(
    _MEDIA_TYPES,
    _RAW,
    {
        "multipart/form-data": {
            "type": "object",
            "properties": {"file": _FILE, "caption": {"type": "string", **CAPTION}},
            "required": ["file"],
        }
    },
)


async def _expect_within_limit(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` with a declared length over the limit: no 100, so the client never
    sends the body; the handler answers 413 straight away."""
    if (request.content_length or 0) > _limit(request) + MULTIPART_OVERHEAD:
        return None
    await _default_expect_handler(request)
    return None


def _limit(request: web.Request) -> int:
    return request.app[SETTINGS].upload_max_bytes


class _Spool:
    """A spool file being written: its size and SHA-256 as it grows; the limit enforced on every chunk."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.path = folder / f"{secrets.token_hex(16)}.part"
        self.limit = limit
        self.size = 0
        self.head = b""
        self.digest = hashlib.sha256()
        # Local, so each write lands in the page cache in microseconds; the flush to disk is
        # one fsync in a thread before the upload is recorded.
        self.file = self.path.open("xb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(f"The image is larger than {self.limit} bytes, the most accepted.")
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.digest.update(chunk)
        self.file.write(chunk)

    async def finish(self) -> None:
        self.file.flush()
        await asyncio.to_thread(os.fsync, self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


async def _chunks_of(reader: BodyPartReader | web.Request) -> AsyncIterator[bytes]:
    if isinstance(reader, web.Request):
        async for chunk in reader.content.iter_chunked(CHUNK):
            yield chunk
        return
    while chunk := await reader.read_chunk(CHUNK):
        yield chunk


async def _receive(request: web.Request, spool: _Spool, with_caption: bool) -> str | None:
    """Stream the image into the spool; the caption when the form has one."""
    if not request.content_type.startswith("multipart/"):
        async for chunk in _chunks_of(request):
            spool.write(chunk)
        return None
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("Send the image as the body, or as the `file` field of multipart/form-data.")
    caption: str | None = None
    seen_file = False
    try:
        form = await request.multipart()
        while (part := await form.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("Nested multipart bodies are not accepted.")
            if part.name == "file" and not seen_file:
                seen_file = True
                async for chunk in _chunks_of(part):
                    spool.write(chunk)
            elif part.name == "caption" and with_caption and caption is None:
                caption = await _caption(part)
            else:
                fields = "`file` and `caption`" if with_caption else "`file`"
                raise BadRequest(
                    f"Unexpected form field {part.name!r}: the form takes {fields}, once each.",
                    errors=[FieldError(part.name or "", "unexpected field")],
                )
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # aiohttp's parser on a malformed form
        raise BadRequest(f"The multipart body is malformed: {exc}.") from None
    if not seen_file:
        raise BadRequest("The form has no `file` field.", errors=[FieldError("file", "required")])
    return caption


async def _caption(part: BodyPartReader) -> str:
    raw = b""
    async for chunk in _chunks_of(part):
        raw += chunk
        if len(raw) > MAX_CAPTION_BYTES:
            break
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ValidationFailed("The caption is not UTF-8.", errors=[FieldError("caption", "not UTF-8")]) from None
    if len(text) > CAPTION["maxLength"] or "\x00" in text:
        raise ValidationFailed(
            "The caption is too long or holds U+0000.",
            errors=[FieldError("caption", f"at most {CAPTION['maxLength']} characters, no U+0000")],
        )
    return text


async def _accept(request: web.Request, kind: Literal["poster", "photo", "shot"], entity_id: int) -> web.Response:
    """The request path shared by the three upload endpoints (see the module's docstring)."""
    reject_unknown(request.query, ())
    limit = _limit(request)
    overhead = MULTIPART_OVERHEAD if request.content_type.startswith("multipart/") else 0
    if request.content_length is not None and request.content_length > limit + overhead:
        raise PayloadTooLarge(f"The body is {request.content_length} bytes; at most {limit} are accepted.")
    uploader = request.app[UPLOADER]
    settings = request.app[SETTINGS]
    spool = _Spool(spool_dir(settings), limit)
    try:
        caption = await _receive(request, spool, with_caption=kind == "shot")
        await spool.finish()
        fmt = sniff(spool.head)
        if fmt is None:
            raise UnsupportedMediaType("The body is not a JPEG, PNG or WebP image (judged by its first bytes).")
        try:
            width, height = await asyncio.to_thread(dimensions, spool.path, fmt, settings.upload_max_pixels)
        except ImageError as exc:
            raise ValidationFailed(str(exc), errors=[FieldError("file", str(exc))]) from None
        new = NewUpload(
            kind=kind,
            entity_id=entity_id,
            fmt=fmt,
            width=width,
            height=height,
            size=spool.size,
            sha256=spool.digest.hexdigest(),
            spool_path=str(spool.path),
            node=uploader.node,
            caption=caption,
        )
        upload_id, doc = await request.app[CATALOG].ask(RecordUpload(new, if_match(request)))
    except BaseException:
        spool.discard()
        raise
    with contextlib.suppress(ActorError):  # recorded: if the uploader is stopping, the next start resumes it
        await uploader.tell(StoreUpload(upload_id))
    return json_response(request, doc.encode(), status=202, headers={"Location": f"/api/v1/uploads/{upload_id}"})


async def _remove(request: web.Request, kind: Literal["poster", "photo"]) -> web.Response:
    key = await request.app[CATALOG].ask(RemoveImage(kind, path_id(request), if_match(request)))
    if key is not None:  # deleted after the commit; a crash (or a stopping uploader) leaves them to the sweep
        with contextlib.suppress(ActorError):
            await request.app[UPLOADER].tell(DeleteImage(kind, key))
    return web.Response(status=204)


UPLOAD_ERRORS = (404, 412, 413, 415, 422)
# Uploads spend the uploads budget (CINEMA_RATE_LIMIT_UPLOADS), not the writes one.
UPLOAD_DOC = {
    "tag": TAG,
    "response": Upload,
    "status": 202,
    "errors": UPLOAD_ERRORS,
    "conditional": True,
    "budget": "uploads",
}


def _image_routes(kind: Literal["poster", "photo"], owner: str, path: str) -> None:
    """PUT (upload) and DELETE of the one image a movie (poster) or person (photo) has."""
    sizes = ", ".join(size.name for size in KINDS[kind].sizes)

    async def put(request: web.Request) -> web.Response:
        return await _accept(request, kind, path_id(request))

    async def delete(request: web.Request) -> web.Response:
        return await _remove(request, kind)

    for handler, verb, doc in (
        (put, "put", f"Renditions: {sizes}. If-Match takes the {owner}'s ETag."),
        (delete, "delete", "Its objects are deleted once the change has committed; no image: nothing changes."),
    ):
        handler.__name__ = handler.__qualname__ = f"{verb}_{kind}"  # the operation id
        handler.__doc__ = doc
    summary = f"Upload a {owner}'s {kind} (replaces the current one)"
    routes.put(path, expect_handler=_expect_within_limit)(describe(summary, body=IMAGE_BODY, **UPLOAD_DOC)(put))
    removal = describe(f"Remove a {owner}'s {kind}", tag=TAG, status=204, errors=(404, 412), conditional=True)
    routes.delete(path)(removal(delete))


_image_routes("poster", "movie", r"/api/v1/movies/{id:\d+}/poster")
_image_routes("photo", "person", r"/api/v1/persons/{id:\d+}/photo")


@routes.post(r"/api/v1/movies/{id:\d+}/shots", expect_handler=_expect_within_limit)
@describe("Add a shot to a movie, with its image (multipart: `file` and `caption`)", body=SHOT_BODY, **UPLOAD_DOC)
async def add_shot(request: web.Request) -> web.Response:
    """The shot exists at once (after the movie's last, `image_url` null) and its upload's `resource` names
    it; the image follows. Renditions: w300, w1280. If-Match takes the movie's ETag."""
    return await _accept(request, "shot", path_id(request))


@routes.get(r"/api/v1/uploads/{id:\d+}")
@describe("The status of an upload", tag=TAG, response=Upload, errors=(404,), conditional=True)
async def get_upload(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    doc = await request.app[CATALOG].ask(GetUpload(path_id(request)))
    return json_response(request, doc.encode())


@routes.get(MEDIA_PATH + "{key:[a-z0-9][a-z0-9/._-]*}")  # what a key can hold; valid_key says the rest
@describe(
    "A stored image (original or rendition): the file, or a redirect to a presigned URL of the bucket",
    tag=TAG,
    response=Raw((*IMAGE_TYPES,), {"type": "string", "contentMediaType": "application/octet-stream"}),
    errors=(404,),
)
async def get_media(request: web.Request) -> web.StreamResponse:
    """Keys are content-addressed, so a response may be cached forever. With S3 storage and no
    `CINEMA_MEDIA_BASE_URL`, a 302 to a presigned GET URL valid for `CINEMA_MEDIA_URL_TTL` seconds."""
    key = request.match_info["key"]
    if not valid_key(key):
        raise NotFound(f"No resource at {request.path}.")
    storage = request.app[STORAGE]
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"No resource at {request.path}.")
        return web.FileResponse(path, headers={"Content-Type": content_type_of(key), "Cache-Control": IMMUTABLE})
    ttl = request.app[SETTINGS].media_url_ttl
    url = await storage.presigned_get(key, ttl)
    assert url is not None  # only local storage serves its files itself
    # Reused by the client for part of the presigned URL's life, never past it.
    raise web.HTTPFound(url, headers={"Cache-Control": f"private, max-age={ttl // 2}"})

"""Images: what kinds there are, their object keys, recognising a format by its bytes, renditions.

Keys are content-addressed: an original is `<prefix>/<sha256 of its bytes>.<ext>` and each of its
renditions `<prefix>/<sha256>/<size>.webp`, so a key (and the URL made from it) always names
the same bytes and can be cached forever. Prefixes name the owner, never anything a client sent:
`movies/{id}/poster`, `persons/{id}/photo`, `movies/{movie id}/shots/{shot id}`. Deleting an
owner deletes its prefix.

Renditions follow TMDB's sizes: a width (`w342`) or a height (`h632`) bound, never enlarged,
encoded as WebP from the pixels alone, so EXIF (GPS included), XMP and ICC text never reach them.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import attrs
from PIL import Image, ImageOps, UnidentifiedImageError


@attrs.frozen
class Format:
    name: str  # as Pillow names it
    content_type: str
    ext: str


JPEG = Format("JPEG", "image/jpeg", "jpg")
PNG = Format("PNG", "image/png", "png")
WEBP = Format("WEBP", "image/webp", "webp")
FORMATS = {f.ext: f for f in (JPEG, PNG, WEBP)}
SNIFF_BYTES = 12  # enough for every signature below


def sniff(head: bytes) -> Format | None:
    """The format the first bytes of a file announce, whatever its name or declared type said."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


@attrs.frozen
class Size:
    """A rendition: fits within `width` x `height` (None: unbounded), keeping the aspect ratio."""

    name: str
    width: int | None
    height: int | None


@attrs.frozen
class ImageKind:
    name: str  # "poster"
    owner: str  # what the uploads row's entity id names
    sizes: tuple[Size, ...]


KINDS = {
    k.name: k
    for k in (
        ImageKind("poster", "movie", (Size("w185", 185, None), Size("w342", 342, None), Size("w780", 780, None))),
        ImageKind("photo", "person", (Size("w185", 185, None), Size("h632", None, 632))),
        ImageKind("shot", "shot", (Size("w300", 300, None), Size("w1280", 1280, None))),
    )
}


def owner_prefix(kind: str, entity_id: int, movie_id: int | None = None) -> str:
    """The folder of an owner's images; a shot's sits in its movie's (deleting the movie deletes it)."""
    if kind == "poster":
        return f"movies/{entity_id}/poster"
    if kind == "photo":
        return f"persons/{entity_id}/photo"
    return f"movies/{movie_id}/shots/{entity_id}"


def original_key(prefix: str, sha256: str, fmt: Format) -> str:
    return f"{prefix}/{sha256}.{fmt.ext}"


def stem(key: str) -> str:
    """What an image's objects have in common: the original's key without its extension."""
    return key.rsplit(".", 1)[0]


def rendition_key(original: str, size: Size) -> str:
    return f"{stem(original)}/{size.name}.webp"


def image_keys(kind: str, original: str) -> list[str]:
    """Every object of an image: the original and its renditions."""
    return [original, *(rendition_key(original, size) for size in KINDS[kind].sizes)]


# An object key this service could have written; anything else is refused before it is used as a path.
KEY = re.compile(r"^(?:movies|persons)/[0-9]+/[a-z0-9/]+(?:/[0-9a-f]{64}(?:\.[a-z]+|/[a-z0-9]+\.webp))$")
_IMAGE_OF = re.compile(r"^(.*/[0-9a-f]{64})(?:\.[a-z]+|/[a-z0-9]+\.webp)$")


def valid_key(key: str) -> bool:
    return KEY.match(key) is not None and ".." not in key


def image_stem_of(key: str) -> str | None:
    """The stem of the image an object belongs to (an original or a rendition); None for a foreign key."""
    match = _IMAGE_OF.match(key)
    return match.group(1) if match else None


def content_type_of(key: str) -> str:
    fmt = FORMATS.get(key.rsplit(".", 1)[-1])
    return fmt.content_type if fmt else "application/octet-stream"


class ImageError(Exception):
    """The bytes are not an image Pillow can read (their signature claimed one)."""


class TooManyPixels(ImageError):
    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"The image is {width}x{height} pixels; at most {limit} pixels are accepted.")


def dimensions(path: Path, fmt: Format, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone (nothing is decoded); refuses more than `max_pixels`."""
    try:
        with warnings.catch_warnings():
            # Above Pillow's own limit it warns, and refuses at twice that: ours is lower and says why.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=[fmt.name]) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise ImageError(f"The image has more than {max_pixels} pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"The file starts like a {fmt.name} image but cannot be read as one: {exc}") from None
    if width * height > max_pixels:
        raise TooManyPixels(width, height, max_pixels)
    return width, height


WEBP_QUALITY = 80


def render(path: Path, sizes: tuple[Size, ...]) -> Mapping[str, bytes]:
    """Each size as WebP bytes, from the pixels only (no metadata), upright per the EXIF orientation.

    CPU-bound: run it in a thread (Pillow releases the GIL while decoding, resizing and encoding).
    """
    try:
        with Image.open(path) as img:
            # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: a big photo is never decoded whole
            # when its largest rendition is small.
            img.draft("RGB", _largest_box(sizes, img.size))
            upright = ImageOps.exif_transpose(img)
            has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            base = upright.convert("RGBA" if has_alpha else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"The image cannot be decoded: {exc}") from None
    out = {}
    # Largest first, each from the smallest picture already made that covers it: resizing a
    # w780 down to w342 costs a fraction of resizing the original again, for the same result.
    source = base
    for size in sorted(sizes, key=lambda s: _target(s, base.size), reverse=True):
        target = _target(size, base.size)
        picture = source.copy()
        picture.thumbnail(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        buffer = io.BytesIO()
        picture.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4)
        out[size.name] = buffer.getvalue()
        source = picture
    return {size.name: out[size.name] for size in sizes}


def _target(size: Size, actual: tuple[int, int]) -> tuple[int, int]:
    """The dimensions of the rendition: the original scaled to fit the size's box, never enlarged."""
    scale = min(1.0, *(bound / dim for bound, dim in zip(_box(size, actual), actual, strict=True)))
    return (max(1, round(actual[0] * scale)), max(1, round(actual[1] * scale)))


def _box(size: Size, actual: tuple[int, int]) -> tuple[int, int]:
    return (size.width or actual[0], size.height or actual[1])


def _largest_box(sizes: tuple[Size, ...], actual: tuple[int, int]) -> tuple[int, int]:
    """The largest rendition's dimensions (what a draft decode must at least give)."""
    return max((_target(size, actual) for size in sizes), default=actual)

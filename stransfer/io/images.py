"""Image input/output for Stransfer: safe loading, resizing and atomic saving.

Every image that enters the app goes through :func:`load_image`, which turns any
file Pillow can read into a plain ``uint8`` RGB array, or raises
:class:`ImageError` with a one-line message that can be shown to the user as is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

MAX_PIXELS = 40_000_000
MAX_BYTES = 50 * 1024 * 1024
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
)

_FORMATS_HINT = "choose a PNG, JPEG, WebP, BMP, TIFF or GIF file"
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
# Magic numbers of the formats we advertise: a file that starts like one but will not open is
# damaged, not "not an image".
_IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*")

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class ImageError(ValueError):
    """An image could not be used. ``str(e)`` is a one-line message for the user."""


def _one_line(text: object, limit: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_source(source: Source, name: str | None, max_bytes: int) -> tuple[bytes, str]:
    """Return the raw bytes of ``source`` and the name to use in messages."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or path.name or str(path)
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise ImageError(
                    f"{label} is a folder, not an image; choose an image file inside it."
                )
            # Check the size before reading so a huge file is never pulled into memory.
            if size > max_bytes:
                raise _too_many_bytes(label, size, max_bytes)
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(
                f"{label} was not found ({path}); check the path or choose another file."
            ) from None
        except PermissionError:
            raise ImageError(
                f"{label} could not be opened (permission denied); check the file's permissions."
            ) from None
        except OSError as exc:
            raise ImageError(
                f"{label} could not be read ({_one_line(exc.strerror or exc)}); try another copy."
            ) from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "The file"
        data = bytes(source)
    elif hasattr(source, "read"):
        raw_name = getattr(source, "name", None)
        label = name or (
            os.path.basename(raw_name) if isinstance(raw_name, str) and raw_name else "The file"
        )
        try:
            # Uploads may already have been read once (e.g. by a preview); start from the top.
            if getattr(source, "seekable", lambda: False)():
                source.seek(0)
            data = source.read(max_bytes + 1)  # one extra byte tells us the limit was passed
            if len(data) > max_bytes:  # UploadedFile knows its size; other streams may not
                size = getattr(source, "size", None)
                raise _too_many_bytes(label, size if isinstance(size, int) else None, max_bytes)
        except OSError as exc:
            raise ImageError(
                f"{label} could not be read ({_one_line(exc)}); try uploading it again."
            ) from exc
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("file-like image sources must be opened in binary mode")
        data = bytes(data)
    else:
        raise TypeError(f"cannot load an image from {type(source).__name__}")
    if len(data) > max_bytes:
        raise _too_many_bytes(label, len(data), max_bytes)
    if not data:
        raise ImageError(f"{label} is empty (0 bytes); choose a file that contains an image.")
    return data, label


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _too_many_bytes(label: str, size: int | None, max_bytes: int) -> ImageError:
    shown = _human_bytes(size) if size else "over the limit"
    return ImageError(
        f"{label} is too big ({shown}; the limit is {_human_bytes(max_bytes)}); "
        "save it at a smaller size or as JPEG and try again."
    )


def _too_many_pixels(label: str, pixels: int | None, max_pixels: int) -> ImageError:
    size = f"{pixels / 1e6:.1f} megapixels" if pixels else "too many pixels"
    return ImageError(
        f"{label} is too large ({size}; the limit is {max_pixels / 1e6:.0f} megapixels); "
        "scale it down and try again."
    )


def _not_an_image(label: str, data: bytes) -> ImageError:
    """Say what a non-image file seems to be, so the user knows why it was refused."""
    head = data[:1024]
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc", b"ftypmsf1"):
        return ImageError(
            f"{label} is a HEIC/HEIF photo, which is not supported; convert it to JPEG first."
        )
    if b"<svg" in head.lower():
        return ImageError(f"{label} is an SVG drawing, not a pixel image; export it as PNG first.")
    if head.startswith(b"%PDF"):
        kind = "it looks like a PDF"
    elif head.startswith(b"PK\x03\x04"):
        kind = "it looks like a ZIP archive or Office document"
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:  # a multi-byte character cut off at the end is still text
            text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
        printable = sum(c.isprintable() or c.isspace() for c in text)
        looks_text = text and "\x00" not in text and printable >= 0.95 * len(text)
        kind = "it looks like text" if looks_text else "the format is not recognised"
    return ImageError(f"{label} is not an image ({kind}); {_FORMATS_HINT}.")


def _to_rgb(im: Image.Image, fmt: str | None) -> Image.Image:
    """Convert a loaded image of any mode to RGB, compositing transparency over white."""
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        # Pillow's convert() clips high-bit-depth values to 255; scale them instead.
        raw = np.asarray(im)
        values = raw.astype(np.float64)
        low, high = float(values.min()), float(values.max())
        if mode.startswith("I;16") or (mode == "I" and fmt == "PNG"):
            values /= 257.0  # 16-bit samples: 65535 -> 255
        elif mode == "F" and low >= 0.0 and high <= 1.0:
            values *= 255.0  # float images in 0..1
        elif low >= 0.0 and high <= 255.0:
            pass  # already 8-bit range
        elif low >= 0.0 and high <= 65535.0:
            values /= 257.0
        else:  # arbitrary range (e.g. signed or scientific data): stretch to 0..255
            values = (values - low) * (255.0 / ((high - low) or 1.0))
        gray = Image.fromarray(to_uint8(values), "L")
        trns = im.info.get("transparency")
        if isinstance(trns, int):
            gray.putalpha(Image.fromarray(np.where(raw == trns, 0, 255).astype(np.uint8), "L"))
        im = gray
    elif mode == "LAB":
        # Pillow's plain LAB->RGB conversion is wrong; LittleCMS does it properly.
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        im = ImageCms.applyTransform(im, transform)
    elif mode == "La":
        im = im.convert("LA")

    if im.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(
    source: Source,
    *,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> np.ndarray:
    """Load an image file as a ``uint8`` RGB array of shape ``(H, W, 3)``.

    ``source`` is a path, raw bytes, or a binary file-like object (such as
    Streamlit's ``UploadedFile``). EXIF orientation is applied, alpha is
    composited over white and animations yield their first frame. Anything that
    cannot be used raises :class:`ImageError` naming the file and the fix.
    """
    im, fmt, label = open_image(source, name=name, max_pixels=max_pixels, max_bytes=max_bytes)
    try:
        rgb = _to_rgb(im, fmt)
    except Exception as exc:
        raise ImageError(
            f"{label} uses a colour mode that cannot be converted ({im.mode}); "
            "re-save it as an RGB PNG or JPEG."
        ) from exc
    return np.array(rgb, dtype=np.uint8)


def open_image(
    source: Source,
    *,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> tuple[Image.Image, str | None, str]:
    """Decode an image file with every check :func:`load_image` makes, in its own mode.

    Returns the decoded Pillow image (EXIF orientation applied), its format and the name used
    in messages; for readers that need more than RGB (a mask's alpha or 16 bits).
    """
    data, label = _read_source(source, name, max_bytes)
    # Image.open() applies Pillow's own global limit before we can look at the size: it warns
    # above MAX_IMAGE_PIXELS and raises above twice that. Below our limit, its warning is a
    # refusal; if the caller allows more than Pillow does, our own check below decides.
    pil_limit = Image.MAX_IMAGE_PIXELS
    bomb_action = "error" if pil_limit and max_pixels < pil_limit else "ignore"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(bomb_action, Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size  # from the header: nothing has been decoded yet
            if width < 1 or height < 1:
                raise ImageError(
                    f"{label} has no pixels ({width}x{height}); choose a different image."
                )
            if width * height > max_pixels:
                raise _too_many_pixels(label, width * height, max_pixels)
            im.load()  # force a full decode so truncated or corrupt files fail here, not later
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        limit = min(max_pixels, 2 * pil_limit) if pil_limit else max_pixels
        raise _too_many_pixels(label, int(found.group(1)) if found else None, limit) from exc
    except Image.UnidentifiedImageError as exc:
        if data.startswith(_IMAGE_SIGNATURES) or data[8:12] == b"WEBP":
            raise ImageError(
                f"{label} is damaged (its header could not be read); "
                "re-save or re-download it and try again."
            ) from exc
        raise _not_an_image(label, data) from exc
    except Exception as exc:  # decoders raise many types on bad input; the user needs one message
        raise ImageError(
            f"{label} is damaged or incomplete ({_one_line(exc, 60)}); "
            "re-save or re-download it and try again."
        ) from exc

    fmt = im.format  # exif_transpose returns a copy, which forgets the format
    # Malformed EXIF should not make an otherwise readable photo unusable.
    with contextlib.suppress(Exception):
        im = ImageOps.exif_transpose(im)
    return im, fmt, label


def _check_dims(height: int, width: int) -> None:
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"target size must be at least 1x1, got {height}x{width}")


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to exactly ``height`` x ``width`` (Lanczos when shrinking, bicubic when enlarging).

    ``uint8`` arrays (HxW or HxWxC) keep their dtype; float arrays are resized per
    channel at full precision and returned as ``float32``.
    """
    _check_dims(height, width)
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    old_h, old_w = image.shape[:2]
    size = (int(width), int(height))
    if (old_h, old_w) == (size[1], size[0]):
        return image.copy()
    shrinking = size[0] < old_w or size[1] < old_h
    resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] in (3, 4)):
        return np.asarray(Image.fromarray(image).resize(size, resample)).copy()
    if np.issubdtype(image.dtype, np.floating) or image.dtype == np.uint8:
        # Mode "F" keeps float precision and handles any channel count.
        planes = image[..., None] if image.ndim == 2 else image
        out = np.stack(
            [
                np.asarray(
                    Image.fromarray(planes[..., c].astype(np.float32), "F").resize(size, resample)
                )
                for c in range(planes.shape[2])
            ],
            axis=-1,
        )
        out = out[..., 0] if image.ndim == 2 else out
        return to_uint8(out) if image.dtype == np.uint8 else out
    raise TypeError(f"cannot resize images of dtype {image.dtype}; use uint8 or float")


def fit_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so the longer side is ``long_side`` px, keeping the aspect ratio (each side >= 1)."""
    if int(long_side) < 1:
        raise ValueError(f"long_side must be at least 1, got {long_side}")
    height, width = np.asarray(image).shape[:2]
    scale = int(long_side) / max(height, width)
    return resize_to(image, max(1, round(height * scale)), max(1, round(width * scale)))


def _to_pil(image: np.ndarray) -> Image.Image:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(
            f"expected a uint8 image, got {image.dtype}; use np.clip(x, 0, 255).astype(np.uint8)"
        )
    if (
        not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)))
        or 0 in image.shape[:2]
    ):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)


def encode_png(
    image: np.ndarray, metadata: Mapping[str, str] | None = None, *, fast: bool = False
) -> bytes:
    """Encode a ``uint8`` image as PNG bytes, storing ``metadata`` as tEXt/iTXt chunks.

    ``fast`` trades about 10% more bytes for a 3x quicker encode (zlib level 1), for the
    frames a running job writes after every step on the cores its run needs.
    """
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        if not 1 <= len(key) <= 79 or not key.isprintable() or not key.isascii():
            raise ValueError(
                f"PNG metadata keys must be 1-79 printable ASCII characters, got {key!r}"
            )
        info.add_text(key, str(value))  # Pillow switches to iTXt when the value is not Latin-1
    buffer = io.BytesIO()
    level = 1 if fast else 6  # 6 is Pillow's default
    _to_pil(image).save(buffer, format="PNG", pnginfo=info, compress_level=level)
    return buffer.getvalue()


def read_png_metadata(source: Source) -> dict[str, str]:
    """Return the text chunks of a PNG as a dict (empty for other formats)."""
    data, label = _read_source(source, None, MAX_BYTES)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                return {}
            # .text (unlike .info) also sees text chunks stored after the pixel data.
            return {str(k): str(v) for k, v in im.text.items()}
    except Exception as exc:
        raise ImageError(
            f"{label} could not be read as PNG ({_one_line(exc, 60)}); choose a PNG file."
        ) from exc


def save_image(
    image: np.ndarray, path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``image`` atomically as PNG (with ``metadata``) or JPEG (metadata ignored).

    Written with ``write_bytes_atomic``, so readers never see a half-written image.
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"Cannot save {path.name}: unsupported file type; use a name ending in .png or .jpg."
        )
    if fmt == "PNG":
        payload = encode_png(image, metadata)
    else:
        buffer = io.BytesIO()
        pil = _to_pil(image)
        pil = pil.convert("RGB") if pil.mode == "RGBA" else pil
        pil.save(buffer, format="JPEG", quality=95)
        payload = buffer.getvalue()

    return write_bytes_atomic(path, payload)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Round and clip any numeric image to uint8 0..255."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def write_bytes_atomic(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (see ``write_atomic``)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(payload))


def write_atomic(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Let ``write(tmp_name)`` fill a temp file, then move it over ``path`` atomically.

    The temp file is hidden, in the same folder (so the rename is atomic), fsynced before the
    rename, so readers never see a half-written file and a crash leaves the old one intact.
    Missing parent folders are created. ``write`` takes a file name rather than bytes so that
    libraries that write by name (h5py) can use it too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp_name)
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600 files; outputs should be shareable
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name, hidden ones skipped ([] if missing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    ]
    return sorted(found, key=lambda p: (p.name.casefold(), p.name))


def image_sha256(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels, including dtype and shape, for reproducibility records."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{image.dtype.str}{image.shape}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()

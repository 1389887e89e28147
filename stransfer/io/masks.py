"""Region mask files: any image as a 0..1 mask, alpha and 16 bits kept (see ``core.regions``)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from ..core.regions import (
    MASK_SIDE,
    PHOTO,
    MaskError,
    Region,
    mask_from_array,
    mask_to_uint8,
    resize_mask,
)
from .images import ImageError, Source, open_image


def load_mask(source: Source, *, name: str | None = None) -> np.ndarray:
    """Read a mask file (a path, bytes or a binary file) as float32 ``H x W`` in 0..1.

    White is the region, black elsewhere, grey in between (soft borders). 16-bit greys keep
    their depth; a transparent layer's alpha is the mask. Raises ImageError (not an image,
    damaged, too big) or MaskError (all black), each one line naming the file and the fix.
    """
    im, _, label = open_image(source, name=name)
    try:
        array = _mask_pixels(im)
    except (ValueError, TypeError, OSError) as exc:
        raise ImageError(
            f"{label} uses a colour mode that cannot be a mask ({im.mode}); save it as a grey PNG."
        ) from exc
    return mask_from_array(array, label)


def _mask_pixels(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(im)
        if mode == "I" and values.max(initial=0) <= 65535 and values.min(initial=0) >= 0:
            return values.astype(np.uint16)  # 16-bit PNGs decode as mode I
        return values.astype(np.float32) / max(1.0, float(values.max(initial=1)))
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))
    if mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in im.info:
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("L"))


def mask_png(mask: np.ndarray, side: int = MASK_SIDE) -> bytes:
    """The mask as an 8-bit grey PNG, its long side at most ``side`` (for records and pages)."""
    height, width = mask.shape[:2]
    scale = min(1.0, side / max(height, width))
    small = resize_mask(mask, (max(1, round(height * scale)), max(1, round(width * scale))))
    buffer = io.BytesIO()
    Image.fromarray(mask_to_uint8(small), "L").save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def mask_data_url(mask: np.ndarray, side: int = MASK_SIDE) -> str:
    """:func:`mask_png` as a ``data:`` URL (what a run record keeps to restore the mask)."""
    return "data:image/png;base64," + base64.b64encode(mask_png(mask, side)).decode("ascii")


def mask_from_data_url(url: str, name: str = "a recorded mask") -> np.ndarray:
    """Inverse of :func:`mask_data_url`; ImageError/MaskError for anything else."""
    prefix = "data:image/png;base64,"
    if not isinstance(url, str) or not url.startswith(prefix):
        raise ImageError(f"{name} is not a PNG data URL")
    try:
        data = base64.b64decode(url[len(prefix) :], validate=True)
    except ValueError:
        raise ImageError(f"{name} is not valid base64") from None
    return load_mask(data, name=name)


def region_records(regions: tuple[Region, ...] | list[Region]) -> list[dict[str, object]]:
    """What a run record keeps of each region: hash, name, what goes there, and the mask
    itself as a small PNG data URL (so Load settings can restore it anywhere)."""
    return [{**region.describe(), "mask": mask_data_url(region.mask)} for region in regions]


def regions_from_records(items: object) -> tuple[Region, ...]:
    """Inverse of :func:`region_records` (a record's ``extra["regions"]``); ImageError or
    MaskError naming the region for anything that is not one."""
    if not isinstance(items, list):
        raise ImageError("the record's regions should be a list")
    regions = []
    for number, item in enumerate(items, 1):
        label = f"region {number}"
        if not isinstance(item, dict) or "mask" not in item:
            raise ImageError(f"{label} of the record has no mask")
        what = item.get("style_weights", PHOTO)
        if what == PHOTO:
            weights: tuple[float, ...] = ()
        elif isinstance(what, list) and all(isinstance(w, int | float) for w in what):
            weights = tuple(float(w) for w in what)
        else:
            raise ImageError(f"{label} of the record has no style weights")
        name = item.get("name") if isinstance(item.get("name"), str) else label
        regions.append(Region(mask_from_data_url(item["mask"], label), weights, name))
    return tuple(regions)


__all__ = [
    "MaskError",
    "load_mask",
    "mask_data_url",
    "mask_from_data_url",
    "mask_png",
    "region_records",
    "regions_from_records",
]

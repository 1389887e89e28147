"""Regions: where each style goes (Gatys et al. 2017, "Controlling Perceptual Factors").

A region is a mask (float32 ``H x W`` in 0..1, soft values allowed) and what goes there: a
blend of the run's style images (one weight per style image) or the photo (no style term
there, content only). The optimiser matches one guided Gram matrix per styled region at every
style layer (``stransfer.engine.losses.guided_grams``); the instant engine paints each region
with its own style and composites the results with the feathered masks.

Masks are data, resized to the content at each scale; a pixel no mask covers gets no style
term (it stays the photo). :func:`with_rest` adds the region "everything the masks leave
uncovered", which is how the front ends give the main style to the rest of the picture.

No TensorFlow and no file decoding here (``stransfer.io.masks.load_mask`` decodes files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .settings import SettingsError

#: What a region that keeps the photo is called on every front end (``--region M.png=photo``).
PHOTO = "photo"
#: A mask whose largest value is below this covers nothing (an all-black mask).
MIN_COVER = 1.0 / 255.0
#: The rest region is left out when the masks leave less than this fraction uncovered.
MIN_REST = 1e-3
#: Mask long side kept in records and on the page (a mask is smooth: more says nothing).
MASK_SIDE = 512
#: Most regions a run may have (each adds a Gram per style layer and a forward of its style).
MAX_REGIONS = 8
#: How a mask reaches each style layer (see ``stransfer.engine.losses.layer_masks``):
#: ``inside`` (Gatys' neurons that see only the region: area-downsampled, then eroded 3x3, so
#: a deep neuron on a border styles neither side; the default) or ``blur`` (area-downsampled,
#: then a 3x3 blur). Measured in docs/benchmarks.md ("Regions"): both bring each region's
#: style far within the target; ``inside`` keeps a photo region within C <= 0.1 (0.07 against
#: 0.10) and shows no halo where ``blur`` smears a tower top into the sky.
MASK_MAPPINGS = ("inside", "blur")
DEFAULT_MAPPING = "inside"


class MaskError(SettingsError):
    """A mask cannot be used; ``str(e)`` is one line naming the problem and the fix (a
    SettingsError about ``regions``, so every front end reports it as it reports settings)."""

    def __init__(self, message: str, field: str | None = "regions") -> None:
        super().__init__(message, field)


@dataclass(frozen=True, eq=False)
class Region:
    """One region of a run.

    Attributes:
        mask: float32 ``H x W`` in 0..1 (any size; resized to the content when used).
        weights: blend weight of each of the run's style images; empty: the photo is kept
            there (no style term).
        name: what the user called the mask (a file name), for messages and records.
    """

    mask: np.ndarray
    weights: tuple[float, ...] = ()
    name: str = ""

    @property
    def keeps_photo(self) -> bool:
        """Whether this region gets no style (content only)."""
        return not self.weights

    def sha256(self) -> str:
        """Hash of the mask as stored (8-bit), for the run record."""
        return mask_sha256(self.mask)

    def describe(self) -> dict[str, object]:
        """What a run record keeps of this region: the mask's hash and what goes there."""
        what: object = PHOTO if self.keeps_photo else [round(w, 6) for w in self.weights]
        return {"mask_sha256": self.sha256(), "name": self.name, "style_weights": what}


def mask_from_array(array: np.ndarray, name: str = "mask") -> np.ndarray:
    """Any decoded image as a float32 mask in 0..1: grey, RGB (its brightness), with alpha,
    8- or 16-bit or float, or boolean.

    An alpha channel that is not fully opaque is the mask itself (a stroke painted on a
    transparent layer); an opaque one is ignored. Raises MaskError for an array that is not an
    image or a mask that covers nothing.
    """
    values = np.asarray(array)
    if values.dtype == bool:
        values = values.astype(np.float32)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[2] not in (2, 3, 4)):
        raise MaskError(f"{name} is not an image (shape {values.shape}); use a grey PNG")
    if 0 in values.shape[:2] or not np.issubdtype(values.dtype, np.number):
        raise MaskError(f"{name} has no pixels; use a grey PNG the size of the content")
    scale = _full_scale(values)
    values = values.astype(np.float32) / scale
    if values.ndim == 3:
        channels = values.shape[2]
        alpha = values[..., -1] if channels in (2, 4) else None
        color = values[..., :3] if channels >= 3 else values[..., :1]
        gray = (
            color @ np.array([0.299, 0.587, 0.114], np.float32) if channels >= 3 else color[..., 0]
        )
        values = alpha if alpha is not None and alpha.min() < 1.0 else gray
    mask = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0).astype(np.float32)
    if mask.max() < MIN_COVER:
        raise MaskError(
            f"{name} is all black, so it covers nothing; paint the region white (white: the "
            "region, black: elsewhere)"
        )
    return mask


def _full_scale(values: np.ndarray) -> float:
    """The value that means "fully in the region" for this array's type."""
    if values.dtype == np.uint8:
        return 255.0
    if values.dtype == np.uint16 or (
        np.issubdtype(values.dtype, np.integer) and values.max() > 255
    ):
        return 65535.0
    if np.issubdtype(values.dtype, np.integer):
        return 255.0
    return 1.0 if float(np.nanmax(values)) <= 1.0 else 255.0


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` at ``(height, width)`` (area average when shrinking, bilinear when enlarging)."""
    height, width = int(shape[0]), int(shape[1])
    if mask.shape[:2] == (height, width):
        return np.asarray(mask, np.float32)
    shrinking = height < mask.shape[0] or width < mask.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    image = Image.fromarray(np.asarray(mask, np.float32), "F").resize((width, height), method)
    return np.clip(np.asarray(image, np.float32), 0.0, 1.0)


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` blurred by a Gaussian of ``radius`` px (soft borders for compositing)."""
    out = np.asarray(mask, np.float32)
    if radius <= 0:
        return out
    reach = max(1, int(np.ceil(3 * radius)))
    taps = np.exp(-0.5 * (np.arange(-reach, reach + 1) / radius) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    for axis in (0, 1):  # separable: one 1-D pass per axis, edges repeated
        pad = [(0, 0), (0, 0)]
        pad[axis] = (reach, reach)
        padded = np.pad(out, pad, mode="edge")
        size = out.shape[axis]
        out = sum(
            tap * np.take(padded, np.arange(i, i + size), axis=axis) for i, tap in enumerate(taps)
        )
    return np.asarray(out, np.float32)


def mask_sha256(mask: np.ndarray) -> str:
    """SHA-256 of a mask as 8-bit grey (what a record and the page compare)."""
    gray = np.ascontiguousarray(mask_to_uint8(mask))
    digest = hashlib.sha256(f"mask{gray.shape}".encode())
    digest.update(gray.tobytes())
    return digest.hexdigest()


def mask_to_uint8(mask: np.ndarray) -> np.ndarray:
    """A 0..1 mask as 8-bit grey (0: outside, 255: inside)."""
    return np.round(np.clip(np.asarray(mask, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def uncovered(regions: Sequence[Region], shape: tuple[int, int]) -> np.ndarray:
    """The part of a picture of ``shape`` that no mask covers (1 - their sum, clipped)."""
    covered = np.zeros(shape, np.float32)
    for region in regions:
        covered += resize_mask(region.mask, shape)
    return np.clip(1.0 - covered, 0.0, 1.0)


def with_rest(
    regions: Sequence[Region], weights: Sequence[float], shape: tuple[int, int]
) -> tuple[Region, ...]:
    """``regions`` plus one for the rest of a picture of ``shape`` (what no mask covers), which
    gets the blend ``weights`` (empty: the photo). Left out when the masks cover everything."""
    rest = uncovered(regions, shape)
    if float(rest.mean()) < MIN_REST:
        return tuple(regions)
    return (*regions, Region(rest, tuple(float(w) for w in weights), "rest"))


def check_regions(regions: Sequence[Region], styles: int) -> tuple[Region, ...]:
    """Validated regions for a run with ``styles`` style images.

    Raises SettingsError (field ``regions``) for too many regions, a region whose weights do
    not match the style images or are all zero, or regions that all keep the photo.
    """
    regions = tuple(regions)
    if len(regions) > MAX_REGIONS:
        raise SettingsError(
            f"{len(regions)} regions is more than {MAX_REGIONS}; merge some masks", "regions"
        )
    for region in regions:
        label = region.name or "a region"
        if not isinstance(region, Region):
            raise SettingsError(f"{region!r:.60} is not a Region", "regions")
        if region.keeps_photo:
            continue
        if len(region.weights) != styles:
            raise SettingsError(
                f"{label} has {len(region.weights)} style weight(s) for {styles} style "
                "image(s); give one weight per style image",
                "regions",
            )
        if any(not np.isfinite(w) or w < 0 for w in region.weights) or not any(
            w > 0 for w in region.weights
        ):
            raise SettingsError(
                f"{label}: style weights must be 0 or more with one above 0, not "
                f"{list(region.weights)}",
                "regions",
            )
    if regions and all(region.keeps_photo for region in regions):
        raise SettingsError(
            "every region keeps the photo, so there is nothing to paint; give one region a style",
            "regions",
        )
    return regions


def styled(regions: Sequence[Region]) -> tuple[Region, ...]:
    """The regions that get a style (a region that keeps the photo has no style term)."""
    return tuple(region for region in regions if not region.keeps_photo)


def stack_masks(regions: Sequence[Region], shape: tuple[int, int]) -> np.ndarray:
    """The masks of ``regions`` at ``shape`` as one float32 ``H x W x R`` array."""
    return np.stack([resize_mask(region.mask, shape) for region in regions], axis=-1)


def layout(
    masks: Sequence[tuple[np.ndarray, str]],
    blends: Sequence[Sequence[float]],
    rest: Sequence[float],
    shape: tuple[int, int],
) -> tuple[Region, ...]:
    """The regions of a run from masks and what each gets, as every front end gives them:
    ``masks[i]`` (mask, name) gets the blend ``blends[i]`` (weights over the run's style
    images; empty: the photo); what no mask covers of a picture of ``shape`` gets ``rest``
    (empty: the photo)."""
    if len(masks) != len(blends):
        raise SettingsError(
            f"{len(masks)} mask(s) but {len(blends)} region style(s); say what each mask gets",
            "regions",
        )
    regions = [
        Region(mask, tuple(float(w) for w in blend), name)
        for (mask, name), blend in zip(masks, blends, strict=True)
    ]
    return with_rest(regions, rest, shape)


def parse_blends(items: object, styles: int) -> list[tuple[float, ...]]:
    """What each mask gets, as the API and the page send it: a list with, per mask, ``"photo"``
    (keep the photo), the index of a style image (0-based), or one blend weight per style
    image. Raises SettingsError (field ``regions``) naming the item and the fix."""
    fix = (
        f'give one item per mask: "{PHOTO}", a style image index 0 to {styles - 1}, or a list '
        f"of {styles} blend weight(s)"
    )
    if not isinstance(items, list):
        raise SettingsError(f"regions must be a list; {fix}", "regions")
    blends: list[tuple[float, ...]] = []
    for number, item in enumerate(items, 1):
        if item == PHOTO:
            blends.append(())
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < styles:
            blends.append(tuple(float(i == item) for i in range(styles)))
        elif (
            isinstance(item, list)
            and len(item) == styles
            and all(isinstance(w, int | float) and not isinstance(w, bool) for w in item)
        ):
            blends.append(tuple(float(w) for w in item))
        else:
            raise SettingsError(f"region {number} is {item!r:.40}; {fix}", "regions")
    return blends

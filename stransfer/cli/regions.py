"""``--region MASK=STYLE``: where each style goes, on the command line (see ``core.regions``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.regions import PHOTO, Region, layout
from ..io.masks import load_mask
from .common import UsageError

REGION_HELP = (
    "paint STYLE only where the mask MASK is white (grey: partly; any image, resized to the "
    "content); STYLE is an image file, or 'photo' to keep the photo there; repeatable; the "
    "rest of the picture gets the STYLE arguments (default: off)"
)


def add_region_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add the repeatable ``--region MASK=STYLE`` option (allowed with ``--instant`` too)."""
    parser.add_argument(
        "--region",
        metavar="MASK=STYLE",
        action="append",
        default=None,
        type=_region_spec,
        help=REGION_HELP,
    )


def _region_spec(text: str) -> tuple[str, str]:
    mask, sep, style = text.rpartition("=")
    if not sep or not mask or not style:
        raise argparse.ArgumentTypeError(
            f"--region {text}: give a mask and what goes there, e.g. --region sky.png=starry.jpg "
            "or --region face.png=photo"
        )
    return mask, style


def region_styles(specs: Sequence[tuple[str, str]] | None, styles: Sequence[str]) -> list[str]:
    """All the run's style image paths: the STYLE arguments, then each region's new ones."""
    paths = list(styles)
    for _, style in specs or ():
        if style.lower() != PHOTO and style not in paths:
            paths.append(style)
    return paths


def load_regions(
    specs: Sequence[tuple[str, str]] | None,
    paths: Sequence[str],
    rest: Sequence[float],
    shape: tuple[int, int],
) -> tuple[Region, ...]:
    """The regions of ``--region`` options over the style images ``paths`` (from
    :func:`region_styles`); the rest of a ``shape`` picture gets the blend ``rest``.
    Raises ImageError or MaskError naming the mask file."""
    if not specs:
        return ()
    masks, blends = [], []
    for mask_path, style in specs:
        name = Path(mask_path).name
        if not Path(mask_path).expanduser().is_file() and not Path(mask_path).exists():
            raise UsageError(f"--region {mask_path}={style}: the mask {mask_path} was not found")
        masks.append((load_mask(Path(mask_path).expanduser(), name=f"mask {name}"), name))
        weights = np.zeros(len(paths), np.float32)
        if style.lower() != PHOTO:
            weights[list(paths).index(style)] = 1.0
        blends.append(tuple(weights.tolist()) if weights.any() else ())
    return layout(masks, blends, rest, shape)

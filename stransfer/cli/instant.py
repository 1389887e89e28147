"""``stransfer CONTENT STYLE [STYLE ...] -o OUT --instant``: the feed-forward result only.

The one ``stransfer`` parser (``cli.transfer``) reads the arguments; :func:`run` makes the
picture. This module also holds what the instant image run and ``video`` share: STYLE
arguments (image files, or built-in styles ``builtin:0`` .. ``builtin:25``, not both kinds at
once) and the help of the options that mean something else to the instant engine. TensorFlow is
never imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.recipe import DEFAULT_STRENGTH, check_style_weights
from ..core.regions import Region
from ..core.settings import SettingsError
from ..instant import BuiltinStyle, instant, instant_record, instant_regions, is_builtin
from ..io.images import ImageError, load_image
from ..io.masks import region_records
from ..weights import WeightsError
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    WriteError,
    check_output,
    error,
    setting_argument,
    write_result,
)
from .regions import load_regions, region_styles

#: The options that apply with --instant (besides CONTENT, STYLE, -o, -q); others are refused.
INSTANT_OPTIONS = ("--size", "--strength", "--style-weights", "--preserve-color", "--max-memory")
#: What --strength means to the instant engine (Magenta's identity interpolation).
STRENGTH_HELP = (
    "0 to 100: how far the style vector moves from the content's own style (0 is about the "
    "photo; for built-in styles, the mix with the photo)"
)
#: What --preserve-color does to an instant result.
COLOR_HELP = (
    "'luminance' keeps the content's colours under the result's brightness; 'histogram' "
    "recolours the result to the content's palette"
)
STYLE_HELP = "style image(s), or built-in styles builtin:N (0..25)"


def add_style_options(parser: argparse.ArgumentParser) -> None:
    """--style-weights, --strength and --preserve-color for an instant-only command (video),
    from the same metadata as the optimiser's options."""
    parser.add_argument("--style-weights", nargs="+", **setting_argument("style_weights", None))
    parser.add_argument(
        "--strength", **setting_argument("strength", DEFAULT_STRENGTH, STRENGTH_HELP)
    )
    parser.add_argument(
        "--preserve-color", **setting_argument("preserve_color", "none", COLOR_HELP)
    )


def instant_options(args: argparse.Namespace) -> dict[str, Any]:
    """The instant engine's keywords (size, strength, preserve_color) from parsed arguments."""
    return {"size": args.size, "strength": args.strength, "preserve_color": args.preserve_color}


def load_styles(
    names: Sequence[str], weights: Sequence[float] | None
) -> list[tuple[np.ndarray, float]] | BuiltinStyle:
    """STYLE arguments -> image/weight pairs, or a built-in blend.

    Raises SettingsError (the blend weights, checked by the recipe's rule), UsageError (files
    mixed with built-ins) or ImageError.
    """
    weights = check_style_weights(weights, len(names))
    builtin = [is_builtin(name) for name in names]
    if any(builtin) and not all(builtin):
        raise UsageError(
            "STYLEs mix built-in styles and image files; use only builtin:N names or only images"
        )
    if all(builtin):
        blend: dict[int | str, float] = {}
        for name, weight in zip(names, weights, strict=True):
            blend[name] = blend.get(name, 0.0) + weight
        return BuiltinStyle.of(blend)
    return [
        (load_image(path, name=f"style image {Path(path).name}"), weight)
        for path, weight in zip(names, weights, strict=True)
    ]


def _regions(
    args: argparse.Namespace,
    styles: list[tuple[np.ndarray, float]] | BuiltinStyle,
    shape: tuple[int, int],
) -> tuple[tuple[Region, ...], list[tuple[np.ndarray, float]] | BuiltinStyle]:
    """The ``--region`` regions and the style pairs they refer to (the STYLE arguments, then
    each region's own); the STYLE arguments' blend goes where no mask is."""
    specs = getattr(args, "region", None)
    if not specs:
        return (), styles
    if isinstance(styles, BuiltinStyle):
        raise UsageError("--region works with style image files, not built-in styles")
    paths = region_styles(specs, args.styles)
    extra = [(load_image(p, name=f"style image {Path(p).name}"), 0.0) for p in paths[len(styles) :]]
    pairs = [*styles, *extra]
    return load_regions(specs, paths, [w for _, w in pairs], shape), pairs


def run(args: argparse.Namespace) -> int:
    """Make and write the instant result for parsed ``stransfer`` arguments; the exit status."""
    started = time.perf_counter()
    refused = [flag for flag in getattr(args, "given", ()) if flag not in INSTANT_OPTIONS]
    if refused:
        return error(
            f"{refused[0]} does not apply with --instant (the feed-forward engine does not "
            "optimise); drop it, or drop --instant for an optimised run"
        )
    try:
        output = check_output(args.output)
        styles = load_styles(args.styles, args.style_weights)
        content = load_image(args.content, name=f"content image {Path(args.content).name}")
        options = instant_options(args)
        regions, styles = _regions(args, styles, content.shape[:2])
        if regions:
            images = [image for image, _ in styles]
            result = instant_regions(content, images, regions, **options)
        else:
            result = instant(content, styles, **options, max_memory=args.max_memory)
    except (UsageError, ImageError, SettingsError, WeightsError) as err:
        return error(err)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing written\n")
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - started
    sources = {
        "content": str(args.content),
        "styles": region_styles(getattr(args, "region", None), args.styles),
        **({"regions": region_records(regions)} if regions else {}),
    }
    record = instant_record(
        content=content, styles=styles, seconds=seconds, extra=sources, **options
    )
    try:
        write_result(result, output, record)
    except WriteError as err:
        return error(err, EXIT_FAILED)
    if not args.quiet:
        height, width = result.shape[:2]
        sys.stderr.write(f"wrote {output} ({width}x{height}) in {seconds:.2f} s (instant)\n")
    return EXIT_OK

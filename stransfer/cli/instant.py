"""``stransfer CONTENT STYLE [STYLE ...] -o OUT --instant``: the feed-forward result only.

Routed here by ``stransfer.cli.main`` whenever ``--instant`` is given, so TensorFlow is never
imported. A STYLE is an image file or a built-in style ``builtin:0`` .. ``builtin:25`` (not both
kinds at once). Errors are one line ``stransfer: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..core.settings import COLOR_MODES, SettingsError, TransferSettings
from ..instant import (
    BUILTIN_STYLES,
    MAX_SIDE,
    MIN_SIDE,
    BuiltinStyle,
    instant,
    instant_record,
    is_builtin,
)
from ..io.images import ImageError, load_image, save_image
from ..io.records import save_result, save_sidecar
from ..weights import WeightsError

PROG = "stransfer"
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line; the message is one line that says what to change."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def percent(text: str) -> float:
    """argparse type: a number from 0 to 100."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage from 0 to 100")
    return value


def weight(text: str) -> float:
    """argparse type: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of at least 0")
    return value


def add_style_options(parser: argparse.ArgumentParser) -> None:
    """The options the instant image run and ``video`` share (one definition, one help text)."""
    parser.add_argument(
        "--style-weights",
        type=weight,
        nargs="+",
        default=None,
        metavar="W",
        help="blend weights of the STYLEs, one per STYLE; 0 leaves one out (default: equal)",
    )
    parser.add_argument(
        "--strength",
        type=percent,
        default=100.0,
        metavar="PCT",
        help="0 to 100: how far the style vector moves from the content's own style "
        "(0 is about the photo; for built-in styles, the mix with the photo) "
        "(default: %(default)g)",
    )
    parser.add_argument(
        "--preserve-color",
        choices=COLOR_MODES,
        default="none",
        help="'luminance' keeps the content's colours under the result's brightness; "
        "'histogram' recolours the result to the content's palette (default: %(default)s)",
    )


def load_styles(
    names: Sequence[str], weights: Sequence[float] | None
) -> list[tuple[np.ndarray, float]] | BuiltinStyle:
    """STYLE arguments -> image/weight pairs, or a built-in blend; UsageError/ImageError."""
    if weights is None:
        weights = [1.0] * len(names)
    if len(weights) != len(names):
        raise UsageError(
            f"--style-weights got {len(weights)} weight(s) for {len(names)} STYLE(s); "
            "give one weight per STYLE"
        )
    if not any(w > 0 for w in weights):
        raise UsageError("--style-weights are all 0; give at least one STYLE a weight above 0")
    builtin = [is_builtin(name) for name in names]
    if any(builtin) and not all(builtin):
        raise UsageError(
            "STYLEs mix built-in styles and image files; use only builtin:N names or only images"
        )
    if all(builtin):
        blend: dict[int | str, float] = {}
        for name, w in zip(names, weights, strict=True):
            blend[name] = blend.get(name, 0.0) + w
        return BuiltinStyle.of(blend)
    return [
        (load_image(path, name=f"style image {Path(path).name}"), w)
        for path, w in zip(names, weights, strict=True)
    ]


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} --instant",
        description="Feed-forward style transfer (Magenta's arbitrary-style network): the "
        "result in about a second, no optimisation and no TensorFlow. Writes OUT with its run "
        "record, like a normal run.",
        epilog=f"built-in styles: {BUILTIN_STYLES[0]} .. {BUILTIN_STYLES[-1]}; models: "
        "python -m stransfer.weights install instant",
    )
    parser.add_argument("content", metavar="CONTENT", help="the image whose layout is kept")
    parser.add_argument(
        "styles", metavar="STYLE", nargs="+", help="style image(s), or builtin:N (0..25)"
    )
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help=".png/.jpg file")
    parser.add_argument("--instant", action="store_true", help="use the instant engine")
    parser.add_argument(
        "--size",
        type=int,
        default=TransferSettings().size,
        metavar="PX",
        help=f"long side of the result, {MIN_SIDE} to {MAX_SIDE}; the network runs at this "
        "size (default: %(default)s)",
    )
    add_style_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return parser


def check_output(text: str, suffixes: Sequence[str] = OUTPUT_SUFFIXES) -> Path:
    """The output path, if it names a file with one of ``suffixes``; else UsageError."""
    output = Path(text).expanduser()
    example = output.with_suffix(suffixes[0]).name if output.name else f"result{suffixes[0]}"
    if output.is_dir() or not output.name or output.name == "..":
        raise UsageError(f"output {text} is a folder; give a file name such as -o {example}")
    if output.suffix.lower() not in suffixes:
        raise UsageError(f"output {text} must end in {' or '.join(suffixes)}; e.g. -o {example}")
    return output


def error(message: object) -> int:
    """Write ``stransfer: error: MESSAGE`` (one line) to stderr; return the usage status."""
    text = " ".join(str(message).split()) or type(message).__name__
    if text.startswith(("size ", "strength ")):  # a library setting: name the option
        text = f"--{text}"
    sys.stderr.write(f"{PROG}: error: {text}\n")
    sys.stderr.flush()
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run ``stransfer ... --instant`` and return the exit status."""
    started = time.perf_counter()
    args_list = sys.argv[1:] if argv is None else list(argv)
    try:
        args, unknown = _build_parser().parse_known_args(args_list)
        if unknown:
            raise UsageError(
                f"{unknown[0]} does not apply with --instant (the feed-forward engine does not "
                "optimise); drop it, or drop --instant for an optimised run"
            )
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else EXIT_OK
    except UsageError as err:
        return error(f"{err} (see {PROG} --instant --help)")
    try:
        output = check_output(args.output)
        styles = load_styles(args.styles, args.style_weights)
        content = load_image(args.content, name=f"content image {Path(args.content).name}")
        result = instant(
            content,
            styles,
            size=args.size,
            strength=args.strength,
            preserve_color=args.preserve_color,
        )
    except (UsageError, ImageError, SettingsError, WeightsError) as err:
        return error(err)
    seconds = time.perf_counter() - started
    record = instant_record(
        content=content,
        styles=styles,
        size=args.size,
        strength=args.strength,
        preserve_color=args.preserve_color,
        seconds=seconds,
        extra={"content": str(args.content), "styles": [str(s) for s in args.styles]},
    )
    try:
        if output.suffix.lower() == ".png":
            save_result(result, output, record)
        else:  # JPEG cannot carry the record: the sidecar alone does
            save_image(result, output)
            save_sidecar(output, record)
    except (OSError, ImageError) as err:
        reason = getattr(err, "strerror", None) or err
        sys.stderr.write(f"{PROG}: error: cannot write {output}: {reason}\n")
        return EXIT_FAILED
    if not args.quiet:
        height, width = result.shape[:2]
        sys.stderr.write(f"wrote {output} ({width}x{height}) in {seconds:.2f} s (instant)\n")
    return EXIT_OK

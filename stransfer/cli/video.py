"""``stransfer video IN.mp4 STYLE [STYLE ...] -o OUT.mp4``: stylise a video with the instant engine.

A STYLE is an image file or a built-in style ``builtin:N``. One style vector is used for every
frame (low flicker); ``--blend`` adds temporal smoothing. The audio is kept. Progress with
frames/s goes to stderr: one updating line on a terminal, else a plain line every few seconds.
Errors are one line ``stransfer: error: ...`` with exit status 2. TensorFlow is never imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from ..core.settings import SettingsError
from ..instant import BuiltinStyle, style_vector
from ..instant.video import MAX_VIDEO_SIDE, VideoError, stylise_video
from ..io.images import ImageError
from ..weights import WeightsError
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    Parser,
    UsageError,
    check_output,
    error,
    parse,
    setting_argument,
)
from .instant import STYLE_HELP, add_style_options, instant_options, load_styles

PLAIN_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def build_parser() -> argparse.ArgumentParser:
    """The ``video`` subcommand's parser."""
    parser = Parser(
        prog=f"{PROG} video",
        description="Stylise a video frame by frame with the instant (feed-forward) engine, "
        "keeping its audio.",
    )
    parser.add_argument("input", metavar="IN", help="the video (MP4, MOV, WebM, MKV, ...)")
    parser.add_argument("styles", metavar="STYLE", nargs="+", help=STYLE_HELP)
    parser.add_argument(
        "-o", "--output", metavar="OUT", required=True, help="an .mp4 file; required"
    )
    size_help = f"long side of the result in pixels, at most {MAX_VIDEO_SIDE}"
    parser.add_argument("--size", **setting_argument("size", 640, size_help))
    parser.add_argument(
        "--blend",
        type=float,
        default=0.0,
        metavar="B",
        help="temporal smoothing, 0 to <1: the share of the previous result in each frame "
        "(0.3 calms shimmering texture; default: %(default)g, off)",
    )
    add_style_options(parser)
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress output (default: off)"
    )
    return parser


class FrameProgress:
    """frames/s on a text stream: an updating line on a terminal, else every PLAIN_EVERY s."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = bool(stream.isatty()) if tty is None else tty
        self._last = -PLAIN_EVERY

    def __call__(self, done: int, total: int | None, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        of = f"/{total}" if total else ""
        left = ""
        if total and rate > 0 and done < total:
            left = f", about {max(0.0, (total - done) / rate):.0f} s left"
        line = f"frame {done}{of}  {rate:.1f} frames/s{left}"
        if self.tty:
            self.stream.write(f"\r{line}\033[K")
        elif seconds - self._last >= PLAIN_EVERY:
            self._last = seconds
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")


def main(argv: list[str] | None = None) -> int:
    """Run ``stransfer video ...`` and return the exit status."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):  # --help, or a bad command line
        return args
    started = time.perf_counter()
    progress = None if args.quiet else FrameProgress(sys.stderr)
    try:
        output = check_output(args.output, (".mp4",))
        styles = load_styles(args.styles, args.style_weights)
        style = styles if isinstance(styles, BuiltinStyle) else style_vector(styles)
        options = {**instant_options(args), "blend": args.blend}
        result = stylise_video(args.input, output, style, on_frame=progress, **options)
    except (UsageError, VideoError, ImageError, SettingsError, WeightsError) as err:
        if progress is not None and progress.tty:
            progress.end()
        return error(err)
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted; {args.output} was not written\n")
        return EXIT_INTERRUPTED
    if progress is not None:
        progress.end()
        audio = "with its audio" if result.audio else "no audio in the source"
        sys.stderr.write(
            f"wrote {result.path} ({result.width}x{result.height}, {result.frames} frames, "
            f"{audio}) in {time.perf_counter() - started:.1f} s, "
            f"{result.frames / result.seconds:.1f} frames/s\n"
        )
    return EXIT_OK

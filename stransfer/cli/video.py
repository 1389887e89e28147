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
from .instant import PROG, UsageError, _Parser, add_style_options, check_output, error, load_styles

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
PLAIN_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def _blend(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 up to (not incl.) 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``video`` subcommand's parser."""
    parser = _Parser(
        prog=f"{PROG} video",
        description="Stylise a video frame by frame with the instant (feed-forward) engine, "
        "keeping its audio.",
    )
    parser.add_argument("input", metavar="IN", help="the video (MP4, MOV, WebM, MKV, ...)")
    parser.add_argument(
        "styles", metavar="STYLE", nargs="+", help="style image(s), or builtin:N (0..25)"
    )
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="an .mp4 file")
    parser.add_argument(
        "--size",
        type=int,
        default=640,
        metavar="PX",
        help=f"long side of the result, at most {MAX_VIDEO_SIDE} (default: %(default)s)",
    )
    parser.add_argument(
        "--blend",
        type=_blend,
        default=0.0,
        metavar="B",
        help="temporal smoothing, 0 to <1: the share of the previous result in each frame "
        "(0.3 calms shimmering texture; default: %(default)g, off)",
    )
    add_style_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
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
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else EXIT_OK
    except UsageError as err:
        return error(f"{err} (see {PROG} video --help)")
    started = time.perf_counter()
    progress = None if args.quiet else FrameProgress(sys.stderr)
    try:
        output = check_output(args.output, (".mp4",))
        styles = load_styles(args.styles, args.style_weights)
        style = styles if isinstance(styles, BuiltinStyle) else style_vector(styles)
        result = stylise_video(
            args.input,
            output,
            style,
            size=args.size,
            strength=args.strength,
            preserve_color=args.preserve_color,
            blend=args.blend,
            on_frame=progress,
        )
    except (UsageError, VideoError, ImageError, SettingsError, WeightsError) as err:
        if progress is not None and progress.tty:
            progress.end()
        text = str(err)
        if text.startswith(("size ", "blend ")):
            text = f"--{text}"
        return error(text)
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

"""The ``stransfer`` command line: one style transfer run from image files to an image file.

    stransfer CONTENT STYLE [STYLE ...] -o OUT.png [options]
    python -m stransfer CONTENT STYLE [STYLE ...] -o OUT.png [options]

Progress goes to stderr. Every problem with the arguments or the inputs is reported as one line
``stransfer: error: ...`` with exit status 2; see ``EXIT_*`` below for the other statuses.
``main(argv)`` returns the exit status instead of exiting, so it can be called from tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ..core.events import StepEvent, format_duration
from ..core.models import MODEL_NAMES, ModelError, get_model
from ..core.recipe import DEFAULT_STRENGTH, Recipe, make_recipe
from ..core.settings import SETTING_NAMES, SettingsError, TransferSettings, field_info
from ..core.tiles import parse_memory
from ..instant import MAX_SIDE, MIN_SIDE
from ..io.animation import FrameRecorder, write_animation
from ..io.images import ImageError, load_image, save_image
from ..io.records import RECORD_KEY, RunInputs, RunRecord, png_metadata, recipe_record
from ..weights import INSTALL_CMD, WeightsError
from . import SUBCOMMANDS
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    RECIPE_INFO,
    Given,
    Parser,
    UsageError,
    WriteError,
    check_output,
    error,
    option,
    parse,
    setting_argument,
    write_result,
    writing,
)
from .instant import INSTANT_OPTIONS, STYLE_HELP
from .regions import add_region_option, load_regions, region_styles

if TYPE_CHECKING:
    from ..engine.features import FeatureExtractor

#: Animation file types for --save-animation (MP4 needs imageio-ffmpeg).
ANIMATION_SUFFIXES = (".gif", ".mp4")

# --------------------------------------------------------------------------- parsing


def _memory_amount(text: str) -> str:
    """``--max-memory``: an amount such as 3GB (checked here, passed on as written)."""
    try:
        parse_memory(text)
    except SettingsError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("max_memory ")) from None
    return text


def _model_name(text: str) -> str:
    """Canonical backbone name for ``text`` (case-insensitive); unknown names pass through."""
    try:
        return get_model(text).name
    except ModelError:
        return text  # argparse's choices check names the valid models


def _layer_spec(text: str) -> tuple[str, float]:
    """Parse ``LAYER`` or ``LAYER:WEIGHT`` (the weight defaults to 1)."""
    name, sep, weight = text.rpartition(":")
    if not sep:
        name, weight = text, "1"
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r} names no layer; write LAYER or LAYER:WEIGHT")
    try:
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the weight after ':' must be a number, e.g. {name}:0.5"
        ) from None


def _package_version() -> str:
    try:
        return importlib_metadata.version("stransfer")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


_DESCRIPTION = """\
Neural style transfer (Gatys et al.): repaint CONTENT with the textures and
colours of the STYLE image(s) and write the result to OUT. The output's pixels
are optimised so that a pretrained network (--model) sees the layout of CONTENT
and the style statistics of STYLE; several STYLE images are blended (see
--style-weights). Progress is shown on stderr. With --instant, a feed-forward
network paints CONTENT in about a second instead (no optimisation).

commands (each has its own --help):
""" + "\n".join(f"  {name:<9} {line}" for name, line in SUBCOMMANDS.items())

_USAGE = f"""\
{PROG} CONTENT STYLE [STYLE ...] -o OUT [options]
       {PROG} {{{",".join(SUBCOMMANDS)}}} ..."""

_EPILOG = f"""\
examples:
  {PROG} photo.jpg starry_night.jpg -o out/photo_starry.png
  {PROG} photo.jpg monet.jpg hokusai.jpg --style-weights 2 1 -o blend.png
  {PROG} photo.jpg art.png -o soft.png --strength 60 --preserve-color luminance
  {PROG} photo.jpg art.png -o out.png --steps 300 --size 768 \\
      --style-layers block1_conv1:2 block3_conv1 --save-every 25 frames \\
      --save-animation out.gif
  {PROG} photo.jpg builtin:7 -o instant.png --instant --size 1600

notes:
  Options that take several values (--content-layers, --style-layers,
  --style-weights) end at the next option: give CONTENT and STYLE before them,
  or end the list with --.
  ImageNet weights are looked up in Keras' cache (~/.keras/models), then, for
  VGG19, in the offline copy made by
  `{INSTALL_CMD}`, and downloaded as a last resort.
  Every result carries a run record (settings, hashes of the input images,
  style weights, steps done, final losses, time, versions): as JSON in the
  "{RECORD_KEY}" text chunk of a PNG, and in OUT.json next to OUT. The app's
  "Load settings" restores a run from either file.
  --instant needs the instant engine's models:
  `python -m stransfer.weights install instant`.

exit status:
  0    done, or stopped at --max-seconds
  1    the loss diverged (the last good image is written), out of memory,
       or OUT (or the animation) could not be written
  2    bad arguments, images, layers or weights
  130  interrupted by Ctrl-C (the last image is written)"""


def _layer_default(layers: dict[str, float]) -> str:
    weights = set(layers.values())
    names = " ".join(layers)
    return names if weights == {1.0} else " ".join(f"{k}:{v:g}" for k, v in layers.items())


#: Where each setting appears in ``--help``: (group title, entries). An entry is a
#: ``TransferSettings`` field, a recipe value (``strength``, ``style_weights``) or ``weights``
#: (the CLI's own --weights); each option is named after its field (``--content-weight``).
_GROUPS = (
    (
        "network and losses",
        (
            "model",
            "weights",
            "content_weight",
            "style_weight",
            "tv_weight",
            "strength",
            "preserve_color",
            "content_layers",
            "style_layers",
            "style_weights",
            "precision",
        ),
    ),
    (
        "optimisation",
        (
            "steps",
            "size",
            "optimizer",
            "learning_rate",
            "scales",
            "init",
            "style_scale",
            "seed",
            "max_seconds",
        ),
    ),
)


def _setting_argument(name: str, defaults: TransferSettings) -> dict[str, Any]:
    """``add_argument`` keywords for a setting or recipe value, from its metadata (see
    ``common.setting_argument``), with what the command line adds to a few of them."""
    default = getattr(defaults, name, DEFAULT_STRENGTH if name == "strength" else None)
    info = field_info(name) if name in SETTING_NAMES else RECIPE_INFO[name]
    if name == "model":  # any case; the choices check names the valid models
        text = f"{info.help}, one of {', '.join(MODEL_NAMES)}"
        return {
            **setting_argument(name, default, text, "%(default)s, any case"),
            "type": _model_name,
        }
    if name in ("content_layers", "style_layers"):
        layers = _layer_default(getattr(get_model(defaults.model), name))
        text = f"{info.help}; WEIGHT is 1 if left out"
        shown = f"the model's own, for {defaults.model}: {layers}"
        return {**setting_argument(name, default, text, shown), "type": _layer_spec, "nargs": "+"}
    if name == "style_weights":
        return {**setting_argument(name, default), "nargs": "+"}
    if name == "strength":
        text = f"{info.help}; with --instant, how far the style moves from the photo's own"
        return setting_argument(name, default, text)
    if name == "max_seconds":
        return setting_argument(
            name, default, info.help.removesuffix(" (None: no limit)"), "no limit"
        )
    return setting_argument(name, default)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. Every setting's option, default, choices and help come from the
    settings' metadata (``core.settings.field_info``) and ``TransferSettings()``."""
    defaults = TransferSettings()
    parser = Parser(
        prog=PROG,
        usage=_USAGE,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "content", metavar="CONTENT", help="the image whose layout is kept (PNG, JPEG, WebP, ...)"
    )
    parser.add_argument(
        "styles",
        metavar="STYLE",
        nargs="+",
        help=f"one or more images whose style is applied; with --instant, {STYLE_HELP}",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        required=True,
        help="result file ending in .png (the run record is kept in its metadata), .jpg or "
        ".jpeg; the record is also written to OUT.json; missing folders are created; required",
    )
    for title, names in _GROUPS:
        group = parser.add_argument_group(title)
        for name in names:
            if name == "weights":
                group.add_argument(
                    "--weights",
                    metavar="FILE",
                    default=None,
                    action=Given,
                    help="Keras .h5 weights for --model; the word 'random' uses untrained "
                    "weights (for testing only: the result is meaningless) (default: ImageNet "
                    "weights, see notes below)",
                )
            else:
                group.add_argument(option(name), **_setting_argument(name, defaults))

    parser.add_argument(
        "--instant",
        action="store_true",
        help="no optimisation: the instant engine's feed-forward result in about a second, "
        f"without TensorFlow; only {', '.join(INSTANT_OPTIONS)} and -q apply, --size from "
        f"{MIN_SIDE} to {MAX_SIDE} (default: off)",
    )
    add_region_option(parser)
    parser.add_argument(
        "--max-memory",
        metavar="AMOUNT",
        type=_memory_amount,
        default=None,
        help="memory the run may use, e.g. 3GB; a size that does not fit runs tile by tile "
        "(prints up to 8192 px), or is refused before it starts (default: 3/4 of the memory "
        "available now, or STRANSFER_MAX_MEMORY)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--save-every",
        nargs=2,
        metavar=("N", "DIR"),
        default=None,
        action=Given,
        help="also write the image every N steps to DIR/step_00010.png etc., each with the "
        "run record so far (default: off)",
    )
    out.add_argument(
        "--save-animation",
        metavar="PATH",
        default=None,
        action=Given,
        help="also write the run's evolution as a looping animation to PATH, ending in .gif, "
        "or .mp4 (needs imageio-ffmpeg); at most 60 evenly spaced frames, under 10 MB "
        "(default: off)",
    )
    out.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress output; errors and warnings are still shown (default: off)",
    )
    out.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {_package_version()}",
        help="show the version and exit",
    )
    return parser


# --------------------------------------------------------------------------- preparing


@dataclass
class Job:
    """Everything checked and loaded before the (long) optimisation starts."""

    recipe: Recipe
    content: np.ndarray
    styles: list[np.ndarray]
    inputs: RunInputs
    output: Path
    save_every: int | None
    save_dir: Path | None
    animation: Path | None
    notices: tuple[str, ...]
    #: Record ``extra`` only the CLI knows: the weights file (None: ImageNet, once resolved).
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``--max-memory`` as given (None: the default budget, ``core.tiles.memory_budget``).
    max_memory: str | None = None


def _layers(specs: Sequence[tuple[str, float]] | None, option: str) -> dict[str, float] | None:
    if specs is None:
        return None
    layers: dict[str, float] = {}
    for name, weight in specs:
        if name in layers:
            raise UsageError(f"{option} names {name} twice; give each layer once")
        layers[name] = weight
    return layers


def _check_animation(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in ANIMATION_SUFFIXES:
        raise UsageError(
            f"--save-animation {text} must be a file name ending in .gif or .mp4, "
            f"for example --save-animation {path.with_suffix('.gif')}"
        )
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401  (only checking that it is there)
        except ImportError:
            raise UsageError(
                f"--save-animation {text}: MP4 needs the imageio-ffmpeg package "
                "(pip install imageio-ffmpeg); or use a name ending in .gif"
            ) from None
    return path


def _save_every(values: Sequence[str] | None) -> tuple[int | None, Path | None]:
    if values is None:
        return None, None
    every, folder = values
    try:
        n = int(every)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(
            f"--save-every N DIR: N must be a whole number of at least 1, not {every!r}"
        )
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--save-every N DIR: {folder} exists and is not a folder")
    return n, path


def _recipe(args: argparse.Namespace) -> Recipe:
    """The validated recipe; --strength scales --style-weight and --tv-weight."""
    values = {name: getattr(args, name) for name in SETTING_NAMES}
    values["content_layers"] = _layers(args.content_layers, "--content-layers")
    values["style_layers"] = _layers(args.style_layers, "--style-layers")
    values["strength"] = args.strength
    return make_recipe(values, style_weights=args.style_weights, styles=len(args.styles))


def prepare(args: argparse.Namespace) -> Job:
    """Check the arguments and load the images: everything that can fail fast, before the model.

    Raises UsageError, SettingsError, ModelError or ImageError.
    """
    output = check_output(args.output)
    save_every, save_dir = _save_every(args.save_every)
    animation = _check_animation(args.save_animation)
    recipe = _recipe(args)
    content = load_image(args.content, name=f"content image {Path(args.content).name}")
    paths = region_styles(args.region, args.styles)
    styles = [load_image(path, name=f"style image {Path(path).name}") for path in paths]
    if args.region:  # the STYLE arguments' blend goes where no mask is
        rest = [*recipe.style_weights, *[0.0] * (len(paths) - len(args.styles))]
        regions = load_regions(args.region, paths, rest, content.shape[:2])
        recipe = make_recipe(recipe.values(), style_weights=rest, regions=regions)
    return Job(
        recipe,
        content,
        styles,
        RunInputs.of(content, styles, str(args.content), [str(path) for path in paths]),
        output,
        save_every,
        save_dir,
        animation,
        recipe.plan(content.shape[:2]).notices,
        {"weights": args.weights},
        args.max_memory,
    )


def _make_folders(job: Job) -> None:
    """Create the output's folder (and the snapshot folder); UsageError if that fails."""
    animation_dir = job.animation.parent if job.animation is not None else None
    for folder in (job.output.parent, job.save_dir, animation_dir):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create folder {folder}: {err.strerror or err}") from None


# --------------------------------------------------------------------------- progress


def format_step(event: StepEvent) -> str:
    """One progress line: step, scale, losses, speed, and time left (or taken, at the end)."""
    scale = f" [scale {event.scale}/{event.scales}]" if event.scales > 1 else ""
    losses = " ".join(
        f"{key}={event.losses.get(key, float('nan')):.4g}"
        for key in ("total", "content", "style", "tv")
    )
    when = (
        f"ETA {format_duration(event.eta)}"
        if event.status == "running"
        else f"{event.status} after {format_duration(event.elapsed)}"
    )
    speed = f"{event.seconds_per_step:.2f} s/step"
    return f"step {event.step}/{event.steps}{scale} {losses} {speed} {when}"


class Progress:
    """Progress on a text stream: one updating line on a terminal; elsewhere (a log file, CI)
    a plain line every ``interval`` seconds, after the first step and at the end."""

    def __init__(
        self,
        stream: TextIO,
        *,
        quiet: bool = False,
        tty: bool | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.quiet = quiet
        if tty is None:
            isatty = getattr(stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.interval, self.clock = interval, clock
        self._open = 0  # length of the unfinished \r line on a terminal (0: none)
        self._last: float | None = None  # when the last plain line was written

    def step(self, event: StepEvent) -> None:
        """Show ``event`` (every step on a terminal, else every ``interval`` seconds)."""
        if self.quiet:
            return
        line = format_step(event)
        if self.tty:
            pad = " " * max(0, self._open - len(line))
            self.stream.write(f"\r{line}{pad}")
            self.stream.flush()
            self._open = len(line)
            return
        now = self.clock()
        if self._last is None or now - self._last >= self.interval or event.status != "running":
            self._last = now
            self._print(line)

    def tile(self, scale: int, number: int, count: int) -> None:
        """A print's step in progress: tile ``number`` of ``count`` at ``scale`` done (on a
        terminal each tile, else every ``interval`` seconds)."""
        if self.quiet:
            return
        line = f"  scale {scale}: tile {number}/{count}"
        if self.tty:
            pad = " " * max(0, self._open - len(line))
            self.stream.write(f"\r{line}{pad}")
            self.stream.flush()
            self._open = len(line)
        elif self._last is None or self.clock() - self._last >= self.interval:
            self._last = self.clock()
            self._print(line)

    def info(self, text: str) -> None:
        """A message that ``--quiet`` silences."""
        if not self.quiet:
            self._print(text)

    def warn(self, text: str) -> None:
        """A message shown even with ``--quiet``."""
        self._print(text)

    def _print(self, text: str) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = 0
        self.stream.write(text + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------- running


class Writer:
    """Writes what a run makes, every image carrying its run record: a snapshot every
    --save-every steps, frames for --save-animation, and at the end OUT, its JSON sidecar and
    the animation."""

    def __init__(self, job: Job, precision: str, started: float, progress: Progress) -> None:
        self.job, self.precision, self.started, self.progress = job, precision, started, progress
        self.save_every = job.save_every if job.save_dir is not None else None
        self.frames = FrameRecorder() if job.animation is not None else None

    def record(self, event: StepEvent) -> RunRecord:
        return recipe_record(
            self.job.recipe,
            self.job.inputs,
            event,
            precision=self.precision,
            seconds=time.perf_counter() - self.started,
            extra=self.job.extra,
        )

    def step(self, event: StepEvent) -> None:
        """Keep the step's frame for the animation and write a snapshot when one is due."""
        if self.frames is not None:
            self.frames.add(event.image)
        if self.save_every and event.step % self.save_every == 0:
            self._snapshot(event)

    def _snapshot(self, event: StepEvent) -> None:
        assert self.job.save_dir is not None
        path = self.job.save_dir / f"step_{event.step:05d}.png"
        try:
            save_image(event.image, path, png_metadata(self.record(event)))
        except OSError as err:
            self.progress.warn(
                f"{PROG}: warning: cannot write {path} ({err.strerror or err}); "
                "no more snapshots will be saved"
            )
            self.save_every = None

    def result(self, event: StepEvent) -> None:
        """Write OUT and OUT.json, then the animation; raises WriteError."""
        write_result(event.image, self.job.output, self.record(event))
        if self.frames is not None and self.job.animation is not None:
            with writing(self.job.animation):
                write_animation(self.frames.frames, self.job.animation)


def _out_of_memory(err: BaseException) -> bool:
    """True for MemoryError and TensorFlow's ResourceExhaustedError (checked without importing
    TensorFlow: if it raised, it is already imported)."""
    tf = sys.modules.get("tensorflow")
    errors = (MemoryError,) if tf is None else (MemoryError, tf.errors.ResourceExhaustedError)
    return isinstance(err, errors)


def run(job: Job, extractor: FeatureExtractor, progress: Progress, started: float) -> int:
    """Optimise, save snapshots and the result, and return the exit status."""
    for notice in job.notices:
        progress.info(f"{PROG}: note: {notice}")
    from ..engine.run import run_recipe  # TensorFlow: only once there is a run to do

    writer = Writer(job, extractor.precision, started, progress)
    last: StepEvent | None = None
    events = run_recipe(
        job.recipe,
        job.content,
        job.styles,
        extractor,
        max_memory=job.max_memory,
        on_tile=progress.tile,
    )
    try:
        for event in events:
            last = event
            progress.step(event)
            writer.step(event)
    except KeyboardInterrupt:
        return _write_interrupted(writer, last, progress)
    finally:
        events.close()

    if last is None:  # cannot happen: transfer() yields at least one step
        progress.warn(f"{PROG}: error: the run produced no image; nothing written")
        return EXIT_FAILED
    failed = _write_result(writer, last, progress)
    return _report(job, last, progress, started) if failed is None else failed


def _write_interrupted(writer: Writer, last: StepEvent | None, progress: Progress) -> int:
    """After Ctrl-C: write the last image (and animation) if there is one."""
    if last is None:
        progress.warn("interrupted before the first step; nothing written")
        return EXIT_INTERRUPTED
    last = replace(last, status="interrupted")
    if _write_result(writer, last, progress) is None:
        progress.warn(f"interrupted at step {last.step}; wrote {writer.job.output}")
    return EXIT_INTERRUPTED


def _write_result(writer: Writer, last: StepEvent, progress: Progress) -> int | None:
    """Write OUT (and the animation): None when written, else the exit status, said why."""
    interrupted = last.status == "interrupted"
    try:
        writer.result(last)
    except KeyboardInterrupt:
        again = "again " if interrupted else ""
        progress.warn(f"interrupted {again}while writing; {writer.job.output} may not be written")
        return EXIT_INTERRUPTED
    except WriteError as err:
        progress.warn(f"{PROG}: error: {err}")
        return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    return None


def _report(job: Job, last: StepEvent, progress: Progress, started: float) -> int:
    """Say how the run ended and what was written; return the exit status."""
    height, width = last.image.shape[:2]
    total = format_duration(time.perf_counter() - started)
    if last.status == "diverged":
        progress.warn(f"{last.message}; wrote {job.output}")
        return EXIT_FAILED
    if last.status in ("time budget", "stopped"):
        progress.info(f"{last.message} (step {last.step}/{last.steps})")
    if job.animation is not None:
        progress.info(f"wrote {job.animation}")
    progress.info(f"wrote {job.output} ({width}x{height}) in {total}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    started = time.perf_counter()
    stderr = sys.stderr
    args = parse(build_parser(), argv)
    if isinstance(args, int):  # --help, --version, or a bad command line
        return args
    if args.instant:  # the feed-forward engine: no TensorFlow
        from .instant import run as run_instant

        return run_instant(args)
    progress = Progress(stderr, quiet=args.quiet)
    try:
        job = prepare(args)
        from ..engine.features import load_extractor  # TensorFlow: after the cheap checks

        settings = job.recipe.settings
        extractor = load_extractor(settings.model, settings.precision, args.weights)
        if extractor.weights is not None:
            job.extra["weights"] = str(extractor.weights)
        _make_folders(job)
    except (UsageError, ImageError, SettingsError, ModelError, WeightsError) as err:
        return error(err)
    except KeyboardInterrupt:
        progress.warn("interrupted before the first step; nothing written")
        return EXIT_INTERRUPTED
    try:
        return run(job, extractor, progress, started)
    except (ImageError, SettingsError, ModelError, WeightsError) as err:
        return error(err)
    except Exception as err:
        if not _out_of_memory(err):
            raise
        stderr.write(
            f"{PROG}: error: out of memory at --size {job.recipe.settings.size}; choose a smaller "
            "--size or --precision bfloat16\n"
        )
        return EXIT_FAILED

"""What every ``stransfer`` command shares: exit statuses, one-line errors, a parser that raises
instead of exiting, options built from a setting's metadata, output checks, and writing a
result with its run record (``stransfer.io.records``). No TensorFlow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..core.recipe import STRENGTH_INFO, STYLE_WEIGHTS_INFO
from ..core.settings import SETTING_NAMES, FieldInfo, SettingsError, field_info
from ..io.images import ImageError, save_image
from ..io.records import RunRecord, save_result, save_sidecar

PROG = "stransfer"
#: Image files a run writes (PNG keeps the run record in its metadata; JPEG gets OUT.json).
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")

EXIT_OK = 0  # done, or stopped at the --max-seconds budget
EXIT_FAILED = 1  # the loss diverged, memory ran out, or the output could not be written
EXIT_USAGE = 2  # bad arguments, images, settings, model, layers or weights
EXIT_INTERRUPTED = 130  # Ctrl-C

#: Help and range of the values a run takes besides the settings (the recipe's own).
RECIPE_INFO: dict[str, FieldInfo] = {"strength": STRENGTH_INFO, "style_weights": STYLE_WEIGHTS_INFO}


class UsageError(Exception):
    """A bad command line; the message is one line that says what to change."""


class WriteError(Exception):
    """A result file could not be written; the message names the file and says why."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class Given(argparse.Action):
    """``store``, remembering in ``namespace.given`` the options typed (to refuse some later)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = (*getattr(namespace, "given", ()), self.option_strings[-1])


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when parsing ended the command: after
    ``--help`` or ``--version`` (0), or a one-line error (2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as done:  # --help and --version print, then exit
        return done.code if isinstance(done.code, int) else EXIT_OK
    except UsageError as err:
        return error(f"{err} (see {parser.prog} --help)")


def option(name: str) -> str:
    """The option for a setting's field name: ``content_weight`` -> ``--content-weight``."""
    return "--" + name.replace("_", "-")


def setting_argument(
    name: str, default: Any, help_text: str | None = None, shown: str | None = None
) -> dict[str, Any]:
    """``add_argument`` keywords for a setting (or ``strength`` / ``style_weights``) from its
    metadata: type or choices, placeholder, and help ending in the default (written as
    ``shown``, else as the metadata's help says it, else the value).

    argparse only parses the text (a number, a choice); ranges are the library's to check, so
    a value out of range gets the same message here as on the page and the API.
    """
    info = field_info(name) if name in SETTING_NAMES else RECIPE_INFO[name]
    kwargs: dict[str, Any] = {"default": default, "action": Given}
    if info.choices:
        kwargs["choices"] = info.choices
    else:
        kwargs["type"] = info.kind
    if info.metavar:
        kwargs["metavar"] = info.metavar
    text, _, own = (help_text or info.help).partition(" (default: ")  # the metadata's own words
    if shown is None:
        shown = own.removesuffix(")") or (
            "%(default)g" if info.kind is float and default is not None else "%(default)s"
        )
    kwargs["help"] = f"{text} (default: {shown})"
    return kwargs


def one_line(err: BaseException | str) -> str:
    """``err`` on one line; a SettingsError's field becomes the option a user types."""
    text = " ".join(str(err).split()) or type(err).__name__
    about = getattr(err, "field", None)
    if isinstance(err, SettingsError) and about:
        flag = "--region" if about == "regions" else option(about)  # the one plural field
        text = flag + text[len(about) :] if text.startswith(about) else f"{flag}: {text}"
    return text


def error(err: BaseException | str, status: int = EXIT_USAGE) -> int:
    """Write ``stransfer: error: ...`` (one line) to stderr; return ``status``."""
    sys.stderr.write(f"{PROG}: error: {one_line(err)}\n")
    sys.stderr.flush()
    return status


def _either(suffixes: Sequence[str]) -> str:
    return suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"


def check_output(text: str, suffixes: Sequence[str] = OUTPUT_SUFFIXES) -> Path:
    """The ``-o`` path, if it names a file ending in one of ``suffixes``; else UsageError."""
    output = Path(text).expanduser()
    if output.is_dir() or not output.name or output.name == "..":
        example = output / f"result{suffixes[0]}"
        raise UsageError(f"output {text} is a folder; give a file name such as -o {example}")
    if output.suffix.lower() not in suffixes:
        keeps = " (PNG keeps the settings)" if ".png" in suffixes else ""
        raise UsageError(
            f"output {text} must end in {_either(suffixes)}{keeps}; "
            f"for example -o {output.with_suffix(suffixes[0])}"
        )
    return output


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failure to write ``path`` into WriteError("cannot write PATH: why")."""
    try:
        yield
    except OSError as err:
        raise WriteError(f"cannot write {path}: {err.strerror or err}") from None
    except ImageError as err:
        raise WriteError(f"cannot write {path}: {err}") from None


def write_result(image: np.ndarray, output: Path, record: RunRecord) -> None:
    """Write ``image`` to ``output`` with its run record: in a PNG's metadata and OUT.json, or
    (JPEG cannot carry it) in OUT.json alone. Raises WriteError."""
    with writing(output):
        if output.suffix.lower() == ".png":
            save_result(image, output, record)
        else:
            save_image(image, output)
            save_sidecar(output, record)

"""Reproducible runs: a record of everything that decided a result, saved with the image.

A :class:`RunRecord` holds the settings, the hashes of the input images, the losses, timings
and library versions. :func:`save_result` writes it twice: as a text chunk inside the PNG
(so the image alone is enough to restore the settings) and as a ``.json`` sidecar next to it
(readable by people and tools, and surviving apps that strip PNG metadata).

Only numpy/Pillow are needed here (no TensorFlow).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.settings import TransferSettings
from .images import (
    MAX_BYTES,
    ImageError,
    image_sha256,
    read_png_metadata,
    save_image,
    write_bytes_atomic,
)
from .masks import region_records

if TYPE_CHECKING:
    from ..core.events import StepEvent
    from ..core.recipe import Recipe

#: Key of the PNG text chunk that carries the record.
RECORD_KEY = "stransfer"

_FIX = "choose a PNG saved by Stransfer or its .json sidecar."
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OTHER_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")
# Distribution names to try for each library; TensorFlow ships under several.
_VERSION_SOURCES = {
    "stransfer": ("stransfer",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos"),
    "keras": ("keras",),
    "numpy": ("numpy",),
}


class RecordError(ValueError):
    """A run record could not be read; ``str(e)`` is a one-line message for the user."""


def collect_versions() -> dict[str, str]:
    """Installed versions of stransfer, tensorflow, keras and numpy (missing ones left out).

    Read from package metadata, so nothing heavy is imported.
    """
    versions = {}
    for name, distributions in _VERSION_SOURCES.items():
        for distribution in distributions:
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars/arrays unwrapped, non-finite floats as None.

    Strict JSON has no NaN/Infinity (a diverged run's losses can be either), and other tools
    must be able to read the sidecar; anything unknown is stored as its ``str``.
    """
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


@dataclass(frozen=True)
class RunRecord:
    """What decided one result, for reproducing it and restoring its settings.

    Attributes:
        settings: ``TransferSettings.to_dict()`` of the run.
        precision: the precision actually used (``auto`` resolved to ``float32``/``bfloat16``).
        content_sha256: ``image_sha256`` of the content image as loaded.
        style_sha256: ``image_sha256`` of each style image.
        style_weights: blend weight of each style image.
        steps_done: steps actually run (fewer than planned if stopped early).
        final_losses: the last losses (``total``, ``content``, ``style``, ``tv``).
        seconds: wall time of the run.
        versions: library versions (see :func:`collect_versions`; filled in by default).
        created: ISO-8601 UTC time of the run (now, by default).
        extra: anything else worth keeping (colour mode, strength, ...); must be JSON-safe.
    """

    settings: dict[str, Any]
    precision: str = ""
    content_sha256: str = ""
    style_sha256: list[str] = field(default_factory=list)
    style_weights: list[float] = field(default_factory=list)
    steps_done: int = 0
    final_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=collect_versions)
    created: str = field(default_factory=_utc_now)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Strict JSON (non-finite numbers become ``null``), indented for people to read."""
        data = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        return json.dumps(data, indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        """Parse :meth:`to_json` output; missing keys get empty values, unknown keys are ignored.

        Raises:
            RecordError: not JSON, not an object, no ``settings`` object, or a field of the
                wrong type.
        """
        if isinstance(text, bytes | bytearray):
            try:
                text = bytes(text).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise RecordError(f"the run record is not UTF-8 text; {_FIX}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(
                f"the run record is not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}); {_FIX}"
            ) from None
        except RecursionError:  # the decoder recurses once per level: a nesting bomb
            raise RecordError(f"the run record nests too deeply to be one; {_FIX}") from None
        except ValueError:  # Python's guard on integers of thousands of digits
            raise RecordError(f"the run record holds a number too long to read; {_FIX}") from None
        if not isinstance(data, dict):
            raise RecordError(f"the run record must be a JSON object; {_FIX}")
        settings = data.get("settings")
        if not isinstance(settings, dict):
            raise RecordError(
                f"this JSON is not a Stransfer run record (it has no settings); {_FIX}"
            )
        style_sha = data.get("style_sha256") or []
        return cls(
            settings=settings,
            precision=_field(data, "precision", "", str),
            content_sha256=_field(data, "content_sha256", "", str),
            # A single hash where a list belongs is unambiguous: accept it.
            style_sha256=_str_list([style_sha] if isinstance(style_sha, str) else style_sha),
            style_weights=[
                _number("style_weights", w) for w in _field(data, "style_weights", [], list)
            ],
            steps_done=_count("steps_done", data.get("steps_done")),
            final_losses={
                str(k): _number("final_losses", v)
                for k, v in _field(data, "final_losses", {}, dict).items()
            },
            seconds=_number("seconds", data.get("seconds", 0.0)),
            versions={str(k): str(v) for k, v in _field(data, "versions", {}, dict).items()},
            created=_field(data, "created", "", str),
            extra=_field(data, "extra", {}, dict),
        )


_JSON_NAMES = {str: "string", list: "array", dict: "object"}


def _field(data: dict[str, Any], name: str, default: Any, kind: type) -> Any:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise RecordError(
            f"the run record's {name!r} should be a JSON {_JSON_NAMES[kind]}, "
            f"not {type(value).__name__}; {_FIX}"
        )
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RecordError(f"the run record's 'style_sha256' should be a list of strings; {_FIX}")
    return list(value)


def _number(name: str, value: Any) -> float:
    if value is None:  # how to_json stores NaN and infinities
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"the run record's {name!r} should hold numbers, not {value!r}; {_FIX}")
    return float(value)


def _count(name: str, value: Any) -> int:
    number = 0.0 if value is None else _number(name, value)
    if not number.is_integer() or number < 0:
        raise RecordError(
            f"the run record's {name!r} should be a whole number, not {value!r}; {_FIX}"
        )
    return int(number)


def record_of_step(
    settings: TransferSettings,
    event: StepEvent,
    *,
    precision: str,
    content_sha256: str,
    style_sha256: Sequence[str],
    style_weights: Sequence[float],
    seconds: float | None = None,
    extra: dict[str, Any] | None = None,
) -> RunRecord:
    """The record of the image in ``event``, filled the same way by every front end.

    ``seconds`` defaults to the event's elapsed time; ``extra`` carries what only the caller
    knows (input names, strength, how the run ended).
    """
    return RunRecord(
        settings=settings.to_dict(),
        precision=precision,
        content_sha256=content_sha256,
        style_sha256=list(style_sha256),
        style_weights=list(style_weights),
        steps_done=event.step,
        final_losses=dict(event.losses),
        seconds=round(event.elapsed if seconds is None else seconds, 3),
        extra=dict(extra or {}),
    )


@dataclass(frozen=True)
class RunInputs:
    """The input images of a run as its record names them: hashes and display names.

    Make it once when the run starts (:meth:`of`); hashing a large image takes a moment.
    """

    content_sha256: str
    style_sha256: tuple[str, ...]
    content_name: str = ""
    style_names: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        content: np.ndarray,
        styles: Sequence[np.ndarray],
        content_name: str = "",
        style_names: Sequence[str] = (),
    ) -> RunInputs:
        """Hash ``content`` and ``styles`` (uint8 RGB images as loaded) and keep the names."""
        return cls(
            content_sha256=image_sha256(content),
            style_sha256=tuple(image_sha256(image) for image in styles),
            content_name=content_name,
            style_names=tuple(style_names),
        )

    def extra(self, status: str, steps_planned: int) -> dict[str, Any]:
        """The record's ``extra`` keys every run has: the input names and how it stood."""
        return {
            "content": self.content_name,
            "styles": list(self.style_names),
            "status": status,
            "steps_planned": steps_planned,
        }


def recipe_record(
    recipe: Recipe,
    inputs: RunInputs,
    event: StepEvent,
    *,
    precision: str,
    seconds: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> RunRecord:
    """The run record of the image in ``event`` of a run of ``recipe``: what every front end
    stores with a result (the PNG's metadata, the JSON sidecar, an API's result).

    ``extra`` holds keys only the caller knows (the weights file, ``continued_after_steps``);
    the record's ``extra`` always has the strength and the weights it scaled, the colour mode,
    the input names, ``status`` (how the run stood at ``event``) and ``steps_planned``.
    ``seconds`` defaults to the event's elapsed time.
    """
    return record_of_step(
        recipe.settings,
        event,
        precision=precision,
        content_sha256=inputs.content_sha256,
        style_sha256=inputs.style_sha256,
        style_weights=recipe.style_weights,
        seconds=seconds,
        extra={
            **recipe.extra(),
            **({"regions": region_records(recipe.regions)} if recipe.regions else {}),
            **inputs.extra(event.status, event.steps),
            **(extra or {}),
        },
    )


def png_metadata(record: RunRecord) -> dict[str, str]:
    """The PNG text chunks that carry ``record`` (pass to ``save_image``/``encode_png``)."""
    return {RECORD_KEY: record.to_json()}


def save_result(image: np.ndarray, path: str | os.PathLike, record: RunRecord) -> tuple[Path, Path]:
    """Write ``image`` as PNG carrying ``record`` and a ``.json`` sidecar with the same stem.

    Both files are written atomically (PNG first, so if the sidecar fails the PNG still holds
    the record). Returns ``(png_path, json_path)``.

    Raises:
        ImageError: ``path`` does not end in ``.png`` (JPEG cannot carry the settings).
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageError(
            f"Cannot save {path.name} with its settings: use a name ending in .png "
            "(other formats cannot carry them)."
        )
    save_image(image, path, png_metadata(record))  # creates the folder too
    return path, save_sidecar(path, record)


def save_sidecar(path: str | os.PathLike, record: RunRecord) -> Path:
    """Write ``record`` atomically as the ``.json`` sidecar of the image at ``path``.

    For images that cannot carry it themselves (JPEG); :func:`save_result` calls it for PNGs.
    Returns the sidecar's path (``path`` with the suffix ``.json``).
    """
    sidecar = Path(path).with_suffix(".json")
    write_bytes_atomic(sidecar, (record.to_json() + "\n").encode("utf-8"))
    return sidecar


def _read(source: str | os.PathLike | bytes) -> tuple[bytes, str, str]:
    """Return the bytes of ``source``, its name for messages and its suffix ('' for bytes)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "", ""
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"cannot load a run record from {type(source).__name__}")
    path = Path(source)
    label = path.name or str(path)
    try:
        if path.is_dir():
            raise RecordError(f"{label} is a folder; {_FIX}")
        if path.stat().st_size > MAX_BYTES:
            raise RecordError(f"{label} is too big to be a Stransfer result; {_FIX}")
        return path.read_bytes(), label, path.suffix.lower()
    except FileNotFoundError:
        raise RecordError(f"{label} was not found ({path}); check the path.") from None
    except PermissionError:
        raise RecordError(f"{label} could not be opened (permission denied).") from None
    except OSError as exc:
        raise RecordError(f"{label} could not be read ({exc.strerror or exc}).") from exc


def _about(label: str, message: str) -> str:
    """Prefix ``message`` with the file's name, or capitalise it when there is none (bytes)."""
    return f"{label}: {message}" if label else message[:1].upper() + message[1:]


def load_record(source: str | os.PathLike | bytes) -> RunRecord:
    """Read a run record from a ``.json`` sidecar, JSON bytes, or a PNG (path or bytes).

    The kind is told from the content, not the name, so renamed files still work.

    Raises:
        RecordError: the source is missing, is not a Stransfer PNG or record, or is damaged;
            the message says what to choose instead.
    """
    data, label, suffix = _read(source)
    if data.startswith(_PNG_SIGNATURE):
        try:
            text = read_png_metadata(data).get(RECORD_KEY)
        except ImageError as exc:
            raise RecordError(_about(label, f"this PNG is damaged; {_FIX}")) from exc
        if text is None:
            raise RecordError(_about(label, f"this PNG has no Stransfer settings; {_FIX}"))
    elif data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[") or suffix == ".json":
        text = data
    elif data.startswith(_OTHER_IMAGE_SIGNATURES) or data[8:12] == b"WEBP":
        raise RecordError(
            _about(label, f"this is not a PNG, so it has no Stransfer settings; {_FIX}")
        )
    else:
        raise RecordError(_about(label, f"this is not a Stransfer run record; {_FIX}"))
    try:
        return RunRecord.from_json(text)
    except RecordError as exc:
        raise RecordError(_about(label, str(exc))) from None


def settings_from_record(record: RunRecord) -> TransferSettings:
    """The run's settings as ``TransferSettings`` (unknown keys from other versions ignored).

    Not validated here: ``transfer()`` validates, and reports problems as ``SettingsError``.
    """

    return TransferSettings.from_dict(record.settings)

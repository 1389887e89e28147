"""The service's limits in one place, and the check of a request against them (no TensorFlow).

Every front end that submits jobs (the HTTP API, the page) goes through ``check_request``: the
settings are validated exactly as a CLI run validates them, and every image is decoded with
``io.images.load_image`` (the same rules as the CLI) under the service's tighter byte and pixel
limits, so a hostile upload is refused before it is stored.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..core.models import ModelError
from ..core.settings import SettingsError, TransferSettings
from ..core.strength import strength_extra, strength_to_weights
from ..io.images import ImageError, image_sha256, load_image
from .jobs import BadRequest, InvalidSettings, JobRequest, TooLarge

#: Settings a request may give besides ``TransferSettings``' fields.
EXTRA_SETTINGS = ("strength", "engine")
#: Engines this service runs (``instant`` arrives with the instant engine's worker glue).
ENGINES = ("optimise",)


@dataclass(frozen=True)
class Limits:
    """What one request and the queue may hold. ``from_env`` reads ``STRANSFER_MAX_*`` overrides.

    Attributes:
        max_file_bytes: bytes of one uploaded file.
        max_request_bytes: bytes of a whole upload (all files and fields).
        max_megapixels: decoded pixels of one image, in millions.
        max_styles: style images per job.
        max_pixel_steps: steps x output pixels (size squared) of one job: the work it may ask.
        max_queued_per_client: jobs one client may have waiting or running.
        max_queued: jobs waiting or running in all.
    """

    max_file_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 64 * 1024 * 1024
    max_megapixels: float = 25.0
    max_styles: int = 8
    max_pixel_steps: int = 1000 * 512 * 512
    max_queued_per_client: int = 20
    max_queued: int = 200

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Defaults, each overridable by ``STRANSFER_<FIELD NAME IN CAPITALS>``."""
        env = os.environ if environ is None else environ
        limits = cls()
        for f in fields(cls):
            text = env.get(f"STRANSFER_{f.name.upper()}")
            if text:
                kind = float if f.type in ("float", float) else int
                try:
                    limits = replace(limits, **{f.name: kind(text)})
                except ValueError:
                    raise ValueError(
                        f"STRANSFER_{f.name.upper()}={text!r} is not a number"
                    ) from None
        return limits


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check: what the store keeps.

    ``settings`` is the validated ``TransferSettings.to_dict()`` with the strength applied;
    ``extra`` is the run record's extra (strength, names, engine).
    """

    settings: dict[str, Any]
    extra: dict[str, Any]
    content: bytes
    styles: list[tuple[bytes, float]]
    content_sha256: str
    style_sha256: list[str]
    names: list[str]
    shape: tuple[int, int]


def parse_settings(text: str | bytes | None) -> dict[str, Any]:
    """The ``settings`` form field as a dict; BadRequest if it is not a JSON object."""
    if text is None or (isinstance(text, str | bytes) and not text.strip()):
        return {}
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(
            f"settings is not valid JSON ({err}); send an object such as "
            '{"steps": 20, "size": 256}'
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(
            f'settings must be a JSON object such as {{"steps": 20}}, not {type(data).__name__}'
        )
    return data


def check_settings(
    data: Mapping[str, Any], limits: Limits
) -> tuple[TransferSettings, dict[str, Any]]:
    """Validated settings (strength applied) and the record's extra; InvalidSettings/TooLarge."""
    known = {f for f in TransferSettings.__dataclass_fields__ if f != "extra"}
    unknown = sorted(set(data) - known - set(EXTRA_SETTINGS))
    if unknown:
        raise InvalidSettings(
            f"unknown setting(s) {', '.join(map(repr, unknown))}; the settings are: "
            f"{', '.join(sorted(known | set(EXTRA_SETTINGS)))}"
        )
    engine = data.get("engine", "optimise")
    if engine not in ENGINES:
        raise InvalidSettings(
            f"engine {engine!r} is not available in this service; use one of: {', '.join(ENGINES)}"
        )
    seed = data.get("seed", 0)
    # TransferSettings.validated() does not check the seed yet (issue 10 adds it there).
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidSettings(f"seed must be a whole number of 0 or more, not {seed!r}")
    base = TransferSettings.from_dict(data)
    strength = data.get("strength", 100.0)
    try:
        style_weight, tv_weight = strength_to_weights(
            strength, style_weight=base.style_weight, tv_weight=base.tv_weight
        )
        extra = strength_extra(strength, style_weight=base.style_weight, tv_weight=base.tv_weight)
        settings = replace(base, style_weight=style_weight, tv_weight=tv_weight).validated()
    except (SettingsError, ModelError, ValueError, TypeError) as err:
        raise InvalidSettings(" ".join(str(err).split())) from None
    work = settings.steps * settings.size**2
    if work > limits.max_pixel_steps:
        best = max(1, limits.max_pixel_steps // settings.size**2)
        raise TooLarge(
            f"steps x size^2 = {work:,} is more work than one job may ask "
            f"({limits.max_pixel_steps:,}); at size {settings.size} use at most {best} steps"
        )
    return settings, {**extra, "engine": engine, "preserve_color": settings.preserve_color}


def _image(data: bytes, label: str, limits: Limits) -> np.ndarray:
    if len(data) > limits.max_file_bytes:
        raise TooLarge(
            f"{label} is {len(data) / 2**20:.1f} MB; the limit is "
            f"{limits.max_file_bytes / 2**20:.0f} MB per file; send a smaller file"
        )
    try:
        return load_image(
            data,
            name=label,
            max_pixels=int(limits.max_megapixels * 1e6),
            max_bytes=limits.max_file_bytes,
        )
    except ImageError as err:
        message = str(err)
        if "megapixels" in message and "the limit is" in message:
            raise TooLarge(message) from None
        raise BadRequest(message) from None


def check_request(request: JobRequest, limits: Limits) -> CheckedRequest:
    """Check a request's settings and images; raise a ``JobError`` subclass naming the problem."""
    if not request.styles:
        raise BadRequest("no style image; send at least one file in the 'style' field")
    if len(request.styles) > limits.max_styles:
        raise TooLarge(f"{len(request.styles)} style images; at most {limits.max_styles} per job")
    settings, extra = check_settings(request.settings, limits)
    names = [str(n)[:200] for n in request.names] or ["content"] + [
        f"style {i + 1}" for i in range(len(request.styles))
    ]
    content = _image(request.content, f"content image {names[0]}", limits)
    styles = []
    for i, (data, weight) in enumerate(request.styles):
        label = names[i + 1] if i + 1 < len(names) else f"style {i + 1}"
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise InvalidSettings(f"the weight of style image {label} must be 0 or more")
        styles.append(_image(data, f"style image {label}", limits))
    weights = [float(w) for _, w in request.styles]
    if not any(w > 0 for w in weights):
        raise InvalidSettings("every style weight is 0; give at least one style a weight above 0")
    if request.resume_from is not None:
        _image(request.resume_from, "the image to continue from", limits)
    if not isinstance(request.first_step, int) or request.first_step < 0:
        raise InvalidSettings("first_step must be a whole number of 0 or more")
    extra = {**extra, "content": names[0], "styles": names[1:]}
    return CheckedRequest(
        settings=settings.to_dict(),
        extra=extra,
        content=bytes(request.content),
        styles=[(bytes(d), float(w)) for d, w in request.styles],
        content_sha256=image_sha256(content),
        style_sha256=[image_sha256(s) for s in styles],
        names=names,
        shape=(int(content.shape[0]), int(content.shape[1])),
    )

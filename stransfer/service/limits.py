"""The service's limits in one place, and the check of a request against them (no TensorFlow).

Every front end that submits jobs (the HTTP API, the page) goes through ``check_request``: the
settings are validated by the library's one run recipe (``core.recipe.make_recipe``, exactly as
the CLI validates them), and every image is decoded with ``io.images.load_image`` (the same
rules as the CLI) under the service's tighter byte and pixel limits, so a hostile upload is
refused before it is stored.

Besides the recipe's names a request's settings may hold two service-only keys, taken out
before ``make_recipe`` sees them: ``engine`` (``optimise``, the default, or ``instant``, the
feed-forward engine) and, for instant jobs only, ``builtin`` (one of the instant engine's 26
built-in styles in place of style files: ``7``, ``"builtin:7"`` or a blend
``{"3": 0.5, "12": 0.5}``). A third, ``regions``, says what each uploaded mask file gets (see
``core.regions.parse_blends``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..core.models import ModelError
from ..core.recipe import Recipe, make_recipe
from ..core.regions import MAX_REGIONS, MaskError, check_regions, layout, parse_blends
from ..core.settings import SETTING_NAMES, SettingsError
from ..instant import BUILTIN_STYLES, BuiltinStyle, working_shape
from ..io.images import ImageError, load_image
from ..io.masks import load_mask, region_records
from ..io.records import RunInputs
from .jobs import BadRequest, InvalidSettings, JobRequest, TooLarge

#: The engines a job can run on: the optimiser (Gatys) or the feed-forward instant engine.
ENGINES = ("optimise", "instant")
#: Settings only the service knows (handled before ``make_recipe``, which refuses them).
SERVICE_SETTINGS = ("engine", "builtin", "regions")


@dataclass(frozen=True)
class Limits:
    """What one request and the queue may hold. ``from_env`` reads ``STRANSFER_MAX_*`` overrides.

    Attributes:
        max_file_bytes: bytes of one uploaded file.
        max_request_bytes: bytes of a whole upload (all files and fields).
        max_megapixels: decoded pixels of one image, in millions.
        max_styles: style images per job.
        max_pixel_steps: the work a step-counted job may ask: its plan's steps times pixels,
            summed over the scales (``RunPlan.pixel_steps``).
        max_job_seconds: the time budget (``max_seconds``) a job may ask. A job with a budget
            is bounded by it, whatever its steps (a budget run stops at whichever comes first).
        max_queued_per_client: jobs one client may have waiting or running.
        max_queued: jobs waiting or running in all.
    """

    max_file_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 64 * 1024 * 1024
    max_megapixels: float = 25.0
    max_styles: int = 8
    max_pixel_steps: int = 1000 * 512 * 512
    max_job_seconds: float = 2 * 3600.0
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

    ``settings`` is the recipe's validated ``TransferSettings.to_dict()`` (strength applied:
    what runs and what the record shows); ``extra`` is the rest of the recipe (``Recipe.extra``:
    strength and the weights at 100 %, colour mode), the engine, the input names and, for an
    instant job on built-in styles, ``builtin`` (``{"builtin:N": share}``). A worker makes the
    recipe again with ``core.recipe.recipe_values(settings, extra)``.
    """

    settings: dict[str, Any]
    extra: dict[str, Any]
    content: bytes
    styles: list[tuple[bytes, float]]
    content_sha256: str
    style_sha256: list[str]
    names: list[str]
    shape: tuple[int, int]
    #: steps the job will report (1 for an instant job).
    steps: int = 1


#: How deep a job's settings may nest JSON objects and lists: the deepest real setting is a
#: layer table inside the settings object ({"content_layers": {"block4_conv2": 1}}: 2).
MAX_SETTINGS_DEPTH = 4

_EXAMPLE = '{"steps": 20, "size": 256}'


def _depth(data: Any) -> int:
    """How deep ``data`` nests lists and dicts (counted without recursion: it may be hostile)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_SETTINGS_DEPTH:
                break
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return deepest


def parse_settings(text: str | bytes | None) -> dict[str, Any]:
    """The ``settings`` form field as a dict; BadRequest if it is not a JSON object of at most
    ``MAX_SETTINGS_DEPTH`` levels."""
    if text is None or (isinstance(text, str | bytes) and not text.strip()):
        return {}
    too_deep = (
        f"settings nest more than {MAX_SETTINGS_DEPTH} levels of objects and lists; send a "
        f'flat object such as {_EXAMPLE} (layer weights one level down: {{"content_layers": '
        '{"block4_conv2": 1}})'
    )
    try:
        data = json.loads(text)
    except RecursionError:  # the decoder recurses once per level: a nesting bomb
        raise BadRequest(too_deep) from None
    except (ValueError, UnicodeDecodeError) as err:
        if "integer string conversion" in str(err):  # Python's guard on huge integers
            raise BadRequest(
                f"settings hold a number with thousands of digits; send numbers in range, "
                f"such as {_EXAMPLE}"
            ) from None
        raise BadRequest(
            f"settings is not valid JSON ({err}); send an object such as {_EXAMPLE}"
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(
            f'settings must be a JSON object such as {{"steps": 20}}, not {type(data).__name__}'
        )
    if _depth(data) > MAX_SETTINGS_DEPTH:
        raise BadRequest(too_deep)
    return data


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _layer_field(data: Mapping[str, Any], message: str) -> str | None:
    """Which setting a ``ModelError`` is about: the model, or the layers naming the bad one."""
    if message.startswith("unknown model"):
        return "model"
    for name in ("content_layers", "style_layers"):
        layers = data.get(name)
        if isinstance(layers, Mapping) and any(repr(str(key)) in message for key in layers):
            return name
    return None


def check_settings(
    data: Mapping[str, Any],
    limits: Limits,
    *,
    style_weights: Sequence[float] | None = None,
    styles: int | None = None,
) -> tuple[Recipe, dict[str, Any]]:
    """The validated recipe and the job's extra (engine, built-ins), or InvalidSettings (its
    ``field`` names the setting) / TooLarge.

    ``style_weights`` are the blend weights of the ``styles`` uploaded style images.
    """
    values = dict(data)
    engine = values.pop("engine", "optimise")
    if engine not in ENGINES:
        raise InvalidSettings(
            f"engine {engine!r} is unknown; use one of: {', '.join(ENGINES)}", field="engine"
        )
    builtin = values.pop("builtin", None)
    values.pop("regions", None)  # checked with the mask files (check_request)
    extra: dict[str, Any] = {"engine": engine}
    if builtin is not None:
        extra["builtin"] = _builtin(builtin, engine, styles or 0)
        style_weights, styles = None, None  # the blend is in ``builtin``; no files
    try:
        recipe = make_recipe(values, style_weights=style_weights, styles=styles)
    except SettingsError as err:
        message = _one_line(err)
        if err.field not in (*SETTING_NAMES, "strength", "style_weights"):
            message += f"; besides, a job takes: {', '.join(SERVICE_SETTINGS)}"
        raise InvalidSettings(message, field=err.field) from None
    except ModelError as err:
        raise InvalidSettings(_one_line(err), field=_layer_field(values, str(err))) from None
    except (ValueError, TypeError) as err:  # a value of the wrong shape (e.g. layers as text)
        raise InvalidSettings(_one_line(err)) from None
    budget = recipe.settings.max_seconds
    if engine != "instant" and budget is not None and budget > limits.max_job_seconds:
        raise TooLarge(
            f"max_seconds {budget:,.0f} is a longer time budget than one job may ask "
            f"({limits.max_job_seconds:g} s); ask for at most {limits.max_job_seconds:g} s",
            field="max_seconds",
        )
    return recipe, extra


def _builtin(value: Any, engine: str, files: int) -> dict[str, float]:
    """The ``builtin`` setting as ``{"builtin:N": share}`` (shares sum to 1)."""
    if engine != "instant":
        raise InvalidSettings(
            'built-in styles are painted by the instant engine only; add "engine": "instant" '
            "or send style image files instead",
            field="builtin",
        )
    if files:
        raise InvalidSettings(
            f"builtin and {files} style file(s) at once; send only a built-in style or only "
            "style files",
            field="builtin",
        )
    fix = (
        f'give an index 0 to {len(BUILTIN_STYLES) - 1}, "builtin:N", or a blend such as '
        '{"3": 0.5, "12": 0.5}'
    )
    if isinstance(value, bool) or not isinstance(value, int | str | Mapping):
        raise InvalidSettings(f"builtin {value!r} is not a built-in style; {fix}", field="builtin")
    try:
        blend = BuiltinStyle.of(value)
    except SettingsError as err:
        # Its messages name the fix already (the range of indexes, a weight above 0).
        raise InvalidSettings(f"builtin: {_one_line(err)}", field="builtin") from None
    return {BUILTIN_STYLES[i]: float(w) for i, w in enumerate(blend.weights) if w > 0}


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
    builtin = request.settings.get("builtin") if isinstance(request.settings, Mapping) else None
    if not request.styles and builtin is None:
        raise BadRequest(
            "no style image; send at least one file in the 'style' field (or, for an instant "
            'job, a built-in style: {"engine": "instant", "builtin": 7})'
        )
    if len(request.styles) > limits.max_styles:
        raise TooLarge(f"{len(request.styles)} style images; at most {limits.max_styles} per job")
    weights = [w for _, w in request.styles]
    recipe, extra = check_settings(
        request.settings, limits, style_weights=weights, styles=len(request.styles)
    )
    instant = extra["engine"] == "instant"
    if instant and (request.resume_from is not None or request.first_step):
        raise InvalidSettings(
            "an instant job cannot continue a run; continue with the optimise engine",
            field="engine",
        )
    names = [str(n)[:200] for n in request.names] or ["content"] + [
        f"style {i + 1}" for i in range(len(request.styles))
    ]
    content = _image(request.content, f"content image {names[0]}", limits)
    styles = []
    for i, (data, _) in enumerate(request.styles):
        label = names[i + 1] if i + 1 < len(names) else f"style {i + 1}"
        styles.append(_image(data, f"style image {label}", limits))
    _check_shape(recipe, content.shape[:2], instant, limits)
    if request.resume_from is not None:
        _image(request.resume_from, "the image to continue from", limits)
    if not isinstance(request.first_step, int) or request.first_step < 0:
        raise InvalidSettings("first_step must be a whole number of 0 or more")
    inputs = RunInputs.of(content, styles, names[0], names[1 : 1 + len(styles)])
    extra = {
        **recipe.extra(),
        **extra,
        "content": inputs.content_name,
        "styles": list(inputs.style_names),
    }
    regions = _regions(request, recipe, content.shape[:2], "builtin" in extra, limits)
    if regions:
        extra["regions"] = region_records(regions)
    files: list[tuple[bytes, float]] = []
    if "builtin" not in extra:
        pairs = zip(request.styles, recipe.style_weights, strict=True)
        files = [(bytes(data), weight) for (data, _), weight in pairs]
    return CheckedRequest(
        settings=recipe.settings.to_dict(),
        extra=extra,
        content=bytes(request.content),
        styles=files,
        content_sha256=inputs.content_sha256,
        style_sha256=list(inputs.style_sha256),
        names=names,
        shape=(int(content.shape[0]), int(content.shape[1])),
        steps=1 if instant else recipe.settings.steps,
    )


def _check_shape(recipe: Recipe, shape: tuple[int, int], instant: bool, limits: Limits) -> None:
    """Refuse a size the engine cannot run on this content image, or a step-counted job that
    plans more work than ``limits`` allow, before the job is stored.

    The rule: a job with a time budget is bounded by its budget (``check_settings``); one
    without is bounded by its plan's pixel-steps, so the same steps are cheaper on a smaller
    or coarser plan. An instant job is one step of a size the engine caps.
    """
    try:
        if instant:
            working_shape(shape, recipe.settings.size)
            return
        plan = recipe.plan(shape)
    except (SettingsError, ImageError) as err:
        raise InvalidSettings(_one_line(err), field="size") from None
    settings = recipe.settings
    if settings.max_seconds is None and plan.pixel_steps > limits.max_pixel_steps:
        per_step = plan.pixel_steps / settings.steps
        best = max(1, int(limits.max_pixel_steps // per_step))
        height, width = plan.output_shape
        raise TooLarge(
            f"{settings.steps} steps at {width}x{height} plan {plan.pixel_steps:,} pixel-steps, "
            f"more work than one job may ask ({limits.max_pixel_steps:,}); use at most {best} "
            f"steps, or a time budget (max_seconds, up to {limits.max_job_seconds:g} s)",
            field="steps",
        )


def _regions(
    request: JobRequest, recipe: Recipe, shape: tuple[int, int], builtin: bool, limits: Limits
) -> tuple:
    """The request's regions (mask files and ``settings["regions"]``), checked; () without."""
    what = request.settings.get("regions") if isinstance(request.settings, Mapping) else None
    masks = list(request.masks or ())
    if not masks and not what:
        return ()
    if builtin:
        raise InvalidSettings(
            "regions need style image files; send style files instead of a built-in style",
            field="regions",
        )
    if len(masks) > MAX_REGIONS:
        raise TooLarge(f"{len(masks)} masks; at most {MAX_REGIONS} per job", field="mask")
    styles = len(request.styles)
    try:
        blends = parse_blends(what if what is not None else [], styles)
        if len(blends) != len(masks):
            raise SettingsError(
                f"{len(masks)} mask file(s) but {len(blends)} item(s) in settings regions; "
                'give one per mask, in order: "photo", a style index or blend weights'
            )
        loaded = [_mask(data, number, limits) for number, data in enumerate(masks, 1)]
        return check_regions(layout(loaded, blends, recipe.style_weights, shape), styles)
    except SettingsError as err:
        raise InvalidSettings(_one_line(err), field="regions") from None


def _mask(data: bytes, number: int, limits: Limits) -> tuple[Any, str]:
    """One mask file decoded, or BadRequest/TooLarge (field ``mask``) naming it."""
    label = f"mask {number}"
    if len(data) > limits.max_file_bytes:
        raise TooLarge(
            f"{label} is {len(data) / 2**20:.1f} MB; the limit is "
            f"{limits.max_file_bytes / 2**20:.0f} MB per file",
            field="mask",
        )
    try:
        return load_mask(bytes(data), name=label), label
    except (ImageError, MaskError) as err:
        raise BadRequest(_one_line(err), field="mask") from None

"""The settings of one style transfer run, validated with messages a user can act on."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .models import DEFAULT_MODEL, MODEL_NAMES, get_model

OPTIMIZERS = ("lbfgs", "adam")
PRECISIONS = ("auto", "float32", "bfloat16")
#: ``none``; ``luminance`` keeps the content's colours; ``histogram`` recolours the styles.
COLOR_MODES = ("none", "luminance", "histogram")
INITS = ("content", "noise", "style", "instant")
MIN_SIZE, MAX_SIZE = 16, 8192
MAX_STEPS = 10_000
MAX_SCALES = 4
MAX_SEED = 2**32 - 1  # numpy's default_rng takes any non-negative int; records stay portable
# Absurd weights are allowed on purpose: the loop detects non-finite losses and keeps the last
# good image, so a user exploring extremes gets an explanation rather than a refusal.
MAX_WEIGHT = sys.float_info.max


class SettingsError(ValueError):
    """A setting out of range; the message names the setting, the value and the valid range.

    ``field`` is the setting it is about (a ``TransferSettings`` field name, or ``strength`` /
    ``style_weights`` for a recipe), or None when it concerns no single setting. Front ends
    map it to their own control (the CLI to ``--field-name``); the message starts with the
    field's name where it is set.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:  # keep ``field`` across processes (workers)
        return type(self), (str(self), self.field)


@dataclass(frozen=True)
class FieldInfo:
    """What a front end needs to offer one setting, and what validation enforces.

    Attributes:
        help: one line for people (the CLI's ``--help``, the page's tooltips).
        kind: ``int``, ``float`` or ``str``.
        low, high: the valid range of a number (inclusive; ``low_open`` excludes ``low``).
        choices: the valid values of a ``str`` setting.
        optional: None is allowed (and means "off").
        metavar: the placeholder the CLI shows (``N``, ``PX``); '' for the default.
    """

    help: str
    kind: type = str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    metavar: str = ""

    def check(self, name: str, value: Any) -> None:
        """Raise SettingsError (about ``name``) unless ``value`` is valid."""
        if value is None and self.optional:
            return
        if self.kind is int:
            _check_int(name, value, int(self.low), int(self.high))  # type: ignore[arg-type]
        elif self.kind is float:
            _check_float(name, value, self.low, self.high, low_open=self.low_open)  # type: ignore[arg-type]
        elif self.choices and value not in self.choices:
            raise SettingsError(
                f"{name} {value!r:.60} is unknown; use one of: {', '.join(self.choices)}", name
            )


def _setting(default: Any, info: FieldInfo) -> Any:
    return field(default=default, metadata={"info": info})


def _layers_setting(what: str, image: str) -> Any:
    """A ``{layer: weight}`` setting (None: the model's defaults)."""
    help_text = (
        f"layers whose {what} must match the {image}, each with a weight; names depend on the model"
    )
    return _setting(None, FieldInfo(help_text, optional=True, metavar="LAYER[:WEIGHT]"))


@dataclass(frozen=True)
class TransferSettings:
    """Everything that decides the result of a run (together with the input images).

    Each field's meaning, range or choices and default live in its metadata (see
    :func:`field_info`), which validation, the CLI's options and the page's widgets all read.
    ``content_layers`` / ``style_layers`` are ``{layer: weight}`` (None: the model's
    defaults); ``extra`` is free-form and not part of equality.
    """

    model: str = _setting(
        DEFAULT_MODEL,
        FieldInfo("backbone network", choices=MODEL_NAMES, metavar="NAME"),
    )
    steps: int = _setting(
        60,
        FieldInfo(
            "optimisation steps over all scales (L-BFGS iterations or Adam steps)",
            int,
            1,
            MAX_STEPS,
            metavar="N",
        ),
    )
    size: int = _setting(
        512,
        FieldInfo(
            "long side of the output in pixels; the content's aspect ratio is kept",
            int,
            MIN_SIZE,
            MAX_SIZE,
            metavar="PX",
        ),
    )
    content_weight: float = _setting(
        1.0, FieldInfo("weight of the content loss, alpha", float, 0.0, MAX_WEIGHT, metavar="W")
    )
    style_weight: float = _setting(
        2.0,
        FieldInfo(
            "weight of the style loss, beta, at strength 100", float, 0.0, MAX_WEIGHT, metavar="W"
        ),
    )
    tv_weight: float = _setting(
        1.0,
        FieldInfo(
            "weight of the total-variation loss at strength 100; higher is smoother",
            float,
            0.0,
            MAX_WEIGHT,
            metavar="W",
        ),
    )
    content_layers: Mapping[str, float] | None = _layers_setting("features", "content image's")
    style_layers: Mapping[str, float] | None = _layers_setting("Gram matrices", "style images'")
    optimizer: str = _setting(
        "lbfgs",
        FieldInfo("lbfgs converges fast; adam makes smooth, steady progress", choices=OPTIMIZERS),
    )
    learning_rate: float = _setting(
        4.0,
        FieldInfo(
            "Adam's step size in pixel units (0..255); ignored by lbfgs",
            float,
            0.0,
            1e9,
            low_open=True,
            metavar="LR",
        ),
    )
    precision: str = _setting(
        "auto",
        FieldInfo(
            "arithmetic of the network; auto picks bfloat16 on a GPU of compute capability "
            "8.0 or more (Ampere and newer) or on a CPU with AMX/AVX512-BF16, else float32",
            choices=PRECISIONS,
        ),
    )
    scales: int = _setting(
        2,
        FieldInfo(
            f"coarse-to-fine scales, 1 to {MAX_SCALES}; fewer are used where a coarser image "
            "would be too small; init instant runs at one (its start is already full size)",
            int,
            1,
            MAX_SCALES,
            metavar="N",
        ),
    )
    init: str = _setting(
        "instant",
        FieldInfo(
            "start from the instant engine's feed-forward result (the default: measured to "
            "reach a lower style distance at every budget), the content image, random noise, "
            "or the first style image",
            choices=INITS,
        ),
    )
    style_scale: float = _setting(
        1.0,
        FieldInfo(
            "size of the style images relative to the output; below 1 gives finer strokes",
            float,
            0.1,
            4.0,
            metavar="F",
        ),
    )
    preserve_color: str = _setting(
        "none",
        FieldInfo(
            "keep the content's colours: 'luminance' applies the style to brightness only and "
            "keeps the content's colours; 'histogram' recolours the style images to the "
            "content's palette first; 'none' takes the style's colours",
            choices=COLOR_MODES,
        ),
    )
    seed: int = _setting(
        0,
        FieldInfo(
            "random seed (noise init); equal settings and images repeat exactly",
            int,
            0,
            MAX_SEED,
            metavar="N",
        ),
    )
    max_seconds: float | None = _setting(
        None,
        FieldInfo(
            "stop after this many seconds and keep the image so far (None: no limit)",
            float,
            0.0,
            1e7,
            low_open=True,
            optional=True,
            metavar="S",
        ),
    )
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def validated(self) -> TransferSettings:
        """Return the settings with defaults filled in, or raise SettingsError (or, for an
        unknown model or layer, ``ModelError``; both are ValueErrors naming the choices)."""
        backbone = get_model(self.model)
        for item in fields(self):
            if "info" in item.metadata and item.name != "model":
                item.metadata["info"].check(item.name, getattr(self, item.name))
        content = _layer_map("content_layers", self.content_layers, backbone.content_layers)
        style = _layer_map("style_layers", self.style_layers, backbone.style_layers)
        backbone.check_layers([*content, *style])
        for name, layers in (("content_layers", content), ("style_layers", style)):
            for layer, weight in layers.items():
                _check_float(f"weight of layer {layer}", weight, 0.0, MAX_WEIGHT, about=name)
        # Zero-weight layers cost compute and add nothing: drop them.
        content = {k: float(v) for k, v in content.items() if v > 0}
        style = {k: float(v) for k, v in style.items() if v > 0}
        if not content and not style:
            raise SettingsError(
                "every content and style layer weight is zero; give at least one layer a weight",
                "style_layers",
            )
        return replace(
            self,
            model=backbone.name,
            content_layers=_by_depth(backbone, content),
            style_layers=_by_depth(backbone, style),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for metadata sidecars and restoring settings)."""
        data = asdict(self)
        data.pop("extra")
        for key in ("content_layers", "style_layers"):
            if data[key] is not None:
                data[key] = dict(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferSettings:
        """Inverse of ``to_dict``; unknown keys are ignored so older records still load."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in data.items() if k in known})


def _layer_map(
    name: str, value: Mapping[str, float] | None, default: Mapping[str, float]
) -> dict[str, float]:
    """``{layer: weight}`` from a setting (None: the model's defaults), or SettingsError."""
    if value is None:
        return dict(default)
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SettingsError(
            f'{name} must map layer names to weights, e.g. {{"block4_conv2": 1}}, '
            f"not {value!r:.60}",
            name,
        )
    return dict(value)


def _by_depth(backbone: Any, layers: dict[str, float]) -> dict[str, float]:
    return dict(sorted(layers.items(), key=lambda item: backbone.depth(item[0])))


def field_info(name: str) -> FieldInfo:
    """The metadata of the setting ``name`` (help, kind, range or choices, metavar).

    Raises KeyError for a name that is not a setting with metadata.
    """
    return TransferSettings.__dataclass_fields__[name].metadata["info"]


#: Every setting's field name, in declaration order (``extra`` excluded).
SETTING_NAMES: tuple[str, ...] = tuple(
    item.name for item in fields(TransferSettings) if "info" in item.metadata
)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(
            f"{name} must be a whole number from {low} to {high}, not {value!r:.60}", name
        )


def _check_float(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    about: str | None = None,
) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low < value if low_open else low <= value)
        and value <= high
    )
    if not ok:
        bound = f"more than {low:g}" if low_open else f"from {low:g}"
        raise SettingsError(
            f"{name} must be a number {bound} to {high:g}, not {value!r:.60}", about or name
        )

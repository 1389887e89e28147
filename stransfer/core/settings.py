"""The settings of one style transfer run, validated with messages a user can act on."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .models import DEFAULT_MODEL, get_model

OPTIMIZERS = ("lbfgs", "adam")
PRECISIONS = ("auto", "float32", "bfloat16")
#: ``none``; ``luminance`` keeps the content's colours; ``histogram`` recolours the styles.
COLOR_MODES = ("none", "luminance", "histogram")
INITS = ("content", "noise", "style", "instant")
MIN_SIZE, MAX_SIZE = 16, 4096
MAX_STEPS = 10_000
# Absurd weights are allowed on purpose: the loop detects non-finite losses and keeps the last
# good image, so a user exploring extremes gets an explanation rather than a refusal.
MAX_WEIGHT = sys.float_info.max


class SettingsError(ValueError):
    """A setting out of range; the message names the setting, the value and the valid range."""


@dataclass(frozen=True)
class TransferSettings:
    """Everything that decides the result of a run (together with the input images).

    Attributes:
        model: backbone name (see ``stransfer.backbones.BACKBONE_NAMES``).
        steps: optimisation steps (L-BFGS iterations or Adam steps), summed over all scales.
        size: long side of the optimised (and output) image, in pixels.
        content_weight: alpha, the weight of the content loss.
        style_weight: beta, the weight of the style loss.
        tv_weight: weight of the total-variation (smoothness) loss.
        content_layers: ``{layer: weight}``; None means the backbone's defaults.
        style_layers: ``{layer: weight}``; None means the backbone's defaults.
        optimizer: ``lbfgs`` (fast convergence) or ``adam`` (smooth, steady progress).
        learning_rate: Adam's step size in pixel units (0..255 scale); unused by L-BFGS.
        precision: ``auto``, ``float32`` or ``bfloat16`` for the network's convolutions.
        scales: number of coarse-to-fine scales (1 = optimise at full size only).
        init: start from the ``content`` image, seeded ``noise``, the ``style`` image, or the
            ``instant`` engine's feed-forward result (the front end computes it with
            ``stransfer.instant.instant_init`` and passes it to ``transfer`` as ``init_image``).
        style_scale: style image size relative to the output (0.5 = finer strokes).
        preserve_color: ``none``; ``luminance`` (stylise brightness only, keep the content's
            colours); or ``histogram`` (recolour the style images to the content's palette first).
        seed: seeds noise initialisation; runs with equal settings and images repeat exactly.
        max_seconds: stop when this much time has passed (None: no budget).
    """

    model: str = DEFAULT_MODEL
    steps: int = 60
    size: int = 512
    content_weight: float = 1.0
    style_weight: float = 2.0
    tv_weight: float = 1.0
    content_layers: Mapping[str, float] | None = None
    style_layers: Mapping[str, float] | None = None
    optimizer: str = "lbfgs"
    learning_rate: float = 4.0
    precision: str = "auto"
    scales: int = 2
    init: str = "content"
    style_scale: float = 1.0
    preserve_color: str = "none"
    seed: int = 0
    max_seconds: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def validated(self) -> TransferSettings:
        """Return the settings with defaults filled in, or raise SettingsError."""
        backbone = get_model(self.model)  # ModelError is a ValueError with the choices
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("size", self.size, MIN_SIZE, MAX_SIZE)
        _check_int("scales", self.scales, 1, 4)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _check_float(name, getattr(self, name), 0.0, MAX_WEIGHT)
        _check_float("learning_rate", self.learning_rate, 0.0, 1e9, low_open=True)
        _check_float("style_scale", self.style_scale, 0.1, 4.0)
        if self.max_seconds is not None:
            _check_float("max_seconds", self.max_seconds, 0.0, 1e7, low_open=True)
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(
                f"optimizer {self.optimizer!r} is unknown; use one of: {', '.join(OPTIMIZERS)}"
            )
        if self.init not in INITS:
            raise SettingsError(f"init {self.init!r} is unknown; use one of: {', '.join(INITS)}")
        if self.preserve_color not in COLOR_MODES:
            raise SettingsError(
                f"preserve_color {self.preserve_color!r} is unknown; "
                f"use one of: {', '.join(COLOR_MODES)}"
            )
        if self.precision not in PRECISIONS:
            raise SettingsError(
                f"precision {self.precision!r} is unknown; use one of: {', '.join(PRECISIONS)}"
            )
        content = dict(
            backbone.content_layers if self.content_layers is None else self.content_layers
        )
        style = dict(backbone.style_layers if self.style_layers is None else self.style_layers)
        backbone.check_layers([*content, *style])
        for layers in (content, style):
            for layer, weight in layers.items():
                _check_float(f"weight of layer {layer}", weight, 0.0, MAX_WEIGHT)
        # Zero-weight layers cost compute and add nothing: drop them.
        content = {k: float(v) for k, v in content.items() if v > 0}
        style = {k: float(v) for k, v in style.items() if v > 0}
        if not content and not style:
            raise SettingsError(
                "every content and style layer weight is zero; give at least one layer a weight"
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


def _by_depth(backbone: Any, layers: dict[str, float]) -> dict[str, float]:
    return dict(sorted(layers.items(), key=lambda item: backbone.depth(item[0])))


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


def _check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low < value if low_open else low <= value)
        and value <= high
    )
    if not ok:
        bound = f"more than {low:g}" if low_open else f"from {low:g}"
        raise SettingsError(f"{name} must be a number {bound} to {high:g}, not {value!r}")

"""One run recipe for every front end: what a user asked for -> validated settings (no TensorFlow).

A front end (the CLI, the page, the HTTP API, a worker) collects the user's choices as a plain
mapping of ``TransferSettings`` field names, plus ``strength`` (0..100 %) and one blend weight
per style image, and calls :func:`make_recipe`. It gets back a :class:`Recipe`: the validated
settings with the strength applied (the one place the strength becomes weights), the blend
weights (checked once, with one message), and what the run record keeps to restore the
controls. Errors are ``SettingsError`` with ``.field`` naming the setting (``strength`` and
``style_weights`` included), so each front end can point at its own control.

Running it: ``stransfer.engine.run.run_recipe(recipe, content, styles, extractor)``; its record:
``stransfer.io.records.recipe_record(recipe, inputs, event, precision=...)``. A typical use::

    recipe = make_recipe({"steps": 20, "size": 256, "strength": 60}, style_weights=[2, 1])
    plan = recipe.plan(content.shape[:2])            # sizes per scale, notices for the user
    inputs = RunInputs.of(content, styles, "photo.jpg", ["a.png", "b.png"])
    for event in run_recipe(recipe, content, styles, extractor):
        record = recipe_record(recipe, inputs, event, precision=extractor.precision)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .models import get_model
from .plan import RunPlan, plan_run
from .regions import Region, check_regions
from .settings import SETTING_NAMES, FieldInfo, SettingsError, TransferSettings
from .strength import strength_extra, strength_from_extra, strength_to_weights

#: The style strength control (a recipe value, not a setting: it scales two settings).
STRENGTH_INFO = FieldInfo(
    "style strength in percent, 0 to 100: scales the style and TV weights together on a "
    "logarithmic curve (each third of the range is a factor of 10); 0 returns the content "
    "unchanged",
    float,
    0.0,
    100.0,
    metavar="PCT",
)
#: The blend weights of the style images (one per image).
STYLE_WEIGHTS_INFO = FieldInfo(
    "blend weights of the style images, one per image; 0 leaves one out (default: equal weights)",
    float,
    0.0,
    1e9,
    metavar="W",
)
DEFAULT_STRENGTH = 100.0


@dataclass(frozen=True)
class Recipe:
    """A validated run request.

    Attributes:
        settings: validated ``TransferSettings``; ``style_weight`` and ``tv_weight`` are
            already scaled by ``strength`` (this is what the engine runs and records store).
        style_weights: blend weight of each style image (at least one above zero).
        strength: the style strength in percent.
        style_weight_at_100: the style weight the strength scaled (the user's "beta").
        tv_weight_at_100: the TV weight the strength scaled.
        regions: where each style goes (``stransfer.core.regions``); empty: the blend of
            ``style_weights`` everywhere.
    """

    settings: TransferSettings
    style_weights: tuple[float, ...] = (1.0,)
    strength: float = DEFAULT_STRENGTH
    style_weight_at_100: float = TransferSettings.style_weight
    tv_weight_at_100: float = TransferSettings.tv_weight
    regions: tuple[Region, ...] = field(default=(), compare=False)

    def extra(self) -> dict[str, Any]:
        """What a run record keeps besides the settings: strength, weights at 100 %, colours,
        and the regions (each mask's hash and what goes there), if any."""
        extra = {
            **strength_extra(
                self.strength,
                style_weight=self.style_weight_at_100,
                tv_weight=self.tv_weight_at_100,
            ),
            "preserve_color": self.settings.preserve_color,
        }
        if self.regions:
            extra["regions"] = [region.describe() for region in self.regions]
        return extra

    def values(self) -> dict[str, Any]:
        """The inverse of :func:`make_recipe`: the mapping that makes this recipe again
        (settings with the weights at 100 %, plus ``strength``)."""
        values = self.settings.to_dict()
        values.update(
            style_weight=self.style_weight_at_100,
            tv_weight=self.tv_weight_at_100,
            strength=self.strength,
        )
        return values

    def plan(self, content_shape: tuple[int, int]) -> RunPlan:
        """Image sizes and steps per scale for a content image of ``content_shape`` (H, W),
        with notices for the user; SettingsError if the image is too thin for the model."""
        return plan_run(content_shape, self.settings, get_model(self.settings.model).min_side)


def make_recipe(
    values: Mapping[str, Any] | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    styles: int | None = None,
    regions: Sequence[Region] = (),
) -> Recipe:
    """Validate what a user asked for and apply the strength.

    Args:
        values: ``TransferSettings`` field names -> values (missing ones take the defaults),
            plus optionally ``strength`` (0..100, default 100). ``style_weight`` and
            ``tv_weight`` are the weights at 100 % strength.
        style_weights: one blend weight per style image (None: equal weights).
        styles: the number of style images, when known (checked against ``style_weights``).
        regions: where each style goes (``stransfer.core.regions.Region``; each region's
            weights are over the same style images); empty: ``style_weights`` everywhere.

    Raises:
        SettingsError: an unknown name, a value out of range, a wrong number of blend weights
            or all of them zero; ``.field`` names the setting.
        ModelError: an unknown model or layer (a ValueError naming the choices).
    """
    values = dict(values or {})
    strength = values.pop("strength", DEFAULT_STRENGTH)
    unknown = sorted(set(values) - set(SETTING_NAMES), key=str)
    if unknown:
        raise SettingsError(
            f"{unknown[0]!r:.60} is not a setting; known settings: strength, "
            + ", ".join(SETTING_NAMES),
            str(unknown[0])[:60],
        )
    STRENGTH_INFO.check("strength", strength)
    full = TransferSettings(**values).validated()
    style_weight, tv_weight = strength_to_weights(
        strength, style_weight=full.style_weight, tv_weight=full.tv_weight
    )
    count = styles if styles is not None else len(style_weights or (1.0,))
    if regions and style_weights is None and styles is None:
        count = len(next((r.weights for r in regions if r.weights), (1.0,)))
    return Recipe(
        settings=replace(full, style_weight=style_weight, tv_weight=tv_weight),
        style_weights=check_style_weights(style_weights, count),
        strength=float(strength),
        style_weight_at_100=full.style_weight,
        tv_weight_at_100=full.tv_weight,
        regions=check_regions(regions, count),
    )


def check_style_weights(weights: Sequence[float] | None, count: int) -> tuple[float, ...]:
    """The blend weights for ``count`` style images (None: equal weights).

    Raises SettingsError (field ``style_weights``) for a weight that is negative or not a
    number, a count that differs from the images', or weights that are all zero.
    """
    if count < 1:
        raise SettingsError("give at least one style image", "style_weights")
    if weights is None:
        return (1.0,) * count
    weights = tuple(weights)
    for weight in weights:
        STYLE_WEIGHTS_INFO.check("style_weights", weight)
    if len(weights) != count:
        raise SettingsError(
            f"style_weights has {len(weights)} weight(s) for {count} style image(s); "
            "give one weight per style image",
            "style_weights",
        )
    if not any(weight > 0 for weight in weights):
        raise SettingsError(
            "style_weights are all 0; give at least one style image a weight above 0",
            "style_weights",
        )
    return tuple(float(weight) for weight in weights)


def recipe_values(settings: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`make_recipe` mapping that a run record's ``settings`` and ``extra`` describe
    (to restore a run's controls): the weights at 100 % and the strength, when the record
    has them (an older record restores as 100 % of its weights)."""
    values = {key: value for key, value in settings.items() if key in SETTING_NAMES}
    style_weight = values.get("style_weight", TransferSettings.style_weight)
    tv_weight = values.get("tv_weight", TransferSettings.tv_weight)
    if not all(isinstance(w, int | float) and math.isfinite(w) for w in (style_weight, tv_weight)):
        return {**values, "strength": DEFAULT_STRENGTH}
    strength, full_style, full_tv = strength_from_extra(
        extra, style_weight=float(style_weight), tv_weight=float(tv_weight)
    )
    return {**values, "style_weight": full_style, "tv_weight": full_tv, "strength": strength}

"""One 0-100 % "style strength" control in place of raw style and TV weights.

The mapping, for strength ``s`` in percent and the default weights ``beta`` (style) and
``tau`` (total variation), with the content weight left unchanged::

    factor(s) = 10 ** (-DECADES * (1 - s / 100))   for 0 < s <= 100
    factor(0) = 0
    style_weight = beta * factor(s)
    tv_weight    = tau  * factor(s)

So 100 % is the default style weight, 50 % is ``beta / 10**1.5`` (about beta / 31.6) and each
third of the slider is one decade. 0 % is exactly zero (not ``beta / 1000``), so a run that
starts from the content image returns it unchanged.

Why logarithmic: how stylised a result looks follows the *order of magnitude* of the
style/content weight ratio (Gatys et al. sweep it in powers of ten); a linear slider would put
nearly all the visible change in its first few percent. The TV weight scales by the same factor
because it smooths stylisation artefacts: with little style there is little to smooth, and a
fixed TV weight would blur the content instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Decades of style/content ratio that the slider spans from just above 0 % to 100 %.
DECADES = 3.0


def _check_strength(strength: Any) -> float:
    ok = (
        isinstance(strength, int | float)
        and not isinstance(strength, bool)
        and math.isfinite(strength)
        and 0.0 <= strength <= 100.0
    )
    if not ok:
        raise ValueError(f"style strength must be a number from 0 to 100, not {strength!r}")
    return float(strength)


def _check_weight(name: str, value: Any) -> float:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0.0
    )
    if not ok:
        raise ValueError(f"{name} must be a finite number of 0 or more, not {value!r}")
    return float(value)


def strength_to_weights(
    strength: float, *, style_weight: float, tv_weight: float
) -> tuple[float, float]:
    """Return ``(style_weight, tv_weight)`` for a style strength in percent (0..100).

    ``style_weight`` and ``tv_weight`` are the weights at 100 % (normally the defaults);
    the content weight is meant to stay unchanged. See the module docstring for the curve.

    Raises:
        ValueError: ``strength`` is not a number from 0 to 100, or a weight is negative or not
            finite.
    """
    strength = _check_strength(strength)
    style_weight = _check_weight("style_weight", style_weight)
    tv_weight = _check_weight("tv_weight", tv_weight)
    if strength == 0.0:
        return 0.0, 0.0
    factor = 10.0 ** (-DECADES * (1.0 - strength / 100.0))
    return style_weight * factor, tv_weight * factor


def weights_to_strength(style_weight: float, default_style_weight: float) -> float:
    """Inverse of :func:`strength_to_weights`: the strength (0..100) for a saved style weight.

    Used to put the slider back when restoring settings. Weights above the default give 100,
    weights below ``default / 10**DECADES`` (and zero) give 0.

    Raises:
        ValueError: ``default_style_weight`` is not a positive finite number, or
            ``style_weight`` is negative or not finite.
    """
    style_weight = _check_weight("style_weight", style_weight)
    default = _check_weight("default_style_weight", default_style_weight)
    if default == 0.0:
        raise ValueError("default_style_weight must be more than 0 to define a strength")
    if style_weight == 0.0:
        return 0.0
    strength = 100.0 * (1.0 + math.log10(style_weight / default) / DECADES)
    return min(100.0, max(0.0, strength))


#: Keys of a run record's ``extra`` that hold the strength and the weights it scaled.
STRENGTH_KEYS = ("strength", "style_weight_at_100", "tv_weight_at_100")


def strength_extra(strength: float, *, style_weight: float, tv_weight: float) -> dict[str, float]:
    """What a run record keeps to restore the strength control: the strength in percent and
    the style and TV weights at 100 % (the settings hold the scaled weights)."""
    return dict(zip(STRENGTH_KEYS, (strength, style_weight, tv_weight), strict=True))


def strength_from_extra(
    extra: Mapping[str, Any], *, style_weight: float, tv_weight: float
) -> tuple[float, float, float]:
    """``(strength, style_weight_at_100, tv_weight_at_100)`` from a run record's ``extra``.

    ``style_weight`` and ``tv_weight`` are the record's (scaled) settings: a record without a
    valid strength (older, or written by other tools) restores as 100 % of those weights.
    """
    try:
        strength = _check_strength(extra[STRENGTH_KEYS[0]])
        full_style = _check_weight("style_weight", extra[STRENGTH_KEYS[1]])
        full_tv = _check_weight("tv_weight", extra[STRENGTH_KEYS[2]])
    except (KeyError, ValueError):
        return 100.0, style_weight, tv_weight
    return strength, full_style, full_tv

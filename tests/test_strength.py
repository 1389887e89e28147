"""The style-strength slider: endpoints, curve shape, inverse and input checks."""

import itertools
import math

import pytest

from stransfer.core.strength import (
    DECADES,
    strength_extra,
    strength_from_extra,
    strength_to_weights,
    weights_to_strength,
)

STYLE, TV = 10.0, 1.0


def test_endpoints() -> None:
    assert strength_to_weights(100, style_weight=STYLE, tv_weight=TV) == (STYLE, TV)
    assert strength_to_weights(0, style_weight=STYLE, tv_weight=TV) == (0.0, 0.0)
    assert strength_to_weights(0.0, style_weight=STYLE, tv_weight=TV) == (0.0, 0.0)


def test_fifty_percent_is_one_and_a_half_decades_down() -> None:
    assert DECADES == 3
    style, tv = strength_to_weights(50, style_weight=STYLE, tv_weight=TV)
    assert math.isclose(style, STYLE / 10**1.5, rel_tol=1e-12)
    assert math.isclose(tv, TV / 10**1.5, rel_tol=1e-12)
    # One decade per third of the slider.
    third, _ = strength_to_weights(200 / 3, style_weight=STYLE, tv_weight=TV)
    assert math.isclose(third, STYLE / 10, rel_tol=1e-12)


def test_monotonic_and_tv_follows_style() -> None:
    pairs = [strength_to_weights(s, style_weight=STYLE, tv_weight=TV) for s in range(101)]
    styles = [p[0] for p in pairs]
    assert all(a < b for a, b in itertools.pairwise(styles))
    for style, tv in pairs[1:]:
        assert math.isclose(style / tv, STYLE / TV, rel_tol=1e-12)
    assert math.isclose(styles[1], STYLE * 10 ** (-DECADES * 0.99), rel_tol=1e-12)


def test_inverse_round_trip() -> None:
    for strength in (0, 0.5, 1, 12.5, 33, 50, 75, 99.9, 100):
        style, _ = strength_to_weights(strength, style_weight=STYLE, tv_weight=TV)
        assert math.isclose(weights_to_strength(style, STYLE), strength, abs_tol=1e-9)


def test_inverse_clamps() -> None:
    assert weights_to_strength(STYLE * 50, STYLE) == 100.0
    assert weights_to_strength(STYLE * 1e-9, STYLE) == 0.0
    assert weights_to_strength(0, STYLE) == 0.0
    with pytest.raises(ValueError, match="more than 0"):
        weights_to_strength(1.0, 0.0)
    with pytest.raises(ValueError, match="style_weight"):
        weights_to_strength(-1.0, STYLE)


@pytest.mark.parametrize("bad", [-1, 100.5, math.nan, math.inf, "50", None, True, [50]])
def test_bad_strength(bad: object) -> None:
    with pytest.raises(ValueError, match="style strength must be a number from 0 to 100, not"):
        strength_to_weights(bad, style_weight=STYLE, tv_weight=TV)  # type: ignore[arg-type]


def test_bad_weights() -> None:
    with pytest.raises(ValueError, match="tv_weight"):
        strength_to_weights(50, style_weight=STYLE, tv_weight=-1.0)
    with pytest.raises(ValueError, match="style_weight"):
        strength_to_weights(50, style_weight=math.nan, tv_weight=TV)


def test_record_extra_round_trip() -> None:
    extra = strength_extra(40.0, style_weight=STYLE, tv_weight=TV)
    assert strength_from_extra(extra, style_weight=0.1, tv_weight=0.01) == (40.0, STYLE, TV)
    # No (or a broken) strength in the record: 100 % of the recorded weights.
    for broken in ({}, {**extra, "strength": 250}, {**extra, "tv_weight_at_100": "x"}):
        assert strength_from_extra(broken, style_weight=0.1, tv_weight=0.01) == (100.0, 0.1, 0.01)

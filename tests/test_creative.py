"""Creative controls measured by their effect on the result (untrained VGG19, tiny images).

Style strength, style blends, initialisation and style scale are checked through the library;
the CLI and page tests check that their options reach it.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import _smooth_image

from stransfer import TransferSettings, transfer
from stransfer.core.strength import strength_to_weights
from stransfer.engine.losses import relative_error
from stransfer.io.images import fit_long_side, resize_to


@pytest.fixture(scope="module")
def vgg(vgg_random):
    return vgg_random


def settings(**changes) -> TransferSettings:
    base = {"steps": 10, "size": 64, "scales": 1, "precision": "float32"}
    return TransferSettings(**{**base, **changes})


def final_image(vgg, content, style, **changes) -> np.ndarray:
    return list(transfer(content, style, settings(**changes), vgg))[-1].image


def gram_distance(vgg, image: np.ndarray, style: np.ndarray) -> float:
    """Layer-weighted relative Gram error of ``image`` to ``style`` (at the image's size), as
    the style loss measures it."""
    layers = settings().validated().style_layers
    objective = vgg.objective((), tuple(layers))
    side = max(image.shape[:2])
    target = objective.style_grams(fit_long_side(style, side).astype(np.float32))
    grams = objective.style_grams(image.astype(np.float32))
    pairs = zip(layers.values(), grams, target, strict=True)
    return sum(weight * float(relative_error(g, t)) for weight, g, t in pairs)


def at_strength(strength: float, **changes) -> dict[str, float]:
    style_weight, tv_weight = strength_to_weights(strength, style_weight=10.0, tv_weight=1.0)
    return {"style_weight": style_weight, "tv_weight": tv_weight, **changes}


# -- style strength ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        # Two scales need a 128 px output (the coarse one is at least 64 px): the fine scale
        # must start from the content itself, not from an enlarged (blurred) coarse copy.
        {"size": 128, "scales": 2, "steps": 4, "init": "content"},
    ],
    ids=["one scale", "two scales"],
)
def test_strength_zero_returns_the_content(vgg, content_img, style_img, changes):
    out = final_image(vgg, content_img, style_img, **at_strength(0, **changes))
    expected = resize_to(content_img, *out.shape[:2])
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_style_loss_falls_as_the_strength_rises(vgg, content_img, style_img):
    style_losses = [
        list(transfer(content_img, style_img, settings(**at_strength(s)), vgg))[-1].losses["style"]
        for s in (25, 50, 100)
    ]
    assert style_losses[0] > style_losses[1] > style_losses[2], style_losses


# -- style blends --------------------------------------------------------------------------------


def test_an_even_blend_lies_between_the_two_styles(vgg, content_img, style_img):
    """Weights 1/0 giving the single style is tested in test_optimize; here 0.5/0.5 must end
    strictly between the single-style results in Gram distance to each style."""
    other = _smooth_image(2, 70, 90)
    only_a = final_image(vgg, content_img, style_img)
    only_b = final_image(vgg, content_img, other)
    blend = final_image(vgg, content_img, [(style_img, 0.5), (other, 0.5)])
    for style, near, far in ((style_img, only_a, only_b), (other, only_b, only_a)):
        near_d, blend_d, far_d = (gram_distance(vgg, x, style) for x in (near, blend, far))
        assert near_d < blend_d < far_d, (near_d, blend_d, far_d)


# -- initialisation and style scale --------------------------------------------------------------


def test_init_style_starts_closer_to_the_style(vgg, content_img, style_img):
    first = {
        init: next(iter(transfer(content_img, style_img, settings(init=init), vgg))).image
        for init in ("content", "style")
    }
    from_style = gram_distance(vgg, first["style"], style_img)
    from_content = gram_distance(vgg, first["content"], style_img)
    assert from_style < 0.8 * from_content, (from_style, from_content)


def test_style_scale_changes_the_result(vgg, content_img, style_img):
    images = {s: final_image(vgg, content_img, style_img, style_scale=s) for s in (0.5, 1, 2)}
    for scale in (0.5, 2):
        change = np.abs(images[scale].astype(int) - images[1].astype(int)).mean()
        assert change > 5, (scale, change)

"""The tiled objective equals the untiled one (engine.tiled): targets, loss and gradient."""

import numpy as np
import pytest

from stransfer import TransferSettings, transfer
from stransfer.core.tiles import MemoryBudgetError
from stransfer.engine.features import TARGETS
from stransfer.engine.tiled import FIXED_BYTES, TiledObjective, evaluator_for, geometry


@pytest.fixture(scope="module")
def parts(vgg_random):
    settings = TransferSettings().validated()  # the default layers
    objective = vgg_random.objective(tuple(settings.content_layers), tuple(settings.style_layers))
    geo = geometry(vgg_random, [*settings.content_layers, *settings.style_layers])
    return settings, objective, geo


def test_vgg19_geometry(parts):
    _, _, geo = parts
    assert geo.align == 16  # block5_conv1 is after four poolings
    assert geo.halo >= 84  # its receptive radius
    assert geo.strides["block1_conv1"] == 1 and geo.strides["block4_conv2"] == 8


def test_tiled_targets_loss_and_gradient_equal_the_untiled(parts):
    settings, objective, geo = parts
    rng = np.random.default_rng(0)
    # Not a multiple of the tiles or of the stride: edge tiles are ragged, as in real images.
    image = rng.uniform(0, 255, (200, 264, 3)).astype(np.float32)
    content = rng.uniform(0, 255, (200, 264, 3)).astype(np.float32)
    style = rng.uniform(0, 255, (150, 181, 3)).astype(np.float32)
    tiled = TiledObjective(objective, geo, 48)  # forced tiny tiles
    assert len(tiled.tiles(image.shape[:2])) > 12
    TARGETS.clear()
    content_t = objective.content_targets(content)
    grams = objective.style_grams(style)
    TARGETS.clear()
    tiled_content_t = tiled.content_targets(content)
    tiled_grams = tiled.style_grams(style)
    for a, b in zip(content_t, tiled_content_t, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5 * np.abs(a).max())
    for a, b in zip(grams, tiled_grams, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5 * np.abs(a).max())
    weights_c = np.array(list(settings.content_layers.values()), np.float32)
    weights_s = np.array(list(settings.style_layers.values()), np.float32)
    mix = np.array([1.0, 2.0, 1.0], np.float32)
    want, grad, finite = objective.value_and_grad(
        image, content_t, grams, weights_c, weights_s, mix
    )
    got, tiled_grad, tiled_finite = tiled.value_and_grad(
        image, content_t, grams, weights_c, weights_s, mix
    )
    assert finite and tiled_finite
    for key in ("total", "content", "style", "tv"):
        assert got[key] == pytest.approx(want[key], rel=1e-4)
    np.testing.assert_allclose(tiled_grad, grad, rtol=1e-3, atol=1e-4 * np.abs(grad).max())


def test_a_run_in_a_small_budget_is_tiled_and_matches_the_untiled_run(
    vgg_random, content_img, style_img
):
    settings = TransferSettings(size=480, steps=2, scales=1, init="content")
    budget = int(FIXED_BYTES + 250 * 2**20)
    validated = settings.validated()
    objective = vgg_random.objective(tuple(validated.content_layers), tuple(validated.style_layers))
    evaluator = evaluator_for(objective, (320, 480), budget, optimiser_pairs=1)
    assert isinstance(evaluator, TiledObjective) and len(evaluator.tiles((320, 480))) > 1
    assert evaluator_for(objective, (320, 480), 8 * 2**30) is objective  # fits: untiled
    tiled = list(transfer(content_img, style_img, settings, vgg_random, max_memory=budget))
    whole = list(transfer(content_img, style_img, settings, vgg_random))
    assert [e.status for e in tiled] == [e.status for e in whole] == ["running", "done"]
    difference = np.abs(tiled[-1].image.astype(int) - whole[-1].image.astype(int))
    assert difference.max() <= 2
    assert tiled[-1].losses["total"] == pytest.approx(whole[-1].losses["total"], rel=1e-3)


def test_a_run_that_cannot_fit_says_so_before_it_starts(vgg_random, content_img, style_img):
    settings = TransferSettings(size=8192, steps=2, scales=1, init="content")
    events = transfer(content_img, style_img, settings, vgg_random, max_memory="1.4GB")
    with pytest.raises(MemoryBudgetError, match=r"needs about .* more than the memory budget"):
        next(events)

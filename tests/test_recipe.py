"""The one run recipe: settings + strength + blend weights -> validated settings and records."""

import pickle

import numpy as np
import pytest

from stransfer.core.recipe import check_style_weights, make_recipe, recipe_values
from stransfer.core.settings import MAX_SEED, SettingsError, TransferSettings, field_info
from stransfer.core.strength import strength_to_weights
from stransfer.io.images import image_sha256
from stransfer.io.records import RunInputs, RunRecord, recipe_record


def test_strength_is_applied_once_and_kept_for_the_record():
    recipe = make_recipe(
        {"steps": 7, "style_weight": 3.0, "tv_weight": 0.5, "strength": 40},
        style_weights=[2, 1],
    )
    style, tv = strength_to_weights(40, style_weight=3.0, tv_weight=0.5)
    assert (recipe.settings.style_weight, recipe.settings.tv_weight) == (style, tv)
    assert recipe.settings.steps == 7
    assert recipe.settings.content_layers  # validated: the model's defaults filled in
    assert recipe.style_weights == (2.0, 1.0)
    extra = recipe.extra()
    assert extra["strength"] == 40 and extra["style_weight_at_100"] == 3.0
    assert extra["tv_weight_at_100"] == 0.5
    # values() is the inverse: the same recipe again, not a twice-scaled one.
    assert make_recipe(recipe.values(), style_weights=recipe.style_weights) == recipe


def test_a_record_restores_the_recipe_it_came_from():
    recipe = make_recipe({"strength": 55.5, "size": 128}, style_weights=[1, 3])
    record = RunRecord(settings=recipe.settings.to_dict(), extra=recipe.extra())
    again = make_recipe(recipe_values(record.settings, record.extra), style_weights=[1, 3])
    assert again == recipe
    # An older record without a strength restores as 100 % of its (scaled) weights.
    old = recipe_values(recipe.settings.to_dict(), {})
    assert old["strength"] == 100.0
    assert old["style_weight"] == recipe.settings.style_weight


@pytest.mark.parametrize(
    ("values", "weights", "field", "words"),
    [
        ({"stepz": 3}, None, "stepz", "not a setting"),
        ({"strength": 101}, None, "strength", "strength must be a number from 0 to 100"),
        ({"strength": "lots"}, None, "strength", "strength must be"),
        ({"steps": 0}, None, "steps", "steps must be a whole number from 1"),
        ({"seed": -1}, None, "seed", "seed must be a whole number from 0 to 4294967295"),
        ({"seed": MAX_SEED + 1}, None, "seed", "seed must be"),
        ({"preserve_color": "sepia"}, None, "preserve_color", "use one of"),
        ({"style_layers": {"block1_conv1": -1}}, None, "style_layers", "block1_conv1"),
        ({}, [1.0], "style_weights", "one weight per style image"),
        ({}, [0, 0], "style_weights", "above 0"),
        ({}, [1, -2], "style_weights", "style_weights must be a number from 0"),
    ],
)
def test_errors_name_the_field(values, weights, field, words):
    with pytest.raises(SettingsError) as caught:
        make_recipe(values, style_weights=weights, styles=2)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_seed_limits_and_error_survives_pickling():
    assert make_recipe({"seed": MAX_SEED}).settings.seed == MAX_SEED
    error = pickle.loads(pickle.dumps(SettingsError("seed must be ...", "seed")))
    assert (error.field, str(error)) == ("seed", "seed must be ...")


def test_one_style_weight_check_with_equal_weights_by_default():
    assert check_style_weights(None, 3) == (1.0, 1.0, 1.0)
    assert check_style_weights([0, 2], 2) == (0.0, 2.0)
    with pytest.raises(SettingsError, match="at least one style image"):
        check_style_weights(None, 0)


def test_field_metadata_is_what_validation_enforces():
    info = field_info("size")
    assert (info.kind, info.low, info.high) == (int, 16, 8192)
    assert field_info("preserve_color").choices == ("none", "luminance", "histogram")
    with pytest.raises(SettingsError):
        TransferSettings(size=int(info.high) + 1).validated()
    TransferSettings(size=int(info.high)).validated()


def test_run_recipe_streams_events_and_records_them(content_img, style_img, vgg_random):
    from stransfer.engine.run import run_recipe

    recipe = make_recipe(
        {"steps": 2, "size": 48, "scales": 1, "precision": "float32", "strength": 80},
        style_weights=[1, 0],
    )
    styles = [style_img, style_img[::-1]]
    inputs = RunInputs.of(content_img, styles, "c.png", ["s1.png", "s2.png"])
    events = list(run_recipe(recipe, content_img, styles, vgg_random))
    assert [e.step for e in events] == [1, 2] and events[-1].status == "done"
    record = recipe_record(
        recipe, inputs, events[-1], precision="float32", extra={"weights": "random"}
    )
    assert record.content_sha256 == image_sha256(content_img)
    assert record.style_sha256 == [image_sha256(s) for s in styles]
    assert record.style_weights == [1.0, 0.0]
    assert record.settings == recipe.settings.to_dict()
    assert record.steps_done == 2 and record.final_losses == events[-1].losses
    assert record.extra["strength"] == 80 and record.extra["status"] == "done"
    assert record.extra["styles"] == ["s1.png", "s2.png"] and record.extra["weights"] == "random"
    assert RunRecord.from_json(record.to_json()).extra == record.extra
    with pytest.raises(SettingsError) as caught:
        run_recipe(recipe, content_img, styles[:1], vgg_random)
    assert caught.value.field == "style_weights"
    assert np.array_equal(events[-1].image.shape[:2], (32, 48))


@pytest.mark.parametrize("value", ["a", ["block4_conv2"], {1: 2.0}])
def test_layer_settings_that_are_not_a_map_name_their_field(value):
    with pytest.raises(SettingsError, match="must map layer names to weights") as err:
        TransferSettings(content_layers=value).validated()
    assert err.value.field == "content_layers"

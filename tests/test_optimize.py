"""Behaviour of the optimisation loop: planning, tracing, repeatability, stopping, faults."""

import numpy as np
import pytest

from stransfer import RunPlan, SettingsError, TransferSettings, get_backbone, plan_run, transfer
from stransfer.io.images import resize_to


@pytest.fixture(scope="module")
def vgg(vgg_random):
    return vgg_random


def small(**kw) -> TransferSettings:
    base = {"steps": 3, "size": 64, "scales": 1}
    base.update(kw)
    return TransferSettings(**base)


def test_plan_keeps_the_aspect_ratio_and_builds_coarse_scales():
    plan = plan_run((300, 600), TransferSettings(size=512, scales=3, steps=90, init="content"), 32)
    assert plan.output_shape == (256, 512)
    assert plan.shapes == ((64, 128), (128, 256), (256, 512))
    assert sum(plan.steps) == 90


def test_an_instant_start_is_planned_at_full_size_only():
    """The instant start already has the layout at full size: no coarse pass to blur it."""
    for init, shapes in (("instant", ((256, 512),)), ("content", ((128, 256), (256, 512)))):
        plan = plan_run((300, 600), TransferSettings(size=512, scales=2, steps=40, init=init), 32)
        assert plan.shapes == shapes and sum(plan.steps) == 40


def test_plan_enlarges_for_a_minimum_side_with_a_notice():
    plan = plan_run((100, 200), TransferSettings(model="InceptionV3", size=100, scales=1), 75)
    assert min(plan.output_shape) == 75
    assert plan.notices and "75 px" in plan.notices[0]


def test_plan_refuses_an_image_too_thin_for_the_model():
    with pytest.raises(SettingsError, match="too thin"):
        plan_run((3, 4000), TransferSettings(model="InceptionV3", size=512), 75)


def test_events_count_steps_and_output_size(vgg, content_img, style_img):
    events = list(
        transfer(content_img, style_img, small(steps=4, size=96, scales=2, init="content"), vgg)
    )
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert all(e.image.shape == (64, 96, 3) for e in events)  # coarse frames shown at output size
    assert events[-1].status == "done" and events[0].status == "running"
    assert all(e.elapsed > 0 and e.seconds_per_step > 0 for e in events)


def test_same_seed_repeats_exactly(vgg, content_img, style_img):
    settings = small(init="noise", seed=7, optimizer="adam")
    a = list(transfer(content_img, style_img, settings, vgg))[-1].image
    b = list(transfer(content_img, style_img, settings, vgg))[-1].image
    c = list(transfer(content_img, style_img, small(init="noise", seed=8), vgg))[-1].image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_changing_weights_or_starting_again_does_not_retrace(vgg, content_img, style_img):
    settings = small()
    validated = settings.validated()
    objective = vgg.objective(tuple(validated.content_layers), tuple(validated.style_layers))
    list(transfer(content_img, style_img, settings, vgg))
    traces = objective.traces
    assert traces >= 1
    layers = {k: 0.5 for k in validated.style_layers}
    for changed in (
        small(style_weight=123.0, content_weight=0.1, tv_weight=5.0),
        small(style_layers=layers, optimizer="adam"),
        small(seed=3, init="noise"),
    ):
        list(transfer(content_img, style_img, changed, vgg))
    assert objective.traces == traces
    # New sizes and coarse-to-fine scales reuse the one trace (shape-polymorphic signature).
    list(transfer(content_img, style_img, small(size=80), vgg))
    list(transfer(content_img, style_img, small(size=72, scales=2, steps=4, init="content"), vgg))
    assert objective.traces == traces == 1


def test_running_again_reuses_the_targets(vgg, content_img, style_img):
    """A re-run with other weights skips the target passes and gives what a fresh one would."""
    from stransfer.engine.features import TARGETS

    settings = small(size=128, scales=2, steps=4, init="content")
    validated = settings.validated()
    objective = vgg.objective(tuple(validated.content_layers), tuple(validated.style_layers))
    TARGETS.clear()
    before = objective.target_passes
    first = list(transfer(content_img, style_img, settings, vgg))[-1].image
    passes = objective.target_passes
    assert passes - before == 4  # content and style at each of two scales
    again = list(transfer(content_img, style_img, settings, vgg))[-1].image
    reweighted = small(size=128, scales=2, steps=4, init="content", style_weight=50.0)
    list(transfer(content_img, style_img, reweighted, vgg))
    assert objective.target_passes == passes  # content and style at both scales were kept
    np.testing.assert_array_equal(first, again)
    TARGETS.clear()
    fresh = list(transfer(content_img, style_img, settings, vgg))[-1].image
    assert objective.target_passes == passes + 4
    np.testing.assert_array_equal(first, fresh)
    # Another style image: only its Grams are computed (one pass per scale).
    list(transfer(content_img, style_img[::-1].copy(), settings, vgg))
    assert objective.target_passes == passes + 6


def test_the_target_cache_is_bounded_by_bytes():
    import tensorflow as tf

    from stransfer.engine.features import TargetCache

    cache = TargetCache(max_bytes=3 * 400)  # room for three 100-float targets
    made = []

    def target(value: float):
        def compute():
            made.append(value)
            return (tf.fill([100], value),)

        return compute

    images = [np.full((4, 4, 3), v, np.float32) for v in range(5)]
    for value in range(4):
        cache.get(("k",), images[value], target(value))
    assert made == [0, 1, 2, 3]  # four computed; the oldest (0) dropped for the fourth
    assert float(cache.get(("k",), images[3], target(-1))[0][0]) == 3  # kept
    assert float(cache.get(("other",), images[3], target(9))[0][0]) == 9  # the key counts
    cache.get(("k",), images[0], target(0))
    assert made == [0, 1, 2, 3, 9, 0]  # 0 had been dropped: computed again
    big = cache.get(("k",), np.zeros((2, 2, 3), np.float32), lambda: (tf.zeros([1000]),))
    assert big[0].shape == (1000,)
    assert cache._bytes <= cache.max_bytes


def test_should_stop_ends_the_run_with_the_image(vgg, content_img, style_img):
    calls = []
    events = list(
        transfer(
            content_img,
            style_img,
            small(steps=50),
            vgg,
            should_stop=lambda: calls.append(1) or len(calls) >= 2,
        )
    )
    assert len(events) == 2 and events[-1].status == "stopped"
    assert events[-1].image.shape[2] == 3


def test_time_budget_stops_the_run(vgg, content_img, style_img):
    events = list(transfer(content_img, style_img, small(steps=10_000, max_seconds=1.0), vgg))
    assert events[-1].status == "time budget"
    assert len(events) < 10_000
    assert events[-1].elapsed < 5.0


def test_time_budget_gives_every_scale_real_steps(vgg, content_img, style_img):
    settings = small(steps=10_000, size=160, scales=2, max_seconds=3.0, init="content")
    events = list(transfer(content_img, style_img, settings, vgg))
    per_scale = [sum(e.scale == s for e in events) for s in (1, 2)]
    assert min(per_scale) >= 3, per_scale
    assert all(e.seconds_per_step > 0 and e.eta >= 0 for e in events)
    assert events[-1].status == "time budget" and events[-1].scale == 2


def test_scale_deadline_splits_the_time_left_by_measured_step_cost():
    from stransfer.engine.run import _scale_deadline, _time_left

    plan = RunPlan(((64, 64), (128, 128)), (10, 10))
    # A coarse step costs 0.1 s, so a fine one about 0.4 s: 1 s + 4 s planned, 1/5 coarse.
    assert _scale_deadline(10.0, plan, 0, 0.0, 0.1) == pytest.approx(2.0)
    assert _scale_deadline(10.0, plan, 0, 1.0, 0.1) == pytest.approx(1.0 + 9.0 / 5)
    assert _scale_deadline(10.0, plan, 1, 3.0, 0.4) is None  # the last scale runs to the end
    assert _scale_deadline(None, plan, 0, 0.0, 0.1) is None
    assert _time_left(plan, 0, 4, 0.1) == pytest.approx(0.4 + 4.0)


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (small(optimizer="adam", learning_rate=1e6, init="content"), "grew more than 10x"),
        (small(style_weight=1e39, init="content"), "non-finite"),  # beyond float32: inf loss,
    ],
)
def test_divergence_stops_with_the_best_image(vgg, content_img, style_img, settings, why):
    events = list(transfer(content_img, style_img, settings, vgg))
    last = events[-1]
    assert last.status == "diverged"
    assert why in last.message and "lower" in last.message
    assert last.image.dtype == np.uint8 and last.image.shape == (43, 64, 3)
    # the kept image is the start (the best one scored), not the blown-up one
    start = resize_to(content_img, 43, 64)
    assert np.abs(last.image.astype(int) - start.astype(int)).mean() < 1


def test_absurd_style_weight_with_lbfgs_still_paints_a_sane_image(vgg, content_img, style_img):
    events = list(transfer(content_img, style_img, small(style_weight=1e30), vgg))
    assert events[-1].status == "done"
    assert events[-1].losses["style"] < events[0].losses["style"]


def test_style_blend_with_weights_one_and_zero_equals_the_single_style(vgg, content_img, style_img):
    other = np.ascontiguousarray(style_img[::-1, :, ::-1])
    single = list(transfer(content_img, style_img, small(), vgg))[-1].image
    blended = list(transfer(content_img, [(style_img, 1.0), (other, 0.0)], small(), vgg))[-1].image
    np.testing.assert_array_equal(single, blended)


def test_continue_from_an_image(vgg, content_img, style_img):
    first = list(transfer(content_img, style_img, small(), vgg))[-1]
    resumed = list(transfer(content_img, style_img, small(steps=1), vgg, init_image=first.image))
    assert resumed[0].losses["total"] <= first.losses["total"] * 1.05


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": 0}, "steps must be a whole number"),
        ({"size": 5}, "size must be"),
        ({"optimizer": "sgd"}, "optimizer 'sgd' is unknown"),
        ({"style_layers": {"nope": 1.0}}, "has no layer 'nope'"),
        ({"content_layers": {}, "style_layers": {"block1_conv1": 0.0}}, "every content and style"),
        ({"tv_weight": float("nan")}, "tv_weight must be a number"),
    ],
)
def test_bad_settings_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        TransferSettings(**kw).validated()


@pytest.mark.parametrize(("mode", "factor"), [("luminance", 3.0), ("histogram", 1.5)])
def test_colour_preservation_keeps_the_content_colours(vgg, content_img, style_img, mode, factor):
    """Luminance-only transfer keeps the content's chroma (>= 3x lower error); histogram
    matching only moves the style's global palette, so local colour still comes through."""
    from stransfer.io.color import mean_chroma_error

    # a strongly coloured style (red/blue) on the test content, so colour transfer shows
    style = style_img.copy()
    style[..., 0] = 255 - style[..., 2] // 3
    style[..., 1] //= 4

    def chroma_error(preserve: str) -> float:
        settings = small(steps=8, size=80, style_weight=100.0, preserve_color=preserve)
        out = list(transfer(content_img, style, settings, vgg))[-1].image
        return mean_chroma_error(out, resize_to(content_img, *out.shape[:2]))

    off, on = chroma_error("none"), chroma_error(mode)
    assert on * factor <= off, (on, off)


def test_objective_cache_is_bounded_and_reuses_recent_layer_sets(vgg):
    from stransfer.engine.features import MAX_OBJECTIVES

    layers = get_backbone("VGG19").layers
    first = vgg.objective(("block4_conv2",), (layers[0],))
    assert vgg.objective(("block4_conv2",), (layers[0],)) is first  # reused, not rebuilt
    for layer in layers[1 : MAX_OBJECTIVES + 2]:
        vgg.objective((), (layer,))
    assert len(vgg._objectives) == MAX_OBJECTIVES
    assert vgg.objective(("block4_conv2",), (layers[0],)) is not first  # evicted, rebuilt


@pytest.mark.parametrize(
    ("capability", "cpu_bf16", "expected"),
    [
        ((8, 0), False, "bfloat16"),  # Ampere and newer: bf16
        ((9, 0), False, "bfloat16"),
        ((7, 5), True, "float32"),  # an older GPU runs float32, whatever the CPU has
        (None, True, "bfloat16"),  # no GPU: the CPU decides
        (None, False, "float32"),
    ],
)
def test_auto_precision_follows_the_gpu_capability(monkeypatch, capability, cpu_bf16, expected):
    from stransfer.engine import features

    monkeypatch.delenv("STRANSFER_PRECISION", raising=False)
    monkeypatch.setattr(
        features.tf.config, "list_physical_devices", lambda kind: ["gpu:0"] if capability else []
    )
    monkeypatch.setattr(
        features.tf.config.experimental,
        "get_device_details",
        lambda device: {"compute_capability": capability},
    )
    monkeypatch.setattr(features, "cpu_has_bf16", lambda: cpu_bf16)
    assert features.resolve_precision("auto") == expected
    assert features.resolve_precision("float32") == "float32"

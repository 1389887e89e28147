"""Regions: masks as data, guided Grams in the losses, per-region runs and instant compositing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from stransfer.core.recipe import make_recipe
from stransfer.core.regions import (
    MaskError,
    Region,
    check_regions,
    mask_from_array,
    resize_mask,
    with_rest,
)
from stransfer.core.settings import SettingsError, TransferSettings
from stransfer.engine import losses
from stransfer.engine.run import run_recipe, transfer
from stransfer.io.records import RunInputs, recipe_record


def small(**kw) -> TransferSettings:
    base = {"steps": 3, "size": 64, "scales": 1, "init": "content"}
    base.update(kw)
    return TransferSettings(**base)


# --- masks -------------------------------------------------------------------------------------


def test_masks_of_every_kind_become_0_to_1():
    gray = np.array([[0, 255], [128, 64]], np.uint8)
    np.testing.assert_allclose(mask_from_array(gray), gray / 255.0, atol=1e-6)
    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)
    np.testing.assert_allclose(mask_from_array(deep), gray / 255.0, atol=1e-6)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_allclose(mask_from_array(rgb), gray / 255.0, atol=1e-3)
    # A stroke on a transparent layer: the alpha is the mask, whatever the colour.
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 30, 30, 255)
    np.testing.assert_allclose(mask_from_array(rgba), [[1, 0], [0, 0]])
    # An opaque alpha channel says nothing: the brightness is the mask.
    opaque = np.concatenate([rgb, np.full((2, 2, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(mask_from_array(opaque), gray / 255.0, atol=1e-3)
    assert mask_from_array(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert mask_from_array(np.array([[0.0, 0.5]], np.float32)).tolist() == [[0.0, 0.5]]


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((8, 8), np.uint8), "all black"),
        (np.zeros((8, 8, 4), np.uint8), "all black"),
        (np.zeros((8, 8, 5), np.uint8), "not an image"),
        (np.zeros((0, 8), np.uint8), "no pixels"),
        (np.array([["a"]]), "no pixels"),
    ],
)
def test_unusable_masks_get_one_line_reasons(array, match):
    with pytest.raises(MaskError, match=match) as info:
        mask_from_array(array, "sky.png")
    assert "\n" not in str(info.value) and "sky.png" in str(info.value)


def test_masks_resize_to_any_shape_and_the_rest_region_fills_the_gaps():
    mask = np.zeros((10, 20), np.float32)
    mask[:, :10] = 1.0
    small_mask = resize_mask(mask, (5, 4))
    assert (
        small_mask.shape == (5, 4) and small_mask[:, 0].min() == 1 and small_mask[:, 3].max() == 0
    )
    regions = with_rest([Region(mask, (1.0, 0.0))], (0.0, 1.0), (10, 20))
    assert len(regions) == 2 and regions[1].weights == (0.0, 1.0)
    np.testing.assert_allclose(regions[1].mask, 1.0 - mask)
    # Masks that cover everything leave no rest.
    assert len(with_rest([Region(np.ones((4, 4)), (1.0,))], (1.0,), (4, 4))) == 1


def test_bad_regions_are_named():
    ones = np.ones((4, 4), np.float32)
    with pytest.raises(SettingsError, match="1 style weight"):
        check_regions([Region(ones, (1.0,), "sky")], 2)
    with pytest.raises(SettingsError, match="one above 0"):
        check_regions([Region(ones, (0.0, 0.0), "sky")], 2)
    with pytest.raises(SettingsError, match="every region keeps the photo"):
        check_regions([Region(ones)], 1)
    with pytest.raises(SettingsError) as info:
        make_recipe({}, styles=1, regions=[Region(ones, (1.0, 1.0))])
    assert info.value.field == "regions"


# --- guided Grams ------------------------------------------------------------------------------


def _np_gram(flat: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (flat * weights[:, None]).T @ flat / weights.sum()


def test_guided_grams_weight_positions_by_the_mask():
    rng = np.random.default_rng(3)
    features = rng.random((1, 6, 5, 4)).astype(np.float32)
    masks = np.stack([np.ones((6, 5)), rng.random((6, 5))], axis=-1)[None].astype(np.float32)
    grams = losses.guided_grams(tf.constant(features), tf.constant(masks)).numpy()
    flat = features.reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(grams[0], losses.gram_matrix(tf.constant(features)), rtol=1e-5)
    np.testing.assert_allclose(grams[1], _np_gram(flat, masks[0, ..., 1].ravel()), rtol=1e-5)
    # One region covering everything is the plain style loss.
    target = tf.constant(rng.random((1, 4, 4)).astype(np.float32))
    guided = losses.guided_style_loss(
        tf.constant(features), tf.constant(masks[..., :1]), target, tf.constant([1.0])
    )
    plain = losses.style_loss(tf.constant(features), target[0])
    assert float(guided) == pytest.approx(float(plain), rel=1e-5)


@pytest.mark.parametrize("mapping", ["blur", "inside"])
def test_layer_masks_keep_ones_and_shrink_to_the_layer(mapping):
    ones = tf.ones((1, 16, 24, 1))
    features = tf.zeros((1, 4, 6, 8))
    np.testing.assert_allclose(losses.layer_masks(ones, features, mapping).numpy(), 1.0)
    half = np.zeros((1, 16, 24, 1), np.float32)
    half[:, :, :12] = 1.0
    at = losses.layer_masks(tf.constant(half), features, mapping).numpy()[0, :, :, 0]
    assert at.shape == (4, 6) and at[:, 0].min() == 1.0 and at[:, -1].max() == 0.0
    border = at[:, 3]  # right of the border: blurred in, eroded away
    assert (border.min() > 0.0) if mapping == "blur" else (at[:, 2].max() == 0.0)


# --- runs --------------------------------------------------------------------------------------


def test_one_region_covering_everything_is_todays_run(vgg_random, content_img, style_img):
    """At a small size with random weights: the guided path reproduces the plain one."""
    settings = small(steps=4)
    plain = list(transfer(content_img, style_img, settings, vgg_random))
    whole = [Region(np.ones((7, 9), np.float32), (1.0,), "all")]
    guided = list(transfer(content_img, style_img, settings, vgg_random, regions=whole))
    assert [e.step for e in guided] == [e.step for e in plain]
    for a, b in zip(plain, guided, strict=True):
        assert a.losses["style"] == pytest.approx(b.losses["style"], rel=1e-3)
    diff = np.abs(plain[-1].image.astype(int) - guided[-1].image.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.2  # float32 summation order: 1 level at most


def test_each_region_gets_its_own_style_and_a_photo_region_keeps_the_photo(
    vgg_random, content_img, style_img
):
    """Left half styled, right half kept: the right half changes far less than the left."""
    left = np.zeros((60, 90), np.float32)
    left[:, :45] = 1.0
    regions = [Region(left, (1.0,), "left"), Region(1.0 - left, (), "right")]
    settings = small(steps=8, size=90, style_weight=1e4)
    result = list(transfer(content_img, style_img, settings, vgg_random, regions=regions))[-1]
    change = np.abs(result.image.astype(float) - content_img.astype(float)).mean(axis=2)
    assert change[:, :35].mean() > 3 * change[:, 55:].mean()


@pytest.mark.parametrize("preserve_color", ["none", "luminance"])
def test_regions_run_through_a_recipe_and_its_record(
    vgg_random, content_img, style_img, preserve_color
):
    sky = np.zeros((30, 45), np.uint8)
    sky[:15] = 255
    regions = [Region(mask_from_array(sky), (1.0, 0.0), "sky.png")]
    recipe = make_recipe(
        {
            "steps": 2,
            "size": 64,
            "scales": 1,
            "init": "content",
            "strength": 60,
            "preserve_color": preserve_color,
        },
        style_weights=[0.0, 1.0],
        regions=with_rest(regions, (0.0, 1.0), sky.shape),
    )
    styles = [style_img, content_img[:, ::-1]]
    events = list(run_recipe(recipe, content_img, styles, vgg_random))
    assert events[-1].status == "done" and np.isfinite(events[-1].losses["style"])
    record = recipe_record(recipe, RunInputs.of(content_img, styles), events[-1], precision="f")
    kept = record.extra["regions"]
    assert [r["name"] for r in kept] == ["sky.png", "rest"]
    assert kept[0]["style_weights"] == [1.0, 0.0] and len(kept[0]["mask_sha256"]) == 64


# --- instant engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instant_models():
    from stransfer.instant import models

    return models.install()


def test_instant_regions_paint_only_under_their_masks(instant_models, content_img, style_img):
    from stransfer.instant import instant, instant_regions
    from stransfer.io.images import resize_to

    content = resize_to(content_img, 128, 192)
    mask = np.zeros((128, 192), np.float32)
    mask[:, 96:] = 1.0
    out = instant_regions(content, [style_img], [Region(mask, (1.0,))], size=192)
    painted = instant(content, [(style_img, 1.0)], size=192)
    assert out.shape == painted.shape == content.shape
    # Away from the feathered border: the photo on the left, the painting on the right.
    np.testing.assert_array_equal(out[:, :80], content[:, :80])
    np.testing.assert_array_equal(out[:, 112:], painted[:, 112:])
    # The border blends: between the two, never outside them.
    seam = out[:, 94:98].astype(int)
    low = np.minimum(content[:, 94:98], painted[:, 94:98]).astype(int)
    high = np.maximum(content[:, 94:98], painted[:, 94:98]).astype(int)
    assert ((seam >= low - 1) & (seam <= high + 1)).all()


def test_the_instant_start_follows_the_regions(instant_models, vgg_random, content_img, style_img):
    from stransfer.engine.run import instant_start

    mask = np.zeros((60, 90), np.float32)
    mask[:, 45:] = 1.0
    settings = small(init="instant", size=90)
    regions = [Region(mask, (1.0,)), Region(1.0 - mask)]
    start = instant_start(content_img, [(style_img, 1.0)], settings, regions=regions)
    np.testing.assert_array_equal(start[:, :40], content_img[:, :40])
    assert np.abs(start[:, 50:].astype(int) - content_img[:, 50:]).mean() > 10
    events = list(transfer(content_img, style_img, settings, vgg_random, regions=regions))
    assert events[-1].status == "done"


# --- mask files --------------------------------------------------------------------------------


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_mask_files_of_every_kind_load():
    from stransfer.io.masks import load_mask

    gray = np.zeros((20, 30), np.uint8)
    gray[:10] = 255
    np.testing.assert_allclose(load_mask(_png(gray)), gray / 255.0)
    deep = gray.astype(np.uint16) * 257
    deep[15:, :] = 32768  # a 16-bit grey below the stroke: half in the region
    loaded = load_mask(_png(deep))
    assert loaded[0, 0] == 1.0 and loaded[19, 0] == pytest.approx(0.5, abs=1e-3)
    stroke = np.zeros((20, 30, 4), np.uint8)
    stroke[5:8, :, :] = (255, 0, 0, 255)  # a red stroke on a transparent layer
    assert load_mask(_png(stroke)).sum() == pytest.approx(3 * 30)
    np.testing.assert_allclose(load_mask(_png(np.full((4, 4), 255, np.uint8))), 1.0)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"hello, I am text", "not an image"),
        (_png(np.zeros((8, 8), np.uint8)), "all black"),
        (_png(np.zeros((8, 8, 4), np.uint8)), "all black"),
        (b"\x89PNG\r\n\x1a\nbroken", "damaged"),
    ],
)
def test_hostile_mask_files_get_one_line_reasons(data, match):
    from stransfer.io.images import ImageError
    from stransfer.io.masks import load_mask

    with pytest.raises((ImageError, MaskError), match=match) as info:
        load_mask(data, name="mask sky.png")
    assert "\n" not in str(info.value) and "sky.png" in str(info.value)


def test_a_record_keeps_the_masks_so_they_can_be_restored():
    from stransfer.io.masks import region_records, regions_from_records

    soft = np.linspace(0, 1, 64 * 96, dtype=np.float32).reshape(64, 96)
    regions = (Region(soft, (0.5, 1.0), "sky.png"), Region(1.0 - soft, (), "rest"))
    back = regions_from_records(region_records(regions))
    assert [r.name for r in back] == ["sky.png", "rest"]
    assert back[0].weights == (0.5, 1.0) and back[1].keeps_photo
    np.testing.assert_allclose(back[0].mask, soft, atol=1 / 255)
    assert back[0].sha256() == regions[0].sha256()


# --- command line ------------------------------------------------------------------------------

FAST = ["--weights", "random", "--precision", "float32", "--size", "64", "--steps", "2"]


@pytest.fixture
def files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = {}
    for name, shape in (("content.png", (60, 90)), ("a.png", (48, 48)), ("b.png", (40, 70))):
        paths[name] = tmp_path / name
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(paths[name])
    top = np.zeros((30, 40), np.uint8)  # not the content's size: resized
    top[:15] = 255
    for name, array in (("top.png", top), ("black.png", top * 0)):
        paths[name] = tmp_path / name
        Image.fromarray(array).save(paths[name])
    paths["deep.png"] = tmp_path / "deep.png"
    Image.fromarray((255 - top).astype(np.uint16) * 257).save(paths["deep.png"])  # bottom
    paths["text.png"] = tmp_path / "text.png"
    paths["text.png"].write_text("not a picture")
    return paths


def _cli(*argv: object) -> int:
    from stransfer.cli import transfer as cli

    return cli.main([str(a) for a in argv])


def test_cli_regions_optimised_and_instant_keep_the_photo_under_a_photo_mask(
    files, tmp_path, instant_models
):
    from stransfer.io.images import load_image
    from stransfer.io.records import load_record

    for mode, extra in (("opt", [*FAST, "--init", "content"]), ("inst", ["--instant"])):
        out = tmp_path / f"{mode}.png"
        argv = [files["content.png"], files["a.png"], "-o", out, "-q"]
        code = _cli(*argv, "--region", f"{files['deep.png']}=photo", "--region",
                    f"{files['top.png']}={files['b.png']}", *extra, "--size", "90")  # fmt: skip
        assert code == 0
        record = load_record(out)
        kept = record.extra["regions"]
        assert [r["style_weights"] for r in kept[:2]] == ["photo", [0.0, 1.0]]
        assert len(record.style_sha256) == 2  # a.png (the rest) and b.png (the top region)
    photo = load_image(files["content.png"]).astype(int)
    instant_result = load_image(tmp_path / "inst.png").astype(int)
    np.testing.assert_array_equal(instant_result[36:], photo[36:])  # the 16-bit photo mask
    assert np.abs(instant_result[:25] - photo[:25]).mean() > 10
    optimised = load_image(tmp_path / "opt.png").astype(int)
    assert (
        np.abs(optimised[:25] - photo[:25]).mean() > 2 * np.abs(optimised[36:] - photo[36:]).mean()
    )


@pytest.mark.parametrize(
    "mask, match",
    [
        ("black.png", "--region: mask black.png is all black"),
        ("text.png", "mask text.png is not an image"),
        ("missing.png", "the mask .*missing.png was not found"),
    ],
)
def test_cli_hostile_masks_exit_2_with_one_line(files, tmp_path, capsys, mask, match):
    path = files.get(mask, tmp_path / mask)
    code = _cli(files["content.png"], files["a.png"], "-o", tmp_path / "o.png",
                "--region", f"{path}=photo", *FAST)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "o.png").exists()


# --- HTTP API ------------------------------------------------------------------------------------


class _Client:
    """requests against a real ``stransfer serve`` (no workers: jobs run in this process)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, **kwargs):
        import requests

        return requests.post(self.url + path, timeout=60, **kwargs)

    def get(self, path: str):
        import requests

        return requests.get(self.url + path, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from servers import Server

    srv = Server(tmp_path_factory.mktemp("regions-api"), workers=0).start(wait_workers=0)
    yield srv
    srv.stop()


@pytest.fixture
def api(server, monkeypatch):
    from stransfer.service.store import Store

    monkeypatch.setenv("STRANSFER_WEIGHTS", "random")
    return _Client(server.url), Store(server.data)


def _photo_png(height: int = 48, width: int = 64) -> bytes:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:height, 0:width]
    picture = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256 + rng.integers(
        0, 30, (height, width, 3)
    )
    return _png(np.clip(picture, 0, 255).astype(np.uint8))


def _form(masks, regions, styles=2, extra=None):
    settings = {"engine": "instant", "size": 64, **(extra or {})}
    if regions is not None:
        settings["regions"] = regions
    files = [("content", ("c.png", _photo_png(), "image/png"))]
    files += [("style", (f"s{i}.png", _photo_png(40 + i, 40), "image/png")) for i in range(styles)]
    files += [("mask", (f"m{i}.png", data, "image/png")) for i, data in enumerate(masks)]
    import json

    return {"files": files, "data": {"settings": json.dumps(settings)}}


def _bottom(deep: bool = False, size=(24, 32)) -> bytes:
    mask = np.zeros(size, np.uint8)
    mask[size[0] // 2 :] = 255
    return _png(mask.astype(np.uint16) * 257) if deep else _png(mask)


@pytest.mark.parametrize("engine", ["instant", "optimise"])
def test_api_jobs_with_masks_keep_the_photo_where_asked(api, engine, instant_models):
    from stransfer.io.images import load_image
    from stransfer.io.records import load_record
    from stransfer.service.worker import Worker

    client, store = api
    extra = {"engine": engine}
    if engine == "optimise":
        extra.update(steps=2, scales=1, init="content")
    top = np.zeros((48, 64, 4), np.uint8)
    top[:20] = (255, 255, 255, 255)  # a stroke on a transparent layer: the top rows
    answer = client.post(
        "/jobs", **_form([_bottom(deep=True), _png(top)], ["photo", 1], extra=extra)
    )
    assert answer.status_code == 202, answer.text
    assert Worker(store).run(max_jobs=1) == 1
    job = client.get(f"/jobs/{answer.json()['id']}").json()
    assert job["state"] == "done", job
    result = client.get(f"/jobs/{job['id']}/result").content
    record = load_record(result)
    assert [r["style_weights"] for r in record.extra["regions"]] == [
        "photo",
        [0.0, 1.0],
        [1.0, 1.0],
    ]  # the rest: the style_weights blend
    picture, photo = load_image(result).astype(int), load_image(_photo_png()).astype(int)
    if engine == "instant":
        np.testing.assert_array_equal(picture[28:], photo[28:])
        assert np.abs(picture[:18] - photo[:18]).mean() > 10


@pytest.mark.parametrize(
    "masks, regions, extra, status, field, match",
    [
        ([b"not a picture"], ["photo"], {}, 400, "mask", "mask 1 is not an image"),
        ([_png(np.zeros((8, 8), np.uint8))], [0], {}, 400, "mask", "all black"),
        ([_png(np.zeros((8, 8, 4), np.uint8))], [0], {}, 400, "mask", "all black"),
        ([_png(np.full((8, 8), 255, np.uint8))], ["photo"], {}, 422, "regions", "every region"),
        ([_bottom()], [], {}, 422, "regions", "1 mask file"),
        ([_bottom()], None, {}, 422, "regions", "1 mask file"),
        ([_bottom()], [7], {}, 422, "regions", "region 1 is 7"),
        ([_bottom()], "photo", {}, 422, "regions", "must be a list"),
        ([_bottom()], [[1, 2, 3]], {}, 422, "regions", "region 1"),
        ([_bottom()] * 9, [0] * 9, {}, 413, "mask", "at most 8"),
    ],
)
def test_api_hostile_masks_get_a_json_4xx(api, masks, regions, extra, status, field, match):
    client, _ = api
    answer = client.post("/jobs", **_form(masks, regions, extra=extra))
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field and match in body["error"] and "\n" not in body["error"]


def test_api_masks_with_a_builtin_style_are_refused(api):
    client, _ = api
    form = _form([_bottom()], ["photo"], styles=0, extra={"builtin": 7})
    answer = client.post("/jobs", **form)
    assert answer.status_code == 422 and answer.json()["field"] == "regions", answer.text


@pytest.mark.parametrize("name", __import__("stransfer").BACKBONE_NAMES)
def test_regions_run_on_every_backbone(name, content_img, style_img):
    """Guided Grams need only each style layer's feature map: any backbone, any stride."""
    from stransfer.engine.features import load_extractor

    extractor = load_extractor(name, "float32", "random")
    left = np.zeros((60, 90), np.float32)
    left[:, :45] = 1.0
    regions = [Region(left, (1.0,), "left"), Region(1.0 - left, (), "right")]
    settings = TransferSettings(model=name, steps=3, size=80, scales=1, init="content")
    events = list(transfer(content_img, style_img, settings, extractor, regions=regions))
    assert [e.step for e in events] == [1, 2, 3]
    assert np.isfinite(events[-1].losses["style"])
    assert events[-1].losses["total"] < events[0].losses["total"]

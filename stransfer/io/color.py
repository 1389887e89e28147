"""Colour preservation for style transfer (Gatys et al. 2016, "Preserving color in neural
artistic style transfer").

Two ways to keep the content photo's colours while taking the style's texture:

* ``luminance``: transfer style on luminance only. The network sees the luminance (Y of YIQ)
  replicated to three channels, with the style's luminance matched to the content's mean and
  standard deviation; the result's Y is then recombined with the content's chroma (I, Q).
* ``histogram``: before the run, recolour the style image with a linear colour transfer so its
  pixel mean and 3x3 covariance equal the content's; the transfer itself runs as usual.

Everything here is plain numpy on HxWx3 arrays in the 0..255 range; nothing imports TensorFlow.
"""

from __future__ import annotations

import numpy as np

from .images import to_uint8

# FCC NTSC RGB -> YIQ. The Y row sums to 1, so Y stays in 0..255 and a grey image has Y equal to
# its channel value. The inverse is computed rather than typed in so the round trip is exact to
# float precision.
_RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.5959, -0.2746, -0.3213],
        [0.2115, -0.5227, 0.3112],
    ],
    dtype=np.float64,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def _as_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a float64 HxWx3 array, or raise ValueError naming the problem."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape[:2]:
        raise ValueError(f"{name} must be an HxWx3 RGB array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must be uint8 or float, got {array.dtype}")
    return array.astype(np.float64)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    """Convert RGB (uint8 or float, 0..255) to YIQ as float32 HxWx3; Y is in 0..255.

    I and Q are signed (roughly -152..152 and -133..133) and are not clipped.
    """
    return (_as_rgb(image) @ _RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    """Convert YIQ back to RGB as float32, clipped to 0..255 (not every YIQ triple is a colour)."""
    rgb = _as_rgb(yiq, "yiq") @ _YIQ_TO_RGB.T
    return np.clip(rgb, 0.0, 255.0).astype(np.float32)


def luminance_image(image: np.ndarray) -> np.ndarray:
    """The image's luminance replicated to three channels (float32, 0..255).

    This is what the network sees in luminance-only transfer: the backbones expect three
    channels, and a grey RGB image carries exactly the luminance and nothing else.
    """
    y = rgb_to_yiq(image)[..., 0]
    return np.repeat(np.clip(y, 0.0, 255.0)[..., None], 3, axis=-1)


def match_luminance(style_y: np.ndarray, content_y: np.ndarray) -> np.ndarray:
    """Shift and scale the style luminance to the content's mean and standard deviation.

    The paper's step before luminance-only transfer: ``(s - mean_s) * std_c / std_s + mean_c``.
    Without it, a dark style on a bright photo would darken the result, which is exactly the
    colour change the mode exists to avoid. Any shapes work (HxW, or HxWx3 with Y replicated);
    the result has the style's shape, float32, clipped to 0..255.
    """
    style = np.asarray(style_y, dtype=np.float64)
    content = np.asarray(content_y, dtype=np.float64)
    if style.size == 0 or content.size == 0:
        raise ValueError("match_luminance needs non-empty style and content luminance")
    style_std = style.std()
    # A flat style has nothing to stretch: it becomes flat at the content's mean.
    scale = content.std() / style_std if style_std > 1e-6 else 0.0
    matched = (style - style.mean()) * scale + content.mean()
    return np.clip(matched, 0.0, 255.0).astype(np.float32)


def combine_luminance(stylised: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Take luminance from ``stylised`` and chroma (I, Q) from ``content``; return uint8 RGB.

    ``stylised`` is HxWx3 (its Y is used; for the near-grey output of luminance-only transfer
    that equals the mean of the three channels, because Y's weights sum to 1) or an HxW
    luminance plane. ``content`` must already be resized to the same HxW.
    """
    stylised_arr = np.asarray(stylised)
    if stylised_arr.ndim == 2:
        y = stylised_arr.astype(np.float64)
    else:
        y = rgb_to_yiq(stylised_arr)[..., 0].astype(np.float64)
    content_yiq = rgb_to_yiq(content).astype(np.float64)
    if y.shape != content_yiq.shape[:2]:
        raise ValueError(
            f"the stylised image ({y.shape[1]}x{y.shape[0]}) and the content "
            f"({content_yiq.shape[1]}x{content_yiq.shape[0]}) must be the same size; "
            "resize the content first"
        )
    content_yiq[..., 0] = np.clip(y, 0.0, 255.0)
    # Convert at float64 and round once, so chroma survives as exactly as uint8 allows.
    return to_uint8(content_yiq @ _YIQ_TO_RGB.T)


def _sqrt_and_inv_sqrt(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric square root of an SPD matrix and its inverse, from one eigendecomposition."""
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-12)  # eigh may return tiny negatives for near-singular input
    root = np.sqrt(values)
    return (vectors * root) @ vectors.T, (vectors / root) @ vectors.T


def color_stats(
    images: np.ndarray | list[tuple[np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel mean (3,) and 3x3 colour covariance of an image, or of a weighted blend of images.

    ``images`` is one RGB image or ``[(image, weight), ...]``: a blend's statistics are those
    of the mixture, each image's pixels weighted by its share of the total weight (so images of
    different sizes count by their weight, not their pixel count). Weights must not all be 0.
    """
    pairs = [(images, 1.0)] if isinstance(images, np.ndarray) else list(images)
    total = float(sum(weight for _, weight in pairs))
    if not pairs or total <= 0:
        raise ValueError("give at least one image a weight above 0")
    mean, second = np.zeros(3), np.zeros((3, 3))
    for image, weight in pairs:
        px = _as_rgb(image).reshape(-1, 3)
        share = float(weight) / total
        mean += share * px.mean(axis=0)
        second += share * (px.T @ px) / len(px)
    return mean, second - np.outer(mean, mean)


def match_color_histogram(
    style: np.ndarray,
    content: np.ndarray | list[tuple[np.ndarray, float]],
    *,
    eps: float = 0.1,
) -> np.ndarray:
    """Recolour ``style`` so its pixel mean and 3x3 colour covariance equal ``content``'s.

    Linear colour transfer: ``x' = A (x - mean_s) + mean_c`` with
    ``A = cov_c^(1/2) cov_s^(-1/2)`` (symmetric matrix square roots), which gives
    ``A cov_s A^T = cov_c``. The symmetric root (rather than Cholesky) changes the colours the
    least, so the style's own structure is kept. ``eps * I`` (in 0..255 units squared; 0.1 is
    below uint8 quantisation noise) regularises the covariances, so a grey or flat style does
    not blow up the inverse root. ``content`` may be a weighted blend ``[(image, weight), ...]``
    (see :func:`color_stats`). Returns uint8 with the style's shape; the images may differ in
    size.
    """
    style_px = _as_rgb(style, "style").reshape(-1, 3)
    shape = np.shape(style)
    eye = np.eye(3) * float(eps)
    mean_s, cov_s = color_stats(style)
    reference = content if isinstance(content, list) else _as_rgb(content, "content")
    mean_c, cov_c = color_stats(reference)
    _, inv_root_s = _sqrt_and_inv_sqrt(cov_s + eye)
    root_c, _ = _sqrt_and_inv_sqrt(cov_c + eye)
    transform = root_c @ inv_root_s
    mapped = (style_px - mean_s) @ transform.T + mean_c
    return to_uint8(mapped).reshape(shape)


def mean_chroma_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the I and Q channels of two same-size RGB images.

    0 when the colours agree exactly, whatever the brightness; it grows as hues or saturation
    drift apart. Used to check that colour-preserving modes keep the content's colours.
    """
    yiq_a, yiq_b = rgb_to_yiq(a), rgb_to_yiq(b)
    if yiq_a.shape != yiq_b.shape:
        raise ValueError(f"images must be the same size, got {yiq_a.shape} and {yiq_b.shape}")
    diff = yiq_a[..., 1:].astype(np.float64) - yiq_b[..., 1:].astype(np.float64)
    return float(np.abs(diff).mean())

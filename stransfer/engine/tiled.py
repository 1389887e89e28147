"""The objective tile by tile, equal to the whole image's: prints in bounded memory.

The Gatys loss is a sum over feature positions (a Gram matrix is ``sum_p f_p f_p^T``, a content
error ``sum_p |f_p - t_p|^2``), so it can be gathered tile by tile (``core.tiles``): each tile's
window carries a halo as wide as the receptive field of the deepest layer in use, and only its
interior positions are counted, so the features there equal the whole image's.

A step is two passes over the tiles (issue 19's way "a", the exact one):

1. forward only: every style layer's Gram summed over the tiles' interiors, so the style loss
   and its derivative with respect to each Gram (the *residual*) are the whole image's;
2. forward and backward per tile: the gradient of ``<residual, tile Gram> + content error`` with
   respect to the tile's pixels, added into the whole image's gradient (halos included: the
   interiors' features depend on them).

The sum of the tiles' gradients is the gradient of the untiled loss (the same function of the
same features), at about a third more work than an untiled step plus the halos' share.
Content targets and style Grams are gathered tile by tile too. Total variation is computed on
the whole image in numpy (a few image-sized arrays).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from ..core.tiles import MemoryModel, Tile, choose_tile, tile_grid
from . import losses
from .features import TARGETS, FeatureExtractor, Objective

#: Bytes per activation element that a forward and backward pass holds, per precision
#: (measured here with ``python -m bench.prints --calibrate``: peak resident memory of untiled
#: VGG19 steps at two sizes, the slope per pixel over the activations per pixel).
BYTES_PER_ELEMENT = {"bfloat16": 4.0, "float32": 6.5}
#: The process with TensorFlow and a VGG19 built and traced, before any image (measured).
FIXED_BYTES = 1.0 * 2**30
#: Image-sized float32 arrays an optimiser step holds besides the L-BFGS pairs: the image, its
#: gradient and the tiles' sum, L-BFGS's point, gradient, direction and proposal, a frame and
#: the total variation's differences.
IMAGE_ARRAYS = 10


@dataclass(frozen=True)
class Geometry:
    """How a layer set reads the image: the halo (receptive radius, px), the alignment (the
    deepest layer's total stride), each layer's stride, and activation elements per pixel."""

    halo: int
    align: int
    strides: dict[str, int]
    elements_per_pixel: float


def geometry(extractor: FeatureExtractor, layers: Sequence[str]) -> Geometry | None:
    """The geometry of ``layers`` in ``extractor``'s network, or None when the network cannot be
    tiled exactly (only plain chains of 'same' convolutions and pooling can: VGG16 and VGG19)."""
    network = extractor.network
    wanted = {extractor.backbone.keras_layer_name(network, name): name for name in layers}
    radius, jump, elements = 0, 1, 0.0
    strides: dict[str, int] = {}
    for layer in network.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Conv2D):
            kernel, stride = layer.kernel_size[0], layer.strides[0]
            if layer.padding != "same" or stride != 1:
                return None
            radius += (kernel - 1) // 2 * jump
            elements += layer.filters / jump**2
        elif isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            size, stride = layer.pool_size[0], layer.strides[0]
            if layer.padding != "valid" or size != stride:
                return None
            radius += (size - 1) * jump
            jump *= stride
            elements += layer.input.shape[-1] / jump**2
        elif not isinstance(layer, keras.layers.Activation):
            return None
        if layer.name in wanted:
            strides[wanted[layer.name]] = jump
        if len(strides) == len(wanted):
            break
    align = max(strides.values())
    return Geometry(math.ceil(radius / align) * align, align, strides, elements)


def memory_model(
    extractor: FeatureExtractor,
    geo: Geometry,
    *,
    optimiser_pairs: int = 0,
    content_channels: float = 0.0,
) -> MemoryModel:
    """The memory a step costs (see ``core.tiles.MemoryModel``): the network's activations per
    window pixel, and per image pixel the optimiser's arrays (with ``optimiser_pairs`` L-BFGS
    pairs of two arrays each) and the content target."""
    per_element = BYTES_PER_ELEMENT.get(extractor.precision, BYTES_PER_ELEMENT["float32"])
    image_bytes = 3 * 4 * (IMAGE_ARRAYS + 2 * optimiser_pairs)
    return MemoryModel(
        fixed=FIXED_BYTES,
        per_image_pixel=image_bytes + 4 * content_channels,
        per_window_pixel=per_element * geo.elements_per_pixel,
    )


class TiledObjective:
    """An ``Objective`` evaluated tile by tile; its targets, loss and gradient equal the
    untiled ones (see the module's docstring). ``tile`` is the interior side in pixels."""

    def __init__(self, objective: Objective, geo: Geometry, tile: int) -> None:
        self.objective = objective
        self.geometry = geo
        self.tile = tile
        self.content_layers = objective.content_layers
        self.style_layers = objective.style_layers
        self._content_strides = [geo.strides[n] for n in objective.content_layers]
        self._style_strides = [geo.strides[n] for n in objective.style_layers]
        image = tf.TensorSpec([1, None, None, 3], tf.float32)
        inner = tf.TensorSpec([4], tf.int32)
        targets = tuple(
            tf.TensorSpec([1, None, None, None], tf.float32) for _ in objective.content_layers
        )
        residuals = tuple(tf.TensorSpec([None, None], tf.float32) for _ in objective.style_layers)
        vector = tf.TensorSpec([None], tf.float32)
        self._grams = tf.function(self._grams_fn, input_signature=[image, inner])
        self._content = tf.function(self._content_fn, input_signature=[image, inner])
        self._tile_grad = tf.function(
            self._tile_grad_fn, input_signature=[image, inner, targets, residuals, vector]
        )
        #: Tiles evaluated (forward passes), for progress and tests.
        self.tiles_done = 0
        #: Called with (tile number, tile count) after each tile (progress by tile).
        self.on_tile: Callable[[int, int], None] | None = None

    def tiles(self, shape: tuple[int, int]) -> list[Tile]:
        return tile_grid(shape, self.tile, self.geometry.halo, align=self.geometry.align)

    # -- traced pieces ----------------------------------------------------------------------

    @staticmethod
    def _interior(features: tf.Tensor, inner: tf.Tensor, stride: int) -> tf.Tensor:
        return features[
            :, inner[0] // stride : inner[1] // stride, inner[2] // stride : inner[3] // stride
        ]

    def _sum_gram(self, features: tf.Tensor, inner: tf.Tensor, stride: int) -> tf.Tensor:
        """``sum_p f_p f_p^T`` over the interior positions (float32 ``[C, C]``)."""
        part = self._interior(features, inner, stride)
        positions = tf.cast(tf.shape(part)[1] * tf.shape(part)[2], tf.float32)
        return losses.gram_matrix(part) * positions

    def _grams_fn(self, window: tf.Tensor, inner: tf.Tensor) -> tuple[tf.Tensor, ...]:
        outputs = self.objective._features_fn(window)[len(self.content_layers) :]
        return tuple(
            self._sum_gram(f, inner, s) for f, s in zip(outputs, self._style_strides, strict=True)
        )

    def _content_fn(self, window: tf.Tensor, inner: tf.Tensor) -> tuple[tf.Tensor, ...]:
        outputs = self.objective._content_features_fn(window)
        return tuple(
            self._interior(f, inner, s) for f, s in zip(outputs, self._content_strides, strict=True)
        )

    def _tile_grad_fn(
        self,
        window: tf.Tensor,
        inner: tf.Tensor,
        content_targets: tuple[tf.Tensor, ...],
        residuals: tuple[tf.Tensor, ...],
        scales: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        # scales: alpha, then each content layer's weight over its target's squared norm.
        n_content = len(self.content_layers)
        with tf.GradientTape() as tape:
            tape.watch(window)
            outputs = tf.nest.flatten(
                self.objective._model(self.objective._preprocess(window), training=False)
            )
            content = tf.constant(0.0)
            for i, target in enumerate(content_targets):
                part = tf.cast(
                    self._interior(outputs[i], inner, self._content_strides[i]), tf.float32
                )
                content += scales[i + 1] * tf.reduce_sum(tf.square(part - target))
            surrogate = scales[0] * content
            for i, residual in enumerate(residuals):
                gram = self._sum_gram(outputs[n_content + i], inner, self._style_strides[i])
                surrogate += tf.reduce_sum(residual * gram)
        return content, tape.gradient(surrogate, window)

    # -- targets ------------------------------------------------------------------------------

    def _window(self, image: np.ndarray, tile: Tile) -> tuple[tf.Tensor, tf.Tensor]:
        rows, cols = tile.window_slices
        window = tf.convert_to_tensor(np.ascontiguousarray(image[rows, cols], np.float32)[None])
        return window, tf.constant(tile.inner, tf.int32)

    def _tick(self, index: int, count: int) -> None:
        self.tiles_done += 1
        if self.on_tile is not None:
            self.on_tile(index + 1, count)

    def gram_sums(self, image: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        """Every style layer's ``sum_p f_p f_p^T`` over the whole image, and its positions."""
        tiles = self.tiles(image.shape[:2])
        sums: list[np.ndarray] | None = None
        for index, tile in enumerate(tiles):
            grams = [g.numpy() for g in self._grams(*self._window(image, tile))]
            sums = grams if sums is None else [a + b for a, b in zip(sums, grams, strict=True)]
            self._tick(index, len(tiles))
        assert sums is not None
        height, width = image.shape[:2]
        counts = [(height // s) * (width // s) for s in self._style_strides]
        return sums, counts

    def content_targets(self, image: np.ndarray) -> tuple[tf.Tensor, ...]:
        """The content layers' features of the whole image, gathered tile by tile."""

        def compute() -> tuple[tf.Tensor, ...]:
            self.objective.target_passes += 1
            height, width = image.shape[:2]
            maps = [
                np.zeros((1, height // s, width // s, 0), np.float32) for s in self._content_strides
            ]
            tiles = self.tiles((height, width))
            for index, tile in enumerate(tiles):
                parts = self._content(*self._window(image, tile))
                for i, (part, stride) in enumerate(zip(parts, self._content_strides, strict=True)):
                    if maps[i].shape[-1] == 0:
                        maps[i] = np.zeros((*maps[i].shape[:3], part.shape[-1]), np.float32)
                    rows, cols = tile.global_feature_slices(stride)
                    maps[i][:, rows, cols] = part.numpy()
                self._tick(index, len(tiles))
            return tuple(tf.constant(m) for m in maps)

        if not self.content_layers:
            return ()
        return TARGETS.get((*self.objective._key, "content"), image, compute)

    def style_grams(self, image: np.ndarray) -> tuple[tf.Tensor, ...]:
        """One style image's Grams, gathered tile by tile (equal to ``Objective.style_grams``)."""

        def compute() -> tuple[tf.Tensor, ...]:
            self.objective.target_passes += 1
            sums, counts = self.gram_sums(image)
            return tuple(tf.constant(s / n) for s, n in zip(sums, counts, strict=True))

        return TARGETS.get((*self.objective._key, "style"), image, compute)

    def blended_style_grams(
        self, images: Sequence[np.ndarray], weights: Sequence[float]
    ) -> tuple[tf.Tensor, ...]:
        """Weighted mean of several style images' Grams (as ``Objective.blended_style_grams``)."""
        return Objective.blended_style_grams(self, images, weights)  # type: ignore[arg-type]

    # -- the step -----------------------------------------------------------------------------

    def value_and_grad(
        self,
        image: np.ndarray,
        content_targets: tuple[tf.Tensor, ...],
        style_targets: tuple[tf.Tensor, ...],
        content_weights: np.ndarray,
        style_weights: np.ndarray,
        mix: np.ndarray,
    ) -> tuple[dict[str, float], np.ndarray, bool]:
        """As ``Objective.value_and_grad``, tile by tile (two passes: Grams, then gradients)."""
        alpha, beta, tv_weight = (float(v) for v in mix)
        image = np.asarray(image, np.float32)
        style, residuals = 0.0, []
        if self.style_layers:
            sums, counts = self.gram_sums(image)
            for s, n, target, w in zip(sums, counts, style_targets, style_weights, strict=True):
                target = target.numpy()
                norm = float(np.sum(np.square(target))) + losses.EPS
                diff = s / n - target
                style += float(w) * float(np.sum(np.square(diff))) / norm
                residuals.append(tf.constant(beta * float(w) * 2.0 * diff / (norm * n)))
        norms = [float(tf.reduce_sum(tf.square(t))) + losses.EPS for t in content_targets]
        scales = tf.constant(
            [alpha, *(float(w) / n for w, n in zip(content_weights, norms, strict=True))],
            tf.float32,
        )
        grad = np.zeros_like(image)
        content = 0.0
        tiles = self.tiles(image.shape[:2])
        for index, tile in enumerate(tiles):
            window, inner = self._window(image, tile)
            targets = tuple(
                t[:, rows, cols]
                for t, (rows, cols) in zip(
                    content_targets,
                    (tile.global_feature_slices(s) for s in self._content_strides),
                    strict=True,
                )
            )
            part, tile_grad = self._tile_grad(window, inner, targets, tuple(residuals), scales)
            content += float(part)
            rows, cols = tile.window_slices
            grad[rows, cols] += tile_grad.numpy()[0]
            self._tick(index, len(tiles))
        tv, tv_grad = total_variation(image)
        grad += tv_weight * tv_grad
        total = alpha * content + beta * style + tv_weight * tv
        finite = math.isfinite(total) and bool(np.isfinite(grad).all())
        return {"total": total, "content": content, "style": style, "tv": tv}, grad, finite


def total_variation(image: np.ndarray) -> tuple[float, np.ndarray]:
    """``losses.total_variation`` of a ``[H, W, 3]`` 0..255 image and its gradient, in numpy."""
    scaled = image / 255.0
    grad = np.zeros_like(image)
    value = 0.0
    for axis in (0, 1):
        diff = np.diff(scaled, axis=axis)
        count = diff.size
        value += float(np.sum(np.square(diff))) / count
        diff *= 2.0 / (count * 255.0)
        if axis == 0:
            grad[1:] += diff
            grad[:-1] -= diff
        else:
            grad[:, 1:] += diff
            grad[:, :-1] -= diff
    return value, grad


def evaluator_for(
    objective: Objective,
    shape: tuple[int, int],
    budget: int,
    *,
    optimiser_pairs: int = 0,
    tile: int | None = None,
) -> Objective | TiledObjective:
    """What evaluates ``objective`` on an image of ``shape`` within ``budget`` bytes: the
    objective itself when the whole image fits (the usual path), else a ``TiledObjective`` with
    the largest tile that fits. ``tile`` forces the interior side (tests, benchmarks).

    Raises ``core.tiles.MemoryBudgetError`` (one sentence) when no tile fits. A network that
    cannot be tiled exactly (not a VGG) runs untiled.
    """
    extractor = objective.extractor
    geo = geometry(extractor, [*objective.content_layers, *objective.style_layers])
    if geo is None:
        if tile is not None:
            raise ValueError(f"{extractor.backbone.name} cannot be tiled")
        return objective
    if tile is None:
        content_per_pixel = sum(
            _channels(extractor, n) / geo.strides[n] ** 2 for n in objective.content_layers
        )
        model = memory_model(
            extractor, geo, optimiser_pairs=optimiser_pairs, content_channels=content_per_pixel
        )
        tile = choose_tile(
            shape, model, budget, halo=geo.halo, align=geo.align, what="the optimiser"
        )
        if tile is None:
            return objective
    return TiledObjective(objective, geo, tile)


def _channels(extractor: FeatureExtractor, layer: str) -> int:
    network = extractor.network
    return int(
        network.get_layer(extractor.backbone.keras_layer_name(network, layer)).output.shape[-1]
    )

"""Feature extraction and the traced loss-and-gradient function.

``FeatureExtractor`` owns one built backbone (weights loaded, precision fixed). It hands out
sub-models that stop at the deepest layer in use, and ``Objective`` objects that evaluate the
total loss and its gradient with respect to the image in one traced TensorFlow function.

The objective is traced once for every image size: its functions take a fixed signature with
the height and width left open (``None``), and targets, per-layer weights and the
alpha/beta/TV weights are fed as tensors, so a new scale, a new size, new weights or a new run
all reuse the one traced graph. Targets are kept (``TargetCache``) so that running again with
the same images and size, the explorer's usual next step, skips their forward passes.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..core.regions import DEFAULT_MAPPING
from ..core.settings import PRECISIONS
from . import losses
from .backbones import Backbone, get_backbone

#: Layer sets whose traced objectives an extractor keeps (least recently used dropped first).
MAX_OBJECTIVES = 8
#: Bytes of content and style targets kept for re-use, over all extractors (a 512 px run's
#: take about 10 MB; a 1600 px content target about 80 MB).
TARGET_CACHE_BYTES = 256 * 2**20


def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 matrix support (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


#: Oldest NVIDIA compute capability with fast bfloat16 (Ampere); older GPUs run float32.
MIN_BF16_CAPABILITY = (8, 0)


def gpu_has_bf16() -> bool | None:
    """Whether the first GPU has fast bfloat16 (compute capability 8.0 or more); None: no GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    try:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    except (RuntimeError, ValueError):
        capability = None
    return capability is not None and tuple(capability) >= MIN_BF16_CAPABILITY


def resolve_precision(precision: str) -> str:
    """Turn ``auto`` into ``bfloat16`` or ``float32``.

    bfloat16 on a GPU of compute capability 8.0 or more (Ampere and newer) or, without a GPU,
    on a CPU with AMX/AVX512-BF16; float32 elsewhere (older GPUs would emulate bf16, and
    float16 needs loss scaling that this optimiser does not do). ``STRANSFER_PRECISION``
    overrides ``auto``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if os.environ.get("STRANSFER_PRECISION") in ("float32", "bfloat16"):
        return os.environ["STRANSFER_PRECISION"]
    on_gpu = gpu_has_bf16()
    fast_bf16 = cpu_has_bf16() if on_gpu is None else on_gpu
    return "bfloat16" if fast_bf16 else "float32"


# Keras' dtype policy is global; building two models at once from two threads (two browser
# sessions) must not see each other's policy.
_BUILD_LOCK = threading.Lock()


def build_network(backbone: Backbone, precision: str, weights: Path | None) -> keras.Model:
    """Build ``backbone`` headless with ``weights`` (None: random) computing in ``precision``."""
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    with _BUILD_LOCK:
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            network = backbone.build()
        finally:
            keras.config.set_dtype_policy(previous)
    if weights is None:
        _seeded_kernels(network)
    else:
        try:
            network.load_weights(str(weights))
        except (ValueError, OSError, KeyError) as error:
            from ..weights import WeightsError

            raise WeightsError(
                f"{Path(weights).name} does not fit {backbone.name} ({_first_line(error)}); "
                f"use Keras' {backbone.keras_name} no-top weights file"
            ) from error
    network.trainable = False
    return network


def _seeded_kernels(network: keras.Model, seed: int = 0) -> None:
    """Give an untrained network the same kernels in every process.

    Keras draws initial weights from a global generator, so an untrained network would depend
    on whatever was built before it (and tests on random weights on their order). Kernels get
    Glorot-uniform values from a fixed seed; biases and batch-norm statistics are constants.
    """
    rng = np.random.default_rng(seed)
    for variable in network.weights:
        shape = tuple(variable.shape)
        if len(shape) < 2:
            continue
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        variable.assign(rng.uniform(-limit, limit, shape).astype(np.float32))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


class FeatureExtractor:
    """One backbone with loaded weights at one precision, plus its cached objectives."""

    def __init__(
        self,
        model: str,
        precision: str = "auto",
        weights: Path | str | None = None,
        *,
        trace_per_shape: bool = False,
    ) -> None:
        """Build the network. ``weights`` is a Keras-loadable file, or None for random weights.

        ``trace_per_shape`` traces the objectives anew for every image size, as this project
        did before: only the benchmark's baseline (``bench/scale_switch.py``) uses it.
        """
        self.trace_per_shape = trace_per_shape
        self.backbone = get_backbone(model)
        self.precision = resolve_precision(precision)
        self.weights = Path(weights) if weights is not None else None
        self.network = build_network(self.backbone, self.precision, self.weights)
        self._objectives: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], Objective] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        #: Tells this extractor's targets from another's in the shared ``TARGETS`` cache.
        self.token = next(_TOKENS)

    def outputs_for(self, layers: Sequence[str]) -> keras.Model:
        """A model returning the given layers' activations, stopping at the deepest of them."""
        self.backbone.check_layers(layers)
        outputs = [
            self.network.get_layer(self.backbone.keras_layer_name(self.network, name)).output
            for name in layers
        ]
        return keras.Model(self.network.input, outputs)

    def objective(self, content_layers: Sequence[str], style_layers: Sequence[str]) -> Objective:
        """The cached objective for this layer set (built on first use).

        Only the most recently used ``MAX_OBJECTIVES`` are kept: each holds traced graphs, and
        a user trying layer after layer in the app must not grow memory without bound.
        """
        key = (tuple(content_layers), tuple(style_layers))
        with self._lock:
            if key not in self._objectives:
                self._objectives[key] = Objective(self, key[0], key[1])
                while len(self._objectives) > MAX_OBJECTIVES:
                    self._objectives.popitem(last=False)
            self._objectives.move_to_end(key)
            return self._objectives[key]


class Objective:
    """Total loss and its image gradient for one extractor and one set of layers."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        content_layers: tuple[str, ...],
        style_layers: tuple[str, ...],
    ) -> None:
        if not style_layers and not content_layers:
            raise ValueError("choose at least one content or style layer")
        self.extractor = extractor
        self.content_layers = content_layers
        self.style_layers = style_layers
        # One model serves both: its outputs are content layers, then style layers.
        self._model = extractor.outputs_for(content_layers + style_layers)
        # The content target needs only the content layers, often shallower than the deepest
        # style layer (VGG19's block4_conv2 against block5_conv1: 23 % fewer operations).
        self._content_model = extractor.outputs_for(content_layers) if content_layers else None
        self._key = (extractor.token, content_layers, style_layers)
        #: Forward passes run for targets (tests check that a repeated run reuses them).
        self.target_passes = 0
        self._preprocess = extractor.backbone.preprocess_input
        #: How often the step function was traced (tests assert it stays at one).
        self.traces = 0
        #: The same for the guided (regions) step function, one per mask mapping.
        self.guided_traces = 0
        # Height and width are left open so that every scale and size shares one trace; the
        # layer counts are fixed for an objective, so the signature is too.
        image = tf.TensorSpec([1, None, None, 3], tf.float32)
        features = tuple(tf.TensorSpec([1, None, None, None], tf.float32) for _ in content_layers)
        grams = tuple(tf.TensorSpec([None, None], tf.float32) for _ in style_layers)
        vector = tf.TensorSpec([None], tf.float32)
        step = [image, features, grams, vector, vector, tf.TensorSpec([3], tf.float32)]
        per_shape = extractor.trace_per_shape  # the benchmark's baseline only
        self._features = tf.function(
            self._features_fn, input_signature=None if per_shape else [image]
        )
        self._content_features = tf.function(
            self._content_features_fn, input_signature=None if per_shape else [image]
        )
        self._value_and_grad = tf.function(
            self._value_and_grad_fn, input_signature=None if per_shape else step
        )
        #: Guided-Gram step functions (regions), one per mask mapping, traced on first use.
        self._guided: dict[str, Callable] = {}

    # -- targets ---------------------------------------------------------------------------

    def _outputs(self, model: keras.Model, image: tf.Tensor) -> list[tf.Tensor]:
        outputs = model(self._preprocess(image), training=False)
        return [tf.cast(o, tf.float32) for o in tf.nest.flatten(outputs)]

    def _features_fn(self, image: tf.Tensor) -> list[tf.Tensor]:
        return self._outputs(self._model, image)

    def _content_features_fn(self, image: tf.Tensor) -> list[tf.Tensor]:
        assert self._content_model is not None
        return self._outputs(self._content_model, image)

    def content_targets(self, image: np.ndarray) -> tuple[tf.Tensor, ...]:
        """Features of the content image at the content layers (float32); kept for re-use."""

        def compute() -> tuple[tf.Tensor, ...]:
            self.target_passes += 1
            return tuple(self._content_features(_batch(image)))

        if not self.content_layers:
            return ()
        return TARGETS.get((*self._key, "content"), image, compute)

    def style_grams(self, image: np.ndarray) -> tuple[tf.Tensor, ...]:
        """Gram matrices of one style image at the style layers (float32); kept for re-use."""

        def compute() -> tuple[tf.Tensor, ...]:
            self.target_passes += 1
            features = self._features(_batch(image))
            return tuple(losses.gram_matrix(f) for f in features[len(self.content_layers) :])

        return TARGETS.get((*self._key, "style"), image, compute)

    def blended_style_grams(
        self, images: Sequence[np.ndarray], weights: Sequence[float]
    ) -> tuple[tf.Tensor, ...]:
        """Weighted mean of several style images' Grams (the target for a style blend)."""
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("style image weights must add up to more than zero")
        blend: list[tf.Tensor] | None = None
        for image, weight in zip(images, weights, strict=True):
            if weight == 0:
                continue
            grams = self.style_grams(image)
            scaled = [g * (weight / total) for g in grams]
            blend = scaled if blend is None else [a + b for a, b in zip(blend, scaled, strict=True)]
        assert blend is not None
        return tuple(blend)

    # -- the step function -----------------------------------------------------------------

    def _value_and_grad_fn(
        self,
        image: tf.Tensor,
        content_targets: tuple[tf.Tensor, ...],
        style_targets: tuple[tf.Tensor, ...],
        content_weights: tf.Tensor,
        style_weights: tf.Tensor,
        mix: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        self.traces += 1  # Python side effect: runs only while tracing.

        def style_of(features: list[tf.Tensor]) -> tf.Tensor:
            style = tf.constant(0.0)
            for i, target in enumerate(style_targets):
                style += style_weights[i] * losses.style_loss(features[i], target)
            return style

        return self._step(image, content_targets, content_weights, mix, style_of)

    def _step(
        self,
        image: tf.Tensor,
        content_targets: tuple[tf.Tensor, ...],
        content_weights: tf.Tensor,
        mix: tf.Tensor,
        style_of: Callable[[list[tf.Tensor]], tf.Tensor],
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The body both step functions share (traced inside them): the forward pass, the
        content loss (never masked), ``style_of(style layers' features)``, TV, the gradient."""
        with tf.GradientTape() as tape:
            tape.watch(image)
            outputs = tf.nest.flatten(self._model(self._preprocess(image), training=False))
            content = tf.constant(0.0)
            for i, target in enumerate(content_targets):
                content += content_weights[i] * losses.content_loss(outputs[i], target)
            style = style_of(outputs[len(self.content_layers) :])
            tv = losses.total_variation(image)
            total = mix[0] * content + mix[1] * style + mix[2] * tv
        grad = tape.gradient(total, image)
        parts = tf.stack([total, content, style, tv])
        finite = tf.reduce_all(tf.math.is_finite(grad)) & tf.reduce_all(tf.math.is_finite(parts))
        return parts, grad, finite

    def value_and_grad(
        self,
        image: np.ndarray,
        content_targets: tuple[tf.Tensor, ...],
        style_targets: tuple[tf.Tensor, ...],
        content_weights: np.ndarray,
        style_weights: np.ndarray,
        mix: np.ndarray,
    ) -> tuple[dict[str, float], np.ndarray, bool]:
        """Losses (``total``, ``content``, ``style``, ``tv``), the gradient for ``image``, and
        whether both are finite (checked in the graph, where it is cheap).

        ``image`` is float32 ``[H, W, 3]`` in 0..255. Content and style losses are the
        layer-weighted sums of relative errors; ``mix`` is ``(alpha, beta, tv_weight)``.
        """
        parts, grad, finite = self._value_and_grad(
            _batch(image),
            content_targets,
            style_targets,
            tf.constant(content_weights, tf.float32),
            tf.constant(style_weights, tf.float32),
            tf.constant(mix, tf.float32),
        )
        return _results(parts, grad, finite)

    # -- regions: guided Grams -------------------------------------------------------------

    def region_style_grams(
        self, images: Sequence[np.ndarray], blends: Sequence[Sequence[float]]
    ) -> tuple[tf.Tensor, ...]:
        """Per style layer, the ``[R, C, C]`` stack of each region's blended style Gram
        (``blends[r]`` weighs ``images`` for region r)."""
        per_region = [self.blended_style_grams(images, weights) for weights in blends]
        return tuple(tf.stack(layer) for layer in zip(*per_region, strict=True))

    def _guided_fn(self, mapping: str) -> Callable:
        """The traced step function with guided Grams for one mask ``mapping`` (kept)."""
        if mapping not in self._guided:
            image = tf.TensorSpec([1, None, None, 3], tf.float32)
            features = tuple(
                tf.TensorSpec([1, None, None, None], tf.float32) for _ in self.content_layers
            )
            grams = tuple(tf.TensorSpec([None, None, None], tf.float32) for _ in self.style_layers)
            vector = tf.TensorSpec([None], tf.float32)
            masks = tf.TensorSpec([1, None, None, None], tf.float32)
            signature = [image, features, grams, vector, vector, tf.TensorSpec([3], tf.float32)]
            signature += [masks, vector]
            self._guided[mapping] = tf.function(
                functools.partial(self._guided_value_and_grad_fn, mapping=mapping),
                input_signature=None if self.extractor.trace_per_shape else signature,
            )
        return self._guided[mapping]

    def _guided_value_and_grad_fn(
        self,
        image: tf.Tensor,
        content_targets: tuple[tf.Tensor, ...],
        style_targets: tuple[tf.Tensor, ...],
        content_weights: tf.Tensor,
        style_weights: tf.Tensor,
        mix: tf.Tensor,
        masks: tf.Tensor,
        areas: tf.Tensor,
        *,
        mapping: str,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        self.guided_traces += 1  # Python side effect: runs only while tracing.

        def style_of(features: list[tf.Tensor]) -> tf.Tensor:
            style = tf.constant(0.0)
            for i, target in enumerate(style_targets):
                at_layer = losses.layer_masks(masks, features[i], mapping)
                style += style_weights[i] * losses.guided_style_loss(
                    features[i], at_layer, target, areas
                )
            return style

        return self._step(image, content_targets, content_weights, mix, style_of)

    def guided_value_and_grad(
        self,
        image: np.ndarray,
        content_targets: tuple[tf.Tensor, ...],
        style_targets: tuple[tf.Tensor, ...],
        content_weights: np.ndarray,
        style_weights: np.ndarray,
        mix: np.ndarray,
        masks: np.ndarray,
        mapping: str = DEFAULT_MAPPING,
    ) -> tuple[dict[str, float], np.ndarray, bool]:
        """:meth:`value_and_grad` with one guided Gram per region (``style_targets`` from
        :meth:`region_style_grams`); ``masks`` is ``H x W x R`` at the image's size, 0..1.
        Each region's style term is weighted by its share of the picture."""
        masks = np.asarray(masks, np.float32)
        parts, grad, finite = self._guided_fn(mapping)(
            _batch(image),
            content_targets,
            style_targets,
            tf.constant(content_weights, tf.float32),
            tf.constant(style_weights, tf.float32),
            tf.constant(mix, tf.float32),
            tf.convert_to_tensor(masks[None]),
            tf.constant(masks.reshape(-1, masks.shape[-1]).mean(axis=0), tf.float32),
        )
        return _results(parts, grad, finite)


def _results(
    parts: tf.Tensor, grad: tf.Tensor, finite: tf.Tensor
) -> tuple[dict[str, float], np.ndarray, bool]:
    """A step function's tensors as the optimisers take them."""
    total, content, style, tv = (float(v) for v in parts.numpy())
    values = {"total": total, "content": content, "style": style, "tv": tv}
    return values, grad.numpy()[0], bool(finite)


_TOKENS = itertools.count()


class TargetCache:
    """Targets by the exact pixels they were computed from, least recently used dropped first.

    A run computes a content target and style Grams at every scale: a forward pass each, about
    as long as the step that follows. The same images at the same size (a re-run with other
    weights, a continued run, the next job with the same inputs) give the same targets, so
    they are kept here up to ``max_bytes`` in all.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[tuple[tf.Tensor, ...], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(
        self, key: tuple, image: np.ndarray, compute: Callable[[], tuple[tf.Tensor, ...]]
    ) -> tuple[tf.Tensor, ...]:
        """The targets for ``key`` and ``image``, from ``compute()`` when not kept."""
        pixels = np.ascontiguousarray(image, np.float32)
        full_key = (*key, pixels.shape, hashlib.blake2b(pixels.data, digest_size=16).digest())
        with self._lock:
            if full_key in self._items:
                self._items.move_to_end(full_key)
                return self._items[full_key][0]
        targets = compute()
        size = sum(int(t.shape.num_elements()) * t.dtype.size for t in targets)
        with self._lock:
            if full_key not in self._items and size <= self.max_bytes:
                self._items[full_key] = (targets, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
        return targets

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


#: The one target cache of this process.
TARGETS = TargetCache(TARGET_CACHE_BYTES)


def _batch(image: np.ndarray) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(image, np.float32)[None])


RANDOM_WEIGHTS = "random"


def load_extractor(
    model: str, precision: str = "auto", weights: str | None = None, *, allow_download: bool = True
) -> FeatureExtractor:
    """Build (once per process and arguments) the extractor for ``model``.

    ``weights`` is a file the user names, ``"random"`` for untrained weights (tests), or None
    to resolve ImageNet weights (Keras cache, then the offline VGG19, then a download). Raises
    ``stransfer.weights.WeightsError`` with the fix when no weights can be found. The cache
    key uses the canonical model name and the resolved precision, so ``auto`` and what it
    resolves to share one network.
    """
    return _load_extractor(
        get_backbone(model).name, resolve_precision(precision), weights, allow_download
    )


@functools.lru_cache(maxsize=4)
def _load_extractor(
    model: str, precision: str, weights: str | None, allow_download: bool
) -> FeatureExtractor:
    from ..weights import resolve_weights  # deferred: the weights module pulls in h5py

    path = None
    if weights != RANDOM_WEIGHTS:
        path = resolve_weights(model, weights, allow_download=allow_download)
    return FeatureExtractor(model, precision, path)


load_extractor.cache_clear = _load_extractor.cache_clear  # type: ignore[attr-defined]

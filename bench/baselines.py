"""What the benchmark measures against: a fixed fp32 VGG19 scorer, the TF tutorial's loop, and
pastiche (run in its own virtual environment through ``bench/pastiche_driver.py``).

All methods return checkpoints ``[(seconds, uint8 image), ...]`` so that quality can be scored
against wall time after the fact, outside the timed loops.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from stransfer.engine.features import FeatureExtractor
from stransfer.io.images import fit_long_side, load_image, resize_to, to_uint8

STYLE_LAYERS = [f"block{i}_conv1" for i in range(1, 6)]
CONTENT_LAYER = "block4_conv2"
Checkpoints = list[tuple[float, np.ndarray]]


class Scorer:
    """Style distance S and content distance C from a fixed float32 VGG19 (the issue's metric).

    S = mean over block1..5_conv1 of ||G(out) - G(style)||^2 / ||G(style)||^2;
    C = ||F(out) - F(content)||^2 / ||F(content)||^2 at block4_conv2. Images are resized to a
    long side of ``size`` first.
    """

    def __init__(self, weights: Path, size: int = 512) -> None:
        extractor = FeatureExtractor("VGG19", "float32", weights)
        model = extractor.outputs_for([*STYLE_LAYERS, CONTENT_LAYER])
        preprocess = extractor.backbone.preprocess_input
        self.size = size
        self._features = tf.function(lambda x: model(preprocess(x), training=False))

    def _feats(self, image: np.ndarray) -> list[np.ndarray]:
        return [f.numpy()[0].astype(np.float64) for f in self._features(image[None])]

    @staticmethod
    def _gram(f: np.ndarray) -> np.ndarray:
        flat = f.reshape(-1, f.shape[-1])
        return flat.T @ flat / flat.shape[0]

    def targets(self, content: np.ndarray, style: np.ndarray) -> tuple:
        """Content features, style Grams, and the shape every scored image is resized to."""
        content = fit_long_side(content, self.size).astype(np.float32)
        style_feats = self._feats(fit_long_side(style, self.size).astype(np.float32))
        grams = [self._gram(f) for f in style_feats[: len(STYLE_LAYERS)]]
        return self._feats(content)[-1], grams, content.shape[:2]

    def score(self, image: np.ndarray, targets: tuple) -> tuple[float, float]:
        content_f, style_grams, shape = targets
        feats = self._feats(resize_to(image, *shape).astype(np.float32))
        s = np.mean(
            [
                np.sum((self._gram(f) - g) ** 2) / np.sum(g**2)
                for f, g in zip(feats[: len(STYLE_LAYERS)], style_grams, strict=True)
            ]
        )
        c = np.sum((feats[-1] - content_f) ** 2) / np.sum(content_f**2)
        return float(s), float(c)


def tutorial_adam(
    content: np.ndarray, style: np.ndarray, weights: Path, seconds: float, every: float
) -> Checkpoints:
    """The TensorFlow "Neural style transfer" tutorial's settings, in float32.

    Adam(lr 0.02, beta1 0.99, eps 0.1) on a 0..1 image initialised from the content, style
    weight 1e-2, content weight 1e4, TV weight 30, style block1..5_conv1, content block5_conv2.
    """
    extractor = FeatureExtractor("VGG19", "float32", weights)
    model = extractor.outputs_for([*STYLE_LAYERS, "block5_conv2"])
    preprocess = extractor.backbone.preprocess_input

    def outputs(x: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor]:
        feats = model(preprocess(x * 255.0), training=False)
        grams = [tf.linalg.einsum("bijc,bijd->bcd", f, f) / tf.cast(
            tf.shape(f)[1] * tf.shape(f)[2], tf.float32) for f in feats[:-1]]  # fmt: skip
        return grams, feats[-1]

    start = time.perf_counter()
    style_t, _ = outputs(tf.constant(style[None] / 255.0, tf.float32))
    _, content_t = outputs(tf.constant(content[None] / 255.0, tf.float32))
    image = tf.Variable(content[None] / 255.0, dtype=tf.float32)
    opt = tf.keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)

    @tf.function
    def train_step() -> None:
        with tf.GradientTape() as tape:
            grams, feat = outputs(image)
            style_loss = tf.add_n(
                [tf.reduce_mean((g - t) ** 2) for g, t in zip(grams, style_t, strict=True)]
            ) * (1e-2 / len(grams))
            content_loss = tf.reduce_mean((feat - content_t) ** 2) * 1e4
            loss = style_loss + content_loss + 30 * tf.image.total_variation(image)
        opt.apply_gradients([(tape.gradient(loss, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))

    checkpoints: Checkpoints = []
    next_mark = every
    while (now := time.perf_counter() - start) < seconds:
        train_step()
        now = time.perf_counter() - start
        if now >= next_mark or now >= seconds:
            checkpoints.append((now, to_uint8(image.numpy()[0] * 255.0)))
            next_mark += every
    return checkpoints


def pastiche_run(
    python: Path, content_path: Path, style_path: Path, size: int, seconds: float, every: float
) -> Checkpoints:
    """Run pastiche 1.6.0 (PyTorch L-BFGS, its defaults) for ``seconds`` in its own venv."""
    driver = Path(__file__).with_name("pastiche_driver.py")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [str(python), str(driver), str(content_path), str(style_path), str(size),
             str(seconds), str(every), out],
            check=True, capture_output=True, timeout=seconds * 4 + 120,
        )  # fmt: skip
        files = sorted(Path(out).glob("t_*.png"), key=lambda p: float(p.stem[2:]))
        return [(float(p.stem[2:]), load_image(p)) for p in files]

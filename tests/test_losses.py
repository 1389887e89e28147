"""Losses against a plain numpy reference."""

import numpy as np
import pytest
import tensorflow as tf

from stransfer.engine import losses


def np_gram(features: np.ndarray) -> np.ndarray:
    _, h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float64)
    return flat.T @ flat / (h * w)


def np_relative(value: np.ndarray, target: np.ndarray) -> float:
    return float(np.sum((value - target) ** 2) / np.sum(target**2))


@pytest.fixture
def feats():
    rng = np.random.default_rng(1)
    return rng.random((1, 7, 5, 4)).astype(np.float32), rng.random((1, 7, 5, 4)).astype(np.float32)


def test_gram_matches_numpy(feats):
    a, _ = feats
    np.testing.assert_allclose(losses.gram_matrix(tf.constant(a)).numpy(), np_gram(a), rtol=1e-5)


def test_gram_accepts_bfloat16_and_returns_float32(feats):
    a, _ = feats
    gram = losses.gram_matrix(tf.cast(tf.constant(a), tf.bfloat16))
    assert gram.dtype == tf.float32
    np.testing.assert_allclose(gram.numpy(), np_gram(a), rtol=2e-2)


def test_style_and_content_loss_match_numpy(feats):
    a, b = feats
    style = losses.style_loss(tf.constant(a), tf.constant(np_gram(b), tf.float32)).numpy()
    assert style == pytest.approx(np_relative(np_gram(a), np_gram(b)), rel=1e-4)
    content = losses.content_loss(tf.constant(a), tf.constant(b)).numpy()
    assert content == pytest.approx(np_relative(a, b), rel=1e-5)


def test_total_variation_matches_numpy():
    img = np.random.default_rng(2).uniform(0, 255, (1, 6, 9, 3)).astype(np.float32)
    x = img / 255.0
    expected = np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    assert losses.total_variation(tf.constant(img)).numpy() == pytest.approx(expected, rel=1e-5)


def test_losses_are_zero_for_identical_inputs(feats):
    a, _ = feats
    t = tf.constant(a)
    assert losses.style_loss(t, losses.gram_matrix(t)).numpy() == 0.0
    assert losses.content_loss(t, t).numpy() == 0.0
    assert losses.total_variation(tf.fill((1, 4, 4, 3), 128.0)).numpy() == 0.0


def test_relative_loss_of_zero_answer_is_one(feats):
    a, _ = feats
    assert losses.content_loss(tf.zeros_like(a), tf.constant(a)).numpy() == pytest.approx(1.0)

"""Shared pytest setup: in-repo imports, quiet TensorFlow, small generated test images."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def _smooth_image(seed: int, height: int, width: int) -> np.ndarray:
    """A deterministic colourful image with structure at several scales (not white noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(2, 12), rng.uniform(2, 12), rng.uniform(0, 6.3)
        channels.append(np.sin(fx * xx * 6.3 + phase) * np.cos(fy * yy * 6.3))
    img = (np.stack(channels, -1) + 1) * 127.5
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def content_img() -> np.ndarray:
    return _smooth_image(0, 60, 90)


@pytest.fixture
def style_img() -> np.ndarray:
    return _smooth_image(1, 80, 80)


@pytest.fixture(scope="session", autouse=True)
def _page_runs_as_in_its_own_process():
    """After every script run Streamlit calls ``keras.backend.clear_session()`` (a full garbage
    collection, 0.2-0.5 s here) if Keras is loaded. The page's process never loads it (its
    workers do; ``test_app`` holds that), but this test process does, for the engine tests and
    the in-thread workers of the page tests, whose models the reset would also pull from under
    them. So page tests do the clean-up the page's own process does: none."""
    from streamlit.runtime.scriptrunner import script_runner

    if os.environ.get("STRANSFER_TEST_KERAS_CLEANUP"):  # bench.suite's baseline: as before
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(script_runner, "_clean_problem_modules", lambda: None)
        yield


@pytest.fixture(scope="session")
def vgg_random():
    """One untrained VGG19 (float32) for the whole session: building one takes seconds."""
    from stransfer.engine.features import load_extractor

    return load_extractor("VGG19", "float32", "random")


def open_page_groups(at, is_open: bool = True) -> None:
    """Open (or close) the page's sidebar groups that are drawn only while open, as a click
    would, and rerun (``at`` is a ``streamlit.testing.v1.AppTest``)."""
    from stransfer.page.sidebar import LAZY_GROUPS

    for key in LAZY_GROUPS:
        at.session_state[key] = is_open
    at.run()
    assert not at.exception, at.exception

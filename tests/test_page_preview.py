"""The instant preview on the page (issue 8 item 2): shown before Run, from the instant engine.

Skipped where ``stransfer.instant`` is not part of the tree or its models are not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

instant = pytest.importorskip("stransfer.instant")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    try:
        for name in ("arbitrary_predict", "arbitrary_transform"):
            instant.verify(name)
    except Exception as err:  # any reason the models cannot be used
        pytest.skip(f"instant models not installed: {err}")
    yy, xx = np.mgrid[0:90, 0:120]
    photo = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    (tmp_path / "content").mkdir()
    (tmp_path / "style").mkdir()
    Image.fromarray(photo).save(tmp_path / "content" / "photo.png")
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = (255, 40, 0)
    Image.fromarray(stripes).save(tmp_path / "style" / "stripes.png")
    monkeypatch.setenv("STRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRANSFER_WEIGHTS", "random")
    return tmp_path


def _preview(at: AppTest):
    found = [i for i in at.image if any(c.startswith("Instant preview") for c in i.captions)]
    return found[0] if found else None


def test_preview_shows_before_run_and_follows_the_strength(data_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    first = _preview(at)
    assert first is not None, [c for i in at.image for c in i.captions]
    assert "Choose a content and a style image, then press Run." not in [i.value for i in at.info]
    at.slider(key="strength").set_value(20).run()
    second = _preview(at)
    assert second is not None and second.proto.imgs[0].url != first.proto.imgs[0].url


def test_the_preview_keeps_tensorflow_out_of_the_page() -> None:
    code = (
        "import sys, numpy as np; from stransfer.instant import instant; "
        "instant(np.zeros((64, 64, 3), np.uint8), [(np.full((64, 64, 3), 200, np.uint8), 1.0)],"
        " size=64); import stransfer.page.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"

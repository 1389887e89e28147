"""The instant engine on the page (issue 8 items 2 and 4): the preview shown before Run, the
Instant mode (its own controls, the built-in styles, an instant job through the service) and
the video upload.

Skipped where ``stransfer.instant`` is not part of the tree or its models are not installed.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import open_page_groups
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


# -- Instant mode (issue 8 items 2 and 4) --------------------------------------------------------


def _instant_page(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("STRANSFER_DATA", str(data_dir / "jobs"))  # the job service's store
    monkeypatch.setenv("STRANSFER_PRECISION", "float32")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    at.radio(key="engine").set_value("instant").run()
    assert not at.exception
    return at


def _wait(at: AppTest, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = at.session_state["page"].current
        at.run()  # as the polling fragment would; after the end, the page's full rerun
        assert not at.exception
        if current is None or current.final:
            at.run()
            return
        time.sleep(0.2)
    raise AssertionError("the job did not end")


def test_instant_mode_runs_an_instant_job_and_lists_the_builtin_styles(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _instant_page(data_dir, monkeypatch)
    options = at.selectbox(key="style_file").options
    assert options == ["stripes.png", *(f"Built-in {i}" for i in range(1, 27))]
    keys = {b.key for b in at.button}
    assert "run" in keys and not {"continue", "stop"} & keys  # an instant job is one step
    assert at.slider(key="instant_strength").value == 100
    assert "model" not in {s.key for s in at.selectbox}  # the optimiser's controls are gone
    assert _preview(at) is not None
    at.slider(key="instant_size").set_value(96).run()
    at.button(key="run").click().run()
    assert not at.error, [e.value for e in at.error]
    _wait(at)
    shown = at.session_state["page"].current
    assert shown.view.state == "done", shown.view
    from stransfer.io.records import load_record

    result = load_record(shown.result)
    assert result.extra["content"] == "photo.png" and result.extra["styles"] == ["stripes.png"]
    assert result.extra["engine"] == "instant"
    assert at.success and at.success[0].value.endswith("(instant engine)"), [
        (e.type, getattr(e, "value", "")) for e in at.main
    ]
    with Image.open(io.BytesIO(shown.result)) as image:
        assert max(image.size) == 96

    # A built-in style: its swatch in the Style column, its preview, and an instant job.
    at.selectbox(key="style_file").set_value("Built-in 7").run()
    assert not at.exception
    assert any("Built-in 7" in c for i in at.image for c in i.captions)
    assert _preview(at) is not None
    at.button(key="run").click().run()
    _wait(at)
    shown = at.session_state["page"].current
    assert shown.view.state == "done", shown.view
    assert shown.styles == ("Built-in 7",)


def test_optimise_mode_offers_instant_initialisation(data_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    open_page_groups(at)
    assert "instant" in at.selectbox(key="init").options
    assert "Built-in 1" not in at.selectbox(key="style_file").options  # images only


def _write_video(path: Path, count: int = 6) -> Path:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path), (64, 48), fps=10, macro_block_size=2, ffmpeg_log_level="error"
    )
    writer.send(None)
    for index in range(count):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, index * 8 : index * 8 + 16] = (240, 200, 40)
        writer.send(frame)
    writer.close()
    return path


def test_instant_mode_paints_a_short_video_and_refuses_a_broken_one(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _instant_page(data_dir, monkeypatch)
    uploader = at.file_uploader(key="video_upload")
    assert "up to 50 MB and 30 s" in uploader.label
    video = _write_video(data_dir / "clip.mp4").read_bytes()
    uploader.upload("clip.mp4", video, "video/mp4")
    at.run()
    at.button(key="video_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [b.key for b in at.download_button if b.key == "download_video"] == ["download_video"]
    assert any(m.value.startswith("6 frames at 64x48") for m in at.caption), [
        m.value for m in at.caption
    ]

    at.file_uploader(key="video_upload").upload("broken.mp4", video[: len(video) // 3], "video/mp4")
    at.run()
    at.button(key="video_run").click().run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert (
        error.startswith("broken.mp4 is not a video")
        and "\n" not in error
        and "Traceback" not in error
    )
    assert not [b for b in at.download_button if b.key == "download_video"]


def test_the_preview_is_cached_and_quick(data_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.slider(key="strength").set_value(60).run()  # a new preview (computed once)
    started = time.perf_counter()
    at.slider(key="strength").set_value(100).run()  # back to the first: from the cache
    again = time.perf_counter() - started
    assert _preview(at) is not None
    assert again < 1.0, again  # a whole script run, the preview not recomputed

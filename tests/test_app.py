"""The Streamlit page, driven headless with ``streamlit.testing.v1.AppTest``.

No network and no ImageNet weights: ``STRANSFER_WEIGHTS=random`` builds untrained backbones,
and ``STRANSFER_DATA_DIR`` points the image pickers at small generated images in a temp folder,
so the tests do not depend on what is in ``data/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import app
from stransfer import BACKBONES, StepEvent, TransferSettings
from stransfer.images import encode_png, read_png_metadata

APP = Path(__file__).resolve().parents[1] / "app.py"
TIMEOUT = 120


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ramp = np.linspace(0, 255, 80, dtype=np.uint8)
    _save(tmp_path / "content" / "ramp.png", np.stack([np.tile(ramp, (60, 1))] * 3, axis=-1))
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    _save(tmp_path / "style" / "noise.png", noise)
    monkeypatch.setenv("STRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRANSFER_WEIGHTS", "random")
    monkeypatch.setenv("STRANSFER_PRECISION", "float32")
    return tmp_path


def _page(data_dir: Path) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def _finished_run(data_dir: Path) -> AppTest:
    at = _page(data_dir)
    at.number_input(key="steps").set_value(2)
    at.slider(key="size").set_value(100)
    at.button(key="run").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _output_captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions if c.startswith("Output")]


def _messages(elements) -> list[str]:
    return [e.value for e in elements]


def test_page_renders_with_defaults(data_dir: Path) -> None:
    at = _page(data_dir)
    defaults = TransferSettings()
    assert at.title[0].value == "Stransfer"
    sidebar = {w.key for w in at.sidebar.selectbox}
    assert {"content_file", "style_file", "model", "optimizer", "precision"} <= sidebar
    assert at.selectbox(key="content_file").options == ["ramp.png"]
    assert at.selectbox(key="style_file").options == ["noise.png"]
    assert at.selectbox(key="model").value == "VGG19"
    assert at.number_input(key="steps").value == defaults.steps
    assert at.slider(key="size").value == 512
    assert at.number_input(key="style_weight").value == defaults.style_weight
    assert at.button(key="run").label == "Run"
    assert at.button(key="stop").label == "Stop"
    assert len(at.file_uploader) == 2
    assert not at.error


def test_run_shows_output_progress_and_download(data_dir: Path) -> None:
    at = _finished_run(data_dir)
    assert _output_captions(at) == ["Output · 100x75"]
    assert at.progress[0].text == "step 2/2"
    assert at.progress[0].value == 100
    assert [b.key for b in at.download_button] == ["download"]
    assert at.success and at.success[0].value.startswith("Done: 2 steps")

    result = at.session_state["page"].result
    assert result.event.image.shape == (75, 100, 3)
    assert [row[0] for row in result.history] == [1, 2]
    record = json.loads(read_png_metadata(result.png_bytes())["stransfer"])
    assert (record["steps"], record["size"], record["content"]) == (2, 100, "ramp.png")
    assert TransferSettings.from_dict(record).validated() == result.settings

    at.run()  # any later rerun keeps the last result on screen
    assert _output_captions(at) == ["Output · 100x75"]
    assert at.download_button


def test_stop_after_a_cut_off_run_keeps_the_image(data_dir: Path) -> None:
    at = _finished_run(data_dir)
    page = at.session_state["page"]
    page.result.status = "running"  # as if Stop's rerun had interrupted the loop after step 2
    at.button(key="stop").click().run()
    assert not at.exception
    assert page.result.status == "stopped"
    assert "Stopped at step 2 of 2" in _messages(at.info)
    assert _output_captions(at) == ["Output · 100x75"]
    assert at.download_button


def test_widget_change_during_a_run_keeps_the_image(data_dir: Path) -> None:
    at = _finished_run(data_dir)
    at.session_state["page"].result.status = "running"
    at.slider(key="size").set_value(200).run()
    assert not at.exception
    assert any("interrupted at step 2 of 2" in m for m in _messages(at.info))
    assert _output_captions(at) == ["Output · 100x75"]


def test_diverged_run_shows_a_warning(data_dir: Path) -> None:
    at = _finished_run(data_dir)
    result = at.session_state["page"].result
    result.status, result.message = "diverged", "the loss became non-finite at step 2"
    at.run()
    assert _messages(at.warning) == ["the loss became non-finite at step 2"]
    assert _output_captions(at) and at.download_button


def test_switching_model_rebuilds_layer_sliders(data_dir: Path) -> None:
    at = _page(data_dir)
    at.selectbox(key="model").set_value("ResNet").run()
    assert not at.exception
    resnet = BACKBONES["ResNet"]
    for role, defaults in (("content", resnet.content_layers), ("style", resnet.style_layers)):
        sliders = [s for s in at.slider if s.key.startswith(f"{role}_layer:")]
        assert [s.label for s in sliders] == list(resnet.layers)
        assert {s.key.split(":")[1] for s in sliders} == {"ResNet"}
        assert {s.label: s.value for s in sliders} == {
            layer: defaults.get(layer, 0.0) for layer in resnet.layers
        }


def test_bad_upload_shows_the_image_error(data_dir: Path) -> None:
    at = _page(data_dir)
    at.file_uploader(key="content_upload").upload("bad.png", b"just some text\n", "image/png")
    at.run()
    assert not at.exception
    assert _messages(at.error) == [
        "bad.png is not an image (it looks like text); "
        "choose a PNG, JPEG, WebP, BMP, TIFF or GIF file."
    ]
    at.button(key="run").click().run()
    assert not at.exception
    assert any(m.startswith("bad.png is not an image") for m in _messages(at.main.error))
    assert at.session_state["page"].result is None


def test_upload_wins_over_the_folder(data_dir: Path) -> None:
    at = _page(data_dir)
    png = encode_png(np.full((30, 40, 3), 200, np.uint8))
    at.file_uploader(key="style_upload").upload("grey.png", png, "image/png").run()
    assert not at.exception
    captions = [c for image in at.main.image for c in image.captions]
    assert captions == ["ramp.png", "grey.png"]


def test_empty_data_folder(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("STRANSFER_DATA_DIR", str(tmp_path / "empty"))
    at = _page(data_dir)
    assert at.selectbox(key="content_file").options == []
    at.button(key="run").click().run()
    assert not at.exception
    assert any(m.startswith("no content image") for m in _messages(at.error))


def test_weights_error_is_shown_and_the_page_keeps_working(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("STRANSFER_WEIGHTS", str(data_dir / "missing.h5"))
    at = _page(data_dir)
    at.button(key="run").click().run()
    assert not at.exception
    assert any("missing.h5 does not exist" in m for m in _messages(at.error))
    at.run()
    assert not at.exception and not at.error


def test_all_layer_weights_zero_is_a_settings_error(data_dir: Path) -> None:
    at = _page(data_dir)
    for slider in at.slider:
        if slider.key.endswith(tuple(BACKBONES["VGG19"].layers)):
            slider.set_value(0.0)
    at.button(key="run").click().run()
    assert not at.exception
    assert any("every content and style layer weight is zero" in m for m in _messages(at.error))


# -- helpers, without a page -------------------------------------------------------------------


def _event(step: int, status: str = "running") -> StepEvent:
    losses = {"total": 3.0, "content": 1.0, "style": 1.5, "tv": 0.5}
    image = np.zeros((4, 4, 3), np.uint8)
    return StepEvent(step, 10, 1, 1, losses, 0.1 * step, 0.1, 0.5, image, status)


def test_a_cut_off_loop_cannot_overwrite_the_newer_rerun() -> None:
    page = app.Page()
    rerun = app.start_rerun(page, stop_clicked=False)
    result = app.RunResult(TransferSettings(), "c.png", "s.png")
    result.record(_event(1))
    page.result = result
    # Stop: the new script run starts while the old loop is still inside step 2.
    app.start_rerun(page, stop_clicked=True)
    assert (result.status, result.message) == ("stopped", "stopped at step 1 of 10")
    app.stream(iter([_event(2)]), result, page, None, lambda: page.rerun != rerun)
    assert result.event.step == 1 and result.status == "stopped"


def test_throttle() -> None:
    throttle = app.Throttle(60.0)
    assert throttle() and not throttle() and throttle(force=True)


def test_duration() -> None:
    assert [app.duration(s) for s in (0.4, 59, 61, 3725)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "1 h 02 min",
    ]

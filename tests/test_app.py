"""The Streamlit page, driven headless with ``streamlit.testing.v1.AppTest``.

No network and no ImageNet weights: ``STRANSFER_WEIGHTS=random`` builds untrained backbones,
and ``STRANSFER_DATA_DIR`` points the image pickers at small generated images in a temp folder,
so the tests do not depend on what is in ``data/``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import app
from stransfer import BACKBONES, StepEvent, TransferSettings
from stransfer.cli import transfer as cli
from stransfer.core.strength import strength_to_weights
from stransfer.io.images import encode_png, resize_to
from stransfer.io.records import load_record, settings_from_record

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
    assert [u.key for u in at.file_uploader] == ["load_settings", "content_upload", "style_upload"]
    assert at.slider(key="strength").value == 100
    assert at.selectbox(key="preserve_color").options == ["none", "luminance", "histogram"]
    assert at.selectbox(key="preserve_color").value == defaults.preserve_color
    assert at.selectbox(key="init").value == defaults.init
    assert at.slider(key="style_scale").value == defaults.style_scale
    assert at.number_input(key="style_count").value == 1
    assert not at.error


def test_run_shows_output_progress_and_download(data_dir: Path) -> None:
    at = _finished_run(data_dir)
    assert _output_captions(at) == ["Output · 100x75"]
    assert at.progress[0].text == "step 2/2"
    assert at.progress[0].value == 100
    downloads = ["download", "download_json", "download_gif", "gallery:1"]
    assert [b.key for b in at.download_button] == downloads
    assert at.success and at.success[0].value.startswith("Done: 2 steps")

    result = at.session_state["page"].result
    assert result.event.image.shape == (75, 100, 3)
    assert [row[0] for row in result.history] == [1, 2]
    record = load_record(result.png_bytes())
    assert load_record(result.json_bytes()) == record
    assert (record.settings["steps"], record.settings["size"]) == (2, 100)
    assert (record.extra["content"], record.extra["styles"]) == ("ramp.png", ["noise.png"])
    assert record.extra["status"] == "done" and record.extra["strength"] == 100
    assert (record.steps_done, record.style_weights) == (2, [100.0])
    assert record.precision in ("float32", "bfloat16")  # "auto", resolved
    assert len(record.content_sha256) == 64 and len(record.style_sha256) == 1
    assert settings_from_record(record).validated() == result.settings
    with Image.open(io.BytesIO(result.gif_bytes())) as gif:  # the "Download animation" data
        assert gif.format == "GIF" and gif.n_frames == 2 and gif.size == (100, 75)
    assert len(result.gif_bytes()) < 10 * 2**20

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


# -- creative controls -------------------------------------------------------------------------


def _run(at: AppTest) -> app.RunResult:
    at.button(key="run").click().run()
    assert not at.exception
    assert not at.error, _messages(at.error)
    return at.session_state["page"].result


def _gallery_captions(at: AppTest) -> list[str]:
    return [c for image in at.main.image for c in image.captions if c.startswith("Run ")]


def _small(at: AppTest, steps: int = 2) -> AppTest:
    at.number_input(key="steps").set_value(steps)
    at.slider(key="size").set_value(100)
    return at


def test_strength_scales_beta_and_tv_and_zero_keeps_the_content(data_dir: Path) -> None:
    at = _small(_page(data_dir))
    at.slider(key="strength").set_value(0.0)
    zero = _run(at)
    assert (zero.settings.style_weight, zero.settings.tv_weight) == (0.0, 0.0)
    content = np.asarray(Image.open(data_dir / "content" / "ramp.png").convert("RGB"))
    expected = resize_to(content, 75, 100).astype(int)
    assert np.abs(zero.event.image.astype(int) - expected).max() <= 1

    at.slider(key="strength").set_value(50.0)
    at.number_input(key="style_weight").set_value(4.0)  # the weights at 100 %, in the expander
    half = _run(at)
    style, tv = strength_to_weights(50, style_weight=4.0, tv_weight=TransferSettings().tv_weight)
    assert (half.settings.style_weight, half.settings.tv_weight) == (style, tv)
    assert half.run_record().extra["style_weight_at_100"] == 4.0
    # Both runs are in the gallery, newest first, each with its own download.
    captions = _gallery_captions(at)
    assert [c.split(" · ")[0] for c in captions] == ["Run 2", "Run 1"]
    assert "strength 50%" in captions[0] and "strength 0%" in captions[1]
    assert "VGG19 · 2 steps" in captions[0] and "loss total " in captions[0]
    assert [b.key for b in at.download_button if b.key.startswith("gallery:")] == [
        "gallery:2",
        "gallery:1",
    ]


def test_two_styles_blend_by_their_weights(data_dir: Path) -> None:
    at = _small(_page(data_dir))
    single = _run(at).event.image
    at.number_input(key="style_count").set_value(2).run()
    other = np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    at.file_uploader(key="style2_upload").upload("other.png", encode_png(other), "image/png")
    at.slider(key="style_mix:1").set_value(0.0)
    blend = _run(at)
    np.testing.assert_array_equal(blend.event.image, single)  # weight 0: as if left out
    captions = [c for image in at.main.image for c in image.captions]
    assert captions[:3] == ["ramp.png", "noise.png · 100%", "other.png · 0%"]
    record = blend.run_record()
    assert (record.style_weights, record.extra["styles"]) == (
        [100.0, 0.0],
        ["noise.png", "other.png"],
    )
    assert len(set(record.style_sha256)) == 2

    at.slider(key="style_mix:1").set_value(100.0)
    even = _run(at)
    assert not np.array_equal(even.event.image, single)  # now the second style counts
    assert even.run_record().style_weights == [100.0, 100.0]

    # Its PNG restores both weights on a fresh page; the upload must be chosen again.
    fresh = _page(data_dir)
    fresh.file_uploader(key="load_settings").upload("run.png", blend.png_bytes(), "image/png")
    fresh.run()
    assert not fresh.exception
    assert fresh.number_input(key="style_count").value == 2
    assert [fresh.slider(key=f"style_mix:{i}").value for i in (0, 1)] == [100.0, 0.0]
    assert fresh.selectbox(key="style_file").value == "noise.png"
    assert any("other.png" in m for m in _messages(fresh.sidebar.success))


def test_colour_init_and_scale_controls_reach_the_run(data_dir: Path) -> None:
    from stransfer.io.color import mean_chroma_error

    at = _small(_page(data_dir))
    at.selectbox(key="preserve_color").set_value("luminance")
    at.selectbox(key="init").set_value("style")
    at.slider(key="style_scale").set_value(0.5)
    result = _run(at)
    assert (result.settings.preserve_color, result.settings.init) == ("luminance", "style")
    assert result.settings.style_scale == 0.5
    assert result.run_record().extra["preserve_color"] == "luminance"
    # The content is grey and the style colourful noise: luminance mode keeps it grey.
    content = np.asarray(Image.open(data_dir / "content" / "ramp.png").convert("RGB"))
    assert mean_chroma_error(result.event.image, resize_to(content, 75, 100)) < 1


def test_load_settings_from_a_cli_run_restores_the_widgets(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli" / "out.png"
    code = cli.main([
        str(data_dir / "content" / "ramp.png"), str(data_dir / "style" / "noise.png"),
        "-o", str(out), "--weights", "random", "--precision", "float32", "--quiet",
        "--steps", "3", "--size", "120", "--scales", "1", "--strength", "40",
        "--preserve-color", "luminance", "--init", "style", "--style-scale", "0.5",
        "--seed", "5", "--optimizer", "adam", "--learning-rate", "2", "--content-weight", "0.5",
        "--style-weight", "4", "--tv-weight", "0.5", "--style-layers", "block1_conv1:2",
        "block3_conv1",
    ])  # fmt: skip
    assert code == 0
    sidecar = out.with_suffix(".json")
    at = _page(data_dir)
    at.file_uploader(key="load_settings").upload("out.json", sidecar.read_bytes(), "text/json")
    at.run()
    assert not at.exception
    assert _messages(at.sidebar.success) == ["Loaded out.json."]
    expected = {
        "steps": 3, "size": 120, "scales": 1, "strength": 40.0, "preserve_color": "luminance",
        "init": "style", "style_scale": 0.5, "seed": 5, "optimizer": "adam", "learning_rate": 2.0,
        "content_weight": 0.5, "style_weight": 4.0, "tv_weight": 0.5, "precision": "float32",
        "content_file": "ramp.png", "style_file": "noise.png", "style_count": 1,
    }  # fmt: skip
    shown = {key: at.session_state[key] for key in expected}
    assert shown == expected
    assert at.slider(key="strength").value == 40.0 and at.selectbox(key="init").value == "style"
    layers = {s.label: s.value for s in at.slider if s.key.startswith("style_layer:VGG19:")}
    assert {k: v for k, v in layers.items() if v} == {"block1_conv1": 2.0, "block3_conv1": 1.0}
    # Run: the page uses exactly the recorded settings.
    result = _run(at)
    assert result.settings == settings_from_record(load_record(sidecar))


def test_load_settings_explains_a_wrong_file(data_dir: Path) -> None:
    at = _page(data_dir)
    for name, data in (
        ("x.json", b'{"nope": 1}'),
        ("plain.png", encode_png(np.zeros((4, 4, 3), np.uint8))),
    ):
        at.file_uploader(key="load_settings").upload(name, data, "application/octet-stream")
        at.run()
        assert not at.exception
        assert [m for m in _messages(at.sidebar.error) if m.startswith(f"{name}: ")], name
    assert at.number_input(key="steps").value == TransferSettings().steps  # nothing changed


def test_continue_goes_on_from_the_last_result(data_dir: Path) -> None:
    at = _small(_page(data_dir))
    at.button(key="continue").click().run()
    assert not at.exception
    assert _messages(at.main.error) == ["there is no result to continue yet: press Run first"]
    first = _run(at)
    at.button(key="continue").click().run()
    assert not at.exception and not at.error
    resumed = at.session_state["page"].result
    assert resumed is not first and resumed.steps_before == 2
    assert resumed.settings.scales == 1
    assert resumed.event.losses["total"] <= first.event.losses["total"]
    assert resumed.run_record().extra["continued_after_steps"] == 2
    assert _gallery_captions(at)[0].startswith("Run 2 · VGG19 · 4 steps")
    assert first.frames is None and resumed.gif_bytes()  # only the newest keeps its animation


# -- helpers, without a page -------------------------------------------------------------------


def _event(step: int, status: str = "running") -> StepEvent:
    losses = {"total": 3.0, "content": 1.0, "style": 1.5, "tv": 0.5}
    image = np.zeros((4, 4, 3), np.uint8)
    return StepEvent(step, 10, 1, 1, losses, 0.1 * step, 0.1, 0.5, image, status)


def test_a_cut_off_loop_cannot_overwrite_the_newer_rerun() -> None:
    page = app.Page()
    rerun = app.start_rerun(page, stop_clicked=False)
    result = app.RunResult(TransferSettings(), app.RunInputs("c.png", ("s.png",)))
    result.record(_event(1))
    page.result = result
    # Stop: the new script run starts while the old loop is still inside step 2.
    app.start_rerun(page, stop_clicked=True)
    assert (result.status, result.message) == ("stopped", "stopped at step 1 of 10")
    app.stream(iter([_event(2)]), result, page, None, lambda: page.rerun != rerun)
    assert result.event.step == 1 and result.status == "stopped"


def test_gallery_keeps_the_last_four() -> None:
    page = app.Page()
    results = [
        app.RunResult(TransferSettings(), app.RunInputs("c.png", ("s.png",))) for _ in range(6)
    ]
    for result in results:
        result.record(_event(1))
        page.adopt(result)
    assert [r.number for r in page.gallery] == [3, 4, 5, 6]
    assert page.result is results[-1] and page.result.frames is not None
    assert all(r.frames is None for r in results[:-1])


def test_throttle() -> None:
    throttle = app.Throttle(60.0)
    assert throttle() and not throttle() and throttle(force=True)

"""Prints: the print schedule, the CLI's --size 8192 and --max-memory, a stopped print's image."""

from dataclasses import replace

import numpy as np
import pytest

from stransfer.cli import transfer as cli
from stransfer.core import plan as plan_module
from stransfer.core.plan import plan_run, seconds_left
from stransfer.core.settings import TransferSettings
from stransfer.engine.run import transfer
from stransfer.engine.tiled import FIXED_BYTES, TiledObjective


def test_the_default_512_px_run_keeps_its_plan():
    plan = plan_run((3072, 4096), TransferSettings(), 32)
    assert plan.shapes == ((384, 512),) and plan.steps == (60,) and not plan.is_print


def test_a_print_goes_coarse_to_fine_in_2x_steps_with_most_steps_coarse():
    plan = plan_run((3072, 4096), TransferSettings(size=4096), 32)
    assert plan.is_print
    assert plan.shapes == ((384, 512), (768, 1024), (1536, 2048), (3072, 4096))
    assert sum(plan.steps) == 60
    assert list(plan.steps) == sorted(plan.steps, reverse=True) and plan.steps[-1] >= 1
    # Most of the work is not at the top scale, yet the top costs the most per step.
    assert plan.steps[0] > 0.5 * sum(plan.steps)
    eight = plan_run((3072, 4096), TransferSettings(size=8192, steps=40), 32)
    assert eight.output_shape == (6144, 8192) and len(eight.shapes) == 5
    # The plan states its time from a measured rate (seconds per full-size step): the top
    # scale's steps at full cost, each coarser step at a quarter of the next finer one's.
    top = plan.steps[-1] * 100.0
    assert top < seconds_left(plan, 100.0) < top + sum(plan.steps[:-1]) * 25.0


def test_a_print_at_8192_px_that_cannot_fit_says_so_in_one_line(tmp_path, capsys):
    from tests.test_cli import noise_image

    content = noise_image(tmp_path / "c.png", 60, 120)
    style = noise_image(tmp_path / "s.png", 48, 48)
    code = cli.main(
        [str(content), str(style), "-o", str(tmp_path / "o.png"), "--weights", "random",
         "--size", "8192", "--max-memory", "2GB"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "o.png").exists()
    line = [ln for ln in err.splitlines() if "error" in ln][-1]
    assert "8192x4096" in line and "more than the memory budget of 2.0 GiB" in line
    code = cli.main(
        [str(content), str(style), "-o", str(tmp_path / "o.png"), "--max-memory", "lots"]
    )
    assert code == 2 and "--max-memory" in capsys.readouterr().err


@pytest.fixture
def small_prints(monkeypatch):
    """The print schedule from 64 px up (as from 512 px at print sizes), so that a print runs
    in CI in seconds on random weights."""
    monkeypatch.setattr(plan_module, "PRINT_FROM", 128)
    monkeypatch.setattr(plan_module, "PRINT_START", 64)


def test_a_stopped_print_keeps_its_last_full_size_image(
    small_prints, vgg_random, content_img, style_img
):
    settings = TransferSettings(size=480, steps=30, init="content", precision="float32")
    plan = plan_run(content_img.shape[:2], settings, 32)
    assert plan.is_print and plan.shapes[-1] == (320, 480) and len(plan.shapes) == 4
    budget = int(FIXED_BYTES + 250 * 2**20)  # the top scale runs in tiles
    seen, tiles = [], []
    events = transfer(
        content_img, style_img, settings, vgg_random, max_memory=budget,
        should_stop=lambda: len(seen) >= 28,  # polled before step 29 is yielded
        on_tile=lambda *done: tiles.append(done),
    )  # fmt: skip
    for event in events:
        seen.append(event)
    last = seen[-1]
    assert plan.steps == (16, 8, 4, 2)
    assert last.status == "stopped" and last.step == 29 and last.scale == 4
    assert last.image.shape == (320, 480, 3) and last.image.dtype == np.uint8
    # Every frame, coarse ones too, is shown at the print's size: nothing is lost by stopping.
    assert all(e.image.shape == (320, 480, 3) for e in seen)
    assert [e.scale for e in seen] == [1] * 16 + [2] * 8 + [3] * 4 + [4]
    # Progress within a step, tile by tile: only the top scale is tiled in this budget.
    assert tiles and {scale for scale, _, _ in tiles} == {4} and tiles[-1][1] == tiles[-1][2]
    # The stopped frame is the optimised top-scale image, not an enlarged coarse one.
    assert np.abs(last.image.astype(int) - seen[-2].image).mean() > 0.1


def test_the_top_scale_of_a_print_is_tiled_in_a_small_budget(small_prints, vgg_random):
    from stransfer.engine.tiled import evaluator_for

    settings = replace(TransferSettings(size=480), precision="float32").validated()
    objective = vgg_random.objective(tuple(settings.content_layers), tuple(settings.style_layers))
    budget = int(FIXED_BYTES + 250 * 2**20)
    assert isinstance(evaluator_for(objective, (320, 480), budget), TiledObjective)
    assert evaluator_for(objective, (80, 120), budget) is objective


def test_the_api_accepts_print_jobs_within_its_work_limit():
    """A print's plan counts its pixel-steps scale by scale: the default 60 steps at 4096 px
    (mostly at 512-1024 px) plan less work than 60 steps at 2048 px, and fit the limit; an
    instant job may ask for 8192 px."""
    from stransfer.service.jobs import TooLarge
    from tests.test_service import _checked

    assert _checked({"size": 4096}).settings["size"] == 4096
    assert _checked({"size": 8192, "steps": 60}).settings["size"] == 8192
    assert _checked({"engine": "instant", "size": 8192}).settings["size"] == 8192
    with pytest.raises(TooLarge, match="pixel-steps"):
        _checked({"size": 8192, "steps": 2000})


def test_the_page_draws_a_print_small_and_keeps_small_pictures_as_they_are():
    import io

    from PIL import Image

    from stransfer.page.prints import SCREEN_SIDE, screen_png

    def png(width, height):
        out = io.BytesIO()
        Image.new("RGB", (width, height), (200, 30, 90)).save(out, format="PNG")
        return out.getvalue()

    small = png(800, 600)
    assert screen_png(small) is small
    with Image.open(io.BytesIO(screen_png(png(4096, 3072)))) as shown:
        assert shown.size == (SCREEN_SIDE, 768)


def test_the_page_offers_print_sizes(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_page_preview import ROOT

    monkeypatch.setenv("STRANSFER_WEIGHTS", "random")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    choice = at.selectbox(key="print_size")
    assert "4K print (4096 px)" in choice.options and "8K print (8192 px)" in choice.options
    choice.set_value("4K print (4096 px)").run()
    assert not at.exception

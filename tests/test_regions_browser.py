"""The page's Regions group in Chromium: paint a stroke, the preview follows only under it;
Run with the regions and Load settings puts them back; on a phone, upload a mask.

The real page (``python -m stransfer page``, warmed up) on the project's data/ images with
untrained weights for the optimiser; the instant preview uses the installed instant models.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.page_browser import (
    CHROMIUM_ARGS,
    page_server,
    run_and_wait,
    run_for_steps,
    set_number,
    wait_idle,
)
from stransfer.io.records import load_record

pytestmark = pytest.mark.slow

WIDE = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
PREVIEW_JS = """() => {
  const e = [...document.querySelectorAll('[data-testid=stImage]')]
    .find(e => e.textContent.includes('Instant preview'));
  return e ? e.querySelector('img')?.src ?? null : null;
}"""
CHANGED_JS = f"(old) => {{ const src = ({PREVIEW_JS})(); return src && src !== old; }}"
#: The issue's target: the preview follows a stroke within a second at 512 px.
STROKE_S = 1.0


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; apt-get install -y chromium")
        pytest.skip("Chromium is not installed; apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    data = tmp_path_factory.mktemp("regions-page")
    env = {"STRANSFER_WEIGHTS": "random", "STRANSFER_DATA": str(data / "jobs")}
    with page_server(env, log=data / "page.log") as running:
        yield running


def _open(browser, url: str, viewport: dict):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.locator(".st-key-run button").wait_for(state="attached")
    wait_idle(page)
    return page


def _regions(page, count: int) -> None:
    page.get_by_text("Regions: a style per area").click()
    wait_idle(page)
    set_number(page, "region_count", count)


def _preview(page) -> np.ndarray:
    src = page.evaluate(PREVIEW_JS)
    data = page.evaluate(
        "async (s) => Array.from(new Uint8Array(await (await fetch(s)).arrayBuffer()))", src
    )
    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB")).astype(int)


def _stroke(page, fraction_y: float) -> float:
    """Paint a horizontal stroke at ``fraction_y`` of the canvas; seconds until the preview
    shows it."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    old = page.evaluate(PREVIEW_JS)
    x, y = box["x"] + 10, box["y"] + box["height"] * fraction_y
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(x + i * box["width"] / 14, y, steps=2)
    page.mouse.up()
    released = time.monotonic()
    page.wait_for_function(CHANGED_JS, arg=old, timeout=30_000, polling=20)
    seconds = time.monotonic() - released
    wait_idle(page)
    return seconds


def test_a_stroke_changes_the_preview_only_under_it_and_run_keeps_the_regions(
    browser, url, tmp_path
):
    page = _open(browser, url, WIDE)
    _regions(page, 1)
    page.locator("canvas.upper-canvas").first.wait_for()
    wait_idle(page)
    page.wait_for_function(PREVIEW_JS)
    before = _preview(page)
    first = _stroke(page, 0.25)
    after = _preview(page)
    rows = np.abs(after - before).mean(axis=(1, 2))
    height = len(rows)
    # The stroke (24 px of a 192 px canvas at a quarter of its height) and a feathered border.
    under = rows[int(0.22 * height) : int(0.28 * height)]
    away = np.concatenate([rows[: int(0.12 * height)], rows[int(0.38 * height) :]])
    assert under.min() > 10, rows
    assert away.max() == 0, "the preview changed away from the stroke"
    second = _stroke(page, 0.75)
    painted = _preview(page)
    print(f"preview after a stroke: first {first:.2f} s, second {second:.2f} s")
    assert second <= STROKE_S
    # Run optimises with the region; its record keeps the mask, and Load settings restores it.
    run_for_steps(page, 2)
    run_and_wait(page, timeout_s=300)
    with page.expect_download() as download:
        page.locator(".st-key-download button").click()
    result = tmp_path / "result.png"
    download.value.save_as(result)
    record = load_record(result)
    kept = record.extra["regions"]
    assert [r["name"] for r in kept] == ["mask 1", "rest"]
    # The region's style is the job's second file; the rest gets the main style's share.
    assert kept[0]["style_weights"] == [0.0, 1.0] and kept[1]["style_weights"] == [100.0, 0.0]
    fresh = _open(browser, url, WIDE)
    fresh.get_by_text("Load settings").click()
    fresh.locator('[data-testid="stFileUploaderDropzoneInput"]').last.set_input_files(str(result))
    wait_idle(fresh)
    fresh.get_by_text("Regions: a style per area").click()
    wait_idle(fresh)
    assert fresh.locator(".st-key-region_count input").input_value() == "1"
    fresh.wait_for_function(PREVIEW_JS)
    restored = _preview(fresh)
    assert np.abs(restored - painted).mean() < 3, "the restored regions give the same preview"


def test_on_a_phone_a_mask_upload_and_a_style_pick_make_the_preview(browser, url, tmp_path):
    page = _open(browser, url, PHONE)
    page.locator('[data-testid="stSidebarCollapsedControl"] button, '
                 '[data-testid="stExpandSidebarButton"]').first.click()  # fmt: skip
    wait_idle(page)
    _regions(page, 1)
    mask = np.zeros((64, 64), np.uint8)
    mask[32:] = 255  # the lower half
    path = tmp_path / "lower.png"
    Image.fromarray(mask).save(path)
    page.locator(".st-key-region1_mask input[type=file]").set_input_files(str(path))
    wait_idle(page)
    page.wait_for_function(PREVIEW_JS)
    picture = _preview(page)
    plain_page = _open(browser, url, PHONE)
    plain_page.wait_for_function(PREVIEW_JS)
    plain = _preview(plain_page)
    rows = np.abs(picture - plain).mean(axis=(1, 2))
    height = len(rows)
    assert rows[: int(0.4 * height)].max() == 0 and rows[int(0.6 * height) :].min() > 5

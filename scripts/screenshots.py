"""Write the README's screenshots: ``python scripts/screenshots.py [OUT_DIR]`` (default assets/).

A real run with the offline VGG19 weights and the bundled images, in Chromium at 1400x900
(``screenshot_app.png``) and 390x844 (``screenshot_phone.png``); then Instant mode with a
built-in style (``screenshot_instant.png``, ``screenshot_instant_phone.png``). Jobs go to a
temporary job store.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_browser import (
    CHROMIUM_ARGS,
    PHONE,
    ROOT,
    WIDE,
    choose,
    chromium,
    page_server,
    run_and_wait,
    run_for_steps,
    wait_idle,
)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets"
    out.mkdir(parents=True, exist_ok=True)
    store = tempfile.TemporaryDirectory(prefix="stransfer-shots-")
    env = {"STRANSFER_WEIGHTS": "", "STRANSFER_DATA": store.name}
    with store, page_server(env=env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=WIDE)
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator(".st-key-run button").wait_for()
        wait_idle(page)
        choose(page, "content_file", "chelsea_cat.jpg")
        choose(page, "style_file", "swirls.jpg")
        run_for_steps(page, 25)
        page.locator(".st-key-size input[type=range]").focus()
        for _ in range((512 - 256) // 4):
            page.keyboard.press("ArrowLeft")
        wait_idle(page)
        seconds = run_and_wait(page)
        page.mouse.move(0, 0)
        time.sleep(1.5)  # the chart's last draw
        page.screenshot(path=out / "screenshot_app.png")
        print(f"{out / 'screenshot_app.png'} (run took {seconds:.1f} s)")
        phone = browser.new_page(viewport=PHONE)
        phone.goto(url + page.url[page.url.index("?") :])  # the same job, re-attached
        phone.locator('[data-testid="stImage"]').filter(has_text="Output").wait_for()
        time.sleep(1.5)
        phone.screenshot(path=out / "screenshot_phone.png")
        print(out / "screenshot_phone.png")
        instant_shots(browser, url, out)
        browser.close()


def instant_shots(browser, url: str, out: Path) -> None:
    """Instant mode: a built-in style, its preview, then an instant job's result."""
    for viewport, name in (
        (WIDE, "screenshot_instant.png"),
        (PHONE, "screenshot_instant_phone.png"),
    ):
        page = browser.new_page(viewport=viewport)
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator(".st-key-run button").wait_for()
        wait_idle(page)
        if viewport is not WIDE:  # the sidebar starts closed on a narrow screen
            page.locator('[data-testid="stExpandSidebarButton"]').click()
        page.locator(".st-key-engine").get_by_text("Instant", exact=True).click()
        wait_idle(page)
        choose(page, "content_file", "chelsea_cat.jpg")
        choose(page, "style_file", "Built-in 7")
        seconds = run_and_wait(page)  # Run closes the sidebar on a phone
        print(f"instant run took {seconds:.1f} s")
        page.mouse.move(0, 0)
        time.sleep(1.0)
        page.screenshot(path=out / name)
        print(out / name)
        page.close()


if __name__ == "__main__":
    main()

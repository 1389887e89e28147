"""The page's default paths at their default values, the way a newcomer meets them (issue 18).

Nothing is shrunk: the ImageNet VGG19 that ``make setup`` installs, the bundled pictures in
``data/``, every widget at its default (a 60 s time budget at 512 px). The page is started as
``make run`` starts it (``python -m stransfer page``) and once as ``streamlit run app.py``
(what environment.yml tells conda users), each pressed Run with nothing changed must end "Done"
with a PNG download within the time the sidebar promised. Instant Run, Continue after Stop
and Load settings of a default result are checked the same way once. A minute or so each, in
the default suite all the same (marked slow, like the other browser tests).

The promise excludes the model's first load ("the first run also loads the model"), so the
click-to-download time may pass the budget by START_ALLOWANCE_S; the run's own time (its
record's ``seconds``, counted from the start of the job's work) may not pass it at all.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_e2e_browser import (
    _INIT_JS,
    APP_COMMAND,
    PAGE_COMMAND,
    VIEWPORT,
    Server,
    _missing,
    browser,  # noqa: F401 - the module's browser fixture, shared
    click_run,
    ended,
    set_number,
    set_slider,
    state,
    streamlit_server,
    wait_idle,
    wait_server_idle,
)

from stransfer.core.settings import MAX_STEPS
from stransfer.io.records import load_record

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONTENT, DEFAULT_STYLE = "astronaut.jpg", "brush_strokes.jpg"  # first in data/
DEFAULT_BUDGET_S = 60.0
DEFAULT_SIZE = 512
#: What the promise leaves out: the worker's first model load (5-15 s on 2 busy cores) and the
#: page's polls. Seen: 62.6 s from click to "Done" with a warm worker before the budget
#: counted the instant start.
START_ALLOWANCE_S = 25.0
RUN_LIMIT_S = DEFAULT_BUDGET_S + START_ALLOWANCE_S + 60  # the test's own bound, to fail fast
INSTANT_LIMIT_S = 15.0  # "in about a second", on a shared 2-core machine, through the queue


def _weights_installed() -> None:
    from stransfer.weights import local_weights

    if local_weights("VGG19") is None:
        _missing(
            "the offline VGG19 is not installed; run: python -m stransfer.weights install vgg19"
        )


def _env(tmp: Path) -> dict[str, str]:
    """The environment of ``make run``: no test weights, no test pictures; a fresh job store."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("STRANSFER_WEIGHTS", "STRANSFER_DATA_DIR")
    }
    return {**env, "STRANSFER_DATA": str(tmp / "jobs"), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def page_server(browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: F811
    _weights_installed()
    tmp = tmp_path_factory.mktemp("defaults")
    with streamlit_server(_env(tmp), tmp / "page.log", PAGE_COMMAND) as running:
        yield running


@pytest.fixture(scope="module")
def default_result() -> dict:
    """What the first default run left for the later tests (its PNG, job address)."""
    return {}


def open_page(browser, server: Server, viewport: dict = VIEWPORT, url: str = ""):  # noqa: F811
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.add_init_script(_INIT_JS)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url + url)
    page.locator(".st-key-run button").wait_for(state="attached")
    page.locator('[data-testid="stImage"] img').first.wait_for()
    wait_idle(page)
    return page


@pytest.fixture
def new_page(browser, page_server: Server) -> Iterator[Callable]:  # noqa: F811
    pages = []

    def open_app(viewport: dict = VIEWPORT, url: str = ""):
        pages.append(open_page(browser, page_server, viewport, url))
        return pages[-1]

    yield open_app
    for page in pages:
        page.context.close()


def promised_seconds(page) -> float:
    """The time the sidebar promises under Run, in seconds ('Run ends within 1m00s ...')."""
    captions = " ".join(state(page)["captions"])
    found = re.search(r"Run ends within (?:(\d+)m)?(\d+)s", captions)
    assert found, captions
    return 60 * int(found.group(1) or 0) + int(found.group(2))


def download(page, key: str = "download") -> tuple[bytes, str]:
    """Click a download button; return the file's bytes and name."""
    with page.expect_download() as info:
        page.locator(f".st-key-{key} button").click()
    return Path(info.value.path()).read_bytes(), info.value.suggested_filename


def wait_end(page, limit_s: float, until: Callable[[dict], bool] | None = None) -> list[dict]:
    """Poll the page until the run has ended (a status, the download, an idle script) or
    ``until``; no error may show meanwhile. Returns every state seen."""
    seen = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        now = state(page)
        seen.append(now)
        assert not now["exception"], now
        errors = [a for a in now["alerts"] if not a.startswith(("Done", "Stopped"))]
        assert not errors, now
        over = now["download"] and ended(now) and now["script"] == "notRunning"
        if until(now) if until else over:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"not ended in {limit_s:.0f} s: {state(page)}")


def press_default_run(page) -> tuple[bytes, float]:
    """Press Run with every default, wait for "Done" and download the PNG; check the result
    and the promise. Returns the PNG and the seconds from the click to the download."""
    assert page.locator(".st-key-content_file [role=combobox]").input_value() == DEFAULT_CONTENT
    assert page.locator(".st-key-style_file [role=combobox]").input_value() == DEFAULT_STYLE
    promise = promised_seconds(page)
    assert promise == DEFAULT_BUDGET_S
    started = click_run(page).started
    wait_end(page, RUN_LIMIT_S)
    png, name = download(page)
    wall = time.monotonic() - started
    alerts = state(page)["alerts"]
    assert any(a.startswith("Done: ") and a.endswith("(time budget)") for a in alerts), alerts
    record = check_png(png, DEFAULT_SIZE)
    assert name == "stransfer_astronaut_brush_strokes.png"
    settings = record.settings
    assert (settings["model"], settings["size"], settings["max_seconds"]) == (
        "VGG19",
        DEFAULT_SIZE,
        DEFAULT_BUDGET_S,
    )
    assert settings["steps"] == MAX_STEPS and record.steps_done >= 5, record.steps_done
    assert record.extra["content"] == DEFAULT_CONTENT
    assert within(record, promise), (record.seconds, record.steps_done)
    assert wall <= promise + START_ALLOWANCE_S, wall
    print(
        f"\n[defaults] Run: {record.steps_done} steps, the run {record.seconds:.1f} s, "
        f"click to download {wall:.1f} s (promised {promise:.0f} s)"
    )
    return png, wall


def step_now(now: dict) -> int:
    """The step a budget run's progress bar shows ('step 3 · 12s of 1m00s'), 0 before one."""
    found = re.match(r"step (\d+)", now["progress"] or "")
    return int(found.group(1)) if found else 0


def within(record, budget: float) -> bool:
    """The run's own time kept the budget: the engine starts no step that would end past it
    by its last step's time, so only a slower step than that one (a busy machine) may pass
    it, by at most about a mean step."""
    return record.seconds <= budget + record.seconds / max(1, record.steps_done)


def check_png(png: bytes, long_side: int):
    """A whole RGB PNG of that long side; returns its run record."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as probe:
        probe.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGB" and max(image.size) == long_side, (image.mode, image.size)
    return load_record(png)


# -- tests -------------------------------------------------------------------------------------


def test_default_run_through_make_run(new_page, default_result: dict) -> None:
    page = new_page()
    png, _ = press_default_run(page)
    default_result.update(png=png, query=page.url[page.url.index("?") :])


def test_load_settings_and_job_link_of_a_default_result(
    new_page, default_result: dict, tmp_path: Path
) -> None:
    """Load settings of the default result puts the defaults back; the result's ``?job=``
    address opened in a new tab shows it, done, with its download and no "other settings"."""
    if "png" not in default_result:
        pytest.skip("needs the default run's result (test_default_run_through_make_run)")
    page = new_page()
    set_number(page, "max_seconds", 30)
    set_slider(page, "size", 300, low=100, step=4)
    assert promised_seconds(page) == 30
    upload = tmp_path / "stransfer_astronaut_brush_strokes.png"
    upload.write_bytes(default_result["png"])
    page.locator(".st-key-load_settings input[type=file]").set_input_files(upload)
    page.get_by_text(f"Loaded {upload.name}.").wait_for()
    wait_idle(page)
    assert page.locator(".st-key-size input[type=range]").input_value() == str(DEFAULT_SIZE)
    assert page.locator(".st-key-max_seconds input").input_value() == "60"
    assert promised_seconds(page) == DEFAULT_BUDGET_S
    assert page.locator(".st-key-content_file [role=combobox]").input_value() == DEFAULT_CONTENT
    assert not [a for a in state(page)["alerts"] if not a.startswith("Loaded")]

    tab = new_page(url=default_result["query"])
    seen = wait_end(tab, 30)[-1]
    assert any(a.startswith("Done: ") for a in seen["alerts"]), seen
    assert not any(c.startswith("Made with other settings") for c in seen["captions"]), seen
    png, name = download(tab)
    assert png == default_result["png"] and name == "stransfer_astronaut_brush_strokes.png"


def test_continue_after_stop_at_defaults(new_page, page_server: Server) -> None:
    """Run, Stop after a few steps, Continue, all at the defaults: the continued run counts on
    from the stop, offers no download of the stopped result while it runs, and ends "Done"
    within the promise with a PNG whose record says where it went on from."""
    wait_server_idle(page_server)
    page = new_page()
    click_run(page)
    wait_end(page, RUN_LIMIT_S, until=lambda now: step_now(now) >= 3)
    page.locator(".st-key-stop button").click()
    stopped = wait_end(page, 60)[-1]
    found = [a for a in stopped["alerts"] if a.startswith("Stopped at step ")]
    assert found, stopped
    step = int(found[0].split()[-1])
    assert stopped["download"] and stopped["src"]

    page.locator(".st-key-continue button").first.click()
    started = time.monotonic()
    page.wait_for_function(
        """() => ![...document.querySelectorAll('[data-testid="stAlert"]')]
            .some(a => a.textContent.startsWith('Stopped'))"""
    )
    seen = wait_end(page, RUN_LIMIT_S)
    during = [s for s in seen if not ended(s)]
    assert during and not any(s["download"] for s in during), "old downloads during the run"
    assert all(s["src"] for s in seen), "the picture stays on screen"
    png, _ = download(page)
    wall = time.monotonic() - started
    record = check_png(png, DEFAULT_SIZE)
    assert record.extra["continued_from_step"] == step
    done = record.steps_done - step
    final = seen[-1]
    assert f"Done: steps {step + 1}-{record.steps_done} in" in " ".join(final["alerts"]), final
    assert done >= 1
    assert final["progress"].startswith(f"step {record.steps_done} ·"), final["progress"]
    assert within(record, DEFAULT_BUDGET_S) and wall <= DEFAULT_BUDGET_S + START_ALLOWANCE_S


def test_instant_run_at_defaults(new_page, page_server: Server) -> None:
    wait_server_idle(page_server)
    page = new_page()
    page.locator(".st-key-engine").get_by_text("Instant", exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stImage"]').filter(has_text="Instant preview").wait_for()
    captions = " ".join(state(page)["captions"])
    assert "Run paints at 512 px in about a second" in captions, captions
    started = click_run(page).started
    seen = wait_end(page, INSTANT_LIMIT_S * 4)[-1]
    png, name = download(page)
    wall = time.monotonic() - started
    assert any(a.startswith("Done: painted in") for a in seen["alerts"]), seen
    record = check_png(png, 512)
    assert record.extra["engine"] == "instant" and record.extra["content"] == DEFAULT_CONTENT
    assert name == "stransfer_astronaut_brush_strokes.png"
    assert wall <= INSTANT_LIMIT_S, wall
    print(f"\n[defaults] Instant Run: click to download {wall:.1f} s")


def test_default_run_through_streamlit_run_app(browser, tmp_path: Path) -> None:  # noqa: F811
    """``streamlit run app.py``, as environment.yml tells conda users: no warm-up, so the first
    Run also starts the worker and loads the model (what START_ALLOWANCE_S is for)."""
    _weights_installed()
    with streamlit_server(_env(tmp_path), tmp_path / "app.log", APP_COMMAND) as server:
        page = open_page(browser, server)
        try:
            press_default_run(page)
        finally:
            page.context.close()

"""End to end: the real Streamlit server driven by headless Chromium (Playwright).

A module-scoped fixture starts the page as ``make run`` does (``python -m stransfer page``,
which warms it up before its first visitor) on a free localhost port with untrained
weights (``STRANSFER_WEIGHTS=random``) and small generated images in ``STRANSFER_DATA_DIR``;
each test opens its own browser context, i.e. its own Streamlit session. One server serves the
whole module (the first test is its first visitor); the page's runner queues jobs, so tests that run
jobs wait for the server to be idle first.

Chromium comes from the system (``apt-get install -y chromium``), never from
``playwright install``. Without it the tests are skipped, except when ``CI`` is set, where a
missing browser is a failure. ``STRANSFER_SCREENSHOTS=DIR`` also saves each test's
screenshot into DIR. The README's screenshots come from ``scripts/screenshots.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from stransfer.io.images import image_sha256, load_image
from stransfer.io.records import RunRecord, load_record
from stransfer.page.warm import READY as READY_LINE
from stransfer.service.store import Store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "install it with: apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
SIZE = 128  # long side of the output in the fast runs
POLL_S = 0.05
RUN_TIMEOUT_S = 180.0
PEAK_RSS_LIMIT = 6 * 2**30
IDLE_LIMIT_S = 0.5  # a widget change until drawn and idle (median)
FIRST_DRAW_S = 2.5  # pickers and first image after the shell, on a loaded 2-core machine
# Generated inputs: two contents with opposite aspect ratios, so that each session's output
# shows by its shape which content it was made from.
CONTENTS = {"wide.png": (80, 160), "tall.png": (160, 80)}  # name -> (height, width)
STYLES = {"stripes.png": (96, 96)}


def _missing(what: str) -> None:
    """Skip (or, on CI, fail) when the browser stack is not installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set, so this is a failure, not a skip)")
    pytest.skip(what)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        _missing(f"Chromium is not installed; {INSTALL_HINT}")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the server --------------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``stransfer page``: its URL, log and a peak-RSS monitor."""

    url: str
    process: subprocess.Popen
    log: Path
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def rss(self) -> int:
        """Resident memory of the server and any children it started."""
        proc = psutil.Process(self.process.pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def watch_memory(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.rss())

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


PAGE_COMMAND = ("-m", "stransfer", "page")  # as ``make run`` starts it (warmed up)
APP_COMMAND = ("-m", "streamlit", "run", "app.py")  # as environment.yml tells conda users


@contextlib.contextmanager
def streamlit_server(
    env: dict[str, str], log: Path, entry: tuple[str, ...] = PAGE_COMMAND
) -> Iterator[Server]:
    port = _free_port()
    command = [
        sys.executable, *entry,
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy:\n{server.log_tail()}")
            time.sleep(0.2)
        while entry == PAGE_COMMAND and READY_LINE not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"the page did not warm up:\n{server.log_tail()}")
            time.sleep(0.1)
        watcher = threading.Thread(target=server.watch_memory, daemon=True)
        watcher.start()
        yield server
    finally:
        server._stop.set()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colourful structure (not flat), so every optimisation step changes the output."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [
        np.sin(rng.uniform(3, 12) * xx * 6.3 + rng.uniform(0, 6.3)) * np.cos(yy * 6.3 * (c + 1))
        for c in range(3)
    ]
    return np.clip((np.stack(planes, -1) + 1) * 127.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def e2e_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e_data")
    for role, images in (("content", CONTENTS), ("style", STYLES)):
        (root / role).mkdir()
        for seed, (name, (height, width)) in enumerate(images.items()):
            Image.fromarray(_image(height, width, seed)).save(root / role / name)
    return root


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed; run: pip install -r requirements-dev.txt")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(browser, e2e_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        **os.environ,
        "STRANSFER_WEIGHTS": "random",
        "STRANSFER_DATA_DIR": str(e2e_data),
        "STRANSFER_DATA": str(e2e_data / "jobs"),  # the job service's store, where there is one
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = tmp_path_factory.mktemp("e2e_server") / "streamlit.log"
    with streamlit_server(env, log) as running:
        yield running


@pytest.fixture
def new_page(browser, server: Server) -> Iterator[Callable]:
    """Open the app in a fresh browser context (a new Streamlit session) per call."""
    contexts = []

    def open_app(viewport: dict = VIEWPORT, url: str = ""):
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        context.add_init_script(_INIT_JS)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url + url)
        page.locator(".st-key-run button").wait_for(state="attached")
        page.locator(".st-key-size").wait_for(state="attached")
        wait_idle(page)
        return page

    yield open_app
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


# -- driving the page --------------------------------------------------------------------------

# Installed in every page before the app loads: finds the output image, and records every
# distinct output <img> src it ever shows (a MutationObserver misses nothing between polls).
_INIT_JS = """
window.__stxOutput = () => {
  const images = [...document.querySelectorAll('[data-testid="stImage"]')];
  return images.find(e => (e.querySelector('[data-testid="stImageCaption"]')
      ?.textContent || '').startsWith('Output')) || null;
};
window.__stxSources = [];
window.__stxMarks = {};
new MutationObserver(() => {
  const marks = window.__stxMarks;
  const now = performance.now();
  if (!marks.shell && document.querySelector('[data-testid="stApp"]')) marks.shell = now;
  const titles = [...document.querySelectorAll('h1')];
  if (!marks.title && titles.some(h => h.textContent.includes('Stransfer'))) marks.title = now;
  for (const img of document.querySelectorAll('[data-testid="stImage"] img')) {
    const seen = () => { marks.image = marks.image || performance.now(); };
    if (img.complete && img.naturalWidth) seen(); else img.addEventListener('load', seen);
  }
  if (!marks.picker && document.querySelector('.st-key-content_file [role=combobox]'))
    marks.picker = performance.now();
  const src = window.__stxOutput()?.querySelector('img')?.getAttribute('src');
  const seen = window.__stxSources;
  if (src && seen[seen.length - 1] !== src) seen.push(src);
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
"""

_STATE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const output = window.__stxOutput();
  const progress = document.querySelector('[data-testid="stProgress"]');
  const alerts = [...document.querySelectorAll('[data-testid="stAlert"]')];
  return {
    script: app ? app.getAttribute('data-test-script-state') : null,
    src: output ? output.querySelector('img')?.getAttribute('src') ?? null : null,
    caption: output ? output.querySelector('[data-testid="stImageCaption"]').textContent : null,
    progress: progress ? progress.textContent : null,
    alerts: alerts.map(a => a.textContent),
    download: !!document.querySelector('.st-key-download button'),
    captions: [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
      .map(c => c.textContent),
    exception: !!document.querySelector('[data-testid="stException"]'),
    observed: [...window.__stxSources],
  };
}"""


def state(page) -> dict:
    return page.evaluate(_STATE_JS)


def wait_idle(page, timeout_s: float = 90.0, settle_s: float = 0.3) -> dict:
    """Wait until the script has not been running for ``settle_s`` (reruns can chain)."""
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while time.monotonic() < deadline:
        now = state(page)
        if now["script"] == "notRunning":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= settle_s:
                return now
        else:
            idle_since = None
        time.sleep(POLL_S)
    raise AssertionError(f"the page stayed busy for {timeout_s:.0f} s: {state(page)}")


def choose(page, key: str, option: str) -> None:
    box = page.locator(f".st-key-{key} [role=combobox]")
    if box.input_value() == option:
        return
    box.click()
    page.keyboard.type(option)  # filters the list: the popup may have no room to open fully
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)
    assert box.input_value() == option


def set_number(page, key: str, value: float) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    wait_idle(page)


def set_slider(page, key: str, value: int, low: int, step: int) -> None:
    """Home, then arrow keys: few value changes, so few reruns (each costs a GC)."""
    thumb = page.locator(f".st-key-{key} input[type=range]")
    thumb.focus()
    thumb.press("Home")
    for _ in range((value - low) // step):
        thumb.press("ArrowRight")
    wait_idle(page)
    assert int(float(thumb.input_value())) == value


def run_for_steps(page) -> None:
    page.locator(".st-key-run_for").get_by_text("a number of steps").click()
    page.locator(".st-key-steps input").wait_for()
    wait_idle(page)


def configure(
    page, content: str, style: str, *, steps: int, size: int = SIZE, model: str = "VGG19"
) -> None:
    choose(page, "content_file", content)
    choose(page, "style_file", style)
    choose(page, "model", model)
    run_for_steps(page)
    set_number(page, "steps", steps)
    set_slider(page, "size", size, low=100, step=4)


@dataclass
class Timeline:
    """What the browser showed during a run, polled every POLL_S."""

    sources: list[str] = field(default_factory=list)  # distinct output <img> sources, in order
    observed: list[str] = field(default_factory=list)  # the same, as the page's observer saw it
    progress: list[str] = field(default_factory=list)  # distinct progress texts, in order
    final: dict = field(default_factory=dict)
    started: float = 0.0

    def see(self, now: dict) -> None:
        if now["src"] and (not self.sources or self.sources[-1] != now["src"]):
            self.sources.append(now["src"])
        if now["progress"] and (not self.progress or self.progress[-1] != now["progress"]):
            self.progress.append(now["progress"])
        self.observed = now["observed"]


def step_of(progress: str | None) -> tuple[int, int]:
    """(step, steps) from 'step 3/5' or 'step 3/5 · switching to 128x64'."""
    assert progress and progress.startswith("step "), progress
    done, total = progress.split()[1].split("/")
    return int(done), int(total)


def ended(now: dict) -> bool:
    return any(a.startswith(("Done:", "Stopped")) for a in now["alerts"])


def click_run(page) -> Timeline:
    timeline = Timeline(started=time.monotonic())
    page.evaluate("() => { window.__stxSources = []; }")
    page.locator(".st-key-run button").click()
    return timeline


def follow(page, timeline: Timeline, until: Callable[[dict], bool] | None = None) -> Timeline:
    """Poll until the run ends (a status message and an idle script) or ``until`` is true."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        now = state(page)
        timeline.see(now)
        assert not now["exception"], now
        if until is not None and until(now):
            timeline.final = now
            return timeline
        finished = now["download"] and ended(now) and now["script"] == "notRunning"
        if until is None and finished:
            timeline.final = wait_idle(page)
            timeline.see(timeline.final)
            return timeline
        time.sleep(POLL_S)
    raise AssertionError(f"the run did not end in {RUN_TIMEOUT_S:.0f} s: {state(page)}")


def download_png(page) -> tuple[Image.Image, RunRecord, str]:
    """Click 'Download PNG'; return the decoded image, its run record and the file name."""
    with page.expect_download() as info:
        page.locator(".st-key-download button").click()
    download = info.value
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as probe:
        probe.verify()  # checksums of every chunk
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG" and image.mode == "RGB"
    return image, load_record(data), download.suggested_filename


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    shots = os.environ.get("STRANSFER_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(shots) / path.name)
    return path


def content_hash(data: Path, name: str) -> str:
    return image_sha256(load_image(data / "content" / name))


def expected_shape(content: str) -> tuple[int, int]:
    """(width, height) of the output for ``content`` at SIZE."""
    height, width = CONTENTS[content]
    scale = SIZE / max(height, width)
    return round(width * scale), round(height * scale)


def wait_server_idle(server: Server, timeout_s: float = 60.0) -> None:
    """Wait until no job runs (the runner is one queue per server; a test starts alone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        time.sleep(0.5)
        if server.cpu_seconds() - before < 0.2:
            return
    raise AssertionError("the server stayed busy")


def box(page, selector: str) -> dict:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


def heading_y(page, text: str) -> float:
    return box(page, f'[data-testid="stHeading"]:has-text("{text}")')["y"]


# -- tests -------------------------------------------------------------------------------------


def test_first_visit_draws_within_a_second(browser, server: Server, capsys) -> None:
    """The server's first visitor: title, pickers and images soon after the page's shell is up
    (nothing waits for TensorFlow any more: it took 10-13 s; the warm-up did the pictures, the
    preview and the worker before the visit). Streamlit's own front end needs 0.1-1 s to draw
    a trivial page's sidebar and an image on a busy 2-core machine (the title took 1.08 s once
    beside the other test worker), so all get FIRST_DRAW_S here; ``python -m bench.page --only
    visit`` measures the issue's 1 s for the title on a quiet machine. The numbers are
    printed."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(_INIT_JS)
    try:
        page = context.new_page()
        started = time.monotonic()
        page.goto(server.url)
        page.locator('[data-testid="stImage"] img').first.wait_for()
        page.wait_for_function("() => window.__stxMarks.image")
        wall = time.monotonic() - started
        marks = page.evaluate("() => window.__stxMarks")
    finally:
        context.close()
    title, picker, image = (marks[k] - marks["shell"] for k in ("title", "picker", "image"))
    with capsys.disabled():
        print(
            f"\n[e2e] cold first visit: shell {marks['shell'] / 1e3:.2f} s after navigation; "
            f"then title +{title / 1e3:.2f} s, pickers +{picker / 1e3:.2f} s, "
            f"first image +{image / 1e3:.2f} s (navigation to image {wall:.2f} s)"
        )
    assert max(title, picker, image) < FIRST_DRAW_S * 1000, marks
    warmed = next(line for line in server.log_tail(200).splitlines() if READY_LINE in line)
    assert "2 pictures decoded" in warmed and "job service started" in warmed, warmed
    assert "tensorflow" not in server.log.read_text(errors="replace").lower()


def test_idle_widget_changes_feel_instant(new_page, capsys) -> None:
    """Time from a click on the time budget's + until the server's answer is drawn (the
    promised time under Run changes) and the script is idle again. (Sliders are not used:
    Streamlit's front end debounces them for 200 ms before it even sends the value.)"""
    from stransfer.core.events import format_duration

    page = new_page()
    waits = []
    plus = page.locator(".st-key-max_seconds [data-testid=stNumberInputStepUp]")
    for budget in range(70, 160, 10):
        started = time.monotonic()
        plus.click()
        page.wait_for_function(
            """text => document.querySelector('[data-testid="stApp"]')
                 .getAttribute('data-test-script-state') === 'notRunning'
               && [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
                 .some(c => c.textContent.startsWith(text))""",
            arg=f"Run ends within {format_duration(budget)}",
            polling=10,
        )
        waits.append(time.monotonic() - started)
        time.sleep(0.3)
    waits.sort()
    median = waits[len(waits) // 2]
    with capsys.disabled():
        print(
            f"\n[e2e] idle widget change until drawn and idle: median {median:.3f} s, "
            f"all {[round(w, 3) for w in waits]}"
        )
    # Issue 9's target is 0.2 s; a one-widget Streamlit page measures 0.17 s on this shared
    # machine under load, this page 0.3-0.4 s (it was 0.8-1.3 s with the engine in the script).
    assert median <= IDLE_LIMIT_S, waits


def test_sidebar_essentials_above_the_fold(new_page, tmp_path: Path) -> None:
    page = new_page()
    for key in ("run", "content_file", "style_file", "model", "run_for", "max_seconds", "size"):
        found = box(page, f".st-key-{key}")
        assert found["y"] + found["height"] <= VIEWPORT["height"], (key, found)
    strength = box(page, ".st-key-strength")
    assert strength["y"] < VIEWPORT["height"], strength
    labels = [t.strip() for t in page.locator('[data-testid="stWidgetLabel"]').all_text_contents()]
    assert "Output size (long side, px)" in labels and "Strength" in labels
    assert not any("Intermediate" in label for label in labels)
    # Thumbnails once: in the main area, not in the sidebar.
    assert page.locator('[data-testid="stSidebar"] [data-testid="stImage"]').count() == 0
    # Nothing pokes past the sidebar's right edge.
    sidebar = box(page, '[data-testid="stSidebar"]')
    right = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll(
              '[data-testid="stSidebarUserContent"] *')]
            .filter(e => e.checkVisibility({opacityProperty: true, visibilityProperty: true}))
            .filter(e => !e.matches('input[type=range]'))  // clipped to 1 px, for screen readers
            .map(e => e.getBoundingClientRect()).filter(r => r.width > 0).map(r => r.right))"""
    )
    assert right <= sidebar["x"] + sidebar["width"], (right, sidebar)
    assert "Run ends within 1m00s" in " ".join(state(page)["captions"])
    screenshot(page, tmp_path, "e2e_wide_idle")


#: Steps of the streaming test: enough that a warm worker's run spans several preview frames
#: (frames come at most every 0.5 s), so seeing two different frames is not left to chance.
STREAM_STEPS = 15


def test_run_streams_images_and_downloads_a_png(
    new_page, server: Server, e2e_data: Path, tmp_path: Path
) -> None:
    wait_server_idle(server)
    page = new_page()
    configure(page, "wide.png", "stripes.png", steps=STREAM_STEPS, model="VGG16")
    before = {name: heading_y(page, name) for name in ("Content", "Style", "Output")}
    timeline = follow(page, click_run(page), until=lambda s: step_of_or_0(s) >= 2)
    during = {name: heading_y(page, name) for name in ("Content", "Style", "Output")}
    timeline = follow(page, timeline)
    after = {name: heading_y(page, name) for name in ("Content", "Style", "Output")}
    assert before == during == after, (before, during, after)  # headings do not jump

    assert len(timeline.sources) >= 2 or len(timeline.observed) >= 2, timeline
    assert timeline.final["progress"].startswith(f"step {STREAM_STEPS}/{STREAM_STEPS}"), (
        timeline.final
    )
    assert [step_of(p)[1] for p in timeline.progress if p.startswith("step")] == [
        STREAM_STEPS
    ] * len([p for p in timeline.progress if p.startswith("step")])
    assert any(a.startswith(f"Done: {STREAM_STEPS} steps") for a in timeline.final["alerts"]), (
        timeline.final
    )
    width, height = expected_shape("wide.png")
    assert timeline.final["caption"] == f"Output · {width}x{height}"
    assert IDLE_TEXT not in timeline.final["alerts"]

    image, record, name = download_png(page)
    assert image.size == (width, height)
    assert name == "stransfer_wide_stripes.png"
    settings = record.settings
    assert (settings["model"], settings["steps"], settings["size"]) == ("VGG16", STREAM_STEPS, SIZE)
    assert record.steps_done == STREAM_STEPS
    assert record.content_sha256 == content_hash(e2e_data, "wide.png")
    # The gallery names what made the result.
    gallery = " ".join(page.locator('[data-testid="stImageCaption"]').all_text_contents())
    assert (
        f"Run 1 · wide.png × stripes.png · colour: style's · VGG16 · {STREAM_STEPS} steps"
        in gallery
    )
    assert screenshot(page, tmp_path, "e2e_run").stat().st_size > 0


IDLE_TEXT = "Choose a content and a style image, then press Run."


def test_stop_continue_and_stale_marking(new_page, server: Server, tmp_path: Path) -> None:
    wait_server_idle(server)
    page = new_page()
    configure(page, "tall.png", "stripes.png", steps=2000)
    timeline = follow(page, click_run(page), until=lambda s: step_of_or_0(s) >= 3)
    page.locator(".st-key-stop button").click()
    timeline = follow(page, timeline)
    step, steps = step_of(timeline.final["progress"])
    assert 3 <= step < steps == 2000
    assert f"Stopped at step {step} of 2000" in timeline.final["alerts"], timeline.final
    assert timeline.final["src"], "the last image must stay on screen"
    image, record, _ = download_png(page)
    assert image.size == expected_shape("tall.png")
    assert record.settings["steps"] == 2000 and record.steps_done == step

    # A changed setting marks the result as made with other settings.
    set_number(page, "steps", 3)
    now = state(page)
    assert any(c.startswith("Made with other settings") for c in now["captions"]), now
    assert now["src"] and now["download"]

    # Continue counts on from the stop, keeps the picture on screen and extends the chart; the
    # stopped result's downloads go while it runs (so they are not taken for the new one).
    page.locator(".st-key-continue button").first.click()
    page.wait_for_function(
        """() => ![...document.querySelectorAll('[data-testid="stAlert"]')]
            .some(a => a.textContent.startsWith('Stopped'))"""
    )
    seen = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        now = state(page)
        assert not now["exception"], now
        seen.append(now)
        if ended(now) and now["script"] == "notRunning" and now["download"]:
            break
        time.sleep(POLL_S)
    missing = [
        {k: s[k] for k in ("src", "progress", "download", "alerts")}
        for s in seen
        if not (s["src"] and s["progress"]) or (s["download"] and not ended(s))
    ]
    assert not missing, missing[:3]
    steps_seen = [step_of(s["progress"]) for s in seen if (s["progress"] or "").startswith("step")]
    assert steps_seen[-1] == (step + 3, step + 3), steps_seen
    assert all(done > step for done, total in steps_seen if total == step + 3), steps_seen
    done = f"Done: steps {step + 1}-{step + 3} in"  # as the progress bar counts them
    assert any(a.startswith(done) for a in seen[-1]["alerts"]), seen[-1]
    _, record, _ = download_png(page)
    assert record.steps_done == step + 3 and record.extra["continued_from_step"] == step
    screenshot(page, tmp_path, "e2e_continued")


def job_of(page) -> str:
    """The job a page shows, from its address (``?job=ID``)."""
    (job,) = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["job"]
    return job


def step_of_or_0(now: dict) -> int:
    progress = now["progress"] or ""
    return step_of(progress)[0] if progress.startswith("step") else 0


def test_widget_change_mid_run_lets_the_run_finish(new_page, server: Server) -> None:
    wait_server_idle(server)
    page = new_page()
    configure(page, "wide.png", "stripes.png", steps=12)
    timeline = follow(page, click_run(page), until=lambda s: step_of_or_0(s) >= 2)
    set_slider(page, "strength", 50, low=0, step=1)  # a change on the page, not to the run
    timeline = follow(page, timeline)
    assert timeline.final["progress"].startswith("step 12/12"), timeline.final
    assert any(c.startswith("Made with other settings") for c in timeline.final["captions"])


def test_reload_reattaches_to_the_running_job(new_page, server: Server) -> None:
    wait_server_idle(server)
    page = new_page()
    configure(page, "wide.png", "stripes.png", steps=2000)
    follow(page, click_run(page), until=lambda s: step_of_or_0(s) >= 2)
    url = page.url
    assert "job=" in url
    page.reload()
    page.locator(".st-key-run button").wait_for()
    second = new_page(url=url[url.index("?") :])  # a second tab with the same address
    for tab in (page, second):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and step_of_or_0(state(tab)) < 3:
            time.sleep(POLL_S)
        assert step_of(state(tab)["progress"])[1] == 2000, state(tab)
    second.locator(".st-key-stop button").click()  # Stop in the second tab cancels the job
    final = follow(page, Timeline())
    assert any(a.startswith("Stopped at step") for a in final.final["alerts"]), final.final


def test_two_sessions_queue_in_order_of_arrival(
    new_page, server: Server, e2e_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_server_idle(server)
    pages = {content: new_page() for content in CONTENTS}
    for content, page in pages.items():
        configure(page, content, "stripes.png", steps=20)
    server.peak_rss = 0  # measure this test only
    timelines = {content: click_run(page) for content, page in pages.items()}

    pending = dict(pages)
    queued_seen = False
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for content, page in list(pending.items()):
            now = state(page)
            timelines[content].see(now)
            assert not now["exception"], now
            queued_seen = queued_seen or (now["progress"] or "").startswith("queued, position 1")
            if now["download"] and ended(now) and now["script"] == "notRunning":
                timelines[content].final = now
                del pending[content]
        time.sleep(POLL_S)
    assert not pending, f"sessions still running: {list(pending)}"
    assert queued_seen, "the second visitor was never told its place in the queue"
    # Ended in order of arrival at the service, by its clock: two clicks a moment apart may
    # reach it in either order, and each page's poll sees the end at its own pace.
    store = Store(e2e_data / "jobs")
    jobs = [store.get(job_of(page)) for page in pages.values()]
    first, second = sorted(jobs, key=lambda view: view.created)
    assert first.final and second.final
    assert first.updated <= second.updated, "jobs must finish in order of arrival"

    for content, page in pages.items():
        final = timelines[content].final
        assert final["progress"].startswith("step 20/20"), final
        image, record, _ = download_png(page)
        assert image.size == expected_shape(content), content
        assert record.content_sha256 == content_hash(e2e_data, content)
    peak = max(server.peak_rss, server.rss())
    with capsys.disabled():
        print(f"\n[e2e] peak server RSS with two sessions: {peak / 2**20:.0f} MiB")
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**30:.2f} GiB"


def test_phone_output_first_and_run_closes_the_sidebar(
    new_page, server: Server, tmp_path: Path
) -> None:
    wait_server_idle(server)
    page = new_page(PHONE)
    page.wait_for_function(  # the page's CSS arrives with the first script run
        """() => {
          const y = t => [...document.querySelectorAll('[data-testid="stHeading"]')]
            .find(h => h.textContent.startsWith(t))?.getBoundingClientRect().y;
          return y('Output') < y('Content') && y('Content') < y('Style');
        }""",
        timeout=10_000,
    )
    assert heading_y(page, "Output") < heading_y(page, "Content") < heading_y(page, "Style")
    page.locator('[data-testid="stExpandSidebarButton"]').click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]')"
        ".getBoundingClientRect().right > 200"
    )
    run_for_steps(page)
    set_number(page, "steps", 3)
    set_slider(page, "size", SIZE, low=100, step=4)
    screenshot(page, tmp_path, "e2e_phone_sidebar")
    timeline = click_run(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]')"
        ".getBoundingClientRect().right <= 1",
        timeout=10_000,
    )
    follow(page, timeline)
    assert sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= 1
    output = page.locator('[data-testid="stImage"]').filter(has_text="Output").bounding_box()
    assert output["y"] < PHONE["height"], output  # the result is on the first screen
    screenshot(page, tmp_path, "e2e_phone_done")


def test_instant_mode_with_a_builtin_style(new_page, server: Server, tmp_path: Path) -> None:
    """Issue 8 item 2: the engine choice, a built-in style, its preview, an instant job."""
    wait_server_idle(server)
    page = new_page()
    page.locator(".st-key-engine").get_by_text("Instant", exact=True).click()
    wait_idle(page)
    assert page.locator(".st-key-continue").count() == 0  # the optimiser's buttons are gone
    choose(page, "style_file", "Built-in 3")
    preview = page.locator('[data-testid="stImage"]').filter(has_text="Instant preview")
    preview.wait_for(timeout=30_000)
    follow(page, click_run(page))
    now = state(page)
    assert any(a.startswith("Done: painted in") for a in now["alerts"]), now
    assert now["src"] and now["download"]
    _, record, _ = download_png(page)
    assert record.extra["engine"] == "instant"
    assert record.extra["builtin_weights"] == {"builtin:2": 1.0}  # "Built-in 3" is index 2
    screenshot(page, tmp_path, "e2e_instant")


def test_layers_group_fits_a_phone(new_page, tmp_path: Path) -> None:
    """Issue 18 item 5: the layer table's three columns fit the sidebar of a phone (the style
    column hid behind a sideways scroll), and no toolbar covers the table."""
    page = new_page(PHONE)
    page.locator('[data-testid="stExpandSidebarButton"]').click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Layers", exact=True).click()
    table = sidebar.locator('[data-testid="stDataFrame"]')
    table.wait_for()
    wait_idle(page)
    table.hover()
    widths = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stSidebar"] .dvn-scroller')]
            .map(e => [e.scrollWidth, e.clientWidth])"""
    )
    assert widths and all(scroll <= client + 1 for scroll, client in widths), widths
    toolbars = sidebar.locator('[data-testid="stElementToolbar"]')
    assert all(not bar.is_visible() for bar in toolbars.all())
    sidebar.locator('[data-testid="stVegaLiteChart"]').wait_for()
    screenshot(page, tmp_path, "e2e_phone_layers")

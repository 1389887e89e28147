"""End to end: the real Streamlit server driven by headless Chromium (Playwright).

A module-scoped fixture starts ``streamlit run app.py`` on a free localhost port with untrained
weights (``STRANSFER_WEIGHTS=random``) and small generated images in ``STRANSFER_DATA_DIR``;
each test opens its own browser context, i.e. its own Streamlit session.

Chromium comes from the system (``apt-get install -y chromium``), never from
``playwright install``. Without it the tests are skipped, except when ``CI`` is set, where a
missing browser is a failure. ``STRANSFER_SCREENSHOTS=DIR`` also saves each test's
screenshot into DIR, and enables ``test_screenshot_for_the_docs`` (real VGG19 weights,
bundled images), which writes ``DIR/screenshot_app.png``.
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

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
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
VIEWPORT = {"width": 1400, "height": 1000}
SIZE = 128  # long side of the output in the fast runs
POLL_S = 0.05
RUN_TIMEOUT_S = 180.0
PEAK_RSS_LIMIT = 6 * 2**30
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
    """A running ``streamlit run app.py``: its URL, log and a peak-RSS monitor."""

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


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], log: Path) -> Iterator[Server]:
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
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
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = tmp_path_factory.mktemp("e2e_server") / "streamlit.log"
    with streamlit_server(env, log) as running:
        yield running


@pytest.fixture
def new_page(browser, server: Server) -> Iterator[Callable]:
    """Open the app in a fresh browser context (a new Streamlit session) per call."""
    contexts = []

    def open_app():
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.add_init_script(_INIT_JS)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url)
        page.locator(".st-key-run button").wait_for()
        page.locator(".st-key-steps input").wait_for()
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
new MutationObserver(() => {
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


def configure(
    page, content: str, style: str, *, steps: int, size: int = SIZE, model: str = "VGG19"
) -> None:
    choose(page, "content_file", content)
    choose(page, "style_file", style)
    choose(page, "model", model)
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
    ended: float = 0.0

    def see(self, now: dict) -> None:
        if now["src"] and (not self.sources or self.sources[-1] != now["src"]):
            self.sources.append(now["src"])
        if now["progress"] and (not self.progress or self.progress[-1] != now["progress"]):
            self.progress.append(now["progress"])
        self.observed = now["observed"]


def step_of(progress: str | None) -> tuple[int, int]:
    """(step, steps) from 'step 3/5 · scale 2/2'."""
    assert progress and progress.startswith("step "), progress
    done, total = progress.split()[1].split("/")
    return int(done), int(total)


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
        finished = now["download"] and now["script"] == "notRunning" and now["progress"]
        if until is None and finished:
            timeline.final = wait_idle(page)
            timeline.see(timeline.final)
            timeline.ended = time.monotonic()
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


# -- tests -------------------------------------------------------------------------------------


def test_run_streams_images_and_downloads_a_png(new_page, e2e_data: Path, tmp_path: Path) -> None:
    page = new_page()
    configure(page, "wide.png", "stripes.png", steps=5, model="VGG16")
    timeline = follow(page, click_run(page))

    # The output was redrawn during the run: polled every 50 ms, and as the page saw it.
    assert len(timeline.sources) >= 3 or len(timeline.observed) >= 3, timeline
    assert timeline.final["progress"].startswith("step 5/5"), timeline.final
    assert [step_of(p)[1] for p in timeline.progress] == [5] * len(timeline.progress)
    assert any(a.startswith("Done: 5 steps") for a in timeline.final["alerts"]), timeline.final
    width, height = expected_shape("wide.png")
    assert timeline.final["caption"] == f"Output · {width}x{height}"

    image, record, name = download_png(page)
    assert image.size == (width, height)
    assert name == "stransfer_wide_stripes.png"
    settings = record.settings
    assert (settings["model"], settings["steps"], settings["size"]) == ("VGG16", 5, SIZE)
    assert record.steps_done == 5
    assert record.content_sha256 == content_hash(e2e_data, "wide.png")
    assert screenshot(page, tmp_path, "e2e_run").stat().st_size > 0


def test_stop_mid_run_keeps_the_image_and_the_download(new_page, tmp_path: Path) -> None:
    page = new_page()
    configure(page, "tall.png", "stripes.png", steps=2000)
    timeline = follow(page, click_run(page), until=lambda s: step_of_or_0(s) >= 3)
    page.locator(".st-key-stop button").click()
    timeline.final = wait_idle(page)
    timeline.see(timeline.final)

    step, steps = step_of(timeline.final["progress"])
    assert 3 <= step < steps == 2000
    assert f"Stopped at step {step} of 2000" in timeline.final["alerts"], timeline.final
    assert timeline.final["src"], "the last image must stay on screen"
    image, record, _ = download_png(page)
    assert image.size == expected_shape("tall.png")
    assert record.settings["steps"] == 2000 and record.steps_done == step
    # A later rerun (any widget) keeps showing the stopped result.
    set_number(page, "steps", 5)
    after = state(page)
    assert after["src"] and after["download"] and not after["exception"]
    screenshot(page, tmp_path, "e2e_stopped")


def test_widget_change_mid_run_keeps_the_image(new_page) -> None:
    page = new_page()
    configure(page, "wide.png", "stripes.png", steps=2000)
    follow(page, click_run(page), until=lambda s: step_of_or_0(s) >= 3)
    set_number(page, "steps", 5)  # any widget change reruns the script and cuts the run off
    now = wait_idle(page)
    step, _ = step_of(now["progress"])
    expected = f"The run was interrupted at step {step} of 2000 by a change on the page"
    assert expected in now["alerts"], now
    assert now["src"] and now["download"] and not now["exception"]


def step_of_or_0(now: dict) -> int:
    return step_of(now["progress"])[0] if now["progress"] else 0


def test_closing_the_tab_mid_run_leaves_the_server_usable(
    new_page, server: Server, tmp_path: Path
) -> None:
    doomed = new_page()
    configure(doomed, "wide.png", "stripes.png", steps=5000)
    follow(doomed, click_run(doomed), until=lambda s: step_of_or_0(s) >= 2)
    doomed.close()  # the session disconnects mid-run

    page = new_page()
    configure(page, "tall.png", "stripes.png", steps=5)
    timeline = follow(page, click_run(page))
    assert timeline.final["progress"].startswith("step 5/5"), timeline.final
    assert any(a.startswith("Done: 5 steps") for a in timeline.final["alerts"])
    image, _, _ = download_png(page)
    assert image.size == expected_shape("tall.png")

    # The abandoned 5000-step run stopped: the server goes idle (a run keeps a core busy).
    time.sleep(0.5)
    before = server.cpu_seconds()
    time.sleep(2.0)
    busy = server.cpu_seconds() - before
    assert busy < 1.0, f"server used {busy:.2f} CPU s in 2 s after the tab closed"
    screenshot(page, tmp_path, "e2e_after_tab_close")


def test_two_sessions_at_once_each_see_their_own_image(
    new_page, server: Server, e2e_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = {content: new_page() for content in CONTENTS}
    for content, page in pages.items():
        configure(page, content, "stripes.png", steps=12)
    server.peak_rss = 0  # measure this test only
    timelines = {content: click_run(page) for content, page in pages.items()}

    # Poll both sessions in turn until both are done.
    pending = dict(pages)
    overlap = False
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        running = 0
        for content, page in list(pending.items()):
            now = state(page)
            timelines[content].see(now)
            assert not now["exception"], now
            if now["progress"] and not now["download"]:
                running += 1
            if now["download"] and now["script"] == "notRunning" and now["progress"]:
                timelines[content].final = wait_idle(page)
                timelines[content].ended = time.monotonic()
                del pending[content]
        overlap = overlap or running == 2
        time.sleep(POLL_S)
    assert not pending, f"sessions still running: {list(pending)}"

    outputs = {}
    for content, page in pages.items():
        final = timelines[content].final
        assert final["progress"].startswith("step 12/12"), final
        assert any(a.startswith("Done: 12 steps") for a in final["alerts"]), final
        image, record, name = download_png(page)
        assert image.size == expected_shape(content), content
        assert record.content_sha256 == content_hash(e2e_data, content)
        assert name == f"stransfer_{Path(content).stem}_stripes.png"
        outputs[content] = image
    assert overlap, "the two runs never ran at the same time"
    wide, tall = (np.asarray(outputs[name]) for name in CONTENTS)
    assert wide.shape != tall.shape

    peak = max(server.peak_rss, server.rss())
    with capsys.disabled():
        print(f"\n[e2e] peak server RSS with two concurrent sessions: {peak / 2**20:.0f} MiB")
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**30:.2f} GiB"


def test_screenshot_for_the_docs(browser, tmp_path: Path) -> None:
    """With STRANSFER_SCREENSHOTS set: a good-looking run with real VGG19 weights."""
    shots = os.environ.get("STRANSFER_SCREENSHOTS")
    if not shots:
        pytest.skip("set STRANSFER_SCREENSHOTS=DIR to write DIR/screenshot_app.png")
    from stransfer.weights import WeightsError, resolve_weights

    try:
        resolve_weights("VGG19", allow_download=False)
    except WeightsError as err:
        pytest.skip(f"real VGG19 weights are needed: {err}")
    env = {
        k: v for k, v in os.environ.items() if k not in ("STRANSFER_WEIGHTS", "STRANSFER_DATA_DIR")
    }
    with streamlit_server(env, tmp_path / "streamlit.log") as docs_server:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.add_init_script(_INIT_JS)
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(docs_server.url)
            page.locator(".st-key-run button").wait_for()
            wait_idle(page)
            choose(page, "content_file", "chelsea_cat.jpg")
            choose(page, "style_file", "swirls.jpg")
            set_number(page, "steps", 25)
            set_slider(page, "size", 256, low=100, step=4)
            timeline = follow(page, click_run(page))
            assert timeline.final["progress"].startswith("step 25/25"), timeline.final
            page.mouse.move(0, 0)
            time.sleep(1.0)  # let the chart finish drawing
            path = tmp_path / "screenshot_app.png"
            page.screenshot(path=path)
            Path(shots).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(shots) / path.name)
        finally:
            context.close()

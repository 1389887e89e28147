"""Drive the real page in Chromium: used by ``scripts/screenshots.py`` and ``bench/page.py``.

Chromium comes from the system (``apt-get install -y chromium``), never ``playwright install``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from stransfer.page.warm import READY

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
WIDE = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        sys.exit("Chromium is not installed; install it with: apt-get install -y chromium")
    return found


READY_LINE = READY.encode()  # what ``stransfer page`` logs once warmed up


@contextlib.contextmanager
def page_server(
    env: dict[str, str] | None = None,
    log: Path | None = None,
    app: Path | None = None,
    *,
    warm: bool = True,
) -> Iterator[str]:
    """The page as ``make run`` starts it (``python -m stransfer page``: the project's config,
    warmed up before the first visitor), on a free loopback port; yields its URL once healthy
    (and, with ``warm``, once its warm-up is done) and stops it after. ``app``: another script,
    served by plain ``streamlit run`` from the project folder (so with the same config);
    ``warm=False`` serves the page that way too (a cold first visit)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if app is None and warm:
        command = [sys.executable, "-m", "stransfer", "page"]
    else:
        command = [sys.executable, "-m", "streamlit", "run", str(app or ROOT / "app.py")]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    log = log or Path(tempfile.mkdtemp()) / "page.log"
    sink = open(log, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=sink, stderr=sink
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            health = f"{url}/_stcore/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("the page did not start")
        while app is None and warm and READY_LINE not in log.read_bytes():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the page did not warm up: see {log}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        sink.close()


def wait_idle(page, timeout_s: float = 120.0) -> None:
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
            ?.getAttribute('data-test-script-state') === 'notRunning'""",
        timeout=timeout_s * 1000,
    )
    time.sleep(0.4)


def choose(page, key: str, option: str) -> None:
    box = page.locator(f".st-key-{key} [role=combobox]")
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def set_number(page, key: str, value: float) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    wait_idle(page)


def run_for_steps(page, steps: int) -> None:
    page.locator(".st-key-run_for").get_by_text("a number of steps").click()
    page.locator(".st-key-steps input").wait_for()
    wait_idle(page)
    set_number(page, "steps", steps)


def run_and_wait(page, timeout_s: float = 900.0) -> float:
    """Press Run; return the seconds until the page says Done (polled every 50 ms)."""
    before = page.url
    started = time.monotonic()
    page.locator(".st-key-run button").click()
    page.wait_for_url(lambda url: url != before, timeout=timeout_s * 1000)  # the new job's id
    page.wait_for_function(  # the previous result's status gives way to the new job's progress
        """() => ![...document.querySelectorAll('[data-testid="stAlert"]')]
            .some(a => a.textContent.startsWith('Done:'))""",
        timeout=timeout_s * 1000,
        polling=50,
    )
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stAlert"]')]
            .some(a => a.textContent.startsWith('Done:'))
          && document.querySelector('.st-key-download button')""",
        timeout=timeout_s * 1000,
        polling=50,
    )
    return time.monotonic() - started

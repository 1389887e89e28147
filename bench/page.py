"""The page beside the library: the same 12-step default run, second run of each.

    python -m bench.page

Runs astronaut + brush_strokes at 512 px, 12 steps, default settings (real VGG19 weights):
through the page in Chromium (``streamlit run app.py`` with the project's config, Run pressed,
timed until "Done" shows) and through ``transfer()`` in a plain process. Each side runs twice
and the second run counts (the first loads the model and traces). Prints both, the ratio
(target <= 1.15x, issue 10 item 0) and the CPU (lscpu).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
CONTENT, STYLE, STEPS = "astronaut.jpg", "brush_strokes.jpg", 12

LIBRARY = f"""
import time
from stransfer import TransferSettings, load_extractor, load_image, transfer
settings = TransferSettings(steps={STEPS})
extractor = load_extractor(settings.model, settings.precision)
content = load_image({str(ROOT / "data" / "content" / CONTENT)!r})
style = load_image({str(ROOT / "data" / "style" / STYLE)!r})
for _ in range(2):
    started = time.perf_counter()
    for event in transfer(content, style, settings, extractor):
        pass
    print(time.perf_counter() - started)
"""


def cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "?").strip()
    flags = fields.get("Flags", "").split()
    wanted = [f for f in flags if f.startswith(("avx", "amx", "fma"))]
    return f"{model}; {fields.get('CPU(s)', '?').strip()} CPUs; flags: {' '.join(wanted)}"


def library_seconds() -> float:
    out = subprocess.run(
        [sys.executable, "-c", LIBRARY], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[-1])


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the processes of each part (by command line)."""
    import psutil

    parts = {"Streamlit server": 0.0, "worker": 0.0, "Chromium": 0.0}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        line = " ".join(proc.info["cmdline"] or [])
        times = proc.info["cpu_times"]
        if times is None:
            continue
        if "stransfer worker" in line:
            part = "worker"
        elif "streamlit run" in line:
            part = "Streamlit server"
        elif "chrom" in line.split(" ")[0]:
            part = "Chromium"
        else:
            continue
        parts[part] += times.user + times.system
    return parts


def page_seconds() -> tuple[float, dict[str, float]]:
    from page_browser import (
        CHROMIUM_ARGS,
        WIDE,
        choose,
        chromium,
        page_server,
        run_and_wait,
        run_for_steps,
        wait_idle,
    )
    from playwright.sync_api import sync_playwright

    with page_server(env={"STRANSFER_WEIGHTS": ""}) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=WIDE)
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator(".st-key-run button").wait_for()
        wait_idle(page)
        choose(page, "content_file", CONTENT)
        choose(page, "style_file", STYLE)
        run_for_steps(page, STEPS)
        run_and_wait(page)
        wait_idle(page)
        before = cpu_seconds()
        seconds = run_and_wait(page)
        used = {part: cpu - before[part] for part, cpu in cpu_seconds().items()}
        browser.close()
    return seconds, used


def main() -> None:
    print(f"CPU: {cpu()}")
    started = time.monotonic()
    page, used = page_seconds()
    library = library_seconds()
    print(f"{STEPS}-step default run, {CONTENT} + {STYLE}, 512 px, second run of each:")
    print(f"  page (Chromium, Run to Done)   {page:7.1f} s")
    print(f"  library (transfer(), plain)    {library:7.1f} s")
    print(f"  ratio page/library             {page / library:7.2f}x  (target <= 1.15x)")
    print("CPU seconds during the page's measured run:")
    for part, seconds in used.items():
        print(f"  {part:<30} {seconds:7.1f} s")
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()

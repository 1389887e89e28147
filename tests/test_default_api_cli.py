"""The default paths of the HTTP API and the CLI, at their default values, as a person meets them.

Nothing is shrunk: the bundled images from ``data/``, the offline ImageNet VGG19 (no
``STRANSFER_WEIGHTS=random``), 512 px, 60 steps, the instant start, one worker, and the service's
own checkpoint and heartbeat cadence. A real ``python -m stransfer serve`` takes the jobs the
way ``curl -F content=@... -F style=@...`` sends them (README); the CLI runs as
``python -m stransfer CONTENT STYLE -o OUT.png``. About a minute each on 2 cores.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time

import pytest
import requests
from PIL import Image
from servers import ROOT, Server

from stransfer.core.recipe import make_recipe
from stransfer.io.images import read_png_metadata
from stransfer.io.records import RECORD_KEY, RunRecord, load_record
from stransfer.weights import INSTALL_CMD, local_weights

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CONTENT = ROOT / "data" / "content" / "astronaut.jpg"
STYLE = ROOT / "data" / "style" / "brush_strokes.jpg"
#: What the defaults are (the settings' own), to compare a result's record with.
DEFAULTS = make_recipe().settings
#: How long a default job may take here before the test gives up (a loaded 2-core machine).
JOB_TIMEOUT_S = 780


def _have_vgg19() -> None:
    """Skip (on CI: fail) without the ImageNet VGG19 (``make setup`` installs it)."""
    if local_weights("VGG19") is None:
        what = f"VGG19's ImageNet weights are not installed; run: {INSTALL_CMD}"
        if os.environ.get("CI"):
            pytest.fail(what)
        pytest.skip(what)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python -m stransfer serve`` with every setting at its default (one worker)."""
    _have_vgg19()
    srv = Server(tmp_path_factory.mktemp("default-api"), workers=1, fast=False)
    srv.start(timeout=300)
    yield srv
    srv.stop()


def _submit(server: Server, settings: dict | None) -> dict:
    files = [
        ("content", (CONTENT.name, CONTENT.read_bytes(), "image/jpeg")),
        ("style", (STYLE.name, STYLE.read_bytes(), "image/jpeg")),
    ]
    data = {} if settings is None else {"settings": json.dumps(settings)}
    answer = requests.post(server.url + "/jobs", files=files, data=data, timeout=60)
    assert answer.status_code == 202, answer.text
    return answer.json()


def _finish(server: Server, job_id: str) -> tuple[dict, RunRecord, Image.Image, float]:
    """Wait for the job's end; its view, the record in its PNG, the PNG, and seconds taken."""
    started = time.monotonic()
    view = server.wait(job_id, timeout=JOB_TIMEOUT_S)
    took = time.monotonic() - started
    assert view["state"] == "done", view
    result = requests.get(f"{server.url}/jobs/{job_id}/result", timeout=30)
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    record = RunRecord.from_json(read_png_metadata(result.content)[RECORD_KEY])
    image = Image.open(io.BytesIO(result.content))
    image.load()
    return view, record, image, took


def _expected_shape() -> tuple[int, int]:
    with Image.open(CONTENT) as im:
        width, height = im.size
    scale = DEFAULTS.size / max(width, height)
    return round(width * scale), round(height * scale)


def test_api_job_with_no_settings_at_all(server):
    """Content and style only, no settings field: the defaults (60 steps at 512 px) run to
    done, with the PNG and its record."""
    job = _submit(server, None)
    view, record, image, took = _finish(server, job["id"])
    assert view["step"] == view["steps"] == DEFAULTS.steps == 60, view
    assert image.size == _expected_shape() and max(image.size) == 512
    assert record.settings == DEFAULTS.to_dict(), record.settings
    assert record.steps_done == 60 and record.extra["engine"] == "optimise"
    assert record.extra["content"] == CONTENT.name and record.extra["styles"] == [STYLE.name]
    assert all(math.isfinite(v) for v in record.final_losses.values()), record.final_losses
    animation = requests.get(f"{server.url}/jobs/{job['id']}/animation", timeout=30)
    assert animation.status_code == 200 and animation.headers["content-type"] == "image/gif"
    print(f"[default] API job, no settings: done in {took:.0f} s")


@pytest.mark.parametrize(
    "settings",
    [
        {"max_seconds": 60},
        # The page's "Run for: a time budget" (60 s), as it submits it: the step ceiling with
        # the budget. Refused with a 413 before the work limit counted a budget as a budget.
        {"max_seconds": 60, "steps": 10000},
    ],
    ids=["only max_seconds", "max_seconds with the step ceiling"],
)
def test_api_job_with_a_time_budget(server, settings):
    """A 60 s budget ends done within its minute (plus the start and the targets' time), and
    reports the steps it ran as its steps."""
    job = _submit(server, settings)
    view, record, image, took = _finish(server, job["id"])
    assert 1 <= view["step"] == view["steps"] <= settings.get("steps", DEFAULTS.steps), view
    assert view["elapsed"] <= 60 + 30, view  # the budget bounds the run (last step included)
    assert max(image.size) == DEFAULTS.size
    assert record.settings["max_seconds"] == 60 and record.steps_done == view["step"]
    assert record.extra["steps_planned"] == settings.get("steps", DEFAULTS.steps)
    print(f"[default] API job {settings}: {view['step']} steps, done in {took:.0f} s")


def test_cli_with_no_options(tmp_path):
    """``python -m stransfer CONTENT STYLE -o OUT.png``: the PNG with its record and OUT.json,
    exit 0, and no TensorFlow start-up notices before the progress."""
    _have_vgg19()
    out = tmp_path / "out.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STRANSFER_WEIGHTS", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "stransfer", str(CONTENT), str(STYLE), "-o", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=JOB_TIMEOUT_S,
    )  # fmt: skip
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines and lines[0].startswith("step 1/60 "), lines[:5]
    assert lines[-1].startswith(f"wrote {out} (512x"), lines[-3:]
    assert "Traceback" not in proc.stderr and "oneDNN" not in proc.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == _expected_shape()
    record = load_record(out)
    assert load_record(out.with_suffix(".json")) == record
    assert record.settings == DEFAULTS.to_dict() and record.steps_done == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.png"]
    print(f"[default] CLI, no options: {took:.0f} s")

"""The HTTP API on a real ``stransfer serve`` with 2 local workers on 127.0.0.1.

One server and worker set for the module; tiny jobs (untrained weights, 64 px, few steps).
Covers: jobs on both workers, live events, result with its record, cancel, SIGKILL of a
worker mid-job, SIGKILL of the API mid-run, concurrent clients, no TensorFlow in the API
process, and the hostile-request table (kept identical to docs/robustness.md).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image
from servers import ROOT, Server, png

from stransfer.io.images import read_png_metadata
from stransfer.io.records import RECORD_KEY, RunRecord
from stransfer.service.store import Store

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("api-data"), workers=2).start()
    yield srv
    srv.stop()


def _store(server: Server) -> Store:
    return Store(server.data)


def test_idle_workers_prepare_the_default_job(server):
    """Before any job, each worker builds the default network and traces its step function
    (``execute.warm_up``), so the first Run waits only for its own work; it says so once."""
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        lines = [x for x in server.log.read_text().splitlines() if x.startswith("stransfer worker")]
    assert len(lines) == 2, server.log.read_text()[-2000:]
    assert all("VGG19" in line and "built and traced" in line for line in lines), lines


def test_serve_says_where_it_listens_and_no_tensorflow_notices(server):
    log = server.log.read_text()
    assert f"stransfer serve: {server.url} (API docs at /docs)" in log.splitlines(), log[-2000:]
    # The workers' TensorFlow start-up notices are filtered out of the log (stransfer.engine).
    assert "absl::InitializeLog" not in log and "oneDNN custom operations" not in log, log


def test_a_warm_up_that_cannot_build_leaves_the_problem_to_the_job(tmp_path, monkeypatch):
    from stransfer.service.execute import warm_up

    monkeypatch.setenv("STRANSFER_WEIGHTS", str(tmp_path / "missing.h5"))
    line = warm_up()  # never raises: a worker must start whatever the weights' state
    assert line.startswith("warm-up skipped (WeightsError") and "missing.h5" in line, line


def test_api_process_never_loads_tensorflow(server):
    # A finished job proves the workers did load it; the API process's memory map must not.
    job = server.submit()
    assert server.wait(job["id"])["state"] == "done"
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "tensorflow" not in maps, "the API process mapped TensorFlow's libraries"
    # And importing the API module, building the app and checking a request loads none either.
    code = (
        "import sys; from stransfer.service.api import create_app; "
        "from stransfer.service import LocalService, JobRequest; "
        f"s = LocalService({str(server.data / 'probe')!r}, workers=0); create_app(s); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_six_jobs_on_both_workers_in_order(server):
    jobs = [server.submit({"steps": 4, "size": 64}, seed=i) for i in range(6)]
    assert [j["state"] for j in jobs] == ["queued"] * 6
    assert all(j["position"] >= 1 for j in jobs)
    views = [server.wait(j["id"]) for j in jobs]
    assert [v["state"] for v in views] == ["done"] * 6, views
    assert all(v["step"] == v["steps"] == 4 for v in views)
    store = _store(server)
    used = {store.details(j["id"])["worker"] for j in jobs}
    assert len(used) == 2, f"both workers should have run jobs, got {used}"
    started = [store.details(j["id"])["started"] for j in jobs]
    # FIFO for one client: each job started no earlier than the one before the previous
    # (two workers take the first two together).
    assert all(started[i] <= started[i + 2] for i in range(4)), started


def _events(server: Server, job_id: str) -> dict[str, list[str]]:
    """Follow a job's Server-Sent Events to its ``end``: each event's data lines by name."""
    seen: dict[str, list[str]] = {}
    with requests.get(f"{server.url}/jobs/{job_id}/events", stream=True, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                seen.setdefault(event, []).append(line[6:])
                if event == "end":
                    break
    return seen


def _record(server: Server, job_id: str) -> RunRecord:
    result = requests.get(f"{server.url}/jobs/{job_id}/result", timeout=10)
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    return RunRecord.from_json(read_png_metadata(result.content)[RECORD_KEY])


def test_events_frames_and_result_with_record(server):
    job = server.submit({"steps": 12, "size": 96, "scales": 1})
    seen = _events(server, job["id"])
    progress = [json.loads(d) for d in seen["progress"]]
    assert any(p["state"] == "running" and p["step"] >= 1 for p in progress)
    steps = [p["step"] for p in progress]
    assert steps == sorted(steps)
    assert json.loads(seen["end"][0])["state"] == "done"
    frame_url = seen["frame"][-1]
    assert re.fullmatch(rf"/jobs/{job['id']}/frame\?n=\d+", frame_url)
    frame = requests.get(server.url + frame_url, timeout=10)
    assert frame.headers["content-type"] == "image/png" and frame.content[:4] == b"\x89PNG"
    record = _record(server, job["id"])
    assert record.steps_done == 12 and record.settings["size"] == 96
    assert record.content_sha256 == _store(server).details(job["id"])["inputs"]["content_sha256"]
    # The files on disk: inputs, frame, result, its JSON record and the animation.
    folder = server.data / "jobs" / job["id"]
    assert {"content", "style-0", "frame.png", "result.png", "result.json", "animation.gif"} <= {
        p.name for p in folder.iterdir()
    }
    assert server.animation_frames(job["id"]) > 1


def test_a_job_that_ends_on_its_budget_reports_the_steps_it_ran(server):
    # The page's way: the step ceiling with a time budget; the budget ends it, done.
    job = server.submit({"steps": 10000, "max_seconds": 3, "size": 64, "scales": 1})
    seen = _events(server, job["id"])
    end = json.loads(seen["end"][0])
    assert end["state"] == "done" and "budget" in end["message"], end
    assert 1 <= end["step"] == end["steps"] < 10000, end  # "step 16/16", not "step 16/10000"
    running = [json.loads(d) for d in seen["progress"]]
    assert any(p["steps"] == 10000 for p in running), running  # the ceiling while it runs
    record = _record(server, job["id"])
    assert record.steps_done == end["step"] and record.extra["steps_planned"] == 10000
    assert record.extra["status"] == "time budget"


def test_instant_job_events_and_result_with_record(server):
    # Two style files blended 3:1 at 70 % strength, painted by the feed-forward engine.
    settings = {"engine": "instant", "size": 80, "strength": 70, "style_weights": [3, 1]}
    job = server.submit(settings, styles=2)
    seen = _events(server, job["id"])
    end = json.loads(seen["end"][0])
    assert end["state"] == "done" and end["step"] == end["steps"] == 1, end
    assert seen["frame"], "an instant job sends its picture as a frame too"
    frame = requests.get(server.url + seen["frame"][-1], timeout=10)
    assert frame.content[:4] == b"\x89PNG"
    record = _record(server, job["id"])
    assert record.extra["engine"] == "instant" and record.extra["strength"] == 70.0
    assert record.settings["size"] == 80 and record.style_weights == [3.0, 1.0]
    details = _store(server).details(job["id"])
    assert record.content_sha256 == details["inputs"]["content_sha256"]
    assert record.style_sha256 == details["inputs"]["style_sha256"]
    assert record.extra["styles"] == ["style0.png", "style1.png"]
    result = requests.get(f"{server.url}/jobs/{job['id']}/result", timeout=10).content
    assert max(Image.open(io.BytesIO(result)).size) == 80
    none = requests.get(f"{server.url}/jobs/{job['id']}/animation", timeout=10)
    assert none.status_code == 404 and "no animation" in none.json()["error"]


def test_instant_job_on_a_builtin_style(server):
    job = server.submit({"engine": "instant", "size": 64, "builtin": 7}, styles=0)
    assert server.wait(job["id"])["state"] == "done"
    record = _record(server, job["id"])
    assert record.extra["engine"] == "instant" and record.style_sha256 == []
    assert record.extra["builtin_weights"] == {"builtin:7": 1.0}


def test_init_instant_job_starts_from_the_instant_result(server):
    job = server.submit({"steps": 3, "size": 64, "init": "instant", "scales": 1})
    view = server.wait(job["id"])
    assert view["state"] == "done" and view["step"] == 3, view
    record = _record(server, job["id"])
    assert record.settings["init"] == "instant" and record.extra["engine"] == "optimise"
    assert record.steps_done == 3


def test_cancel_keeps_the_last_image(server):
    job = server.submit({"steps": 400, "size": 64, "scales": 1})
    server.wait(job["id"], until=lambda v: v["step"] >= 2)
    answer = requests.delete(f"{server.url}/jobs/{job['id']}", timeout=10)
    assert answer.status_code == 200
    view = server.wait(job["id"])
    assert view["state"] == "cancelled" and 2 <= view["step"] < 400
    assert requests.get(f"{server.url}/jobs/{job['id']}/frame", timeout=10).status_code == 200
    again = requests.delete(f"{server.url}/jobs/{job['id']}", timeout=10)
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]


def test_worker_killed_mid_job_continues_from_checkpoint(server):
    store = _store(server)
    job = server.submit({"steps": 80, "size": 64, "scales": 1})
    server.wait(
        job["id"], until=lambda v: store.details(job["id"])["checkpoint_step"] >= 3, timeout=120
    )
    details = store.details(job["id"])
    victim = int(details["worker"].rsplit(":", 1)[1])
    os.kill(victim, signal.SIGKILL)
    killed_at = store.get(job["id"]).step
    view = server.wait(job["id"], timeout=180)
    assert view["state"] == "done", view
    assert view["step"] == view["steps"] == 80
    after = store.details(job["id"])
    assert after["attempt"] >= 2 and after["failures"] == 1
    assert after["worker"] != details["worker"]
    record = json.loads((server.data / "jobs" / job["id"] / "result.json").read_text())
    resumed = record["extra"]["continued_from_step"]
    assert 3 <= resumed <= killed_at, (resumed, killed_at)
    # The supervisor replaced the dead worker.
    assert server.wait(job["id"], until=lambda v: _health(server)["workers"] == 2, timeout=60)


def _health(server: Server) -> dict:
    return requests.get(server.url + "/health", timeout=10).json()


def test_concurrent_clients_all_done(server):
    def one(i: int) -> dict:
        job = server.submit({"steps": 3, "size": 64}, seed=i)
        return server.wait(job["id"], timeout=300)

    with ThreadPoolExecutor(6) as pool:
        views = list(pool.map(one, range(6)))
    assert [v["state"] for v in views] == ["done"] * 6


# --------------------------------------------------------------------------- hostile requests

_PNG = png(1)


def _bomb() -> bytes:
    """A valid PNG whose header claims 100000 x 100000 pixels (the IHDR CRC fixed up)."""
    data = bytearray(png(2))
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


_BOMB_HEADER = _bomb()


def _files(content=_PNG, styles=1, settings=None):
    files = [("content", ("c.png", content, "image/png"))]
    files += [("style", (f"s{i}.png", _PNG, "image/png")) for i in range(styles)]
    data = {} if settings is None else {"settings": settings}
    return {"files": files, "data": data}


def _big_png() -> bytes:
    # 6000 x 5000 = 30 megapixels of one colour: a small file over the 25-megapixel limit.
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (6000, 5000), (20, 40, 60)).save(buffer, "PNG")
    return buffer.getvalue()


def _post(what: str, status: int, **files) -> tuple:
    """A ``HOSTILE`` row: POST /jobs with ``_files(**files)``."""
    return (what, "POST", "/jobs", _files(**files), status)


#: (what is sent, method, path, request arguments, expected status)
HOSTILE = [
    _post("settings that are not JSON", 400, settings="{steps: 5"),
    _post("settings that are a JSON list", 400, settings="[1, 2]"),
    _post("an unknown setting", 422, settings='{"stepz": 5}'),
    _post("steps out of range", 422, settings='{"steps": -3}'),
    _post("size as text", 422, settings='{"size": "big"}'),
    _post("an unknown model", 422, settings='{"model": "VGG99"}'),
    _post("strength 150 %", 422, settings='{"strength": 150}'),
    _post("an unknown engine", 422, settings='{"engine": "magic"}'),
    _post("style_weights not one per file", 422, settings='{"style_weights": [1, 2]}'),
    _post("all style weights 0", 422, settings='{"style_weights": [0]}'),
    _post("an instant job 9000 px wide", 422, settings='{"engine": "instant", "size": 9000}'),
    _post("an instant job at strength -1", 422, settings='{"engine": "instant", "strength": -1}'),
    _post("built-in style 99", 422, styles=0, settings='{"engine": "instant", "builtin": 99}'),
    _post(
        "a built-in style as a list",
        422,
        styles=0,
        settings='{"engine": "instant", "builtin": [1, 2]}',
    ),
    _post("a built-in style without engine instant", 422, styles=0, settings='{"builtin": 7}'),
    _post("a built-in style and style files", 422, settings='{"engine": "instant", "builtin": 7}'),
    _post(
        "an instant job on a text file",
        400,
        content=b"not a picture",
        settings='{"engine": "instant"}',
    ),
    _post("settings nested 5000 deep", 400, settings='{"a": ' * 5000 + "1" + "}" * 5000),
    _post(
        "layer weights nested 5000 deep",
        400,
        settings='{"content_layers": ' + "[" * 5000 + "]" * 5000 + "}",
    ),
    _post("a number with 5000 digits", 400, settings='{"seed": ' + "9" * 5000 + "}"),
    _post("steps 1e400 (infinite)", 422, settings='{"steps": 1e400}'),
    _post("size NaN", 422, settings='{"size": NaN}'),
    _post("a time budget of Infinity", 422, settings='{"max_seconds": Infinity}'),
    _post("a model name 100,000 characters long", 422, settings=json.dumps({"model": "x" * 10**5})),
    _post("a settings field of 2 MB", 413, settings=json.dumps({"model": "x" * 2 * 10**6})),
    _post("steps x pixels beyond the job limit", 413, settings='{"steps": 10000, "size": 4096}'),
    _post("a time budget beyond the job limit", 413, settings='{"max_seconds": 1e6}'),
    ("no content file", "POST", "/jobs", {"files": [("style", ("s.png", _PNG, "image/png"))]}, 422),
    ("no style file", "POST", "/jobs", {"files": [("content", ("c.png", _PNG, "image/png"))]}, 422),
    ("a JSON body instead of a form", "POST", "/jobs", {"json": {"content": "x"}}, 422),
    _post("a text file as content", 400, content=b"hello, I am not a picture"),
    _post("a truncated PNG", 400, content=_PNG[: len(_PNG) // 2]),
    _post("a PNG header claiming 100000x100000 px", 413, content=_BOMB_HEADER),
    _post("a 30-megapixel image", 413, content=_big_png()),
    _post("9 style files", 413, styles=9),
    _post("a 70 MB upload", 413, content=b"\0" * (70 * 2**20)),
    ("a job id with a path", "GET", "/jobs/..%2F..%2Fjobs.db", {}, 404),
    ("a job id that is not ours", "GET", "/jobs/0123456789abcdef01234567", {}, 404),
    ("the result of an unknown job", "GET", "/jobs/../../etc/passwd/result", {}, 404),
    ("events of an unknown job", "GET", "/jobs/zzz/events", {}, 404),
    ("an unknown endpoint", "GET", "/admin", {}, 404),
    ("PUT on a job", "PUT", "/jobs/0123456789abcdef01234567", {}, 405),
]


def _hostile_rows(server: Server) -> list[tuple[str, int, str, str]]:
    rows = []
    for what, method, path, kwargs, _ in HOSTILE:
        answer = requests.request(method, server.url + path, timeout=60, **kwargs)
        assert answer.headers["content-type"] == "application/json", (what, answer.text[:200])
        body = answer.json()
        rows.append((what, answer.status_code, body.get("field") or "", body["error"]))
    return rows


def _table(rows) -> str:
    lines = ["| Request | Status | Field | Message |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {what} | {status} | {field} | {msg.replace('|', '/')} |"
        for what, status, field, msg in rows
    ]
    return "\n".join(lines)


def test_hostile_requests_get_json_4xx_and_match_the_docs(server):
    rows = _hostile_rows(server)
    expected = [(what, status) for what, *_, status in HOSTILE]
    assert [(what, status) for what, status, *_ in rows] == expected, rows
    assert all(400 <= status < 500 for _, status, *_ in rows), rows  # never a 500
    assert all(msg and "\n" not in msg and "Traceback" not in msg for *_, msg in rows)
    fields = {what: field for what, _, field, _ in rows}
    assert fields["steps out of range"] == "steps" and fields["strength 150 %"] == "strength"
    assert fields["an unknown model"] == "model" and fields["an unknown engine"] == "engine"
    assert fields["an instant job 9000 px wide"] == "size"
    assert fields["built-in style 99"] == fields["a built-in style as a list"] == "builtin"
    assert fields["all style weights 0"] == "style_weights"
    # The result of a job that is not done yet: 409.
    job = server.submit({"steps": 200, "size": 64, "scales": 1})
    server.wait(job["id"], until=lambda v: v["step"] >= 1)
    early = requests.get(f"{server.url}/jobs/{job['id']}/result", timeout=10)
    rows.append(("the result before the job is done", early.status_code, "", early.json()["error"]))
    assert early.status_code == 409
    early = requests.get(f"{server.url}/jobs/{job['id']}/animation", timeout=10)
    rows.append(
        ("the animation before the job ended", early.status_code, "", early.json()["error"])
    )
    assert early.status_code == 409
    requests.delete(f"{server.url}/jobs/{job['id']}", timeout=10)
    rows = [(w, s, f, re.sub(r"[0-9a-f]{24}", "<id>", m)) for w, s, f, m in rows]
    table = _table(rows)
    docs = ROOT / "docs" / "robustness.md"
    if os.environ.get("STRANSFER_UPDATE_DOCS"):
        text = docs.read_text()
        begin, end = "<!-- hostile-requests:begin -->", "<!-- hostile-requests:end -->"
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        docs.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    assert table in docs.read_text(), "docs/robustness.md's table is out of date:\n" + table


def test_queue_limit_per_client_answers_429_with_retry_after(tmp_path):
    srv = Server(tmp_path, workers=0, env={"STRANSFER_MAX_QUEUED_PER_CLIENT": "2"}).start()
    try:
        srv.submit()
        srv.submit()
        answer = requests.post(srv.url + "/jobs", timeout=10, **_files())
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) > 0
        assert "2 jobs waiting or running" in answer.json()["error"]
    finally:
        srv.stop()


def test_token_required_when_set(tmp_path):
    srv = Server(tmp_path, workers=0, env={"STRANSFER_API_TOKEN": "s3cret-token"}).start()
    try:
        bare = requests.get(srv.url + "/health", timeout=10)
        wrong = requests.get(
            srv.url + "/health", headers={"Authorization": "Bearer nope"}, timeout=10
        )
        good = requests.get(srv.url + "/health", headers=srv.headers(), timeout=10)
        post = requests.post(srv.url + "/jobs", timeout=10, **_files())
        assert (bare.status_code, wrong.status_code, good.status_code) == (401, 401, 200)
        assert post.status_code == 401 and "Bearer" in post.json()["error"]
        assert bare.headers["www-authenticate"] == "Bearer"
        assert srv.submit()["state"] == "queued"  # with the token it works
    finally:
        srv.stop()


def test_api_killed_mid_run_keeps_every_job(tmp_path):
    srv = Server(tmp_path, workers=1).start()
    store = Store(tmp_path)
    try:
        long = srv.submit({"steps": 60, "size": 64, "scales": 1})
        waiting = [srv.submit({"steps": 3, "size": 64}, seed=i) for i in range(2)]
        srv.wait(long["id"], until=lambda v: store.details(long["id"])["checkpoint_step"] >= 3)
        srv.kill()  # SIGKILL the API: its worker sees the parent gone and hands the job back
        time.sleep(1)
        assert store.get(long["id"]).state in ("running", "queued")
        srv.start()  # the same port and data folder
        views = [srv.wait(j["id"], timeout=180) for j in (long, *waiting)]
        assert [v["state"] for v in views] == ["done"] * 3, views
        assert views[0]["step"] == 60
        record = json.loads((tmp_path / "jobs" / long["id"] / "result.json").read_text())
        assert record["extra"]["continued_from_step"] >= 3
    finally:
        srv.stop()


# --------------------------------------------------------------------------- the docs, offline


def test_docs_render_in_chromium_with_the_network_cut(server):
    """Swagger UI comes from this machine: in Chromium with every request beyond 127.0.0.1
    aborted, ``/docs`` draws the API's operations, and nothing asked for the network."""
    from playwright.sync_api import sync_playwright
    from test_e2e_browser import CHROMIUM_ARGS, _chromium

    refused: list[str] = []

    def only_loopback(route):
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(server.url + "/docs", wait_until="load")
            operations = page.locator("#swagger-ui .opblock-summary-path")
            operations.first.wait_for(timeout=60_000)
            shown = [
                " ".join(t.split()).replace("\u200b", "") for t in operations.all_inner_texts()
            ]
            methods = page.locator("#swagger-ui .opblock-summary-method").all_inner_texts()
        finally:
            browser.close()
    assert not refused, f"/docs asked for the network: {refused}"
    operations = list(zip(methods, shown, strict=True))
    for operation in [("POST", "/jobs"), ("GET", "/jobs/{job_id}"), ("DELETE", "/jobs/{job_id}")]:
        assert operation in operations, operations
    assert ("GET", "/jobs/{job_id}/result") in operations and ("GET", "/health") in operations
    # No other docs page that would need the network.
    redoc = requests.get(server.url + "/redoc", timeout=10)
    assert redoc.status_code == 404 and "see /docs" in redoc.json()["error"]

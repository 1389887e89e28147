"""The distributed path: a real redis-server on 127.0.0.1, the API with ``STRANSFER_BROKER``,
and 2 RQ workers joined with ``python -m stransfer worker --join`` (as from other machines)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests
from servers import FAST_ENV, ROOT, Server, free_port

from stransfer.io.records import RunRecord
from stransfer.service.store import Store

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed (apt-get install -y redis-server; .ci/run does)",
    ),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    data = tmp_path_factory.mktemp("broker-data")
    port = free_port()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    server = Server(data, workers=0, env={"STRANSFER_BROKER": url})
    workers: list[subprocess.Popen] = []
    try:
        end = time.monotonic() + 20
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < end, "redis-server did not start"
            time.sleep(0.1)
        server.start(wait_workers=0)
        env = {**os.environ, **FAST_ENV, "PYTHONPATH": str(ROOT)}

        def add_worker() -> subprocess.Popen:
            log = open(data / f"worker-{len(workers)}.log", "ab")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "-m", "stransfer", "worker", "--join", url],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )
            workers.append(proc)
            return proc

        add_worker()
        add_worker()
        end = time.monotonic() + 120
        while requests.get(server.url + "/health", timeout=5).json()["workers"] < 2:
            assert time.monotonic() < end, "workers did not join"
            time.sleep(0.3)
        yield server, workers, add_worker
    finally:
        server.stop()
        for proc in workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.terminate()
        redis.wait(timeout=10)


def test_six_jobs_through_two_joined_workers(cluster):
    server, workers, _ = cluster
    jobs = [server.submit({"steps": 4, "size": 64}, seed=i) for i in range(6)]
    views = [server.wait(j["id"], timeout=240) for j in jobs]
    assert [v["state"] for v in views] == ["done"] * 6, views
    store = Store(server.data)
    used = {store.details(j["id"])["worker"] for j in jobs}
    pids = {str(p.pid) for p in workers}
    assert {w.rsplit(":", 1)[1] for w in used} == pids, (used, pids)
    result = requests.get(f"{server.url}/jobs/{jobs[0]['id']}/result", timeout=10)
    assert result.status_code == 200 and result.content[:4] == b"\x89PNG"
    # The run's animation comes back through the stream as the local workers' does.
    assert server.animation_frames(jobs[0]["id"]) > 1


def test_instant_jobs_through_the_broker(cluster):
    # Remote workers run instant jobs too: the built-in blend travels in the job's payload.
    server, _, _ = cluster
    jobs = [
        server.submit({"engine": "instant", "size": 64, "strength": 60}),
        server.submit({"engine": "instant", "size": 64, "builtin": {"2": 1, "9": 1}}, styles=0),
    ]
    views = [server.wait(j["id"], timeout=120) for j in jobs]
    assert [(v["state"], v["step"], v["steps"]) for v in views] == [("done", 1, 1)] * 2, views
    records = [
        RunRecord.from_json((server.data / "jobs" / j["id"] / "result.json").read_text())
        for j in jobs
    ]
    assert [r.extra["engine"] for r in records] == ["instant", "instant"]
    assert records[0].extra["strength"] == 60.0
    assert records[1].extra["builtin_weights"] == {"builtin:2": 0.5, "builtin:9": 0.5}
    none = requests.get(f"{server.url}/jobs/{jobs[0]['id']}/animation", timeout=10)
    assert none.status_code == 404 and "no animation" in none.json()["error"]


def test_events_and_cancel_through_the_broker(cluster):
    server, _, _ = cluster
    job = server.submit({"steps": 400, "size": 64, "scales": 1})
    view = server.wait(job["id"], until=lambda v: v["step"] >= 2 and v["frame"] >= 1)
    assert view["state"] == "running"
    frame = requests.get(f"{server.url}/jobs/{job['id']}/frame", timeout=10)
    assert frame.content[:4] == b"\x89PNG"
    requests.delete(f"{server.url}/jobs/{job['id']}", timeout=10)
    view = server.wait(job["id"])
    assert view["state"] == "cancelled" and view["step"] < 400


def test_joined_worker_killed_mid_job(cluster):
    server, _, add_worker = cluster
    store = Store(server.data)
    job = server.submit({"steps": 80, "size": 64, "scales": 1})
    server.wait(job["id"], until=lambda v: store.details(job["id"])["checkpoint_step"] >= 3)
    victim = int(store.details(job["id"])["worker"].rsplit(":", 1)[1])
    os.kill(victim, signal.SIGKILL)
    view = server.wait(job["id"], timeout=180)
    assert view["state"] == "done" and view["step"] == 80, view
    record = json.loads((server.data / "jobs" / job["id"] / "result.json").read_text())
    assert record["extra"]["continued_from_step"] >= 3
    assert store.details(job["id"])["failures"] == 1
    add_worker()  # leave two workers for whatever runs next

"""Ray vs RQ (over Debian's redis-server) as the service's distributed engine, measured here.

    python -m bench.engines rq                      # in the project's venv
    /path/to/ray-venv/bin/python bench/engines.py ray   # Ray in its own venv (not a dependency)

Each prints one JSON line: start-up (nothing running -> first trivial task's result), memory of
the engine's own processes (RSS, the driver excluded), per-event latency of 200 progress events
from a running task to the driver (p50/p95), and what happens when the worker running a task is
killed with SIGKILL (how long until the engine itself notices, bounded at 30 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

EVENTS = 200


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _report(
    engine: str, startup: float, memory: float, latency: list[float], worker_killed: str
) -> dict[str, object]:
    """One engine's row: start-up, memory, event latency percentiles, what a killed worker did."""
    return {
        "engine": engine,
        "startup_s": round(startup, 2),
        "memory_mb": round(memory),
        "event_p50_ms": round(1000 * _pct(latency, 0.5), 2),
        "event_p95_ms": round(1000 * _pct(latency, 0.95), 2),
        "worker_killed": worker_killed,
    }


def _rss_of_others() -> float:
    me = psutil.Process()
    total = 0
    for proc in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 2**20


def bench_ray() -> dict:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)

    @ray.remote
    def ping() -> int:
        return 1

    ray.get(ping.remote())
    startup = time.perf_counter() - t0

    @ray.remote(num_returns="streaming")
    def stream(n: int):
        for _ in range(n):
            time.sleep(0.01)
            yield time.time()

    latency = [time.time() - ray.get(ref) for ref in stream.remote(EVENTS)]
    memory = _rss_of_others()
    pid_file = Path(tempfile.mkdtemp()) / "pid"

    @ray.remote(max_retries=1)
    def slow(path: str) -> int:
        Path(path).write_text(str(os.getpid()))
        time.sleep(8)
        return os.getpid()

    ref = slow.remote(str(pid_file))
    while not pid_file.exists():
        time.sleep(0.05)
    victim = int(pid_file.read_text())
    pid_file.unlink()
    killed = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    while not pid_file.exists() and time.perf_counter() - killed < 30:
        time.sleep(0.05)
    retried = time.perf_counter() - killed if pid_file.exists() else None
    ray.get(ref, timeout=60)
    ray.shutdown()
    killed_text = (
        f"task retried from the start on a new worker after {retried:.1f} s"
        if retried is not None
        else "not retried within 30 s"
    )
    return _report(f"ray {ray.__version__}", startup, memory, latency, killed_text)


def _stream_events(url: str, n: int) -> None:  # an RQ job (imported by the worker)
    import redis

    r = redis.Redis.from_url(url)
    for _ in range(n):
        time.sleep(0.01)
        r.xadd("bench:events", {"t": time.time()})


def _sleep(seconds: float) -> int:  # an RQ job
    time.sleep(seconds)
    return os.getpid()


def bench_rq() -> dict:
    import redis
    import rq
    from rq import Queue
    from rq.job import Job

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    worker_cmd = [sys.executable, "-m", "rq.cli", "worker", "-w", "rq.SimpleWorker", "-u", url]
    worker_cmd += ["--logging_level", "ERROR", "bench"]
    t0 = time.perf_counter()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    r = redis.Redis.from_url(url)
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    worker = subprocess.Popen(worker_cmd, env=env, stdout=subprocess.DEVNULL)
    queue = Queue("bench", connection=r)
    job = queue.enqueue("bench.engines._sleep", 0)
    while job.get_status(refresh=True) != "finished":
        time.sleep(0.01)
    startup = time.perf_counter() - t0

    queue.enqueue("bench.engines._stream_events", url, EVENTS)
    latency, last = [], "0"
    while len(latency) < EVENTS:
        for _, entries in r.xread({"bench:events": last}, block=1000) or []:
            for entry_id, fields in entries:
                latency.append(time.time() - float(fields[b"t"]))
                last = entry_id
    memory = _rss_of_others()

    job = queue.enqueue("bench.engines._sleep", 8)
    while job.get_status(refresh=True) != "started":
        time.sleep(0.02)
    killed = time.perf_counter()
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    worker = subprocess.Popen(worker_cmd, env=env, stdout=subprocess.DEVNULL)
    status = "started"
    while status == "started" and time.perf_counter() - killed < 30:
        time.sleep(0.2)
        status = Job.fetch(job.id, connection=r).get_status(refresh=True)
    noticed = time.perf_counter() - killed
    worker.kill()
    server.terminate()
    server.wait()
    killed_text = (
        f"job left 'started' after {noticed:.1f} s ({status})"
        if status != "started"
        else "job still 'started' after 30 s: RQ alone does not notice (our heartbeat does)"
    )
    return _report(f"rq {rq.__version__} + redis-server", startup, memory, latency, killed_text)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "rq"
    print(json.dumps(bench_ray() if which == "ray" else bench_rq()))

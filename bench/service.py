"""The service under load: 20 concurrent clients each submit a small job through the HTTP API.

    python -m bench.service [--clients 20] [--workers 2] [--size 128] [--steps 5] [--random]
                            [--engine optimise|instant]

Starts ``python -m stransfer serve`` with local workers on 127.0.0.1 (a fresh data folder),
runs one job alone first (the baseline), then the clients all at once, and prints: every job's
end state, p50/p95 of the API's answer time for POST /jobs and GET /jobs/{id}, queue wait
(submitted -> started), end-to-end time, and the peak memory (RSS) of the server and its
workers, with the CPU model and flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import contextlib

from servers import Server

from bench import cpu
from stransfer.service.store import Store


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class PeakRSS(threading.Thread):
    """Samples the RSS of a process tree every 0.2 s and keeps the peak (MB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self.done = psutil.Process(pid), 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            total = 0
            for proc in [self.root, *self.root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total / 2**20)


def run(args: argparse.Namespace) -> dict:
    data = Path(tempfile.mkdtemp(prefix="stransfer-bench-"))
    env = {"STRANSFER_CHECKPOINT_SECONDS": "5", "STRANSFER_STALE_SECONDS": "30"}
    env["STRANSFER_WEIGHTS"] = "random" if args.random else ""
    env["STRANSFER_MAX_QUEUED_PER_CLIENT"] = str(args.clients + 5)
    server = Server(data, workers=args.workers, env=env).start(timeout=300)
    peak = PeakRSS(server.proc.pid)
    peak.start()
    store = Store(data)
    settings = {"steps": args.steps, "size": args.size, "engine": args.engine}
    posts: list[float] = []
    gets: list[float] = []

    def one(i: int) -> dict:
        t0 = time.perf_counter()
        job = server.submit(settings, seed=i)
        posts.append(time.perf_counter() - t0)
        while True:
            t1 = time.perf_counter()
            view = server.job(job["id"])
            gets.append(time.perf_counter() - t1)
            if view["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.25)
        details = store.details(job["id"])
        created = store.get(job["id"]).created
        return {
            "state": view["state"],
            "wait": details["started"] - created,
            "total": time.perf_counter() - t0,
            "worker": details["worker"],
        }

    try:
        alone = one(10_000)  # the baseline: one job on an idle service (model loaded cold)
        with ThreadPoolExecutor(args.workers) as pool:  # every worker loads its model
            list(pool.map(one, range(10_001, 10_001 + args.workers)))
        warm = one(10_100)  # one job alone on a warm service
        posts.clear()
        gets.clear()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one, range(args.clients)))
        wall = time.perf_counter() - t0
    finally:
        peak.done.set()
        server.stop()
    waits = [r["wait"] for r in results]
    totals = [r["total"] for r in results]
    return {
        "cpu": cpu(),
        "clients": args.clients,
        "workers": args.workers,
        "job": settings,
        "weights": "random" if args.random else "VGG19 ImageNet (offline copy)",
        "states": {s: sum(r["state"] == s for r in results) for s in {r["state"] for r in results}},
        "workers_used": len({r["worker"] for r in results}),
        "baseline_alone_cold_s": round(alone["total"], 2),
        "baseline_alone_warm_s": round(warm["total"], 2),
        "post_p50_ms": round(1000 * _pct(posts, 0.5), 1),
        "post_p95_ms": round(1000 * _pct(posts, 0.95), 1),
        "get_p50_ms": round(1000 * _pct(gets, 0.5), 1),
        "get_p95_ms": round(1000 * _pct(gets, 0.95), 1),
        "queue_wait_p50_s": round(_pct(waits, 0.5), 2),
        "queue_wait_p95_s": round(_pct(waits, 0.95), 2),
        "end_to_end_p50_s": round(_pct(totals, 0.5), 2),
        "end_to_end_p95_s": round(_pct(totals, 0.95), 2),
        "all_done_in_s": round(wall, 1),
        "peak_rss_mb": round(peak.peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--random", action="store_true", help="untrained weights (faster)")
    parser.add_argument(
        "--engine",
        choices=("optimise", "instant"),
        default="optimise",
        help="the jobs' engine (instant: one feed-forward pass, no network built)",
    )
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

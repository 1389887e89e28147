"""Real service processes on 127.0.0.1 for the service tests: start, wait, stop (bounded)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from stransfer.io.images import encode_png

ROOT = Path(__file__).resolve().parents[1]

#: Small, fast jobs: untrained weights, checkpoints and heartbeats every half second.
FAST_ENV = {
    "STRANSFER_WEIGHTS": "random",
    "STRANSFER_CHECKPOINT_SECONDS": "0.5",
    "STRANSFER_HEARTBEAT_SECONDS": "0.5",
    "STRANSFER_STALE_SECONDS": "4",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png(seed: int, height: int = 48, width: int = 64) -> bytes:
    """A small smooth test image as PNG bytes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    chans = [
        np.sin(rng.uniform(2, 9) * xx * 6.3 + rng.uniform(0, 6)) * np.cos(yy * 9) for _ in "rgb"
    ]
    return encode_png(((np.stack(chans, -1) + 1) * 127.5).astype(np.uint8))


class Server:
    """``python -m stransfer serve`` in a child process (its own process group)."""

    def __init__(
        self,
        data: Path,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        fast: bool = True,
    ):
        """``fast``: with ``FAST_ENV``; False: every setting at its default (real weights)."""
        self.data, self.workers = data, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        quick = FAST_ENV if fast else {}
        self.env = {**os.environ, **quick, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = data / f"serve-{self.port}.log"

    def start(self, *, wait_workers: int | None = None, timeout: float = 120) -> Server:
        self.data.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "stransfer", "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers), "--data", str(self.data)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        want = self.workers if wait_workers is None else wait_workers
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                health = requests.get(self.url + "/health", timeout=2, headers=self.headers())
                if health.status_code in (200, 401) and (
                    health.status_code == 401 or health.json()["workers"] >= want
                ):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"serve not ready in {timeout} s: {self.log.read_text()[-2000:]}")

    def headers(self) -> dict[str, str]:
        token = self.env.get("STRANSFER_API_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def kill(self) -> None:
        """SIGKILL the API process alone (its workers notice and hand their jobs back)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        self.proc = None

    # ------------------------------------------------------------ client calls

    def submit(self, settings: dict | None = None, *, styles: int = 1, seed: int = 0) -> dict:
        files = [("content", ("content.png", png(seed), "image/png"))]
        files += [("style", (f"style{i}.png", png(100 + i), "image/png")) for i in range(styles)]
        data = {"settings": __import__("json").dumps(settings or {"steps": 3, "size": 64})}
        answer = requests.post(
            self.url + "/jobs", files=files, data=data, timeout=30, headers=self.headers()
        )
        assert answer.status_code == 202, answer.text
        return answer.json()

    def job(self, job_id: str) -> dict:
        return requests.get(f"{self.url}/jobs/{job_id}", timeout=10, headers=self.headers()).json()

    def wait(self, job_id: str, timeout: float = 120, until=None) -> dict:
        end = time.monotonic() + timeout
        view = self.job(job_id)
        while time.monotonic() < end:
            view = self.job(job_id)
            if until(view) if until else view["state"] in ("done", "failed", "cancelled"):
                return view
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} still {view} after {timeout} s")

    def animation_frames(self, job_id: str) -> int:
        """Fetch a finished job's ``/animation`` and return its frame count (asserting a GIF)."""
        answer = requests.get(
            f"{self.url}/jobs/{job_id}/animation", timeout=10, headers=self.headers()
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "image/gif"
        with Image.open(io.BytesIO(answer.content)) as gif:
            assert gif.format == "GIF"
            gif.seek(gif.n_frames - 1)  # decodes through to the last frame
            return gif.n_frames

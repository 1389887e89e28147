"""``JobService`` over the durable store, with worker processes started on this machine.

``LocalService`` is what the HTTP API and the page use. It never imports the engine: jobs are
checked here (settings, images, limits), stored, and run by worker processes
(``python -m stransfer worker``) that it starts and restarts. With ``broker`` set
(``STRANSFER_BROKER=redis://...``) the jobs go through the distributed queue instead
(``service.broker``) and workers may live on other machines.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from pathlib import Path

from .jobs import JobRequest, JobView
from .limits import Limits, check_request
from .store import Store
from .worker import MAX_ATTEMPTS, STALE_SECONDS, setting

#: Worker processes ``serve`` and the page start by default.
DEFAULT_WORKERS = 1


class LocalService:
    """Jobs in ``Store(data)``, run by ``workers`` local worker processes (see module doc).

    Args:
        data: the data folder (default ``$STRANSFER_DATA`` or ~/.local/share/stransfer).
        workers: worker processes to keep running (0: start none; workers started elsewhere,
            e.g. by another service on the same folder, still pick the jobs up).
        limits: request and queue limits (default ``Limits.from_env()``).
        broker: a Redis URL to run jobs through the distributed queue instead of local
            store-polling workers; the ``workers`` started locally then join that broker.
    """

    def __init__(
        self,
        data: str | os.PathLike | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        limits: Limits | None = None,
        broker: str | None = None,
    ) -> None:
        self.store = Store(data)
        self.limits = limits or Limits.from_env()
        self.broker = broker
        self.wanted = max(0, workers)
        self.stale = setting("STALE_SECONDS", STALE_SECONDS)
        self.max_attempts = int(setting("MAX_ATTEMPTS", MAX_ATTEMPTS))
        self.processes: list[subprocess.Popen] = []
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._bridge = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ JobService

    def submit(self, request: JobRequest) -> JobView:
        checked = check_request(request, self.limits)
        return self.store.add(
            checked,
            client=request.client,
            limits=self.limits,
            resume_from=request.resume_from,
            first_step=request.first_step,
        )

    def get(self, job_id: str) -> JobView:
        return self.store.get(job_id)

    def history(self, job_id: str) -> list[JobView]:
        return self.store.history(job_id)

    def frame(self, job_id: str) -> bytes | None:
        self.store.get(job_id)  # NoSuchJob for ids that are not ours
        return self.store.file(job_id, "frame.png")

    def result(self, job_id: str) -> bytes:
        return self.store.result(job_id)

    def animation(self, job_id: str) -> bytes | None:
        """The run's evolution as a looping GIF once the job has ended (None: no animation,
        e.g. an instant job or a one-step run). Local and broker workers both keep it."""
        if not self.store.get(job_id).final:  # NoSuchJob for ids that are not ours
            return None
        return self.store.file(job_id, "animation.gif")

    def cancel(self, job_id: str) -> JobView:
        view = self.store.cancel(job_id)
        if self._bridge is not None:
            self._bridge.cancel(job_id)
        return view

    def health(self) -> dict[str, int]:
        counts = self.store.counts(self.stale)
        if self._bridge is not None:
            counts["workers"] = self._bridge.live_workers()
        return counts

    # ------------------------------------------------------------------ processes

    def worker_command(self) -> list[str]:
        command = [sys.executable, "-m", "stransfer", "worker", "--parent", str(os.getpid())]
        if self.broker:
            return [*command, "--join", self.broker]
        return [*command, "--data", str(self.store.root)]

    def _spawn(self) -> subprocess.Popen:
        env = dict(os.environ)
        # Workers import this package from wherever this process did (a checkout or a wheel).
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env["STRANSFER_DATA"] = str(self.store.root)
        return subprocess.Popen(self.worker_command(), env=env, stdin=subprocess.DEVNULL)

    def start(self) -> LocalService:
        """Start the workers and the supervisor (restarts dead workers, requeues orphans)."""
        with self._lock:
            if self._supervisor is not None:
                return self
            if self.broker:
                from .broker import Bridge

                self._bridge = Bridge(self.store, self.broker, stale=self.stale)
                self._bridge.start()
            self.processes = [self._spawn() for _ in range(self.wanted)]
            self._supervisor = threading.Thread(
                target=self._supervise, name="stransfer-supervisor", daemon=True
            )
            self._supervisor.start()
        return self

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                for i, proc in enumerate(self.processes):
                    if proc.poll() is not None and not self._stop.is_set():
                        self.processes[i] = self._spawn()
            try:
                if self._bridge is None:
                    self.store.requeue_stale(self.stale, self.max_attempts)
            except Exception:  # a busy database: next round
                pass

    def close(self, timeout: float = 20.0) -> None:
        """Stop the workers (their running jobs go back to the queue with a checkpoint)."""
        self._stop.set()
        with self._lock:
            for proc in self.processes:
                if proc.poll() is None:
                    proc.terminate()
            for proc in self.processes:
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.processes = []
        if self._bridge is not None:
            self._bridge.close()

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


_SERVICE: LocalService | None = None
_SERVICE_LOCK = threading.Lock()


def local_service(
    data: str | os.PathLike | None = None, *, workers: int | None = None
) -> LocalService:
    """The process's one started ``LocalService`` (for the page): created on first call with
    ``$STRANSFER_DATA``, ``$STRANSFER_WORKERS`` (default 1) and ``$STRANSFER_BROKER``; later
    calls return the same one. Its workers stop when this process ends."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            count = workers if workers is not None else int(setting("WORKERS", DEFAULT_WORKERS))
            service = LocalService(
                data, workers=count, broker=os.environ.get("STRANSFER_BROKER") or None
            )
            service.start()
            atexit.register(service.close)
            _SERVICE = service
        return _SERVICE

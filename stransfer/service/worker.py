"""A local worker process: claim jobs from the store, run them, report, repeat.

Started by ``LocalService`` (``python -m stransfer worker --data DIR``) on the machine that
holds the data folder. A heartbeat thread keeps the worker's and its job's heartbeats fresh,
passes on a cancel, and requeues jobs whose worker died (any live worker or the service does
that). SIGTERM, or the parent process going away, ends the current job at the next step: its
image becomes the checkpoint and the job goes back to the queue to continue from it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .execute import Outcome, RunInput, execute, warm_up
from .store import Store, Task

#: Seconds between heartbeats (``STRANSFER_HEARTBEAT_SECONDS``).
HEARTBEAT_SECONDS = 1.0
#: A job whose heartbeat is older than this is presumed orphaned (``STRANSFER_STALE_SECONDS``).
STALE_SECONDS = 30.0
#: Attempts a job gets before a dying worker fails it (``STRANSFER_MAX_ATTEMPTS``).
MAX_ATTEMPTS = 3


def setting(name: str, default: float) -> float:
    """A number from the environment (``STRANSFER_<NAME>``), or ``default``."""
    try:
        return float(os.environ.get(f"STRANSFER_{name}", default))
    except ValueError:
        return default


def worker_name() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:50] or "host"
    return f"{host}:{os.getpid()}"


def run_input(task: Task) -> RunInput:
    """A claimed task's files read into a ``RunInput``."""
    count = len(task.inputs.get("style_weights", []))
    styles = [
        ((task.folder / f"style-{i}").read_bytes(), float(task.inputs["style_weights"][i]))
        for i in range(count)
    ]
    return RunInput(
        job_id=task.id,
        attempt=task.attempt,
        settings=task.settings,
        extra=task.extra,
        inputs=task.inputs,
        content=(task.folder / "content").read_bytes(),
        styles=styles,
        start_png=task.start_image.read_bytes() if task.start_image else None,
        first_step=task.first_step,
        done_before=task.done_before,
        elapsed_before=task.elapsed_before,
        from_checkpoint=task.from_checkpoint,
    )


class StoreReporter:
    """Sends a job's news to the store; ``stop_reason`` is set by the heartbeat thread."""

    def __init__(self, store: Store, task: Task, stopping: threading.Event) -> None:
        self.store, self.task, self.stopping = store, task, stopping
        self.cancelled = False
        self.lost = False

    def phase(self, text: str) -> None:
        if not self.store.phase(self.task.id, self.task.attempt, text):
            self.lost = True

    def progress(self, view: dict[str, Any], frame_png: bytes | None) -> None:
        if not self.store.progress(self.task.id, self.task.attempt, view, frame_png):
            self.lost = True

    def checkpoint(self, png: bytes, step: int, elapsed: float) -> None:
        self.store.checkpoint(self.task.id, self.task.attempt, png, step, elapsed)

    def stop_reason(self) -> str | None:
        if self.lost:
            return "lost"
        if self.cancelled:
            return "cancel"
        if self.stopping.is_set():
            return "shutdown"
        return None


class Worker:
    """One worker's loop over the store (see the module docstring)."""

    def __init__(self, store: Store, name: str | None = None, parent: int | None = None) -> None:
        self.store = store
        self.name = name or worker_name()
        self.parent = parent
        self.stopping = threading.Event()
        self.reporter: StoreReporter | None = None
        self.heartbeat_every = setting("HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)
        self.stale = setting("STALE_SECONDS", STALE_SECONDS)
        self.max_attempts = int(setting("MAX_ATTEMPTS", MAX_ATTEMPTS))

    def _beat(self) -> None:
        while not self.stopping.is_set():
            reporter = self.reporter
            try:
                if reporter is None:
                    self.store.heartbeat(self.name)
                elif self.store.heartbeat(self.name, reporter.task.id, reporter.task.attempt):
                    if self.store.owns(reporter.task.id, reporter.task.attempt):
                        reporter.cancelled = True
                    else:
                        reporter.lost = True
                self.store.requeue_stale(self.stale, self.max_attempts)
            except Exception:  # a busy database: try again at the next beat
                pass
            if self.parent is not None and os.getppid() != self.parent:
                self.stopping.set()  # the service that started us is gone
            self.stopping.wait(self.heartbeat_every)

    def run(self, *, max_jobs: int | None = None, poll: float = 0.2, warm: bool = False) -> int:
        """Claim and run jobs until stopped (or ``max_jobs`` are done); returns jobs run.
        ``warm``: first ``execute.warm_up()`` unless a job is already waiting."""
        beat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        beat.start()
        done = 0
        try:
            # Pay TensorFlow's import, the default network and its trace while no job waits on
            # them (a job already queued goes first: it pays for what it needs, no more).
            if warm and not self.store.counts(self.stale)["queued"]:
                sys.stderr.write(f"stransfer worker: {warm_up()}\n")
                sys.stderr.flush()
            while not self.stopping.is_set() and (max_jobs is None or done < max_jobs):
                task = self.store.claim(self.name)
                if task is None:
                    self.stopping.wait(poll)
                    continue
                self.reporter = StoreReporter(self.store, task, self.stopping)
                try:
                    outcome = execute(run_input(task), self.reporter)
                except OSError as err:  # the job's files are unreadable
                    outcome = Outcome("failed", f"the job's files cannot be read: {err}")
                self._finish(task, outcome)
                self.reporter = None
                done += 1
        finally:
            self.stopping.set()
            beat.join(timeout=5)
            self.store.worker_gone(self.name)
        return done

    def _finish(self, task: Task, outcome: Outcome) -> None:
        if outcome.state == "released":
            self.store.release(task.id, task.attempt, outcome.message)
        else:
            self.store.finish(
                task.id,
                task.attempt,
                outcome.state,
                outcome.message,
                outcome.result_png,
                outcome.record_json,
                outcome.animation_gif,
            )


def serve_store(data: str | Path | None, parent: int | None = None) -> int:
    """Run a local worker on the data folder until SIGTERM/SIGINT (or the parent dies)."""
    worker = Worker(Store(data), parent=parent)

    def stop(signum: int, frame: Any) -> None:
        if worker.stopping.is_set():
            raise SystemExit(1)  # a second signal: leave now
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.store.heartbeat(worker.name)
    worker.run(warm=True)
    return 0


def wait_for(condition: Any, timeout: float, every: float = 0.1) -> bool:
    """Poll ``condition()`` until true or ``timeout`` seconds pass (for tools and tests)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())

"""The distributed path: jobs run by RQ workers over Redis, on any machine that reaches it.

Chosen by measurement over Ray (see docs/architecture.md). The SQLite store stays the one
source of truth on the API's machine; Redis only carries work and news:

- ``Bridge`` (in the API/page process) dispatches claimed jobs to the RQ queue ``stransfer``,
  at most as many as there are live workers (so the store's fair order still decides), and
  applies the workers' events from the Redis stream ``stransfer:events`` to the store.
- ``run_worker`` (``python -m stransfer worker --join redis://HOST:PORT/DB``) is an RQ
  ``SimpleWorker`` (no fork per job, so the model stays loaded) that runs ``run_remote``:
  the same ``execute()`` as a local worker, reporting through the stream.

A worker that dies stops sending heartbeats; the store's stale-job rule requeues its job with
the last checkpoint (which came through the stream) and the bridge dispatches it again. Every
event carries the job's attempt number, so a late event from a lost attempt changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from .execute import ANIMATION_MAX_BYTES, RunInput, execute, warm_up
from .store import Store
from .worker import HEARTBEAT_SECONDS, STALE_SECONDS, run_input, setting, worker_name

QUEUE = "stransfer"
EVENTS = "stransfer:events"
WORKERS = "stransfer:workers"
GROUP = "bridges"


def _redis(url: str) -> Any:
    import redis

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"broker address {url!r} must start with redis://, e.g. redis://HOST:6379/0"
        )
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def _stop_key(job_id: str, attempt: int) -> str:
    return f"stransfer:stop:{job_id}:{attempt}"


def _cancel_key(job_id: str) -> str:
    return f"stransfer:cancel:{job_id}"


class Bridge:
    """Dispatches the store's queued jobs to RQ and applies the workers' events to the store."""

    def __init__(self, store: Store, url: str, *, stale: float = STALE_SECONDS) -> None:
        from rq import Queue

        self.store, self.url, self.stale = store, url, stale
        self.redis = _redis(url)
        self.redis.ping()
        self.queue = Queue(QUEUE, connection=self.redis)
        self.max_attempts = int(setting("MAX_ATTEMPTS", 3))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._dispatch_loop, self._collect_loop):
            thread = threading.Thread(target=target, name=f"stransfer-{target.__name__}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def live_workers(self) -> int:
        now = time.time()
        beats = self.redis.hgetall(WORKERS)
        return sum(1 for ts in beats.values() if now - float(ts) < self.stale)

    def cancel(self, job_id: str) -> None:
        self.redis.set(_cancel_key(job_id), 1, ex=86400)

    # ------------------------------------------------------------------ dispatching

    def _dispatch_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.store.requeue_stale(self.stale, self.max_attempts)
                self._dispatch()
            except Exception:  # Redis or the database busy/unreachable: next round
                time.sleep(1)

    def _dispatch(self) -> None:
        counts = self.store.counts(self.stale)
        in_flight = counts["running"] + len(self.store.dispatched())
        room = max(1, self.live_workers()) - in_flight
        for _ in range(room):
            task = self.store.claim("broker", dispatch=True)
            if task is None:
                return
            payload = run_input(task)
            self.queue.enqueue(
                "stransfer.service.broker.run_remote",
                payload,
                self.url,
                job_id=f"{task.id}-{task.attempt}",
                job_timeout=-1,
                result_ttl=0,
                failure_ttl=3600,
            )

    # ------------------------------------------------------------------ events

    def _collect_loop(self) -> None:
        # A consumer group: with several bridges (the API and the page) each event is applied
        # once; events a bridge read but did not apply before it died are taken over.
        import redis

        with contextlib.suppress(redis.ResponseError):  # the group exists already
            self.redis.xgroup_create(EVENTS, GROUP, id="0", mkstream=True)
        consumer = worker_name()
        with contextlib.suppress(Exception):  # take over what a bridge that died left unread
            self.redis.xautoclaim(EVENTS, GROUP, consumer, min_idle_time=10_000, start_id="0")
        pending = True
        while not self._stop.is_set():
            try:
                answer = self.redis.xreadgroup(
                    GROUP, consumer, {EVENTS: "0" if pending else ">"}, count=100, block=500
                )
            except Exception:
                time.sleep(1)
                continue
            entries = [entry for _, batch in answer or [] for entry in batch]
            pending = pending and bool(entries)
            for entry_id, fields in entries:
                with contextlib.suppress(Exception):  # one bad event must not stop the rest
                    self._apply({k.decode(): v for k, v in fields.items()})
                self.redis.xack(EVENTS, GROUP, entry_id)
                self.redis.xdel(EVENTS, entry_id)

    def _apply(self, e: dict[str, bytes]) -> None:
        kind = e["kind"].decode()
        job_id, attempt = e["job"].decode(), int(e["attempt"])
        store = self.store
        ok = True
        if kind == "start":
            ok = store.start(job_id, attempt, e["worker"].decode())
        elif kind == "beat":
            store.heartbeat(e["worker"].decode(), job_id, attempt)
        elif kind == "phase":
            ok = store.phase(job_id, attempt, e["text"].decode())
        elif kind == "progress":
            frame = e.get("frame") or None
            ok = store.progress(job_id, attempt, json.loads(e["view"]), frame)
        elif kind == "checkpoint":
            ok = store.checkpoint(job_id, attempt, e["png"], int(e["step"]), float(e["elapsed"]))
        elif kind == "release":
            store.release(job_id, attempt, e["message"].decode())
        elif kind == "finish":
            gif = e.get("gif") or None
            store.finish(
                job_id,
                attempt,
                e["state"].decode(),
                e["message"].decode(),
                e.get("png") or None,
                e["record"].decode() or None,
                gif if gif is not None and len(gif) <= ANIMATION_MAX_BYTES else None,
            )
        if not ok:  # not this attempt's job any more: tell its worker to stop
            self.redis.set(_stop_key(job_id, attempt), 1, ex=3600)


class RedisReporter:
    """A remote job's news as events on the stream; stop flags read from Redis."""

    def __init__(self, redis: Any, run: RunInput, worker: str) -> None:
        self.redis, self.run, self.worker = redis, run, worker
        self.keys = [_cancel_key(run.job_id), _stop_key(run.job_id, run.attempt)]
        self.shutdown = threading.Event()

    def send(self, kind: str, **fields: Any) -> None:
        data = {"kind": kind, "job": self.run.job_id, "attempt": self.run.attempt, **fields}
        self.redis.xadd(EVENTS, {k: v for k, v in data.items() if v is not None})

    def phase(self, text: str) -> None:
        self.send("phase", text=text)

    def progress(self, view: dict[str, Any], frame_png: bytes | None) -> None:
        self.send("progress", view=json.dumps(view), frame=frame_png or b"")

    def checkpoint(self, png: bytes, step: int, elapsed: float) -> None:
        self.send("checkpoint", png=png, step=step, elapsed=elapsed)

    def stop_reason(self) -> str | None:
        cancel, lost = self.redis.mget(self.keys)
        if cancel:
            return "cancel"
        if lost:
            return "lost"
        return "shutdown" if self.shutdown.is_set() else None


_CURRENT: dict[str, Any] = {}


def run_remote(run: RunInput, url: str) -> str:
    """The RQ job: run one attempt and send its end to the stream (in the worker process)."""
    redis = _redis(url)
    worker = _CURRENT.get("name") or worker_name()
    reporter = RedisReporter(redis, run, worker)
    _CURRENT["reporter"] = reporter
    try:
        reporter.send("start", worker=worker)
        outcome = execute(replace(run), reporter)
        if outcome.state == "released":
            reporter.send("release", message=outcome.message)
        else:
            reporter.send(
                "finish",
                state=outcome.state,
                message=outcome.message,
                png=outcome.result_png or b"",
                record=outcome.record_json or "",
                gif=outcome.animation_gif or b"",
            )
        return outcome.state
    finally:
        _CURRENT.pop("reporter", None)


def run_worker(url: str, *, parent: int | None = None) -> int:
    """``stransfer worker --join URL``: an RQ worker on the ``stransfer`` queue until stopped."""
    from rq import SimpleWorker

    redis = _redis(url)
    redis.ping()
    name = worker_name()
    _CURRENT["name"] = name
    every = setting("HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)
    stopping = threading.Event()

    def beat() -> None:
        while not stopping.wait(every):
            with contextlib.suppress(Exception):
                redis.hset(WORKERS, name, time.time())
                reporter = _CURRENT.get("reporter")
                if reporter is not None:
                    reporter.send("beat", worker=name)
            if parent is not None and os.getppid() != parent:
                shutdown()

    def shutdown() -> None:
        if not stopping.is_set():
            os.kill(os.getpid(), signal.SIGTERM)  # RQ's warm shutdown (see _Worker)

    # Pay TensorFlow's import, the default network and its trace before announcing the
    # worker, so the first job does not wait for them.
    sys.stderr.write(f"stransfer worker: {warm_up()}\n")

    redis.hset(WORKERS, name, time.time())
    threading.Thread(target=beat, name="heartbeat", daemon=True).start()

    class _Worker(SimpleWorker):
        def request_stop(self, signum: Any, frame: Any) -> None:
            reporter = _CURRENT.get("reporter")
            if reporter is not None:
                reporter.shutdown.set()  # the job checkpoints and goes back to the queue
            stopping.set()
            super().request_stop(signum, frame)

    rq_worker = _Worker([QUEUE], connection=redis, name=name)
    try:
        rq_worker.work(with_scheduler=False, logging_level="WARNING")
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            redis.hdel(WORKERS, name)
    return 0

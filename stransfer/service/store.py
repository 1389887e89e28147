"""The durable job store: one SQLite database (WAL) and one folder per job under the data folder.

    $STRANSFER_DATA/               (default ~/.local/share/stransfer)
        jobs.db                    jobs, their progress history and the workers' heartbeats
        jobs/<id>/content          the content file as uploaded (its pixel hash is in the row)
        jobs/<id>/style-<n>        each style file
        jobs/<id>/resume.png       the image a continued run starts from (optional)
        jobs/<id>/checkpoint.png   the running job's image every few seconds
        jobs/<id>/frame.png        the latest preview frame
        jobs/<id>/result.png       the result, its run record in the PNG metadata
        jobs/<id>/result.json      the same record as JSON
        jobs/<id>/animation.gif    the run's evolution (an optimise job that ended)

Every file is written atomically (``io.images.write_bytes_atomic``) and a job's files are on disk
before its row is committed, so a job the API acknowledged can always run. Job ids are random
tokens checked against ``ID_PATTERN`` before they touch a path or a query.

Several processes (the API or page, local workers) share the database; writes that must not
interleave (claiming a job, admitting one under the queue limits) run in ``BEGIN IMMEDIATE``
transactions. Updates from a worker carry the job's ``attempt`` so a worker that was presumed
dead and comes back cannot overwrite the work of the one that took over.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.images import write_bytes_atomic
from .jobs import Busy, Conflict, JobView, NoSuchJob
from .limits import CheckedRequest, Limits

#: A job id: 24 lowercase hex digits (96 random bits). Anything else is not one of ours.
ID_PATTERN = re.compile(r"[0-9a-f]{24}")
#: A worker id: letters, digits, dot, dash, underscore, colon, at most 80 characters.
WORKER_PATTERN = re.compile(r"[A-Za-z0-9._:@-]{1,80}")


def default_data_dir() -> Path:
    """``$STRANSFER_DATA``, else ``$XDG_DATA_HOME/stransfer``, else ~/.local/share/stransfer."""
    if os.environ.get("STRANSFER_DATA"):
        return Path(os.environ["STRANSFER_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "stransfer"


def new_id() -> str:
    return secrets.token_hex(12)


def check_id(job_id: str) -> str:
    """``job_id`` if it has the form of our ids; NoSuchJob otherwise (never a path)."""
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise NoSuchJob(f"no job {job_id[:40]!r}: job ids are 24 hex digits as POST /jobs returns")
    return job_id


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    client TEXT NOT NULL,
    state TEXT NOT NULL,
    settings TEXT NOT NULL,
    extra TEXT NOT NULL,
    inputs TEXT NOT NULL,
    first_step INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    heartbeat REAL,
    worker TEXT,
    workers TEXT NOT NULL DEFAULT '[]',
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    losses TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT '',
    sps REAL NOT NULL DEFAULT 0,
    eta REAL NOT NULL DEFAULT 0,
    elapsed REAL NOT NULL DEFAULT 0,
    frame INTEGER NOT NULL DEFAULT 0,
    checkpoint_step INTEGER NOT NULL DEFAULT 0,
    checkpoint_elapsed REAL NOT NULL DEFAULT 0,
    dispatched REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    heartbeat REAL NOT NULL,
    job TEXT,
    jobs_done INTEGER NOT NULL DEFAULT 0
);
"""

_ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one claimed job (paths on this machine)."""

    id: str
    attempt: int
    settings: dict[str, Any]
    extra: dict[str, Any]
    inputs: dict[str, Any]
    folder: Path
    first_step: int
    #: steps already done when this attempt starts (from a checkpoint, or the request's).
    done_before: int
    #: seconds already spent on earlier attempts.
    elapsed_before: float
    #: the image to start from: the checkpoint, the request's resume image, or None.
    start_image: Path | None
    from_checkpoint: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Store:
    """The job table and job folders under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_data_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "jobs").mkdir(exist_ok=True)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    # ------------------------------------------------------------------ plumbing

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.root / "jobs.db", timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _tx(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def folder(self, job_id: str) -> Path:
        return self.root / "jobs" / check_id(job_id)

    def _row(self, db: sqlite3.Connection, job_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (check_id(job_id),)).fetchone()
        if row is None:
            raise NoSuchJob(f"no job {job_id!r} (it may have been made on another server)")
        return row

    # ------------------------------------------------------------------ clients' side

    def add(
        self,
        checked: CheckedRequest,
        *,
        client: str,
        limits: Limits,
        resume_from: bytes | None = None,
        first_step: int = 0,
    ) -> JobView:
        """Store a checked request (files first, then the row) and return it queued.

        Raises Busy when the client or the whole queue is at its limit.
        """
        job_id = new_id()
        folder = self.folder(job_id)
        folder.mkdir(parents=True)
        try:
            write_bytes_atomic(folder / "content", checked.content)
            for i, (data, _) in enumerate(checked.styles):
                write_bytes_atomic(folder / f"style-{i}", data)
            if resume_from is not None:
                write_bytes_atomic(folder / "resume.png", resume_from)
            inputs = {
                "content_sha256": checked.content_sha256,
                "style_sha256": checked.style_sha256,
                "style_weights": [w for _, w in checked.styles],
                "names": checked.names,
                "shape": list(checked.shape),
                "resume": resume_from is not None,
            }
            now = time.time()
            steps = first_step + checked.steps
            with self._tx() as db:
                self._admit(db, client, limits)
                db.execute(
                    "INSERT INTO jobs (id, client, state, settings, extra, inputs, first_step, "
                    "created, updated, step, steps, phase) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, 'queued')",
                    (
                        job_id,
                        client,
                        json.dumps(checked.settings),
                        json.dumps(checked.extra),
                        json.dumps(inputs),
                        first_step,
                        now,
                        now,
                        first_step,
                        steps,
                    ),
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.get(job_id)

    @staticmethod
    def _admit(db: sqlite3.Connection, client: str, limits: Limits) -> None:
        total = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
        ).fetchone()[0]
        if total >= limits.max_queued:
            raise Busy(
                f"the queue is full ({total} jobs waiting or running); try again later",
                retry_after=60,
            )
        mine = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE client = ? AND state IN ('queued', 'running')",
            (client,),
        ).fetchone()[0]
        if mine >= limits.max_queued_per_client:
            raise Busy(
                f"you have {mine} jobs waiting or running, the most one client may have; "
                "wait for one to finish or cancel one",
                retry_after=30,
            )

    def get(self, job_id: str) -> JobView:
        db = self._db()
        row = self._row(db, job_id)
        return self._view(db, row)

    def _view(self, db: sqlite3.Connection, row: sqlite3.Row) -> JobView:
        position = 0
        phase = row["phase"]
        if row["state"] == "queued":
            position = (
                db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND seq < ?", (row["seq"],)
                ).fetchone()[0]
                + 1
            )
            phase = f"queued, position {position}" + (
                f" ({row['message']})" if row["message"] else ""
            )
        return JobView(
            id=row["id"],
            state=row["state"],
            step=row["step"],
            steps=row["steps"],
            losses=json.loads(row["losses"]),
            message=row["message"],
            position=position,
            phase=phase,
            seconds_per_step=row["sps"],
            eta=row["eta"],
            elapsed=row["elapsed"],
            frame=row["frame"],
            first_step=row["first_step"],
            created=row["created"],
            updated=row["updated"],
        )

    def details(self, job_id: str) -> dict[str, Any]:
        """The stored request and bookkeeping of a job (for tests, tools and the page)."""
        row = self._row(self._db(), job_id)
        return {
            "settings": json.loads(row["settings"]),
            "extra": json.loads(row["extra"]),
            "inputs": json.loads(row["inputs"]),
            "client": row["client"],
            "attempt": row["attempt"],
            "failures": row["failures"],
            "worker": row["worker"],
            "workers": json.loads(row["workers"]),
            "checkpoint_step": row["checkpoint_step"],
            "started": row["started"],
        }

    def history(self, job_id: str) -> list[JobView]:
        db = self._db()
        row = self._row(db, job_id)
        rows = db.execute(
            "SELECT data FROM events WHERE job_id = ? ORDER BY n", (row["id"],)
        ).fetchall()
        return [JobView(id=row["id"], **json.loads(r["data"])) for r in rows]

    def file(self, job_id: str, name: str) -> bytes | None:
        path = self.folder(job_id) / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def result(self, job_id: str) -> bytes:
        view = self.get(job_id)
        data = self.file(job_id, "result.png") if view.state in ("done", "cancelled") else None
        if data is None:
            raise Conflict(
                f"job {job_id} is {view.state}"
                + (f" ({view.message})" if view.message else "")
                + "; the result is there once it is done"
            )
        return data

    def cancel(self, job_id: str) -> JobView:
        with self._tx() as db:
            row = self._row(db, job_id)
            if row["state"] == "queued":
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel = 1, phase = 'cancelled', "
                    "message = 'cancelled before it started', updated = ? WHERE id = ?",
                    (time.time(), job_id),
                )
            elif row["state"] == "running":
                db.execute(
                    "UPDATE jobs SET cancel = 1, phase = 'stopping', updated = ? WHERE id = ?",
                    (time.time(), job_id),
                )
            else:
                raise Conflict(f"job {job_id} is already {row['state']}; nothing to cancel")
        return self.get(job_id)

    def counts(self, stale_seconds: float) -> dict[str, int]:
        db = self._db()
        states = dict(
            db.execute(
                "SELECT state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running') "
                "GROUP BY state"
            ).fetchall()
        )
        workers = db.execute(
            "SELECT COUNT(*) FROM workers WHERE heartbeat > ?", (time.time() - stale_seconds,)
        ).fetchone()[0]
        return {
            "workers": workers,
            "queued": states.get("queued", 0),
            "running": states.get("running", 0),
        }

    # ------------------------------------------------------------------ workers' side

    def heartbeat(self, worker: str, job_id: str | None = None, attempt: int = 0) -> bool:
        """Record that ``worker`` is alive (and still on ``job_id``); True if the job was
        asked to stop (cancelled) or taken from this worker."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO workers (id, heartbeat, job) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET heartbeat = excluded.heartbeat, job = excluded.job",
                (worker, now, job_id),
            )
            if job_id is None:
                return False
            db.execute(
                "UPDATE jobs SET heartbeat = ? WHERE id = ? AND attempt = ? AND state = 'running'",
                (now, job_id, attempt),
            )
            row = db.execute(
                "SELECT cancel, attempt, state FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return bool(row is None or row["cancel"] or row["attempt"] != attempt)

    def worker_gone(self, worker: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM workers WHERE id = ?", (worker,))

    def claim(self, worker: str, *, dispatch: bool = False) -> Task | None:
        """Take the next queued job for ``worker``, or None.

        The order is fair across clients and FIFO within one: the oldest job of a client with
        nothing running goes first. With ``dispatch`` (a broker hands the job on) the job stays
        ``queued`` and is only marked as dispatched; ``start`` makes it running.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM jobs j WHERE state = 'queued' AND dispatched IS NULL ORDER BY "
                "(SELECT COUNT(*) FROM jobs r WHERE r.client = j.client AND "
                "(r.state = 'running' OR r.dispatched IS NOT NULL)), seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            attempt = row["attempt"] + 1
            if dispatch:
                db.execute(
                    "UPDATE jobs SET dispatched = ?, attempt = ?, heartbeat = ? WHERE id = ?",
                    (now, attempt, now, row["id"]),
                )
            else:
                self._start(db, row["id"], attempt, worker, now)
        return self._task(row, attempt)

    def _start(
        self, db: sqlite3.Connection, job_id: str, attempt: int, worker: str, now: float
    ) -> None:
        row = db.execute("SELECT workers FROM jobs WHERE id = ?", (job_id,)).fetchone()
        used = json.loads(row["workers"])
        if worker not in used:
            used.append(worker)
        db.execute(
            "UPDATE jobs SET state = 'running', attempt = ?, worker = ?, workers = ?, "
            "heartbeat = ?, started = COALESCE(started, ?), updated = ?, phase = 'starting', "
            "message = '' WHERE id = ?",
            (attempt, worker, json.dumps(used), now, now, now, job_id),
        )
        db.execute(
            "INSERT INTO workers (id, heartbeat, job) VALUES (?, ?, ?) ON CONFLICT(id) "
            "DO UPDATE SET heartbeat = excluded.heartbeat, job = excluded.job",
            (worker, now, job_id),
        )

    def start(self, job_id: str, attempt: int, worker: str) -> bool:
        """A dispatched job reached ``worker``: mark it running. False if it is no longer
        this attempt's (cancelled, or given to someone else)."""
        with self._tx() as db:
            row = self._row(db, job_id)
            if row["state"] != "queued" or row["attempt"] != attempt or row["cancel"]:
                return False
            self._start(db, job_id, attempt, worker, time.time())
        return True

    def _task(self, row: sqlite3.Row, attempt: int) -> Task:
        folder = self.folder(row["id"])
        checkpoint = folder / "checkpoint.png"
        inputs = json.loads(row["inputs"])
        from_checkpoint = row["checkpoint_step"] > row["first_step"] and checkpoint.exists()
        if from_checkpoint:
            start, done, elapsed = checkpoint, row["checkpoint_step"], row["checkpoint_elapsed"]
        else:
            resume = folder / "resume.png"
            start = resume if inputs.get("resume") else None
            done, elapsed = row["first_step"], 0.0
        return Task(
            id=row["id"],
            attempt=attempt,
            settings=json.loads(row["settings"]),
            extra=json.loads(row["extra"]),
            inputs=inputs,
            folder=folder,
            first_step=row["first_step"],
            done_before=done,
            elapsed_before=elapsed,
            start_image=start,
            from_checkpoint=from_checkpoint,
        )

    @staticmethod
    def _running(db: sqlite3.Connection, job_id: str, attempt: int) -> sqlite3.Row | None:
        """The job's row while attempt ``attempt`` is the one running it, else None."""
        return db.execute(
            "SELECT * FROM jobs WHERE id = ? AND attempt = ? AND state = 'running'",
            (job_id, attempt),
        ).fetchone()

    def owns(self, job_id: str, attempt: int) -> bool:
        """Whether attempt ``attempt`` of the job is the one running it now."""
        return self._running(self._db(), job_id, attempt) is not None

    def _update(self, job_id: str, attempt: int, **values: Any) -> bool:
        """Set columns of a running job of this attempt; False if the job is not ours now."""
        values["updated"] = time.time()
        columns = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            done = db.execute(
                f"UPDATE jobs SET {columns} WHERE id = ? AND attempt = ? AND state = 'running'",
                (*values.values(), job_id, attempt),
            ).rowcount
        return done == 1

    def phase(self, job_id: str, attempt: int, text: str) -> bool:
        return self._update(job_id, attempt, phase=text)

    def progress(
        self, job_id: str, attempt: int, view: dict[str, Any], frame_png: bytes | None = None
    ) -> bool:
        """Record one step (and a new preview frame); False if the job is no longer ours."""
        if frame_png is not None:
            if not self.owns(job_id, attempt):
                return False
            write_bytes_atomic(self.folder(job_id) / "frame.png", frame_png)
        now = time.time()
        with self._tx() as db:
            row = self._running(db, job_id, attempt)
            if row is None:
                return False
            frame = row["frame"] + (frame_png is not None)
            db.execute(
                "UPDATE jobs SET step = ?, steps = ?, losses = ?, phase = ?, sps = ?, eta = ?, "
                "elapsed = ?, frame = ?, updated = ?, heartbeat = ? WHERE id = ?",
                (
                    view["step"],
                    view["steps"],
                    json.dumps(view["losses"]),
                    view["phase"],
                    view["seconds_per_step"],
                    view["eta"],
                    view["elapsed"],
                    frame,
                    now,
                    now,
                    job_id,
                ),
            )
            n = db.execute(
                "SELECT COALESCE(MAX(n), 0) + 1 FROM events WHERE job_id = ?", (job_id,)
            ).fetchone()[0]
            history = {**view, "state": "running", "frame": frame, "updated": now}
            db.execute(
                "INSERT INTO events (job_id, n, data) VALUES (?, ?, ?)",
                (job_id, n, json.dumps(history)),
            )
        return True

    def checkpoint(self, job_id: str, attempt: int, png: bytes, step: int, elapsed: float) -> bool:
        """Keep ``png`` as the image a new attempt would start from (at ``step``)."""
        if not self.owns(job_id, attempt):
            return False
        write_bytes_atomic(self.folder(job_id) / "checkpoint.png", png)
        return self._update(job_id, attempt, checkpoint_step=step, checkpoint_elapsed=elapsed)

    def finish(
        self,
        job_id: str,
        attempt: int,
        state: str,
        message: str = "",
        result_png: bytes | None = None,
        record_json: str | None = None,
        animation_gif: bytes | None = None,
    ) -> bool:
        """End the job: ``done``, ``failed`` or ``cancelled``, with its result (and the run's
        animation) if any."""
        folder = self.folder(job_id)
        if not self.owns(job_id, attempt):
            return False
        if animation_gif is not None:
            write_bytes_atomic(folder / "animation.gif", animation_gif)
        if result_png is not None:
            write_bytes_atomic(folder / "result.png", result_png)
            write_bytes_atomic(folder / "frame.png", result_png)
        if record_json is not None:
            write_bytes_atomic(folder / "result.json", (record_json + "\n").encode())
        with self._tx() as db:
            row = self._running(db, job_id, attempt)
            if row is None:
                return False
            db.execute(
                "UPDATE jobs SET state = ?, message = ?, phase = ?, eta = 0, frame = ?, "
                "updated = ?, heartbeat = NULL WHERE id = ?",
                (
                    state,
                    message,
                    state,
                    row["frame"] + (result_png is not None),
                    time.time(),
                    job_id,
                ),
            )
            db.execute(
                "UPDATE workers SET jobs_done = jobs_done + 1, job = NULL WHERE id = ?",
                (row["worker"],),
            )
        return True

    def release(self, job_id: str, attempt: int, message: str) -> bool:
        """Give a running job back to the queue (the worker is shutting down); it continues
        from its checkpoint, and the attempt does not count against it."""
        with self._tx() as db:
            done = db.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, "
                "dispatched = NULL, message = ?, phase = 'queued', updated = ? "
                "WHERE id = ? AND attempt = ? AND state = 'running'",
                (message, time.time(), job_id, attempt),
            ).rowcount
        return done == 1

    def requeue_stale(self, stale_seconds: float, max_attempts: int) -> list[str]:
        """Jobs whose worker stopped beating: back to the queue (to continue from their
        checkpoint), or failed with the reason after ``max_attempts``. Returns their ids."""
        now = time.time()
        limit = now - stale_seconds
        touched = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE (state = 'running' OR dispatched IS NOT NULL) "
                "AND state IN ('queued', 'running') AND (heartbeat IS NULL OR heartbeat < ?)",
                (limit,),
            ).fetchall()
            for row in rows:
                who = row["worker"] or "the broker"
                failures = row["failures"] + 1
                if failures >= max_attempts:
                    message = (
                        f"failed after {failures} attempts: {who} stopped responding at "
                        f"step {row['step']} (no heartbeat for {stale_seconds:g} s); the last "
                        "image is kept; submit again with fewer steps or a smaller size"
                    )
                    db.execute(
                        "UPDATE jobs SET state = 'failed', message = ?, phase = 'failed', "
                        "failures = ?, dispatched = NULL, updated = ?, heartbeat = NULL "
                        "WHERE id = ?",
                        (message, failures, now, row["id"]),
                    )
                else:
                    message = (
                        f"{who} stopped responding; continuing from step {row['checkpoint_step']}"
                    )
                    db.execute(
                        "UPDATE jobs SET state = 'queued', worker = NULL, dispatched = NULL, "
                        "failures = ?, message = ?, phase = 'queued', updated = ?, "
                        "heartbeat = NULL WHERE id = ?",
                        (failures, message, now, row["id"]),
                    )
                touched.append(row["id"])
        return touched

    def dispatched(self) -> list[tuple[str, int]]:
        """Jobs handed to a broker and not started yet: ``(id, attempt)``."""
        rows = self._db().execute(
            "SELECT id, attempt FROM jobs WHERE state = 'queued' AND dispatched IS NOT NULL"
        )
        return [(r["id"], r["attempt"]) for r in rows]

    def active_ids(self) -> list[str]:
        rows = self._db().execute(
            "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq"
        )
        return [r["id"] for r in rows]

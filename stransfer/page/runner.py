"""The page's one door to run work: submit, poll, cancel (the ``JobService`` contract).

The page never calls the engine itself. It submits a ``JobRequest`` and polls ``get``,
``history`` and ``frame`` from a fragment, so a widget change, a reload or a second tab never
touches a running job. ``get_runner`` picks the implementation:

* ``stransfer.service``'s local job service when it is available (workers in other processes:
  the page's process then never imports TensorFlow);
* otherwise ``LocalRunner`` below: the same contract served by one worker process
  (``worker.py``) started with the first job, so TensorFlow never enters the page's process.

Jobs run one at a time in order of arrival; a queued job reports its position.
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from stransfer.core.events import StepEvent
from stransfer.core.plan import RunPlan
from stransfer.core.settings import SettingsError, TransferSettings
from stransfer.core.strength import strength_extra, strength_to_weights
from stransfer.io.animation import FrameRecorder, encode_animation
from stransfer.io.images import encode_png
from stransfer.io.records import RecordError, load_record, png_metadata, record_of_step
from stransfer.service.jobs import JobRequest, JobView

from .worker import input_name, worker_main

#: Relative cost of a step at a scale whose pixels are ``share`` of the full size: convolutions
#: scale with pixels, so a half-size (1/4 of the pixels) step costs about 1/4 of a full one.
MIN_STEP_COST = 0.05


class Runner(Protocol):
    """What the page needs from a job service (a subset of ``service.jobs.JobService``)."""

    def submit(self, request: JobRequest) -> JobView: ...
    def get(self, job_id: str) -> JobView: ...
    def history(self, job_id: str) -> list[JobView]: ...
    def frame(self, job_id: str) -> bytes | None: ...
    def result(self, job_id: str) -> bytes: ...
    def cancel(self, job_id: str) -> JobView: ...


# -- the run recipe ------------------------------------------------------------------------------
# The library's ``core.recipe.make_recipe`` where it exists (one place for strength -> weights,
# blend checks and record extras); the same steps spelled out here until it is merged.


@dataclass(frozen=True)
class Recipe:
    """A request's settings made concrete: what the engine runs and what the record says."""

    settings: TransferSettings
    extra: dict[str, Any]
    style_weights: tuple[float, ...]


def recipe(fields: Mapping[str, Any], style_weights: tuple[float, ...]) -> Recipe:
    """Settings mapping (β and TV at 100 % strength, plus ``strength``) -> validated settings.

    Raises SettingsError (or the model table's ModelError, a ValueError) naming the problem.
    """
    fields = dict(fields)
    fields.pop("engine", None)
    try:
        from stransfer.core.recipe import make_recipe
    except ImportError:
        pass
    else:
        made = make_recipe(fields, style_weights=style_weights)
        return Recipe(made.settings, made.extra(), made.style_weights)
    strength = float(fields.pop("strength", 100.0))
    base = TransferSettings.from_dict(fields)
    if not any(weight > 0 for weight in style_weights):
        raise SettingsError("every style weight is 0%: give at least one style image a weight")
    style, tv = strength_to_weights(
        strength, style_weight=base.style_weight, tv_weight=base.tv_weight
    )
    settings = replace(base, style_weight=style, tv_weight=tv).validated()
    extra = strength_extra(strength, style_weight=base.style_weight, tv_weight=base.tv_weight)
    extra["preserve_color"] = settings.preserve_color
    return Recipe(settings, extra, style_weights)


# -- honest time ---------------------------------------------------------------------------------
# TODO(engine): the engine's own ETA counts every remaining step at the current scale's rate
# and says nothing during a scale switch; these two belong in the library (plan/events).


def step_costs(plan: RunPlan) -> list[float]:
    """Each scale's cost per step relative to a full-size step (by pixel count)."""
    full = plan.shapes[-1][0] * plan.shapes[-1][1]
    return [max(MIN_STEP_COST, h * w / full) for h, w in plan.shapes]


def remaining_seconds(
    plan: RunPlan, scale: int, step: int, full_step_s: float, budget_left: float | None
) -> float:
    """Seconds left after ``step`` (1-based, whole run) at ``scale`` (1-based): every remaining
    step of every scale weighted by its cost, capped by what is left of a time budget."""
    costs = step_costs(plan)
    done_before = sum(plan.steps[: scale - 1])
    left = (plan.steps[scale - 1] - (step - done_before)) * costs[scale - 1]
    left += sum(n * c for n, c in zip(plan.steps[scale:], costs[scale:], strict=True))
    seconds = max(0.0, left * full_step_s)
    return seconds if budget_left is None else min(seconds, max(0.0, budget_left))


def estimate_seconds(
    plan: RunPlan, full_step_s: float | None, budget: float | None
) -> float | None:
    """Expected length of a whole run before it starts (None: not known yet)."""
    if full_step_s is None:
        return budget
    total = remaining_seconds(plan, 1, 0, full_step_s, None)
    return total if budget is None else min(total, budget)


def shape_text(shape: tuple[int, int]) -> str:
    return f"{shape[1]}x{shape[0]}"


# -- the in-process runner -----------------------------------------------------------------------


@dataclass
class _Job:
    id: str
    number: int
    request: JobRequest
    view: JobView
    recipe: Recipe
    first_step: int = 0
    history: list[JobView] = field(default_factory=list)
    event: StepEvent | None = None
    plan: RunPlan | None = None
    deadlines: list[float | None] = field(default_factory=list)
    precision: str = ""
    hashes: tuple[str, list[str]] = ("", [])
    png: tuple[int, bytes] | None = None  # (frame, PNG) cache of the preview
    result: bytes | None = None
    frames: FrameRecorder = field(default_factory=FrameRecorder)


class LocalRunner:
    """The job contract served by one local worker process, jobs in order of arrival.

    ``weights`` is passed to the engine's ``load_extractor`` (``random``, a file, or None for
    ImageNet). The worker process starts with the first job and then stays, keeping its
    loaded models; a dead worker fails its job with a sentence and is started again.
    """

    def __init__(self, weights: str | None = None) -> None:
        self.weights = weights
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._numbers = itertools.count(1)
        self._dispatcher: threading.Thread | None = None
        self._mp = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._inbox: Any = None
        self._outbox: Any = None
        self._cancelled = self._mp.Value("q", 0)

    # -- the contract --

    def submit(self, request: JobRequest) -> JobView:
        """Check the request (settings, blend) and queue it; raises the user's error."""
        if not request.styles:
            raise SettingsError("no style image: choose or upload one")
        made = recipe(request.settings, tuple(float(w) for _, w in request.styles))
        first_step = 0
        if request.resume_from is not None:
            try:
                first_step = load_record(request.resume_from).steps_done
            except RecordError:
                first_step = 0
        now = time.time()
        with self._lock:
            number = next(self._numbers)
            job_id = f"local-{number}"
            view = JobView(job_id, "queued", first_step=first_step, created=now, updated=now)
            self._jobs[job_id] = _Job(job_id, number, request, view, made, first_step)
            self._queue.append(job_id)
            self._positions()
            if self._dispatcher is None or not self._dispatcher.is_alive():
                self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
                self._dispatcher.start()
            self._wake.notify()
            return self._jobs[job_id].view

    def get(self, job_id: str) -> JobView:
        with self._lock:
            return self._job(job_id).view

    def history(self, job_id: str) -> list[JobView]:
        with self._lock:
            return list(self._job(job_id).history)

    def frame(self, job_id: str) -> bytes | None:
        with self._lock:
            job = self._job(job_id)
            event, number = job.event, job.view.frame
            if event is None:
                return None
            if job.png is not None and job.png[0] == number:
                return job.png[1]
        png = encode_png(event.image)
        with self._lock:
            job.png = (number, png)
        return png

    def result(self, job_id: str) -> bytes:
        """The PNG of the last image with its run record (a stopped job has one too)."""
        with self._lock:
            job = self._job(job_id)
            if job.result is not None:
                return job.result
            if job.event is None:
                raise KeyError(f"job {job_id} has no image yet")
            view, event = job.view, job.event
        png = encode_png(event.image, png_metadata(self._record(job, event, view)))
        with self._lock:
            if job.view.final:
                job.result = png
        return png

    def animation(self, job_id: str) -> bytes | None:
        """The run's evolution as a looping GIF (this runner only; None without frames)."""
        with self._lock:
            job = self._job(job_id)
            if not job.frames.added:
                return None
            frames = job.frames.frames
        return encode_animation(frames)

    def cancel(self, job_id: str) -> JobView:
        with self._lock:
            job = self._job(job_id)
            if job.view.state == "queued":
                self._queue.remove(job_id)
                self._update(job, state="cancelled", phase="cancelled before it started")
                self._positions()
            elif job.view.state == "running":
                self._cancelled.value = job.number  # the worker stops after this step
            return job.view

    def health(self) -> dict[str, int]:
        with self._lock:
            running = sum(job.view.state == "running" for job in self._jobs.values())
            alive = int(self._process is not None and self._process.is_alive())
            return {"workers": alive, "queued": len(self._queue), "running": running}

    def close(self) -> None:
        """Stop the worker process (tests; a server's exit does it anyway)."""
        if self._process is not None and self._process.is_alive():
            self._inbox.put(None)
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()

    # -- the dispatcher: one job at a time through the worker process --

    def _job(self, job_id: str) -> _Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r}") from None

    def _update(self, job: _Job, **changes: Any) -> None:
        job.view = replace(job.view, updated=time.time(), **changes)

    def _positions(self) -> None:
        for position, job_id in enumerate(self._queue, start=1):
            job = self._jobs[job_id]
            self._update(job, position=position, phase=f"queued, position {position}")

    def _worker(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._inbox, self._outbox = self._mp.Queue(), self._mp.Queue()
        self._process = self._mp.Process(
            target=worker_main,
            args=(self._inbox, self._outbox, self._cancelled, self.weights),
            name="stransfer-worker",
            daemon=True,
        )
        self._process.start()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                job = self._jobs[self._queue.popleft()]
                self._positions()
                started = self._process is not None and self._process.is_alive()
                phase = "loading the model" if started else "starting the engine"
                self._update(job, state="running", position=0, phase=phase)
            try:
                self._worker()
                self._inbox.put((job.number, job.request, job.recipe.settings))
                self._follow(job)
            except Exception as err:
                self._fail(job, f"the run failed unexpectedly ({type(err).__name__}: {err})")

    def _follow(self, job: _Job) -> None:
        """Apply the worker's messages about ``job`` until it ends (or the worker dies)."""
        while True:
            try:
                message = self._outbox.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    self._fail(job, "the engine's process stopped unexpectedly; press Run again")
                    return
                continue
            number, kind, *parts = message
            if number != job.number:
                continue  # the tail of an older job
            if kind == "end":
                with self._lock:
                    if not job.view.final:  # ended without a final step: stopped at once
                        self._update(job, state="cancelled", phase="stopped")
                return
            if kind == "failed":
                self._fail(job, parts[0])
            elif kind == "phase":
                with self._lock:
                    self._update(job, phase=parts[0])
            elif kind == "plan":
                shapes, steps, precision, hashes, deadlines = parts
                job.plan = RunPlan(tuple(shapes), tuple(steps))
                job.precision, job.hashes, job.deadlines = precision, hashes, deadlines
            elif kind == "step":
                self._step(job, StepEvent(**parts[0], image=parts[1]))

    def _fail(self, job: _Job, message: str) -> None:
        with self._lock:
            self._update(job, state="failed", message=message, phase="failed")

    def _step(self, job: _Job, event: StepEvent) -> None:
        settings, plan, first = job.recipe.settings, job.plan, job.first_step
        assert plan is not None
        full_step_s = event.seconds_per_step / step_costs(plan)[event.scale - 1]
        budget_left = None
        if settings.max_seconds is not None:
            budget_left = settings.max_seconds - event.elapsed
        eta = 0.0
        if event.status == "running":
            eta = remaining_seconds(plan, event.scale, event.step, full_step_s, budget_left)
        state = "cancelled" if event.status == "stopped" else "running"
        if event.status not in ("running", "stopped"):
            state = "done"  # done, time budget, diverged (the message says why)
        phase = f"step {first + event.step}/{first + event.steps}"
        deadline = job.deadlines[event.scale - 1] if job.deadlines else None
        switching = event.scale < event.scales and (
            event.step == sum(plan.steps[: event.scale])
            or (deadline is not None and event.elapsed >= deadline)
        )
        if event.status == "running" and switching:
            height, width = plan.shapes[event.scale]
            phase = f"switching to {width}x{height}"
        with self._lock:
            job.event = event
            job.frames.add(event.image)
            self._update(
                job,
                state=state,
                step=first + event.step,
                steps=first + event.steps,
                losses=dict(event.losses),
                message=event.message,
                phase=phase,
                seconds_per_step=event.seconds_per_step,
                eta=eta,
                elapsed=event.elapsed,
                frame=job.view.frame + 1,
            )
            job.history.append(job.view)

    def _record(self, job: _Job, event: StepEvent, view: JobView):
        request, made = job.request, job.recipe
        extra = {**made.extra, "content": input_name(request, 0)}
        extra["styles"] = [input_name(request, i + 1) for i in range(len(request.styles))]
        extra["status"] = "stopped" if view.state == "cancelled" else event.status
        if job.first_step:
            extra["continued_after_steps"] = job.first_step
        return record_of_step(
            made.settings,
            event,
            precision=job.precision,
            content_sha256=job.hashes[0],
            style_sha256=job.hashes[1],
            style_weights=made.style_weights,
            extra=extra,
        )

"""The page's one door to run work: submit, poll, cancel (the ``JobService`` contract).

The page never calls the engine itself. It submits a ``JobRequest`` and polls ``get``,
``history`` and ``frame`` from a fragment, so a widget change, a reload or a second tab never
touches a running job. ``get_runner`` picks the implementation:

* ``stransfer.service``'s local job service when it is available (workers in other processes:
  the page's process then never imports TensorFlow);
* otherwise ``LocalRunner`` below: the same contract served by one worker thread in this
  process, which imports the engine (TensorFlow) only when the first job starts, i.e. after the
  page has drawn.

Jobs run one at a time in order of arrival; a queued job reports its position.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from stransfer.core.events import StepEvent
from stransfer.core.plan import RunPlan, plan_run
from stransfer.core.settings import SettingsError, TransferSettings
from stransfer.core.strength import strength_extra, strength_to_weights
from stransfer.io.animation import FrameRecorder, encode_animation
from stransfer.io.images import ImageError, encode_png, image_sha256, load_image
from stransfer.io.records import RecordError, load_record, png_metadata, record_of_step
from stransfer.service.jobs import JobRequest, JobView

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
# TODO(core): replace with the library's run recipe when it lands (settings mapping + strength
# -> validated TransferSettings + run record extras); this is the page's copy until then.


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
    strength = float(fields.pop("strength", 100.0))
    fields.pop("engine", None)
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
    request: JobRequest
    view: JobView
    recipe: Recipe | None = None
    first_step: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    history: list[JobView] = field(default_factory=list)
    event: StepEvent | None = None
    precision: str = ""
    hashes: tuple[str, tuple[str, ...]] = ("", ())
    png: tuple[int, bytes] | None = None  # (frame, PNG) cache of the preview
    result: bytes | None = None
    frames: FrameRecorder = field(default_factory=FrameRecorder)


class LocalRunner:
    """The job contract served in this process: one worker thread, jobs in order of arrival.

    ``weights`` is passed to ``load_extractor`` (``random``, a file, or None for ImageNet).
    ``loader`` loads an extractor (default: the engine's ``load_extractor``, imported when the
    first job starts).
    """

    def __init__(self, weights: str | None = None, loader: Callable | None = None) -> None:
        self.weights = weights
        self._loader = loader
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None

    # -- the contract --

    def submit(self, request: JobRequest) -> JobView:
        """Check the request (images, settings) and queue it; raises the user's error."""
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
            job_id = f"local-{next(self._ids)}"
            view = JobView(job_id, "queued", first_step=first_step, created=now, updated=now)
            job = _Job(job_id, request, view, made, first_step)
            self._jobs[job_id] = job
            self._queue.append(job_id)
            self._positions()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="stransfer-jobs")
                self._worker.daemon = True
                self._worker.start()
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

    def image(self, job_id: str) -> np.ndarray | None:
        """The latest frame as pixels (no PNG round trip; this runner only)."""
        with self._lock:
            event = self._job(job_id).event
        return None if event is None else event.image

    def result(self, job_id: str) -> bytes:
        """The PNG of the last image with its run record (a stopped job has one too)."""
        with self._lock:
            job = self._job(job_id)
            if job.result is not None:
                return job.result
            if job.event is None:
                raise KeyError(f"job {job_id} has no image yet")
            job_view, event = job.view, job.event
        png = encode_png(event.image, png_metadata(self._record(job, event, job_view)))
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
            job.cancel.set()
            if job.view.state == "queued":
                self._queue.remove(job_id)
                self._update(job, state="cancelled", phase="cancelled before it started")
                self._positions()
            return job.view

    def health(self) -> dict[str, int]:
        with self._lock:
            running = sum(job.view.state == "running" for job in self._jobs.values())
            return {"workers": 1, "queued": len(self._queue), "running": running}

    # -- the worker --

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

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                job = self._jobs[self._queue.popleft()]
                self._positions()
                self._update(job, state="running", position=0, phase="loading the model")
            try:
                self._run(job)
            except (ImageError, SettingsError, ValueError, RecordError) as err:
                self._fail(job, str(err))
            except Exception as err:
                from stransfer.weights import WeightsError

                text = str(err) if isinstance(err, WeightsError) else f"{type(err).__name__}: {err}"
                self._fail(job, text)

    def _fail(self, job: _Job, message: str) -> None:
        with self._lock:
            self._update(job, state="failed", message=message, phase="failed")

    def _run(self, job: _Job) -> None:
        request, made = job.request, job.recipe
        assert made is not None
        content = load_image(io.BytesIO(request.content), name=_name(request, 0))
        styles = [
            (load_image(io.BytesIO(data), name=_name(request, i + 1)), float(weight))
            for i, (data, weight) in enumerate(request.styles)
        ]
        start_image = None
        if request.resume_from is not None:
            start_image = load_image(io.BytesIO(request.resume_from), name="the result")
        job.hashes = (image_sha256(content), tuple(image_sha256(s) for s, _ in styles))
        settings = made.settings
        from stransfer.engine.backbones import get_backbone  # the engine: TensorFlow

        plan = plan_run(content.shape[:2], settings, get_backbone(settings.model).min_side)
        extractor = self._load(settings)
        job.precision = extractor.precision
        with self._lock:
            self._update(job, phase=f"preparing the style at {shape_text(plan.shapes[0])}")
        from stransfer.engine.run import transfer

        events = transfer(
            content,
            styles,
            settings,
            extractor,
            init_image=start_image,
            should_stop=job.cancel.is_set,
        )
        for event in events:
            self._step(job, plan, event)

    def _load(self, settings: TransferSettings):
        if self._loader is None:
            from stransfer.engine.features import load_extractor

            self._loader = load_extractor
        return self._loader(settings.model, settings.precision, self.weights)

    def _step(self, job: _Job, plan: RunPlan, event: StepEvent) -> None:
        settings = job.recipe.settings
        first = job.first_step
        cost = step_costs(plan)[event.scale - 1]
        full_step_s = event.seconds_per_step / cost
        budget_left = None
        if settings.max_seconds is not None:
            budget_left = settings.max_seconds - event.elapsed
        eta = 0.0
        if event.status == "running":
            eta = remaining_seconds(plan, event.scale, event.step, full_step_s, budget_left)
        state = {"running": "running", "stopped": "cancelled"}.get(event.status, "done")
        if event.status == "diverged":
            state = "done"
        phase = f"step {first + event.step}/{first + event.steps}"
        scale_end = sum(plan.steps[: event.scale])
        switching = event.scale < event.scales and (
            event.step == scale_end or self._deadline_passed(settings, plan, event)
        )
        if event.status == "running" and switching:
            phase = f"switching to {shape_text(plan.shapes[event.scale])}"
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

    @staticmethod
    def _deadline_passed(settings: TransferSettings, plan: RunPlan, event: StepEvent) -> bool:
        if settings.max_seconds is None:
            return False
        from stransfer.engine.run import _scale_deadline  # TODO(engine): a public phase event

        deadline = _scale_deadline(settings.max_seconds, plan, event.scale - 1)
        return deadline is not None and event.elapsed >= deadline

    def _record(self, job: _Job, event: StepEvent, view: JobView):
        made = job.recipe
        request = job.request
        extra = {**made.extra, "content": _name(request, 0)}
        extra["styles"] = [_name(request, i + 1) for i in range(len(request.styles))]
        extra["status"] = {"cancelled": "stopped"}.get(view.state, event.status)
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


def _name(request: JobRequest, index: int) -> str:
    names = list(request.names)
    return names[index] if index < len(names) else ("content" if index == 0 else f"style {index}")

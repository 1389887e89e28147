"""One job -> one engine run, reported through a ``Reporter`` (runs only in worker processes).

This is the only module of the service that runs an engine. It is the library's one run
recipe, as the CLI and the page use it: ``make_recipe`` (from the stored settings, through
``recipe_values``), ``run_recipe`` to run it, and ``RunInputs.of`` + ``recipe_record`` for the
record. An ``engine: "instant"`` job runs the feed-forward engine (``stransfer.instant.instant``,
onnxruntime: no TensorFlow and no network to build) and is recorded by ``instant_record``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..core.recipe import Recipe, make_recipe, recipe_values
from ..core.settings import MAX_SIZE
from ..io.animation import DEFAULT_MAX_BYTES, FrameRecorder, encode_animation
from ..io.images import encode_png, fit_long_side, load_image
from ..io.masks import region_records, regions_from_records
from ..io.records import RunInputs, png_metadata, recipe_record

#: Seconds between checkpoints of a running job (``STRANSFER_CHECKPOINT_SECONDS``).
CHECKPOINT_SECONDS = 5.0
#: Longest side of a preview frame: a print's frames are shrunk to it (its checkpoints and
#: result stay full size).
SCREEN_SIDE = 1024
#: Least seconds between two preview frames.
FRAME_SECONDS = 0.5
#: Frames and long side of the run's animation (``animation.gif`` beside the result): small,
#: so a long run's GIF stays a quick download.
ANIMATION_FRAMES, ANIMATION_SIDE = 40, 256
#: Most bytes of that GIF (frames are dropped or shrunk to fit); the broker's bridge refuses a
#: larger one from a remote worker, so both paths keep the same bound.
ANIMATION_MAX_BYTES = DEFAULT_MAX_BYTES
#: Long side of the warm-up run (tiny: one trace of the step function serves every size).
WARM_UP_SIZE = 64


@dataclass(frozen=True)
class RunInput:
    """Everything a worker needs for one attempt at a job, as plain data (picklable).

    ``done_before`` steps (of ``first_step + settings["steps"]``) are already done:
    ``start_png`` then holds the image they made (a checkpoint) or the image a continued
    run starts from.
    """

    job_id: str
    attempt: int
    settings: dict[str, Any]
    extra: dict[str, Any]
    inputs: dict[str, Any]
    content: bytes
    styles: list[tuple[bytes, float]]
    start_png: bytes | None = None
    first_step: int = 0
    done_before: int = 0
    elapsed_before: float = 0.0
    from_checkpoint: bool = False


@dataclass
class Outcome:
    """How an attempt ended: ``done``, ``failed``, ``cancelled`` or ``released`` (the worker
    is shutting down: the job goes back to the queue and continues from its checkpoint)."""

    state: str
    message: str = ""
    result_png: bytes | None = None
    record_json: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    animation_gif: bytes | None = None  # the run's evolution (this attempt's steps)


class Reporter(Protocol):
    """Where a running job's news goes (the store, or a broker's event stream)."""

    def phase(self, text: str) -> None: ...

    def progress(self, view: dict[str, Any], frame_png: bytes | None) -> None: ...

    def checkpoint(self, png: bytes, step: int, elapsed: float) -> None: ...

    def stop_reason(self) -> str | None:
        """``cancel``, ``shutdown`` or None (keep going); polled between steps."""
        ...


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def execute(
    run: RunInput, reporter: Reporter, *, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """Run one attempt of a job to its end and return how it ended (never raises for a
    problem with the job itself: that becomes a ``failed`` outcome with the reason)."""
    try:
        return _execute(run, reporter, clock)
    except MemoryError:
        return Outcome("failed", "out of memory; submit again with a smaller size")
    except Exception as err:  # the job's problem, told to its owner in one line
        message = " ".join(str(err).split()) or type(err).__name__
        if type(err).__name__ == "ResourceExhaustedError":
            message = "out of memory; submit again with a smaller size"
        return Outcome("failed", message[:500])


def on_screen(image: Any) -> Any:
    """``image`` shrunk to :data:`SCREEN_SIDE` on its long side if larger (a preview frame)."""
    if max(image.shape[:2]) <= SCREEN_SIDE:
        return image
    return fit_long_side(image, SCREEN_SIDE)


def warm_up() -> str:
    """Prepare a new worker for the default job before any arrives: build its network, trace
    its step function and open the instant models (its start), so that the first Run after a
    start waits only for its own work. Returns a line for the worker's log; never raises (a
    missing weights or models file is left for the job to report, with its fix)."""
    started = time.perf_counter()
    try:
        from ..engine.features import load_extractor
        from ..engine.run import transfer
        from ..instant import InstantModelError, instant_init

        settings = make_recipe().settings
        extractor = load_extractor(settings.model, settings.precision, _weights())
        tiny = replace(settings, size=WARM_UP_SIZE, steps=1, scales=1, init="content")
        image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        for _ in transfer(image, image, tiny, extractor):
            pass
        done = f"{settings.model} ({extractor.precision}) built and traced"
        try:
            instant_init(image, [(image, 1.0)], tiny)
            done += ", instant models opened"
        except InstantModelError:
            pass
    except Exception as err:  # the first job meets the same problem and reports it
        return f"warm-up skipped ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
    return f"{done} in {time.perf_counter() - started:.1f} s"


def _weights() -> str | None:
    """The weights file workers use: ``STRANSFER_WEIGHTS``, else the resolver's choice."""
    return os.environ.get("STRANSFER_WEIGHTS") or None


def _recipe(run: RunInput) -> Recipe:
    """The job's recipe, made again from what the store kept (validated at submit)."""
    weights = [weight for _, weight in run.styles] or None
    regions = regions_from_records(run.extra["regions"]) if run.extra.get("regions") else ()
    return make_recipe(
        recipe_values(run.settings, run.extra), style_weights=weights, regions=regions
    )


def _images(run: RunInput, reporter: Reporter) -> tuple[Any, list[Any], RunInputs]:
    reporter.phase("reading the images")
    content = load_image(run.content, name="content image")
    styles = [
        load_image(data, name=f"style image {i + 1}") for i, (data, _) in enumerate(run.styles)
    ]
    names = [str(name) for name in run.extra.get("styles", [])]
    inputs = RunInputs.of(content, styles, str(run.extra.get("content", "")), names)
    return content, styles, inputs


def start_image(png: bytes) -> np.ndarray:
    """The image a job goes on from: its own checkpoint (a print's is up to MAX_SIZE square and
    over the upload limits: an 8192 px PNG is about 55 MB) or a resume image the submit
    already checked against the service's limits; either way no larger than a job can make."""
    return load_image(
        png, name="start image", max_pixels=MAX_SIZE**2, max_bytes=max(len(png), 2**20)
    )


def _execute(run: RunInput, reporter: Reporter, clock: Callable[[], float]) -> Outcome:
    if run.extra.get("engine") == "instant":
        return _execute_instant(run, reporter, clock)
    checkpoint_every = _seconds("STRANSFER_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS)
    weights = _weights()
    recipe = _recipe(run)
    total = run.first_step + recipe.settings.steps
    remaining = total - run.done_before
    running = recipe
    if run.from_checkpoint:
        # The checkpoint is a full-size image: continue at full size for the steps left.
        budget = recipe.settings.max_seconds
        if budget is not None:
            budget = max(0.1, budget - run.elapsed_before)
        settings = replace(recipe.settings, steps=max(1, remaining), scales=1, max_seconds=budget)
        running = replace(recipe, settings=settings)

    content, styles, inputs = _images(run, reporter)
    start = start_image(run.start_png) if run.start_png else None

    reporter.phase("loading the model")
    from ..engine.features import load_extractor
    from ..engine.run import run_recipe

    settings = running.settings
    extractor = load_extractor(settings.model, settings.precision, weights)
    plan = running.plan(content.shape[:2])
    ends = [sum(plan.steps[: i + 1]) for i in range(len(plan.steps))]
    extra: dict[str, Any] = {
        "engine": "optimise",
        "weights": str(extractor.weights) if extractor.weights is not None else weights,
    }
    if run.done_before:
        extra["continued_from_step"] = run.done_before

    def record_png(event: Any) -> tuple[bytes, str]:
        record = recipe_record(recipe, inputs, event, precision=extractor.precision, extra=extra)
        return encode_png(event.image, png_metadata(record)), record.to_json()

    stop: list[str] = []

    def should_stop() -> bool:
        reason = reporter.stop_reason()
        if reason:
            stop.append(reason)
        return bool(reason)

    if start is None and settings.init == "instant":
        reporter.phase("painting the instant start image")
    elif plan.steps:
        reporter.phase("computing the style targets")
    else:
        reporter.phase("starting")
    last = None
    frames = FrameRecorder(ANIMATION_FRAMES, ANIMATION_SIDE)
    last_frame = last_checkpoint = clock()
    events = run_recipe(
        running, content, styles, extractor, init_image=start, should_stop=should_stop
    )
    try:
        for event in events:
            event = replace(
                event,
                step=event.step + run.done_before,
                steps=total,
                elapsed=event.elapsed + run.elapsed_before,
            )
            last = event
            frames.add(event.image)
            now = clock()
            local = event.step - run.done_before
            # A run that ends on its time budget is complete: the job's steps become the steps
            # it ran ("step 16/16", done), not a plan it was never meant to finish (the record
            # keeps the plan as ``steps_planned``).
            view = replace(event, steps=event.step) if event.status == "time budget" else event
            if event.status == "running" and local in ends[:-1]:
                shape = plan.shapes[ends.index(local) + 1]
                phase = f"switching to {shape[1]}x{shape[0]}"
            else:
                phase = f"step {view.step}/{view.steps}"
            frame = None
            if event.status == "running" and now - last_frame >= FRAME_SECONDS:
                frame = encode_png(on_screen(event.image), fast=True)
                last_frame = now
            reporter.progress(_view(view, phase), frame)
            if event.status == "running" and now - last_checkpoint >= checkpoint_every:
                whole = max(event.image.shape[:2]) <= SCREEN_SIDE
                png = frame if frame and whole else encode_png(event.image, fast=True)
                reporter.checkpoint(png, event.step, event.elapsed)
                last_checkpoint = now
    finally:
        events.close()
    if last is None:
        return Outcome("failed", "the run produced no image")
    png, record_json = record_png(last)
    gif = _animation(frames)
    if stop and stop[-1] != "cancel":  # shutting down, or the job was given to another worker
        reporter.checkpoint(encode_png(last.image), last.step, last.elapsed)
        return Outcome("released", f"worker stopped; continuing from step {last.step}")
    if last.status == "stopped":
        return Outcome(
            "cancelled",
            f"cancelled at step {last.step} of {total}",
            png,
            record_json,
            animation_gif=gif,
        )
    if last.status == "diverged":
        return Outcome("failed", last.message, png, record_json, animation_gif=gif)
    return Outcome("done", last.message, png, record_json, animation_gif=gif)


def _animation(frames: FrameRecorder) -> bytes | None:
    """The GIF of the recorded frames (None for a one-step run, or one that cannot be made)."""
    if frames.added < 2:
        return None
    try:
        return encode_animation(frames.frames, max_bytes=ANIMATION_MAX_BYTES)
    except ValueError:  # e.g. even the smallest GIF is over the size limit: no animation
        return None


def _view(event: Any, phase: str) -> dict[str, Any]:
    """A step event as the store's progress view (plain floats)."""
    return {
        "step": event.step,
        "steps": event.steps,
        "losses": {k: float(v) for k, v in event.losses.items()},
        "phase": phase,
        "seconds_per_step": float(event.seconds_per_step),
        "eta": float(event.eta),
        "elapsed": float(event.elapsed),
    }


def _execute_instant(run: RunInput, reporter: Reporter, clock: Callable[[], float]) -> Outcome:
    """An instant job: one feed-forward pass (onnxruntime), reported as one step."""
    from ..instant import BuiltinStyle, instant, instant_record, instant_regions

    started = clock()
    recipe = _recipe(run)
    settings = recipe.settings
    content, images, inputs = _images(run, reporter)
    builtin = run.extra.get("builtin")
    styles: Any = (
        BuiltinStyle.of(builtin)
        if builtin
        else list(zip(images, recipe.style_weights, strict=True))
    )
    reason = reporter.stop_reason()
    if reason == "cancel":
        return Outcome("cancelled", "cancelled before it started")
    if reason:
        return Outcome("released", "worker stopped before the job started")
    reporter.phase("painting (instant engine)")
    options = {
        "size": settings.size,
        "strength": recipe.strength,
        "preserve_color": settings.preserve_color,
    }
    if recipe.regions:
        image = instant_regions(content, images, recipe.regions, **options)
    else:
        image = instant(content, styles, **options)
    seconds = clock() - started + run.elapsed_before
    view = {"step": 1, "steps": 1, "losses": {}, "phase": "step 1/1"}
    view.update(seconds_per_step=seconds, eta=0.0, elapsed=seconds)
    reporter.progress(view, None)
    record = instant_record(
        content=content,
        styles=styles,
        size=settings.size,
        strength=recipe.strength,
        preserve_color=settings.preserve_color,
        seconds=seconds,
        extra={
            **inputs.extra("done", steps_planned=1),
            **({"regions": region_records(recipe.regions)} if recipe.regions else {}),
        },
    )
    record = replace(record, steps_done=1)
    png = encode_png(image, png_metadata(record))
    return Outcome("done", f"instant result in {seconds:.1f} s", png, record.to_json())

"""The optimisation loop: an iterator of step events that the app, CLI, tests and benchmark share.

``transfer()`` plans the run (sizes per scale, targets), then optimises the image pixels with
L-BFGS or Adam, yielding a ``StepEvent`` after every step with the current image at output
size. A consumer stops a run by leaving the loop (or via ``should_stop``); the last event it
saw holds the last image. Non-finite losses end the run with the last finite image.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import color
from .backbones import Backbone
from .features import FeatureExtractor, Objective
from .images import resize_to, to_uint8
from .optimizers import LBFGS, Adam, Optimizer
from .settings import SettingsError, TransferSettings

#: Smallest long side worth optimising at a coarse scale.
MIN_COARSE_SIDE = 64
#: A loss this many times the scale's starting loss means the step size blew up.
DIVERGENCE_FACTOR = 10.0
#: Share of the steps spent at each scale, coarse to fine (coarse steps are 4x cheaper).
SCALE_SHARES = {1: (1.0,), 2: (0.5, 0.5), 3: (0.34, 0.33, 0.33), 4: (0.25, 0.25, 0.25, 0.25)}


@dataclass(frozen=True)
class StepEvent:
    """One optimisation step.

    Attributes:
        step: 1-based step number over the whole run.
        steps: steps planned for the whole run.
        scale: 1-based scale index (coarse to fine); ``scales`` in total.
        losses: ``total``, ``content``, ``style`` and ``tv`` (weighted sums of relative losses).
        elapsed: seconds since the run started (target features included).
        seconds_per_step: recent mean seconds per step at this scale.
        eta: estimated seconds left.
        image: current image, uint8 ``[H, W, 3]`` at output size.
        status: ``running``; on the last event ``done``, ``time budget``, ``stopped`` or
            ``diverged`` (then ``image`` is the last finite image and ``message`` says why).
    """

    step: int
    steps: int
    scale: int
    scales: int
    losses: dict[str, float]
    elapsed: float
    seconds_per_step: float
    eta: float
    image: np.ndarray
    status: str = "running"
    message: str = ""


def format_duration(seconds: float) -> str:
    """Elapsed or remaining time for people: ``12s``, ``3m05s`` or ``1h02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(frozen=True)
class RunPlan:
    """Image shapes and step counts for each scale, and notices for the user."""

    shapes: tuple[tuple[int, int], ...]
    steps: tuple[int, ...]
    notices: tuple[str, ...] = field(default=())

    @property
    def output_shape(self) -> tuple[int, int]:
        return self.shapes[-1]


def plan_run(content_shape: tuple[int, int], settings: TransferSettings, min_side: int) -> RunPlan:
    """Work out the optimised image's size at each scale.

    The long side is ``settings.size`` and the content's aspect ratio is kept. A side below the
    backbone's minimum is raised to it (with a notice); an image too thin for that is refused.
    """
    height, width = content_shape
    notices: list[str] = []
    final, enlarged = _fit_shape(content_shape, settings.size, min_side)
    if final is None:
        short = min(height, width) * settings.size / max(height, width)
        raise SettingsError(
            f"the content image ({width}x{height}) is too thin for {settings.model}: at size "
            f"{settings.size} its short side would be {max(int(short), 0)} px, and the model "
            f"needs {min_side} px; crop the image or choose a larger size"
        )
    if enlarged:
        notices.append(
            f"{settings.model} needs images at least {min_side} px on each side, so the image "
            f"was enlarged to {final[1]}x{final[0]}"
        )

    shapes = [final]
    for _ in range(settings.scales - 1):
        h, w = shapes[0]
        smaller = (round(h / 2), round(w / 2))
        if max(smaller) < MIN_COARSE_SIDE or min(smaller) < min_side:
            notices.append(
                f"used {len(shapes)} scale(s) instead of {settings.scales}: a smaller one would "
                f"be below {max(MIN_COARSE_SIDE, min_side)} px"
            )
            break
        shapes.insert(0, smaller)
    shares = SCALE_SHARES[len(shapes)]
    steps = [max(1, math.floor(settings.steps * share)) for share in shares]
    steps[-1] = max(1, settings.steps - sum(steps[:-1]))
    if settings.steps < len(shapes):  # too few steps to spread: all at full size
        shapes, steps = [final], [settings.steps]
    return RunPlan(tuple(shapes), tuple(steps), tuple(notices))


StyleInput = np.ndarray | Sequence[tuple[np.ndarray, float]]


def transfer(
    content: np.ndarray,
    style: StyleInput,
    settings: TransferSettings,
    extractor: FeatureExtractor,
    *,
    init_image: np.ndarray | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[StepEvent]:
    """Run style transfer, yielding a ``StepEvent`` after every step.

    Args:
        content: uint8 RGB content image (any size; it is resized to ``settings.size``).
        style: one uint8 RGB style image, or ``[(image, weight), ...]`` to blend several styles
            (their Gram targets are mixed by weight).
        settings: run settings; validated here.
        extractor: the backbone to use (``settings.model`` must name it).
        init_image: start from this image instead of ``settings.init`` (to continue a run).
        should_stop: polled between steps; when it returns True the run ends (status
            ``stopped``) after yielding the current image.
    """
    settings = settings.validated()
    if extractor.backbone.name != settings.model:
        raise SettingsError(
            f"the extractor is {extractor.backbone.name} but the settings ask for {settings.model}"
        )
    styles = [(style, 1.0)] if isinstance(style, np.ndarray) else list(style)
    if not styles or sum(w for _, w in styles) <= 0:
        raise SettingsError("give at least one style image a weight above zero")

    plan = plan_run(content.shape[:2], settings, extractor.backbone.min_side)
    content, styles, present = _color_mode(settings.preserve_color, content, styles)
    assert settings.content_layers is not None and settings.style_layers is not None
    objective = extractor.objective(tuple(settings.content_layers), tuple(settings.style_layers))
    content_weights = np.array(list(settings.content_layers.values()), np.float32)
    style_weights = np.array(list(settings.style_layers.values()), np.float32)
    with np.errstate(over="ignore"):  # weights beyond float32 become inf: caught as divergence
        mix = np.array(
            [settings.content_weight, settings.style_weight, settings.tv_weight], np.float32
        )
    rng = np.random.default_rng(settings.seed)
    output_shape = plan.output_shape
    total_steps = sum(plan.steps)

    start = time.perf_counter()
    step = 0
    image: np.ndarray | None = None
    coarse_content = content
    # Started from the content, each finer scale gets back the detail the coarser one lacked.
    keep_detail = settings.init == "content" and init_image is None
    for scale_index, (shape, scale_steps) in enumerate(zip(plan.shapes, plan.steps, strict=True)):
        content_at = resize_to(content, *shape).astype(np.float32)
        long_side = max(shape)
        targets_c = objective.content_targets(content_at) if objective.content_layers else ()
        targets_s = (
            _style_targets(objective, styles, long_side, settings.style_scale, extractor.backbone)
            if objective.style_layers
            else ()
        )
        if image is None:
            image = _initial_image(settings.init, content_at, styles[0][0], rng, init_image)
        else:
            image = _enlarge(image, shape)
            if keep_detail:
                image = _add_detail(image, content_at, coarse_content)
        coarse_content = content_at
        best_image, best_total, first_total = image, math.inf, None

        def evaluate(
            x: np.ndarray, tc=targets_c, ts=targets_s
        ) -> tuple[dict[str, float], np.ndarray]:
            return objective.value_and_grad(x, tc, ts, content_weights, style_weights, mix)

        optimizer = _make_optimizer(settings)
        scale_start = time.perf_counter()
        budget_end = _scale_deadline(settings.max_seconds, plan, scale_index)
        for _ in range(scale_steps):
            result = optimizer.step(image, evaluate)
            image, step_losses = result.image, result.losses
            step += 1
            now = time.perf_counter()
            per_step = (now - scale_start) / (step - sum(plan.steps[:scale_index]))
            remaining = per_step * (total_steps - step)
            if settings.max_seconds is not None:
                remaining = min(remaining, max(0.0, settings.max_seconds - (now - start)))
            total = step_losses["total"]
            first_total = total if first_total is None else first_total

            event = functools.partial(
                StepEvent,
                step=step,
                steps=total_steps,
                scale=scale_index + 1,
                scales=len(plan.shapes),
                losses=step_losses,
                elapsed=now - start,
                seconds_per_step=per_step,
            )
            problem = _divergence(result.finite, total, first_total)
            if problem:
                yield event(
                    eta=0.0,
                    image=present(_frame(best_image, output_shape)),
                    status="diverged",
                    message=f"{problem} at step {step}, so the run stopped and kept the best "
                    "image so far; lower the learning rate or the loss weights",
                )
                return
            if total < best_total:
                best_image, best_total = result.evaluated, total
            status, message = "running", ""
            if step == total_steps:
                status = "done"
            elif settings.max_seconds is not None and now - start >= settings.max_seconds:
                status, message = "time budget", f"stopped at the {settings.max_seconds:g} s budget"
            elif should_stop is not None and should_stop():
                status, message = "stopped", f"stopped at step {step} of {total_steps}"
            yield event(
                eta=0.0 if status != "running" else remaining,
                image=present(_frame(image, output_shape)),
                status=status,
                message=message,
            )
            if status != "running":
                return
            if budget_end is not None and now - start >= budget_end:
                break  # this scale's share of the time budget is spent: go finer


def _color_mode(
    mode: str, content: np.ndarray, styles: list[tuple[np.ndarray, float]]
) -> tuple[np.ndarray, list[tuple[np.ndarray, float]], Callable[[np.ndarray], np.ndarray]]:
    """Inputs for the network and a frame transform for colour preservation (Gatys 2016).

    ``luminance``: the network sees only brightness (style brightness matched to the content's
    mean and spread); each frame takes its brightness from the result and its colour from the
    content. ``histogram``: the style images are recoloured to the content's palette.
    """
    if mode == "histogram":
        return content, [(color.match_color_histogram(s, content), w) for s, w in styles], _same
    if mode != "luminance":
        return content, styles, _same
    content_y = color.luminance_image(content)
    styles_y = [(color.match_luminance(color.luminance_image(s), content_y), w) for s, w in styles]

    chroma_source: dict[tuple[int, ...], np.ndarray] = {}  # frames share one size: resize once

    def recolor(frame: np.ndarray) -> np.ndarray:
        shape = frame.shape[:2]
        if shape not in chroma_source:
            chroma_source[shape] = resize_to(content, *shape)
        return color.combine_luminance(frame, chroma_source[shape])

    return content_y, styles_y, recolor


def _same(frame: np.ndarray) -> np.ndarray:
    return frame


def _divergence(finite: bool, total: float, first_total: float) -> str:
    """Why the run must stop ('' when it need not)."""
    if not finite:
        return "the loss became non-finite"
    # The floor keeps a run that starts at (near) zero loss from tripping on rounding noise.
    if total > DIVERGENCE_FACTOR * max(first_total, 1e-3):
        return f"the loss grew more than {DIVERGENCE_FACTOR:g}x"
    return ""


def _style_targets(
    objective: Objective,
    styles: Sequence[tuple[np.ndarray, float]],
    long_side: int,
    style_scale: float,
    backbone: Backbone,
) -> tuple:
    side = max(16, round(long_side * style_scale))
    images = [_style_at(image, side, backbone).astype(np.float32) for image, _ in styles]
    return objective.blended_style_grams(images, [w for _, w in styles])


def _style_at(image: np.ndarray, side: int, backbone: Backbone) -> np.ndarray:
    """``image`` with its long side at ``side``, sized by the same rule as the content."""
    height, width = image.shape[:2]
    shape, _ = _fit_shape((height, width), side, backbone.min_side)
    if shape is None:
        short = min(height, width) * side / max(height, width)
        raise SettingsError(
            f"a style image ({width}x{height}) is too thin for {backbone.name}: scaled to {side} "
            f"px its short side would be {int(short)} px, and the model needs "
            f"{backbone.min_side} px; crop the image or choose a larger size"
        )
    return resize_to(image, *shape)


def _fit_shape(
    shape: tuple[int, int], long_side: int, min_side: int
) -> tuple[tuple[int, int] | None, bool]:
    """The (height, width) with the long side at ``long_side`` and the aspect ratio kept.

    A short side below the backbone's ``min_side`` is raised to it (returns ``enlarged``
    True); when that would take the long side past ``max(2 * long_side, 1024)`` the image is
    too thin to use and the shape is None.
    """
    height, width = shape
    scale = long_side / max(height, width)
    short = min(height, width) * scale
    enlarged = short < min_side
    if enlarged:
        if long_side * min_side / short > max(2 * long_side, 1024):
            return None, True
        scale *= min_side / short
    low = min_side if enlarged else 1  # guards the raised side against float round-down
    return (max(low, round(height * scale)), max(low, round(width * scale))), enlarged


def _initial_image(
    init: str,
    content: np.ndarray,
    style: np.ndarray,
    rng: np.random.Generator,
    init_image: np.ndarray | None,
) -> np.ndarray:
    height, width = content.shape[:2]
    if init_image is not None:
        return resize_to(init_image, height, width).astype(np.float32)
    if init == "noise":
        return rng.uniform(0.0, 255.0, size=content.shape).astype(np.float32)
    if init == "style":
        return resize_to(style, height, width).astype(np.float32)
    return content.copy()


def _enlarge(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A coarser scale's result as the starting image at ``shape`` (float32)."""
    return resize_to(np.clip(image, 0, 255).astype(np.uint8), *shape).astype(np.float32)


def _add_detail(
    image: np.ndarray, content_at: np.ndarray, coarse_content: np.ndarray
) -> np.ndarray:
    """Add the content detail that the coarse scale could not hold to an enlarged result.

    ``content_at - enlarge(coarse_content)`` is what enlarging the coarse content loses, so a
    run started from the content begins each finer scale at the full-size content plus the
    changes made so far, rather than at a blurred copy: where nothing was changed (a style
    strength of 0) the result is the content exactly.
    """
    detail = content_at - _enlarge(coarse_content, content_at.shape[:2])
    return np.clip(image + detail, 0.0, 255.0).astype(np.float32)


def _make_optimizer(settings: TransferSettings) -> Optimizer:
    if settings.optimizer == "adam":
        return Adam(settings.learning_rate)
    return LBFGS()


def _scale_deadline(max_seconds: float | None, plan: RunPlan, index: int) -> float | None:
    """Seconds into the run at which scale ``index`` hands over to the next one."""
    if max_seconds is None or index == len(plan.shapes) - 1:
        return None
    shares = SCALE_SHARES[len(plan.shapes)]
    # A coarse step costs about 4x less per halving, so weight each scale's share by its cost.
    costs = [share / 4 ** (len(shares) - 1 - i) for i, share in enumerate(shares)]
    return max_seconds * sum(costs[: index + 1]) / sum(costs)


def _frame(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    frame = to_uint8(image)
    if frame.shape[:2] != shape:
        frame = resize_to(frame, *shape)
    return frame

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
from dataclasses import replace

import numpy as np

from ..core.events import StepEvent, format_duration
from ..core.plan import RunPlan, fit_shape, plan_run
from ..core.recipe import Recipe, check_style_weights
from ..core.regions import DEFAULT_MAPPING, Region, check_regions, stack_masks, styled
from ..core.settings import SettingsError, TransferSettings
from ..core.tiles import memory_budget
from ..instant import instant_init
from ..instant.engine import instant_regions_init
from ..instant.models import InstantModelError
from ..io import color
from ..io.images import resize_to, to_uint8
from .backbones import Backbone
from .features import FeatureExtractor, Objective
from .optimizers import LBFGS, Adam, Optimizer
from .tiled import TiledObjective, evaluator_for

__all__ = ["RunPlan", "StepEvent", "format_duration", "plan_run", "run_recipe", "transfer"]

#: A loss this many times the scale's starting loss means the step size blew up.
DIVERGENCE_FACTOR = 10.0


StyleInput = np.ndarray | Sequence[tuple[np.ndarray, float]]


def run_recipe(
    recipe: Recipe,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    extractor: FeatureExtractor,
    *,
    init_image: np.ndarray | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_memory: str | int | None = None,
    on_tile: Callable[[int, int, int], None] | None = None,
) -> Iterator[StepEvent]:
    """Run ``recipe`` (see ``stransfer.core.recipe``), yielding a ``StepEvent`` after every step.

    Args:
        recipe: from ``make_recipe``: validated settings with the strength applied, and one
            blend weight per style image. ``init="instant"`` starts from
            ``stransfer.instant.instant_init`` (unless ``init_image`` is given).
        content: uint8 RGB content image, as loaded.
        styles: the uint8 RGB style images, in the order of ``recipe.style_weights``.
        extractor: the network for ``recipe.settings.model`` (``load_extractor``).
        init_image: start from this image (a previous result, to continue a run); with it,
            run at one scale (``replace(recipe.settings, scales=1)``) so it is not blurred.
        should_stop: polled between steps; True ends the run with status ``stopped``.
        max_memory: the memory budget (``3GB``; None: ``core.tiles.memory_budget``'s default);
            a scale that does not fit it runs tile by tile (``engine.tiled``).
        on_tile: called with (scale, tile, tiles) after each tile of a tiled scale (progress
            within a print's long steps).

    The record of any event: ``stransfer.io.records.recipe_record(recipe, inputs, event,
    precision=extractor.precision)``. Raises SettingsError (``.field`` set) for a style count
    that does not match the recipe's weights, or an image too thin for the model.
    """
    check_style_weights(recipe.style_weights, len(styles))
    pairs = list(zip(styles, recipe.style_weights, strict=True))
    started = time.perf_counter()  # the time budget counts the instant start too
    if init_image is None and recipe.settings.init == "instant" and recipe.strength > 0:
        # The optimiser starts from the feed-forward result (a painted image in about a second).
        # At strength 0 there is nothing to paint: the run starts from the content exactly.
        start = _start_settings(recipe.settings, content.shape[:2], extractor.backbone)
        init_image = instant_start(
            content, pairs, start, strength=recipe.strength, regions=recipe.regions
        )
    return transfer(
        content,
        pairs,
        recipe.settings,
        extractor,
        init_image=init_image,
        should_stop=should_stop,
        started=started,
        regions=recipe.regions,
        max_memory=max_memory,
        on_tile=on_tile,
    )


def transfer(
    content: np.ndarray,
    style: StyleInput,
    settings: TransferSettings,
    extractor: FeatureExtractor,
    *,
    init_image: np.ndarray | None = None,
    should_stop: Callable[[], bool] | None = None,
    started: float | None = None,
    regions: Sequence[Region] = (),
    mask_mapping: str = DEFAULT_MAPPING,
    max_memory: str | int | None = None,
    on_tile: Callable[[int, int, int], None] | None = None,
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
        started: the ``time.perf_counter()`` at which the run began (default: now); the time
            budget and ``elapsed`` count from it, so work done before (an instant start) counts.
        regions: where each style goes (``stransfer.core.regions``): one guided Gram per
            styled region at every style layer, weights over the ``style`` images; a region
            that keeps the photo, or a pixel no mask covers, gets no style term. Empty: the
            blend everywhere.
        mask_mapping: how a mask reaches each style layer (``core.regions.MASK_MAPPINGS``).
        max_memory, on_tile: see ``run_recipe``.
    """
    settings = settings.validated()
    if extractor.backbone.name != settings.model:
        raise SettingsError(
            f"the extractor is {extractor.backbone.name} but the settings ask for {settings.model}",
            "model",
        )
    styles = [(style, 1.0)] if isinstance(style, np.ndarray) else list(style)
    check_style_weights([w for _, w in styles], len(styles))
    painted = styled(check_regions(regions, len(styles)))

    plan = plan_run(content.shape[:2], settings, extractor.backbone.min_side)
    assert settings.content_layers is not None and settings.style_layers is not None
    objective = extractor.objective(tuple(settings.content_layers), tuple(settings.style_layers))
    # Every scale's fit is checked before anything runs: a print that cannot fit says so now.
    budget = memory_budget(max_memory)
    evaluators = [  # the largest first: if anything does not fit, it is the print size
        evaluator_for(objective, shape, budget, optimiser_pairs=_optimiser_pairs(settings, n))
        for shape, n in reversed(list(zip(plan.shapes, plan.steps, strict=True)))
    ][::-1]
    if painted and any(ev is not objective for ev in evaluators):
        # Guided Grams are not tiled yet: a region run must fit in memory whole.
        raise SettingsError(
            f"regions run on the whole image at once, and {settings.size} px needs tiling to "
            "fit in this machine's memory; choose a smaller size for a run with regions",
            "size",
        )
    for number, evaluator in enumerate(evaluators, 1):
        if isinstance(evaluator, TiledObjective) and on_tile is not None:
            evaluator.on_tile = functools.partial(on_tile, number)
    if init_image is None and settings.init == "instant" and settings.style_weight > 0:
        # Start from the feed-forward result: a painted image in about a second (run_recipe
        # passes one made at the run's strength; here it is made at full strength).
        init_image = instant_start(
            content, styles, _start_settings(settings, plan), regions=regions
        )
    content, styles, present = _color_mode(settings.preserve_color, content, styles)
    content_weights = np.array(list(settings.content_layers.values()), np.float32)
    style_weights = np.array(list(settings.style_layers.values()), np.float32)
    with np.errstate(over="ignore"):  # weights beyond float32 become inf: caught as divergence
        mix = np.array(
            [settings.content_weight, settings.style_weight, settings.tv_weight], np.float32
        )
    rng = np.random.default_rng(settings.seed)
    output_shape = plan.output_shape
    total_steps = sum(plan.steps)

    start = time.perf_counter() if started is None else started
    step = 0
    image: np.ndarray | None = None
    coarse_content = content
    # Started from the content, each finer scale gets back the detail the coarser one lacked.
    # A print's instant start is painted at its first scale: it gets the detail back too.
    keep_detail = settings.init in ("content", "instant") and (init_image is None or plan.is_print)
    for scale_index, (shape, scale_steps) in enumerate(zip(plan.shapes, plan.steps, strict=True)):
        scale_start = time.perf_counter()
        # The coarser scale's optimiser state, targets and best image are done with: let them
        # go before this scale's are made (at a print's top scale they added to its peak).
        optimizer = result = best_image = targets_c = targets_s = None  # type: ignore[assignment]
        content_at = resize_to(content, *shape).astype(np.float32)
        long_side = max(shape)
        evaluator = evaluators[scale_index]
        targets_c = evaluator.content_targets(content_at)
        targets_s = (
            _style_targets(
                evaluator, styles, long_side, settings.style_scale, extractor.backbone, painted
            )
            if objective.style_layers
            else ()
        )
        masks_at = stack_masks(painted, shape) if painted else None
        if image is None:
            image = _initial_image(settings.init, content_at, styles[0][0], rng, init_image)
        else:
            image = _enlarge(image, shape)
            if keep_detail:
                image = _add_detail(image, content_at, coarse_content)
        coarse_content = content_at
        best_image, best_total, first_total = image, math.inf, None

        def evaluate(
            x: np.ndarray, tc=targets_c, ts=targets_s, masks=masks_at, ev=evaluator
        ) -> tuple[dict[str, float], np.ndarray, bool]:
            if masks is not None:
                return objective.guided_value_and_grad(
                    x, tc, ts, content_weights, style_weights, mix, masks, mask_mapping
                )
            return ev.value_and_grad(x, tc, ts, content_weights, style_weights, mix)

        optimizer = _make_optimizer(settings)
        last_scale = scale_index == len(plan.shapes) - 1
        for done_here in range(1, scale_steps + 1):
            step_began = time.perf_counter()
            result = optimizer.step(image, evaluate)
            image, step_losses = result.image, result.losses
            step += 1
            now = time.perf_counter()
            # This scale's mean step time, switch and targets included: what a step costs here.
            per_step = (now - scale_start) / done_here
            remaining = _time_left(plan, scale_index, scale_steps - done_here, per_step)
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
            if last_scale and done_here == scale_steps:
                status = "done"
            elif settings.max_seconds is not None and (
                # A scale's first step also pays for its targets (and a process's first, the
                # trace): from the second on, the last step foretells the next one.
                now - start + (now - step_began if done_here > 1 else 0.0) > settings.max_seconds
            ):
                # Another step like this one would end past the budget: stop within it.
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
            deadline = _scale_deadline(
                settings.max_seconds, plan, scale_index, scale_start - start, per_step
            )
            if deadline is not None and now - start >= deadline:
                break  # this scale's share of the time budget is spent: go finer


def instant_start(
    content: np.ndarray,
    styles: Sequence[tuple[np.ndarray, float]],
    settings: TransferSettings,
    strength: float = 100.0,
    regions: Sequence[Region] = (),
) -> np.ndarray:
    """``instant.instant_init`` (per region with ``regions``), with the other way to start
    named when its models are missing."""
    try:
        if regions:
            return instant_regions_init(content, styles, regions, settings, strength=strength)
        return instant_init(content, styles, settings, strength=strength)
    except InstantModelError as err:
        raise InstantModelError(
            f"{err} (the optimiser starts from the instant result by default; "
            "init content starts from the photo without it)"
        ) from None


def _start_settings(
    settings: TransferSettings, plan: RunPlan | tuple[int, int], backbone: Backbone | None = None
) -> TransferSettings:
    """The settings the instant start is painted with: a print's at its first scale (the size
    the network handles well; the schedule's finer scales take it to the print size)."""
    if not isinstance(plan, RunPlan):
        assert backbone is not None
        plan = plan_run(plan, settings, backbone.min_side)
    return replace(settings, size=max(plan.shapes[0])) if plan.is_print else settings


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
    objective: Objective | TiledObjective,
    styles: Sequence[tuple[np.ndarray, float]],
    long_side: int,
    style_scale: float,
    backbone: Backbone,
    painted: Sequence[Region] = (),
) -> tuple:
    """The style targets: the blend's Grams, or with ``painted`` regions a stack of each
    region's blended Grams per layer."""
    side = max(16, round(long_side * style_scale))
    images = [_style_at(image, side, backbone).astype(np.float32) for image, _ in styles]
    if painted:
        return objective.region_style_grams(images, [region.weights for region in painted])
    return objective.blended_style_grams(images, [w for _, w in styles])


def _style_at(image: np.ndarray, side: int, backbone: Backbone) -> np.ndarray:
    """``image`` with its long side at ``side``, sized by the same rule as the content."""
    height, width = image.shape[:2]
    shape, _ = fit_shape((height, width), side, backbone.min_side)
    if shape is None:
        short = min(height, width) * side / max(height, width)
        raise SettingsError(
            f"a style image ({width}x{height}) is too thin for {backbone.name}: scaled to {side} "
            f"px its short side would be {int(short)} px, and the model needs "
            f"{backbone.min_side} px; crop the image or choose a larger size"
        )
    return resize_to(image, *shape)


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


def _optimiser_pairs(settings: TransferSettings, steps: int) -> int:
    """Image-sized array pairs the optimiser holds at a scale of ``steps`` steps: Adam's
    moments, or the L-BFGS pairs it can gather (one per step after the first)."""
    return 1 if settings.optimizer == "adam" else min(LBFGS().history, max(0, steps - 1))


def _make_optimizer(settings: TransferSettings) -> Optimizer:
    if settings.optimizer == "adam":
        return Adam(settings.learning_rate)
    return LBFGS()


def _scale_deadline(
    max_seconds: float | None,
    plan: RunPlan,
    index: int,
    scale_started: float,
    step_seconds: float,
) -> float | None:
    """Seconds into the run at which scale ``index`` hands over to the next one (None: never).

    The time left when the scale started is split over it and the finer scales in proportion
    to their planned steps times their step cost, estimated from this scale's measured
    ``step_seconds`` scaled by pixel count. So every scale gets the same fraction of its
    planned steps, and a coarse scale (a quarter of the cost per halving) gets real steps
    rather than what a fixed split of the seconds would leave it.
    """
    if max_seconds is None or index == len(plan.shapes) - 1:
        return None
    costs = _scale_costs(plan, index, step_seconds)
    planned = sum(c * n for c, n in zip(costs, plan.steps[index:], strict=True))
    share = costs[0] * plan.steps[index] / planned
    return scale_started + (max_seconds - scale_started) * share


def _scale_costs(plan: RunPlan, index: int, step_seconds: float) -> list[float]:
    """Estimated seconds per step at scale ``index`` and each finer one (cost ~ pixels)."""
    pixels = [h * w for h, w in plan.shapes]
    return [step_seconds * p / pixels[index] for p in pixels[index:]]


def _time_left(plan: RunPlan, index: int, steps_left_here: int, step_seconds: float) -> float:
    """Seconds the planned steps still take: the rest of this scale and all finer ones."""
    costs = _scale_costs(plan, index, step_seconds)
    later = sum(c * n for c, n in zip(costs[1:], plan.steps[index + 1 :], strict=True))
    return steps_left_here * step_seconds + later


def _frame(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    frame = to_uint8(image)
    if frame.shape[:2] != shape:
        frame = resize_to(frame, *shape)
    return frame

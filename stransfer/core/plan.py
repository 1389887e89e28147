"""Planning a run: the image shape and step count at each coarse-to-fine scale (no TensorFlow)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .settings import SettingsError, TransferSettings

#: Smallest long side worth optimising at a coarse scale.
MIN_COARSE_SIDE = 64
#: Share of the steps spent at each scale, coarse to fine (coarse steps are 4x cheaper).
SCALE_SHARES = {1: (1.0,), 2: (0.5, 0.5), 3: (0.34, 0.33, 0.33), 4: (0.25, 0.25, 0.25, 0.25)}
#: A long side above this is a print: it follows the print schedule (:func:`print_shapes`).
PRINT_FROM = 2048
#: The print schedule's first scale: the print size halved until its long side is at most
#: 1.5x this (512 to 768 px: what the default run and the instant engine handle well).
PRINT_START = 512


@dataclass(frozen=True)
class RunPlan:
    """Image shapes and step counts for each scale, and notices for the user."""

    shapes: tuple[tuple[int, int], ...]
    steps: tuple[int, ...]
    notices: tuple[str, ...] = field(default=())
    #: Planned by the print schedule (coarse to fine from about 512 px, most steps coarse).
    is_print: bool = False

    @property
    def output_shape(self) -> tuple[int, int]:
        return self.shapes[-1]

    @property
    def pixel_steps(self) -> int:
        """The work the plan asks for: each scale's steps times its pixels, summed. A step's
        cost grows with its pixels, so this counts a coarse step as the fraction of a full one
        it costs (the service's limit on a step-counted job)."""
        return sum(n * h * w for n, (h, w) in zip(self.steps, self.shapes, strict=True))


def plan_run(content_shape: tuple[int, int], settings: TransferSettings, min_side: int) -> RunPlan:
    """Work out the optimised image's size at each scale.

    The long side is ``settings.size`` and the content's aspect ratio is kept. A side below the
    backbone's minimum is raised to it (with a notice); an image too thin for that is refused.
    """
    height, width = content_shape
    notices: list[str] = []
    final, enlarged = fit_shape(content_shape, settings.size, min_side)
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

    if max(final) > PRINT_FROM:
        return _print_plan(final, settings.steps, min_side, tuple(notices))
    shapes = [final]
    scales = scales_for(settings)
    for _ in range(scales - 1):
        h, w = shapes[0]
        smaller = (round(h / 2), round(w / 2))
        if max(smaller) < MIN_COARSE_SIDE or min(smaller) < min_side:
            notices.append(
                f"used {len(shapes)} scale(s) instead of {scales}: a smaller one would "
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


def print_shapes(final: tuple[int, int], min_side: int = 1) -> list[tuple[int, int]]:
    """The print schedule's shapes, coarse to fine: ``final`` halved (about 2x a scale) until
    its long side is at most ``1.5 * PRINT_START``."""
    shapes = [final]
    while max(shapes[0]) > 1.5 * PRINT_START:
        h, w = shapes[0]
        smaller = (round(h / 2), round(w / 2))
        if min(smaller) < min_side:
            break
        shapes.insert(0, smaller)
    return shapes


def _print_plan(
    final: tuple[int, int], steps: int, min_side: int, notices: tuple[str, ...]
) -> RunPlan:
    """A print: every scale gets half the steps of the next coarser one (the field's habit,
    e.g. 500/200/100/50 as the size doubles), at least one, the coarsest the rest. A step at
    twice the size costs four times as much, so the top scale only refines what the coarse
    ones painted. The start (``init``, the instant painting by default) is made at the first
    scale. Fewer steps than scales: the coarse scales are dropped first."""
    shapes = print_shapes(final, min_side)[-steps:]
    weights = [2.0 ** (len(shapes) - 1 - i) for i in range(len(shapes))]
    counts = [max(1, math.floor(steps * w / sum(weights))) for w in weights]
    counts[0] = max(1, steps - sum(counts[1:]))
    return RunPlan(tuple(shapes), tuple(counts), notices, is_print=True)


def scales_for(settings: TransferSettings) -> int:
    """How many coarse-to-fine scales a run plans (before any too small is dropped).

    An instant start already has the layout, palette and strokes at full size: a coarse pass
    would shrink it and hand back a blurred enlargement (a start image gets no detail back),
    so ``init="instant"`` spends every step at full size. ``python -m bench.instant_init``
    (12 pairs, equal cost): at the 10 s budget the style distance fell on 9 pairs (0.229 ->
    0.045 at most), at 30 s the content distance fell on 11, with the style distance alike.
    """
    return 1 if settings.init == "instant" else settings.scales


def fit_shape(
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


#: A step at a scale with a tiny share of the full size's pixels still costs this much of a
#: full-size step (fixed costs per step).
MIN_STEP_COST = 0.05


def step_costs(plan: RunPlan) -> list[float]:
    """Each scale's cost per step relative to a full-size step: convolutions scale with pixels,
    so a half-size step (a quarter of the pixels) costs about a quarter of a full one."""
    full = plan.shapes[-1][0] * plan.shapes[-1][1]
    return [max(MIN_STEP_COST, h * w / full) for h, w in plan.shapes]


def seconds_left(
    plan: RunPlan,
    full_step_seconds: float,
    *,
    scale: int = 1,
    step: int = 0,
    budget_left: float | None = None,
) -> float:
    """Seconds the plan still takes after ``step`` (1-based over the whole run; 0: before the
    first) at ``scale`` (1-based): every remaining step of every scale weighted by its cost,
    capped by what is left of a time budget. ``seconds_left(plan, s)`` is a whole run's
    length before it starts, for a full-size step of ``s`` seconds."""
    costs = step_costs(plan)
    done_before = sum(plan.steps[: scale - 1])
    left = (plan.steps[scale - 1] - (step - done_before)) * costs[scale - 1]
    left += sum(n * c for n, c in zip(plan.steps[scale:], costs[scale:], strict=True))
    seconds = max(0.0, left * full_step_seconds)
    return seconds if budget_left is None else min(seconds, max(0.0, budget_left))

"""What a run reports after every step: the contract between the engine and its front ends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

"""Optimisers over the image pixels: Adam and a bounded L-BFGS, both one step at a time.

Both take ``evaluate(x) -> (losses, gradient, finite)`` and return the new image after one step, so
the loop can show every step. Pixels stay in 0..255 (projected after each step): that keeps the
image displayable at every step and is the box constraint L-BFGS-B would enforce.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

#: ``x -> (losses, gradient, finite)``; ``finite`` says the losses and gradient are finite
#: (the objective checks it in its graph, so the optimiser need not scan the gradient again).
Evaluate = Callable[[np.ndarray], tuple[dict[str, float], np.ndarray, bool]]
LOW, HIGH = 0.0, 255.0


class Step(NamedTuple):
    """One optimiser step: the next image, and the losses of ``evaluated`` (the image scored
    in this step; ``image`` is scored by the next step).

    ``finite`` is False when the losses or gradient were not finite; ``image`` is then the
    unchanged input.
    """

    image: np.ndarray
    losses: dict[str, float]
    evaluated: np.ndarray
    finite: bool


class Optimizer(Protocol):
    def step(self, x: np.ndarray, evaluate: Evaluate) -> Step:
        """One step from ``x``."""
        ...


class Adam:
    """Adam on pixels; ``learning_rate`` is roughly the per-step pixel change (0..255 scale).

    Scores the image it was given and moves on (one evaluation per step).
    """

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.lr, self.beta1, self.beta2 = learning_rate, beta1, beta2
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.t = 0

    @np.errstate(over="ignore", invalid="ignore")  # overflow is detected and reported instead
    def step(self, x: np.ndarray, evaluate: Evaluate) -> Step:
        losses, grad, finite = evaluate(x)
        if not finite:
            return Step(x, losses, x, False)
        if self.m is None or self.m.shape != grad.shape:
            self.m, self.v, self.t = np.zeros_like(grad), np.zeros_like(grad), 0
        assert self.v is not None
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        new = np.clip(x - self.lr * m_hat / (np.sqrt(v_hat) + 1e-8), LOW, HIGH)
        if not np.isfinite(new).all():
            return Step(x, losses, x, False)
        return Step(new.astype(np.float32), losses, x, True)


class LBFGS:
    """Limited-memory BFGS with pixel bounds, one evaluation per ``step``.

    Each step scores the image it is given (the previous step's proposal) and proposes the
    next one, so a step costs one evaluation, the first step of a scale included. Only when
    the proposal raised the loss does it backtrack (halving the step from the last accepted
    image, at most ``max_backtracks`` extra evaluations) and, if that fails, forget its
    curvature history. This follows the common style-transfer practice of L-BFGS with a unit
    step and no full line search, which converges far faster per evaluation than Adam.

    Args:
        history: curvature pairs kept (each costs two image-sized float32 arrays).
        first_step: largest pixel change (0..255 scale) of the first, gradient-only step.
    """

    def __init__(self, history: int = 10, first_step: float = 2.0, max_backtracks: int = 3):
        self.history = history
        self.first_step = first_step
        self.max_backtracks = max_backtracks
        self.pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
        self.x: np.ndarray | None = None  # the last accepted (scored) image, flat
        self.grad: np.ndarray | None = None
        self.losses: dict[str, float] = {}
        self.direction: np.ndarray | None = None
        self.proposal: np.ndarray | None = None  # what the last step returned, flat

    def _direction(self, grad: np.ndarray) -> np.ndarray:
        """Two-loop recursion: approximately -H^-1 grad (flat float32 arrays)."""
        if not self.pairs:
            peak = float(np.abs(grad).max())
            return -grad * (self.first_step / peak if peak > 0 else 0.0)
        q = grad.copy()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * float(s @ q)
            q -= alpha * y
            alphas.append(alpha)
        s, y, _ = self.pairs[-1]
        q *= float(s @ y) / float(y @ y)
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas), strict=True):
            beta = rho * float(y @ q)
            q += (alpha - beta) * s
        return -q

    @np.errstate(over="ignore", invalid="ignore")  # overflow is detected and reported instead
    def step(self, x: np.ndarray, evaluate: Evaluate) -> Step:
        shape = x.shape
        flat = x.ravel().astype(np.float32)
        continuing = (
            self.proposal is not None
            and self.proposal.size == flat.size
            and np.array_equal(self.proposal, flat)
        )
        if not continuing:
            # New start (first step, new scale, or the caller changed the image).
            self.pairs.clear()
            self.x = None
        losses, grad, finite = evaluate(x)
        if not finite:
            return Step(x, losses, x, False)
        grad = grad.ravel().astype(np.float32)
        if self.x is not None:
            assert self.grad is not None and self.direction is not None
            step_size = 0.5
            for _ in range(self.max_backtracks):
                if losses["total"] <= self.losses["total"]:
                    break
                flat = np.clip(self.x + step_size * self.direction, LOW, HIGH)
                losses, grad, finite = evaluate(flat.reshape(shape))
                if not finite:
                    return Step(x, losses, x, False)
                grad = grad.ravel().astype(np.float32)
                step_size *= 0.5
            s, y = flat - self.x, grad - self.grad
            sy = float(s @ y)
            if losses["total"] > self.losses["total"]:
                self.pairs.clear()  # the model of the curvature failed: restart from the gradient
            elif math.isfinite(sy) and sy > 1e-10 * float(y @ y):
                self.pairs.append((s, y, 1.0 / sy))
        self.x, self.grad, self.losses = flat, grad, losses
        self.direction = self._direction(grad)
        self.proposal = np.clip(flat + self.direction, LOW, HIGH)
        return Step(self.proposal.reshape(shape), losses, flat.reshape(shape), True)

"""Scale switch cost and cold start, each beside its baseline, in one run.

    python -m bench.scale_switch [--size 512] [--scales 4] [--steps 3]

Switch cost = time from the last step of one scale to the end of the first step of the next,
minus a normal step at that scale (the median of its other steps): what a new size costs
beyond its step, in wall seconds and in this process's CPU seconds (steadier when other work
shares the cores) (targets, enlarging, and, in the baseline, a retrace). Baseline: the objective
traced anew for every image size (``trace_per_shape=True``, this project before issue 10);
now: one shape-polymorphic trace, and a content pass that stops at the content layer. Each runs
cold in a fresh extractor, float32, on the bundled astronaut + brush strokes; then "now" runs
again in the same extractor, as a user does after changing a weight: its targets are kept
(``features.TARGETS``), so the new size costs only its step. Then the cold start,
``python -m bench.probe cold SIZE`` in a fresh process, split into imports / model build /
targets + first step; and a new worker's first default job, Run to first frame, without and
with the worker's warm-up (``service.execute.warm_up``), each in fresh processes by turns.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import cpu

ROOT = Path(__file__).resolve().parents[1]


def switch_costs(
    trace_per_shape: bool, size: int, scales: int, steps: int, runs: int = 1
) -> list[dict]:
    """One row per run, all in one fresh extractor."""
    from stransfer import TransferSettings, load_image, transfer
    from stransfer.engine.features import FeatureExtractor
    from stransfer.weights import resolve_weights

    content = load_image(ROOT / "data/content/astronaut.jpg")
    style = load_image(ROOT / "data/style/brush_strokes.jpg")
    try:
        weights = resolve_weights("VGG19", None, allow_download=False)
    except Exception:  # timing does not depend on the weights' values
        weights = None
    extractor = FeatureExtractor("VGG19", "float32", weights, trace_per_shape=trace_per_shape)
    # Content init: the default instant start plans one scale (no switch to measure).
    settings = TransferSettings(
        size=size, scales=scales, steps=steps * scales, precision="float32", init="content"
    )
    validated = settings.validated()
    objective = extractor.objective(tuple(validated.content_layers), tuple(validated.style_layers))
    rows = []
    for _ in range(runs):
        started = time.perf_counter()
        wall: dict[int, list[float]] = {}
        cpu_time: dict[int, list[float]] = {}
        for event in transfer(content, style, settings, extractor):
            wall.setdefault(event.scale, []).append(event.elapsed)
            cpu_time.setdefault(event.scale, []).append(time.process_time())
        result: dict = {"run": time.perf_counter() - started}
        for clock, ends in (("wall", wall), ("cpu", cpu_time)):
            costs, normal = [], []
            for scale in sorted(ends)[1:]:
                times = ends[scale]
                usual = statistics.median(b - a for a, b in itertools.pairwise(times))
                costs.append(times[0] - ends[scale - 1][-1] - usual)
                normal.append(usual)
            result[clock] = {"switch": costs, "step": normal}
        rows.append({**result, "traces": objective.traces})
    return rows


def cold_start(size: int, what: str = "parts") -> dict[str, float]:
    """Fresh process: imports, model build, first step (``bench.probe parts``), or a new
    worker's first job with or without its warm-up (``first``, ``first-warm``)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.probe", what, str(size)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    return {k: float(v) for k, v in (line.split("=") for line in out.split())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_switch")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--scales", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="steps per scale")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start part")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per first run")
    args = parser.parse_args(argv)
    print(cpu())
    print(f"\nscale switch at {args.size} px, {args.scales} scales, float32 (seconds)")
    baseline = switch_costs(True, args.size, args.scales, args.steps)
    first, again = switch_costs(False, args.size, args.scales, args.steps, runs=2)
    rows = {
        "baseline (trace per size)": baseline[0],
        "now (one trace)": first,
        "now, run again": again,
    }
    print(f"{'':28}{'traces':>7}{'run':>7}  switch cost beyond a step, per new scale")
    for clock, what in (
        ("wall", "wall seconds"),
        ("cpu", "CPU seconds (steadier on a busy machine)"),
    ):
        print(f"  {what}")
        for name, row in rows.items():
            costs = " ".join(f"{c:6.2f}" for c in row[clock]["switch"])
            steps = " ".join(f"{s:5.2f}" for s in row[clock]["step"])
            print(f"{name:28}{row['traces']:>7}{row['run']:>7.1f}  {costs}   (a step: {steps})")
    if args.no_cold:
        return
    parts = cold_start(args.size)
    print(f"\ncold start at {args.size} px (python -m bench.probe parts {args.size}), seconds")
    for key, value in parts.items():
        print(f"  {key:18}{value:6.2f}")
    print(f"\na new worker's first default job at {args.size} px, Run -> first frame (seconds)")
    modes = {"first": "before: no warm-up", "first-warm": "now: after warm-up"}
    times: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for _ in range(args.repeats):  # by turns, so a neighbour's load falls on both
        for mode in modes:
            times[mode].append(cold_start(args.size, mode))
    for mode, name in modes.items():
        frames = " ".join(f"{t['first_frame']:.2f}" for t in times[mode])
        warm = " ".join(f"{t['warm_up']:.2f}" for t in times[mode])
        print(f"  {name:22}{frames}   (warm-up, while idle: {warm})")


if __name__ == "__main__":
    main()

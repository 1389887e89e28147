"""Instant init vs content init at fixed step counts that stand for the 10 s and 30 s budgets.

    python -m bench.instant_init                 # all 12 shared pairs (~40 min of CPU at 512 px)
    python -m bench.instant_init --pairs 2       # the first 2 pairs
    python -m bench.instant_init --reuse-content OTHER/results.json [--wait]

Issue 8 item 3 compares the inits at wall-clock budgets; on a shared machine wall time says
more about the neighbours than about the init. So each budget is turned into a step count by
the engine's own cost model (``stransfer.core.plan.seconds_left``: a step costs its pixels'
share of a full-size step) at ``--step-seconds`` per full-size step, the instant start's
``--instant-seconds`` counted against the instant init's budget. Each init runs what a user
runs (``make_recipe`` -> ``run_recipe``, 512 px, ``precision="float32"``), so the plan the
library chooses for each init (its scales) is what gets measured; the result at that step is
scored by ``bench.baselines.Scorer`` (S: style distance, C: content distance).

Prints the CPU (lscpu model and flags), the step counts, then per pair S and C beside content
init's and the issue's targets: (a) instant init at 30 s, S <= 0.5x the instant result's S;
(b) S <= 0.5x content init's S at 30 s; (c) C <= content init's C + 0.15 at 30 s; (d) at 10 s,
S below content init's at 30 s. Writes ``results.json``, the images and ``contact_sheet.png``
(content, style, instant result, content init 30 s, instant init 10 s, instant init 30 s).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import cpu
from bench.instant import SHARED, _contact_sheet, _pairs
from stransfer.core.plan import plan_run, seconds_left
from stransfer.core.recipe import make_recipe
from stransfer.instant import instant
from stransfer.io.images import fit_long_side, load_image, save_image

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512
BUDGETS = (10.0, 30.0)
VGG_MIN_SIDE = 32  # VGG19's smallest side (only the plan's shape rule needs it here)


def steps_for(init: str, shape: tuple[int, int], seconds: float, step_seconds: float) -> int:
    """The most steps the library's plan for ``init`` fits in ``seconds`` by the cost model."""
    steps = 1
    while True:
        recipe = make_recipe(_values(init, steps + 1))
        plan = plan_run(shape, recipe.settings, VGG_MIN_SIDE)
        if seconds_left(plan, step_seconds) > seconds:
            return steps
        steps += 1


def _values(init: str, steps: int) -> dict:
    return {"size": SIZE, "precision": "float32", "init": init, "steps": steps}


def _run(init: str, steps: int, content, style, extractor) -> np.ndarray:
    from stransfer import run_recipe

    events = run_recipe(make_recipe(_values(init, steps)), content, [style], extractor)
    *_, last = events
    return last.image


def bench_pair(
    pair: str, content, style, scorer, extractor, args, reuse: dict | None
) -> tuple[dict, dict]:
    targets = scorer.targets(content, style)
    shape = fit_long_side(content, SIZE).shape[:2]
    alone = instant(content, [(style, 1.0)], size=SIZE)
    res: dict = {"instant": scorer.score(alone, targets)}
    images = {"instant": alone}
    if reuse:
        res["content@30s"] = reuse["content@30s"]
        images["content@30s"] = load_image(args.reuse_content.parent / f"{pair}_content_30s.png")
    else:
        steps = steps_for("content", shape, BUDGETS[1], args.step_seconds)
        images["content@30s"] = _run("content", steps, content, style, extractor)
        res["content@30s"] = (*scorer.score(images["content@30s"], targets), steps)
    for budget in BUDGETS:
        spend = budget - args.instant_seconds
        steps = steps_for("instant", shape, spend, args.step_seconds)
        key = f"instant@{budget:g}s"
        images[key] = _run("instant", steps, content, style, extractor)
        res[key] = (*scorer.score(images[key], targets), steps)
    return res, images


def _content_row(path: Path, pair: str, wait: bool) -> dict | None:
    """``pair``'s row in another run's results (polled while ``wait`` and it is not there)."""
    while True:
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):  # not there yet, or being written
            rows = {}
        if pair in rows or not wait:
            return rows.get(pair)
        time.sleep(20)


def targets_met(res: dict) -> dict[str, bool]:
    s_alone = res["instant"][0]
    s30, c30 = res["instant@30s"][:2]
    s30c, c30c = res["content@30s"][:2]
    return {
        "a": s30 <= 0.5 * s_alone,
        "b": s30 <= 0.5 * s30c,
        "c": c30 <= c30c + 0.15,
        "d": res["instant@10s"][0] < s30c,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="0", help="first N shared pairs, or content+style,...")
    parser.add_argument("--step-seconds", type=float, default=1.2, help="one full-size step")
    parser.add_argument("--instant-seconds", type=float, default=0.3, help="the instant start")
    parser.add_argument("--reuse-content", type=Path, help="content init rows of another run")
    parser.add_argument(
        "--wait", action="store_true", help="wait for each pair's row there (a run going on)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "instant_init")
    args = parser.parse_args()
    print(cpu())
    from bench.baselines import Scorer
    from stransfer import load_extractor
    from stransfer.weights import resolve_weights

    pairs = (
        _pairs(int(args.pairs))
        if args.pairs.isdigit()
        else [tuple(p.split("+")) for p in args.pairs.split(",")]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(resolve_weights("VGG19", allow_download=False), SIZE)
    extractor = load_extractor("VGG19", "float32")
    print(
        f"\n{SIZE} px, float32; budgets as steps at {args.step_seconds:g} s per full-size step "
        f"(a half-size step costs a quarter), the instant start counted as "
        f"{args.instant_seconds:g} s. S: style distance, C: content distance (lower is closer)."
    )
    print("| pair | instant S / C | content 30 s | instant 10 s | instant 30 s | a b c d |")
    print("| --- | --- | --- | --- | --- | --- |")
    results, rows, met = {}, [], {k: 0 for k in "abcd"}
    for content_name, style_name in pairs:
        content = fit_long_side(load_image(SHARED / "content" / f"{content_name}.jpg"), SIZE)
        style = fit_long_side(load_image(SHARED / "style" / f"{style_name}.jpg"), SIZE)
        pair = f"{content_name}+{style_name}"
        reuse = _content_row(args.reuse_content, pair, args.wait) if args.reuse_content else None
        res, images = bench_pair(pair, content, style, scorer, extractor, args, reuse)
        res["targets"] = targets_met(res)
        results[pair] = res
        for name, image in images.items():
            save_image(image, args.out / f"{pair}_{name.replace('@', '_')}.png")
        rows.append([content, style, *images.values()])
        for k, ok in res["targets"].items():
            met[k] += ok
        cells = [f"{res['instant'][0]:.3f} / {res['instant'][1]:.3f}"]
        for key in ("content@30s", "instant@10s", "instant@30s"):
            s, c, steps = res[key]
            cells.append(f"{s:.3f} / {c:.3f} ({steps})")
        flags = " ".join("yes" if ok else "no" for ok in res["targets"].values())
        print(f"| {pair} | {' | '.join(cells)} | {flags} |", flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print("\ntargets met: " + ", ".join(f"({k}) {n} of {len(pairs)}" for k, n in met.items()))
    if rows and all(len(r) == len(rows[0]) for r in rows):
        _contact_sheet(rows, args.out / "contact_sheet.png")
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()

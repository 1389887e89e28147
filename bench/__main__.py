"""Stransfer benchmark: speed and quality per second, each figure beside its baseline, in one run.

    python -m bench                     # everything (about 10 minutes on 2 cores)
    python -m bench --only step,memory  # a subset: step, precision, quality, startup, memory

Prints a table per section and writes ``bench_results/results.json`` and
``bench_results/quality_vs_seconds.png``. Quality pairs come from ``../shared/images``
(skipped with a message when absent). pastiche runs from ``.venv-pastiche`` (or
``$PASTICHE_PYTHON``); see docs/benchmarks.md for how to create it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from stransfer import TransferSettings, transfer
from stransfer.engine.features import load_extractor, resolve_precision
from stransfer.io.images import fit_long_side, load_image, save_image
from stransfer.weights import resolve_weights

from . import forget_targets
from .baselines import Scorer, pastiche_run, tutorial_adam

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
PAIRS = [("chicago", "wave"), ("stata", "udnie")]  # the pairs; --pairs all for every one
METHODS = ("stransfer", "stransfer-1scale", "tutorial", "pastiche")
VGG19_CONVS = [  # (block, convs, in, out) up to block5_conv1, the deepest default layer
    (1, 2, 3, 64), (2, 2, 64, 128), (3, 4, 128, 256), (4, 4, 256, 512), (5, 1, 512, 512),
]  # fmt: skip


def conv_gflop(height: int, width: int) -> float:
    """Conv GFLOP of one VGG19 step (forward + gradient w.r.t. the input ~ 2x forward)."""
    total = 0.0
    for block, convs, cin, cout in VGG19_CONVS:
        h, w = height // 2 ** (block - 1), width // 2 ** (block - 1)
        for i in range(convs):
            total += 2 * h * w * 9 * (cin if i == 0 else cout) * cout
    return 2 * total / 1e9


def conv_peak(dtype: tf.DType) -> float:
    """Measured TFLOP/s of a 3x3 conv (1x96x128x256 -> 256) in ``dtype``."""
    x = tf.random.normal((1, 96, 128, 256), dtype=tf.float32)
    k = tf.random.normal((3, 3, 256, 256), dtype=tf.float32)
    x, k = tf.cast(x, dtype), tf.cast(k, dtype)
    conv = tf.function(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"))
    conv(x, k).numpy()
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        conv(x, k).numpy()
        runs.append(time.perf_counter() - t)
    return 2 * 96 * 128 * 9 * 256 * 256 / np.median(runs) / 1e12


def median_time(fn, repeats: int) -> float:
    fn()  # warm up (traces)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


WEIGHTS = (np.ones(1, np.float32), np.ones(5, np.float32), np.ones(3, np.float32))


def bench_step(content: np.ndarray, style: np.ndarray, size: int) -> dict:
    """Seconds per evaluation and per L-BFGS step: float32 baseline vs the default precision."""
    content = fit_long_side(content, size).astype(np.float32)
    style = fit_long_side(style, size).astype(np.float32)
    settings = TransferSettings(size=size).validated()
    results = {"shape": list(content.shape[:2])}
    for precision in ("float32", resolve_precision("auto")):
        objective = load_extractor("VGG19", precision).objective(
            tuple(settings.content_layers), tuple(settings.style_layers)
        )
        targets = (objective.content_targets(content), objective.style_grams(style))
        results[precision] = median_time(
            lambda o=objective, t=targets: o.value_and_grad(content, *t, *WEIGHTS), 5
        )
    default = resolve_precision("auto")
    gflop = conv_gflop(*content.shape[:2])
    peak = conv_peak(tf.bfloat16 if default == "bfloat16" else tf.float32)
    results.update(
        default_precision=default,
        speedup=results["float32"] / results[default],
        conv_gflop=gflop,
        achieved_tflops=gflop / 1e3 / results[default],
        conv_peak_tflops=peak,
        floor_seconds=gflop / 1e3 / peak,
        fp32_conv_peak_tflops=conv_peak(tf.float32),
    )
    print(f"\n## Step time at {content.shape[1]}x{content.shape[0]} (VGG19, default layers)")
    print(f"float32 baseline        {results['float32']:.3f} s/step")
    print(
        f"default ({default})    {results[default]:.3f} s/step   {results['speedup']:.2f}x faster"
    )
    print(f"conv work {gflop:.0f} GFLOP/step -> {results['achieved_tflops']:.2f} TFLOP/s achieved")
    fp32_peak = results["fp32_conv_peak_tflops"]
    print(f"measured {default} conv peak {peak:.2f} TFLOP/s (fp32 {fp32_peak:.2f})"
          f" -> floor {results['floor_seconds']:.3f} s/step, "
          f"{results[default] / results['floor_seconds']:.2f}x the floor")  # fmt: skip
    return results


def bench_precision(content, style, scorer: Scorer, size: int, steps: int) -> dict:
    """Same steps in float32 and bf16: final S and C must agree within 5%."""
    out = {}
    targets = scorer.targets(content, style)
    for precision in ("float32", "bfloat16"):
        settings = TransferSettings(size=size, steps=steps, precision=precision)
        last = list(transfer(content, style, settings, load_extractor("VGG19", precision)))[-1]
        out[precision] = dict(zip(("S", "C"), scorer.score(last.image, targets), strict=True))
    rel = {k: abs(out["bfloat16"][k] / out["float32"][k] - 1) for k in ("S", "C")}
    out["relative_difference"] = rel
    print(f"\n## Precision: {steps} steps at {size} px, scored by fp32 VGG19")
    for p in ("float32", "bfloat16"):
        print(f"{p:9s} S {out[p]['S']:.4f}  C {out[p]['C']:.4f}")
    print(f"bf16 vs fp32: S {rel['S']:.1%} apart, C {rel['C']:.1%} apart (target <= 5%)")
    return out


def ours(content, style, size: int, seconds: float, every: float, scales: int = 2) -> list:
    settings = TransferSettings(size=size, steps=10_000, max_seconds=seconds, scales=scales)
    extractor = load_extractor("VGG19", settings.precision)
    forget_targets()  # a timed run pays for its own targets
    checkpoints, next_mark = [], every
    for event in transfer(content, style, settings, extractor):
        if event.elapsed >= next_mark or event.status != "running":
            checkpoints.append((event.elapsed, event.image))
            next_mark += every
    return checkpoints


def bench_quality(
    scorer, weights, size, seconds, every, out_dir: Path, pastiche_python, pairs
) -> dict:
    results: dict = {}
    for content_name, style_name in pairs:
        content_path = SHARED / "content" / f"{content_name}.jpg"
        style_path = SHARED / "style" / f"{style_name}.jpg"
        if not (content_path.exists() and style_path.exists()):
            print(f"skipping {content_name}+{style_name}: {SHARED} not found")
            continue
        content = fit_long_side(load_image(content_path), size)
        style = fit_long_side(load_image(style_path), size)
        runs = {
            "stransfer": lambda c=content, s=style: ours(c, s, size, seconds, every),
            "stransfer-1scale": lambda c=content, s=style: ours(c, s, size, seconds, every, 1),
            "tutorial": lambda c=content, s=style: tutorial_adam(c, s, weights, seconds, every),
        }
        if pastiche_python:
            runs["pastiche"] = lambda c=content_path, s=style_path: pastiche_run(
                pastiche_python, c, s, size, seconds, every
            )
        targets = scorer.targets(content, style)
        pair = f"{content_name}+{style_name}"
        results[pair] = {"content_alone": scorer.score(content, targets)}
        for method, run in runs.items():
            checkpoints = run()
            curve = [(t, *scorer.score(img, targets)) for t, img in checkpoints]
            save_image(checkpoints[-1][1], out_dir / f"{pair}_{method}.png")
            results[pair][method] = {"curve": curve, "S": curve[-1][1], "C": curve[-1][2]}
        _print_quality(pair, results[pair], seconds)
    return results


def _print_quality(pair: str, res: dict, seconds: float) -> None:
    print(f"\n## Quality at {seconds:g} s, {pair} (S: style distance, C: content distance)")
    print(f"content image alone: S {res['content_alone'][0]:.3f}  C {res['content_alone'][1]:.3f}")
    for method in METHODS:
        if method in res:
            print(f"{method:10s} S {res[method]['S']:.3f}  C {res[method]['C']:.3f}")
    ours_s, ours_c = res["stransfer"]["S"], res["stransfer"]["C"]
    print(f"coarse-to-fine vs one scale: S {ours_s:.3f} vs {res['stransfer-1scale']['S']:.3f}")
    print(f"S vs tutorial: {ours_s / res['tutorial']['S']:.2f}x (target <= 0.5x)")
    if "pastiche" in res:
        p_s, p_c = res["pastiche"]["S"], res["pastiche"]["C"]
        reach = next((t for t, s, _ in res["stransfer"]["curve"] if s <= p_s), None)
        res["seconds_to_pastiche_S"] = reach
        print(f"S vs pastiche: {ours_s / p_s:.2f}x (target <= 0.7x); C {ours_c:.3f} vs bound "
              f"{1.25 * p_c + 0.1:.3f} (1.25x pastiche + 0.1)")  # fmt: skip
        print(
            f"time to reach pastiche's {seconds:g} s S ({p_s:.3f}): "
            f"{'not reached' if reach is None else f'{reach:.1f} s'} (target <= 10 s)"
        )


def bench_startup(content, style, size: int) -> dict:
    """Run -> first frame with the model cached, and a cold process -> first frame."""
    settings = TransferSettings(size=size)
    extractor = load_extractor("VGG19", settings.precision)
    next(iter(transfer(content, style, settings, extractor)))  # traces this run's shapes
    t = time.perf_counter()
    next(iter(transfer(content, style, settings, extractor)))  # what a second Run costs
    warm = time.perf_counter() - t
    cold = _probe("cold", size)
    print(f"\n## Start-up at size {size}")
    print(f"Run -> first live frame, model cached: {warm:.2f} s (target <= 2 s)")
    print(f"cold process (imports + model build) -> first frame: {cold:.2f} s")
    return {"warm_first_frame": warm, "cold_first_frame": cold}


def bench_memory(size: int) -> dict:
    peak = _probe("memory", size)
    print(f"\n## Peak memory at size {size} (VGG19, 3 L-BFGS steps): {peak:.2f} GiB (target <= 3)")
    return {"size": size, "peak_rss_gib": peak}


def _probe(what: str, size: int) -> float:
    command = [sys.executable, "-m", "bench.probe", what, str(size)]
    return float(subprocess.check_output(command, cwd=ROOT, text=True).split()[-1])


def plot(quality: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(quality), 3)
    rows = -(-len(quality) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(quality) :]:
        ax.set_visible(False)
    for ax, (pair, res) in zip(axes.flat, quality.items(), strict=False):
        for method in METHODS:
            if method in res:
                t, s, _ = zip(*res[method]["curve"], strict=True)
                ax.plot(t, s, marker=".", label=method)
        ax.set(title=pair, xlabel="seconds", ylabel="style distance S (lower is better)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="step,precision,quality,startup,memory")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=30.0, help="quality budget per run")
    parser.add_argument("--every", type=float, default=2.0, help="checkpoint interval (s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results")
    parser.add_argument(
        "--pairs", choices=("issue", "all"), default="issue", help="the issue's two, or all"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights("VGG19", allow_download=False)
    content = load_image(SHARED / "content" / "chicago.jpg") if SHARED.exists() else load_image(
        ROOT / "data" / "content" / "astronaut.jpg")  # fmt: skip
    style = load_image(SHARED / "style" / "wave.jpg") if SHARED.exists() else load_image(
        ROOT / "data" / "style" / "swirls.jpg")  # fmt: skip
    pastiche = Path(os.environ.get("PASTICHE_PYTHON", ROOT / ".venv-pastiche" / "bin" / "python"))
    if not pastiche.exists():
        print(f"pastiche skipped: {pastiche} not found (see docs/benchmarks.md)")
    results: dict = {"cpu": _cpu_name(), "tensorflow": tf.__version__}
    scorer = Scorer(weights, args.size) if only & {"precision", "quality"} else None
    if "step" in only:
        results["step"] = bench_step(content, style, args.size)
    if "precision" in only:
        results["precision"] = bench_precision(content, style, scorer, 384, 40)
    if "quality" in only:
        results["quality"] = bench_quality(
            scorer, weights, args.size, args.seconds, args.every, args.out,
            pastiche if pastiche.exists() else None, _pairs(args.pairs),
        )  # fmt: skip
        plot(results["quality"], args.out / "quality_vs_seconds.png")
    if "startup" in only:
        results["startup"] = bench_startup(content, style, args.size)
    if "memory" in only:
        results["memory"] = bench_memory(1000)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=_plain))
    print(f"\nwrote {args.out / 'results.json'}")


def _pairs(which: str) -> list[tuple[str, str]]:
    if which == "issue":
        return PAIRS
    contents = sorted(p.stem for p in (SHARED / "content").glob("*.jpg"))
    styles = sorted(p.stem for p in (SHARED / "style").glob("*.jpg"))
    return [(c, s) for c in contents for s in styles]


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


if __name__ == "__main__":
    main()

"""How many coarse-to-fine scales under a time budget: S and C per pair and scale count.

    python -m bench.scales [--pairs chicago:wave,stata:udnie] [--scales 1,2,3] \\
        [--seconds 30] [--size 512] [--precision float32]

Each run is ``TransferSettings(size, steps=10_000, max_seconds, scales, precision,
init="content")`` (the instant start always runs one scale) on a shared pair
(``../shared/images``), scored at the end by the benchmark's fixed fp32 VGG19 (S: style
distance, C: content distance; lower is better). The current default (``TransferSettings().
scales``) is marked; the baseline for each row is the one-scale run in the same table. The
results go to ``--out`` (``bench_results/scales/PAIR_PRECISION_SCALES.png``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stransfer import TransferSettings, load_extractor, transfer
from stransfer.io.images import load_image, save_image
from stransfer.weights import resolve_weights

from . import cpu, forget_targets
from .baselines import Scorer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scales")
    parser.add_argument("--pairs", default="chicago:wave,stata:udnie,chicago:the_scream")
    parser.add_argument("--scales", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "scales")
    args = parser.parse_args(argv)
    print(cpu())
    scorer = Scorer(resolve_weights("VGG19", None, allow_download=False), args.size)
    extractor = load_extractor("VGG19", args.precision)
    default = TransferSettings().scales
    print(f"\n{args.seconds:g} s budget, {args.size} px, {extractor.precision}; lower is better")
    print(f"{'pair':28}{'scales':>7}{'steps':>7}{'S':>8}{'C':>8}  steps per scale")
    for pair in args.pairs.split(","):
        content_name, style_name = pair.split(":")
        content = load_image(SHARED / "content" / f"{content_name}.jpg")
        style = load_image(SHARED / "style" / f"{style_name}.jpg")
        targets = scorer.targets(content, style)
        for scales in (int(n) for n in args.scales.split(",")):
            settings = TransferSettings(
                size=args.size,
                steps=10_000,
                max_seconds=args.seconds,
                scales=scales,
                precision=args.precision,
                init="content",  # the default instant start always runs one scale (plan)
            )
            forget_targets()  # each scale count pays for its own targets
            started = time.perf_counter()
            events = list(transfer(content, style, settings, extractor))
            took = time.perf_counter() - started
            per_scale = [sum(e.scale == s for e in events) for s in range(1, events[-1].scales + 1)]
            s, c = scorer.score(events[-1].image, targets)
            args.out.mkdir(parents=True, exist_ok=True)
            name = f"{content_name}+{style_name}_{extractor.precision}_{scales}.png"
            save_image(events[-1].image, args.out / name)  # look at them, not only at S and C
            mark = " (default)" if scales == default else ""
            print(
                f"{pair:28}{scales:>7}{events[-1].step:>7}{s:>8.3f}{c:>8.3f}  "
                f"{per_scale} in {took:.1f} s{mark}",
                flush=True,
            )


if __name__ == "__main__":
    main()

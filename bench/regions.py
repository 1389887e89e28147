"""Regions: each region's style distance to its own style, against whole-picture runs.

    python -m bench.regions [--content chicago] [--sky wave] [--ground udnie] [--steps 40]
        [--size 512] [--precision auto] [--mappings blur,inside]

Chicago's sky gets one style, the city another, and the lake shore at the bottom keeps the
photo. Masks: the sky from the photo's blue, bright pixels (soft, blurred), the shore the
bottom rows (a soft ramp), the city the rest. Each mask mapping (``core.regions``:
``blur``, ``inside``) is one regions run; the baselines are single-style whole-picture runs of
each style at the same settings and steps, in the same process.

Scores (the benchmark's fixed fp32 VGG19, ``bench.baselines.Scorer``'s layers): a region's
style distance is S measured on its masked area only (each layer's Gram weighted by the mask
at that layer, as the guided Gram is); the baseline is the same masked S of the whole-picture
run with that style. The kept region's C is the content distance on its masked area
(block4_conv2), and the mean pixel change there (0..255). Peak resident memory of this
process is sampled from /proc during each run. Pictures go to ``--out``.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np

from stransfer import TransferSettings, load_extractor, transfer
from stransfer.core.regions import Region, feather, resize_mask
from stransfer.io.images import fit_long_side, load_image, resize_to, save_image
from stransfer.weights import resolve_weights

from . import cpu, forget_targets
from .baselines import CONTENT_LAYER, STYLE_LAYERS, Scorer

ROOT = Path(__file__).resolve().parents[1]
# ../shared/images beside the checkout (one level up again from a worktree in a folder).
SHARED = next(
    (p / "shared" / "images" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").is_dir()),
    ROOT.parent / "shared" / "images",
)


def masks_for(content: np.ndarray) -> dict[str, np.ndarray]:
    """Sky, city and shore masks of a skyline photo (soft borders, summing to 1)."""
    height, width = content.shape[:2]
    rgb = content.astype(np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None] / height
    # Sky pixels: blue, or bright and grey (clouds); the sky is what of them a column has
    # from the top down to its first other pixel (the skyline).
    skyish = ((rgb[..., 2] > rgb[..., 0] + 12) & (rgb[..., 2] > 120)) | (rgb.min(axis=2) > 170)
    skyish &= rows < 0.85
    first_other = np.argmin(skyish, axis=0)  # per column: the first row that is not sky
    first_other[skyish.all(axis=0)] = height
    hard = (np.arange(height)[:, None] < first_other[None, :]).astype(np.float32)
    sky = np.clip(feather(hard, 0.004 * width), 0, 1)
    shore = np.clip((rows - 0.88) / 0.03, 0, 1) * np.ones((1, width), np.float32)
    sky = sky * (1 - shore)
    city = np.clip(1 - sky - shore, 0, 1)
    return {"sky": sky, "city": city, "shore": shore}


def masked_gram(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    flat = features.reshape(-1, features.shape[-1])
    weights = resize_mask(mask, features.shape[:2]).reshape(-1).astype(np.float64)
    return (flat * weights[:, None]).T @ flat / max(weights.sum(), 1e-8)


class MaskedScorer(Scorer):
    """``Scorer``'s S and C measured on a masked area."""

    def style_distance(self, image: np.ndarray, style: np.ndarray, mask: np.ndarray) -> float:
        style_feats = self._feats(fit_long_side(style, self.size).astype(np.float32))
        feats = self._feats(fit_long_side(image, self.size).astype(np.float32))
        distances = []
        for f, s in zip(feats[: len(STYLE_LAYERS)], style_feats[: len(STYLE_LAYERS)], strict=True):
            target = self._gram(s)
            distances.append(np.sum((masked_gram(f, mask) - target) ** 2) / np.sum(target**2))
        return float(np.mean(distances))

    def content_distance(self, image: np.ndarray, content: np.ndarray, mask: np.ndarray) -> float:
        shape = fit_long_side(content, self.size).shape[:2]
        out = self._feats(resize_to(image, *shape).astype(np.float32))[-1]
        ref = self._feats(resize_to(content, *shape).astype(np.float32))[-1]
        weights = resize_mask(mask, out.shape[:2])[..., None]
        return float(np.sum(weights * (out - ref) ** 2) / np.sum(weights * ref**2))


class PeakRSS:
    """Peak resident memory of this process, sampled from /proc every 50 ms."""

    def __enter__(self) -> PeakRSS:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            with open("/proc/self/statm") as statm:
                self.peak = max(self.peak, int(statm.read().split()[1]) * 4096)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(content, styles, settings, extractor, regions=(), mapping="blur"):
    forget_targets()
    with PeakRSS() as rss:
        started = time.perf_counter()
        events = list(
            transfer(content, styles, settings, extractor, regions=regions, mask_mapping=mapping)
        )
        seconds = time.perf_counter() - started
    return events[-1].image, seconds, rss.peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.regions")
    parser.add_argument("--content", default="chicago")
    parser.add_argument("--sky", default="wave")
    parser.add_argument("--ground", default="udnie")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--mappings", default="blur,inside")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "regions")
    parser.add_argument(
        "--only",
        choices=("regions", "gradient"),
        help="only the sky/city/shore comparison, or only the soft-mask gradient",
    )
    args = parser.parse_args(argv)
    print(cpu())
    args.out.mkdir(parents=True, exist_ok=True)
    content = load_image(SHARED / "content" / f"{args.content}.jpg")
    sky_style = load_image(SHARED / "style" / f"{args.sky}.jpg")
    ground_style = load_image(SHARED / "style" / f"{args.ground}.jpg")
    masks = masks_for(content)
    for name, mask in masks.items():
        save_image((mask * 255).astype(np.uint8), args.out / f"mask_{name}.png")
    scorer = MaskedScorer(resolve_weights("VGG19", None, allow_download=False), args.size)
    extractor = load_extractor("VGG19", args.precision)
    settings = TransferSettings(size=args.size, steps=args.steps, precision=args.precision)
    styles = [(sky_style, 1.0), (ground_style, 1.0)]
    regions = [
        Region(masks["sky"], (1.0, 0.0), "sky"),
        Region(masks["city"], (0.0, 1.0), "city"),
        Region(masks["shore"], (), "shore"),
    ]
    print(
        f"\n{args.content}: sky {args.sky}, city {args.ground}, shore kept; {args.steps} steps "
        f"at {args.size} px, init {settings.init}, {extractor.precision}; lower is better"
    )
    if args.only != "regions":
        gradient(content, sky_style, ground_style, settings, extractor, scorer, args.out)
    if args.only == "gradient":
        return
    results = {}
    for label, pairs, kw in [
        (f"whole picture {args.sky}", [(sky_style, 1.0)], {}),
        (f"whole picture {args.ground}", [(ground_style, 1.0)], {}),
        *[
            (f"regions ({mapping})", styles, {"regions": regions, "mapping": mapping})
            for mapping in args.mappings.split(",")
        ],
    ]:
        image, seconds, peak = run(content, pairs, settings, extractor, **kw)
        results[label] = image
        save_image(
            image, args.out / f"{label.replace(' ', '_').replace('(', '').replace(')', '')}.png"
        )
        sky_s = scorer.style_distance(image, sky_style, masks["sky"])
        city_s = scorer.style_distance(image, ground_style, masks["city"])
        shore_c = scorer.content_distance(image, content, masks["shore"])
        photo = resize_to(content, *image.shape[:2]).astype(float)
        shore = resize_mask(masks["shore"], image.shape[:2])[..., None]
        change = float(np.sum(shore * np.abs(image - photo)) / np.sum(shore) / 3)
        # A whole-picture run's S over the whole picture, against its own style.
        everywhere = np.ones(image.shape[:2], np.float32)
        whole = scorer.style_distance(image, pairs[0][0], everywhere) if len(pairs) == 1 else None
        results[label + ":scores"] = (sky_s, city_s, shore_c, change, seconds, peak, whole)
    sky_run = results[f"whole picture {args.sky}:scores"]
    city_run = results[f"whole picture {args.ground}:scores"]
    print(
        f"{'run':26}{'S sky':>8}{'S city':>8}{'S all':>8}{'C shore':>9}{'shore px':>9}"
        f"{'s':>7}{'peak GiB':>9}"
    )
    for label in results:
        if not label.endswith(":scores"):
            continue
        sky_s, city_s, shore_c, change, seconds, peak, whole = results[label]
        print(
            f"{label[:-7]:26}{sky_s:8.4f}{city_s:8.4f}{'-' if whole is None else f'{whole:.4f}':>8}"
            f"{shore_c:9.4f}{change:9.2f}"
            f"{seconds:7.1f}{peak / 2**30:9.2f}"
        )
    print(
        "\nregion S against the whole-picture run of that style (target <= 1.2x), on the same "
        "masked area / on its whole picture; shore C (target <= 0.1):"
    )
    for mapping in args.mappings.split(","):
        sky_s, city_s, shore_c, *_ = results[f"regions ({mapping}):scores"]
        print(
            f"  {mapping:8} sky {sky_s / sky_run[0]:.2f}x / {sky_s / sky_run[6]:.2f}x  "
            f"city {city_s / city_run[1]:.2f}x / {city_s / city_run[6]:.2f}x  "
            f"shore C {shore_c:.4f}"
        )
    print(f"layers: S over {', '.join(STYLE_LAYERS)}; C at {CONTENT_LAYER}; pictures in {args.out}")


def gradient(content, left_style, right_style, settings, extractor, scorer, out: Path) -> None:
    """A soft mask: the left style fades into the right one over the middle 60 % of the width
    (the default mask mapping). S of five vertical bands against each style shows the blend."""
    height, width = content.shape[:2]
    ramp = np.clip((np.arange(width, dtype=np.float32) / width - 0.2) / 0.6, 0, 1)
    right = np.repeat(ramp[None], height, axis=0)
    regions = [Region(1 - right, (1.0, 0.0), "left"), Region(right, (0.0, 1.0), "right")]
    pairs = [(left_style, 1.0), (right_style, 1.0)]
    image, seconds, _ = run(content, pairs, settings, extractor, regions=regions)
    save_image(image, out / "gradient.png")
    print(f"\nsoft mask: left style fades into the right one over x = 20..80 % ({seconds:.0f} s)")
    print(f"{'band (x %)':12}{'S left style':>14}{'S right style':>15}")
    for band in range(5):
        mask = np.zeros((height, width), np.float32)
        mask[:, band * width // 5 : (band + 1) * width // 5] = 1.0
        s_left = scorer.style_distance(image, left_style, mask)
        s_right = scorer.style_distance(image, right_style, mask)
        print(f"{band * 20:3d}-{band * 20 + 20:<8d}{s_left:14.4f}{s_right:15.4f}")


if __name__ == "__main__":
    main()

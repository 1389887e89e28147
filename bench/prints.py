"""Prints: wall time and peak memory at 2048, 4096 and 8192 px, both engines, beside today's
untiled run, in one run (issue 19).

    python -m bench.prints [table [ENGINE] [SIZE ...]]  # instant results and optimiser steps
    python -m bench.prints print           # the 4096x3072 optimised print, Run to file (long)
    python -m bench.prints quality DIR N   # seams, S and C of DIR's print (N top-scale steps)
    python -m bench.prints instant-seams 4096  # the instant engine's seams, tiled vs untiled

Every figure is one ``python -m stransfer`` process, timed from start to exit, with the peak
resident memory of its whole process tree sampled from /proc every 0.2 s. A run whose estimate
(``core.tiles``) is over :data:`NEVER_ABOVE` is not started: its estimate is printed instead.
Pictures and 100 % crops go to ``bench_results/prints/`` (not committed). The content is
stata.jpg cropped to 4:3 (so 4096 px is 4096x3072), the style wave.jpg, from /work/shared/images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import cpu

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("STRANSFER_BENCH_IMAGES", "/work/shared/images"))
OUT = ROOT / "bench_results" / "prints"
GIB = 2**30
#: The machine is shared: nothing that could need more than this is started.
NEVER_ABOVE = 14 * GIB
#: The print's memory budget (the issue's target).
PRINT_BUDGET = "4GB"


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def measure(command: list[str], log: Path | None = None) -> dict[str, object]:
    """Run ``command``; its wall time, exit status and the peak RSS of its process tree."""
    started = time.perf_counter()
    sink = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=sink)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    done.set()
    sampler.join()
    if log is not None:
        sink.close()  # type: ignore[union-attr]
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_gib": round(peak / GIB, 2),
        "rc": code,
    }


def _inputs() -> tuple[Path, Path]:
    """stata.jpg cropped to 4:3 (written to bench_results), and wave.jpg."""
    from stransfer.io.images import load_image, save_image

    OUT.mkdir(parents=True, exist_ok=True)
    content = OUT / "stata_4x3.png"
    if not content.exists():
        image = load_image(IMAGES / "content" / "stata.jpg")
        height, width = image.shape[:2]
        crop = height * 4 // 3
        left = (width - crop) // 2
        save_image(image[:, left : left + crop], content)
    return content, IMAGES / "style" / "wave.jpg"


def _cli(content: Path, style: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "stransfer", str(content), str(style), "-o", str(out), *options]


def _estimate(engine: str, size: int, tiled: bool) -> float:
    """Bytes the run is estimated to need (``core.tiles``' models), at 4:3."""
    shape = (size * 3 // 4, size)
    if engine == "instant":
        from stransfer.instant.tiled import HALO, MEMORY, needs_tiles

        if not tiled:
            return MEMORY.estimate(shape)
        tile = needs_tiles(shape, PRINT_BUDGET)
        return MEMORY.estimate(shape, None if tile is None else (tile + 2 * HALO) ** 2)
    from stransfer.engine.features import load_extractor
    from stransfer.engine.tiled import geometry, memory_model

    extractor = load_extractor("VGG19", "auto", "random")
    from stransfer.core.settings import TransferSettings

    settings = TransferSettings().validated()
    layers = [*settings.content_layers, *settings.style_layers]
    geo = geometry(extractor, layers)
    assert geo is not None
    model = memory_model(extractor, geo, optimiser_pairs=0, content_channels=8.0)
    if not tiled:
        return model.estimate(shape)
    from stransfer.core.tiles import MemoryBudgetError, choose_tile, parse_memory

    try:
        tile = choose_tile(shape, model, parse_memory(PRINT_BUDGET), halo=geo.halo, align=geo.align)
    except MemoryBudgetError:
        return model.estimate(shape, (128 + 2 * geo.halo) ** 2)
    return model.estimate(shape, None if tile is None else (tile + 2 * geo.halo) ** 2)


def table(
    engines: tuple[str, ...] = ("instant", "optimise"), sizes: tuple[int, ...] = (2048, 4096, 8192)
) -> list[dict[str, object]]:
    """Instant results and one optimiser step (init content, one scale) at each size, tiled
    under the 4 GB budget beside untiled (today's way: a budget it never needs to tile in)."""
    content, style = _inputs()
    rows = []
    for engine in engines:
        for size in sizes:
            for tiled in (False, True):
                options = ["--size", str(size), "--max-memory", PRINT_BUDGET if tiled else "200GB"]
                if engine == "instant":
                    options.append("--instant")
                else:
                    options += ["--steps", "1", "--init", "content", "--scales", "1"]
                estimate = _estimate(engine, size, tiled)
                row: dict[str, object] = {
                    "engine": engine,
                    "size": size,
                    "tiled": tiled,
                    "estimate_gib": round(estimate / GIB, 1),
                }
                if estimate > NEVER_ABOVE:
                    row["skipped"] = "estimate above 14 GiB (shared machine)"
                else:
                    out = OUT / f"{engine}_{size}_{'tiled' if tiled else 'whole'}.png"
                    row.update(
                        measure(_cli(content, style, out, *options), out.with_suffix(".log"))
                    )
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def print_run(size: int = 4096, steps: int = 60) -> dict[str, object]:
    """The optimised print, Run to file, under the 4 GB budget, and the default 512 px run."""
    content, style = _inputs()
    result = {}
    for name, options in (
        (
            f"print_{size}",
            ["--size", str(size), "--steps", str(steps), "--max-memory", PRINT_BUDGET],
        ),
        ("default_512", []),
    ):
        out = OUT / f"{name}.png"
        result[name] = measure(_cli(content, style, out, *options), out.with_suffix(".log"))
        print(json.dumps({name: result[name]}), flush=True)
    return result


def seam_score(image: np.ndarray, period: int, offset: int = 0) -> float:
    """Gradient energy on the tile borders (the pixel columns and rows at multiples of
    ``period`` from ``offset``, and their neighbours) over the energy elsewhere: 1.0 when the
    borders are like any other place, above 1 where a seam shows."""
    grey = image.astype(np.float32).mean(axis=2)
    dx = np.square(np.diff(grey, axis=1))
    dy = np.square(np.diff(grey, axis=0))
    cols = np.zeros(dx.shape[1], bool)
    rows = np.zeros(dy.shape[0], bool)
    for border in range(offset % period or period, dx.shape[1], period):
        cols[border - 1 : border + 1] = True
    for border in range(offset % period or period, dy.shape[0], period):
        rows[border - 1 : border + 1] = True
    on = np.concatenate([dx[:, cols].ravel(), dy[rows].ravel()])
    off = np.concatenate([dx[:, ~cols].ravel(), dy[~rows].ravel()])
    return float(on.mean() / max(off.mean(), 1e-12))


def crops(image: np.ndarray, name: str, period: int, side: int = 384) -> list[Path]:
    """100 % crops across a tile corner and at the centre, saved for looking at."""
    from stransfer.io.images import save_image

    height, width = image.shape[:2]
    corner = (
        min(height - side, max(0, period - side // 2)),
        min(width - side, max(0, period - side // 2)),
    )
    centre = ((height - side) // 2, (width - side) // 2)
    paths = []
    for label, (y, x) in (("corner", corner), ("centre", centre)):
        path = OUT / f"crop_{name}_{label}.png"
        save_image(image[y : y + side, x : x + side], path)
        paths.append(path)
    return paths


def quality(
    print_png: Path, small_png: Path, top_steps: int, untiled_png: Path | None = None
) -> dict:
    """The print against the default 512 px result: S and C (``bench.baselines.Scorer``, fixed
    float32 VGG19) of the print shrunk to 512 px beside the 512 px result's; the seam score of
    the print at its top scale's tile borders (from its log) beside the same measure at the same
    borders of an untiled image of the same size (``untiled_png``, else the 512 px result
    enlarged); 100 % crops across a tile corner and at the centre."""
    from stransfer.io.images import load_image, resize_to
    from stransfer.weights import resolve_weights

    from .baselines import Scorer

    content, style = _inputs()
    big, small = load_image(print_png), load_image(small_png)
    scorer = Scorer(resolve_weights("VGG19", allow_download=False), 512)
    targets = scorer.targets(load_image(content), load_image(style))
    s_print, c_print = scorer.score(resize_to(big, *small.shape[:2]), targets)
    s_small, c_small = scorer.score(small, targets)
    period = _tile_period(big.shape[:2], top_steps)
    reference = load_image(untiled_png) if untiled_png else resize_to(small, *big.shape[:2])
    result = {
        "S_print_at_512": round(s_print, 4),
        "C_print_at_512": round(c_print, 4),
        "S_default_512": round(s_small, 4),
        "C_default_512": round(c_small, 4),
        "tile_period_px": period,
    }
    if period:
        result["seam_print"] = round(seam_score(big, period), 3)
        result["seam_untiled"] = round(seam_score(reference, period), 3)
        result["crops"] = [str(p) for p in crops(big, print_png.stem, period)]
    print(json.dumps(result), flush=True)
    return result


def _tile_period(shape: tuple[int, int], top_steps: int) -> int | None:
    """The interior side of the tiles the print's top scale ran in (the same choice the run
    made: the same budget, shape and optimiser state), None if untiled."""
    from stransfer.core.settings import TransferSettings
    from stransfer.core.tiles import parse_memory
    from stransfer.engine.features import load_extractor
    from stransfer.engine.tiled import TiledObjective, evaluator_for

    settings = TransferSettings().validated()
    extractor = load_extractor("VGG19", "auto", "random")  # the geometry, not the weights
    objective = extractor.objective(tuple(settings.content_layers), tuple(settings.style_layers))
    pairs = min(10, max(0, top_steps - 1))
    evaluator = evaluator_for(objective, shape, parse_memory(PRINT_BUDGET), optimiser_pairs=pairs)
    return evaluator.tile if isinstance(evaluator, TiledObjective) else None


def instant_seams(size: int = 4096) -> dict[str, object]:
    """The instant engine's seam score at ``size``: the tiled result (4 GB budget) at its tile
    borders beside the untiled result of the same size at the same borders, with crops; and
    how far the tiled result is from the untiled one (mean absolute difference, 0..255)."""
    from stransfer.instant.tiled import needs_tiles
    from stransfer.io.images import load_image

    tiled = load_image(OUT / f"instant_{size}_tiled.png")
    whole = load_image(OUT / f"instant_{size}_whole.png")
    period = needs_tiles(tiled.shape[:2], PRINT_BUDGET)
    result: dict[str, object] = {"size": size, "tile_period_px": period}
    if period:
        result["seam_tiled"] = round(seam_score(tiled, period), 3)
        result["seam_untiled"] = round(seam_score(whole, period), 3)
        result["mean_abs_difference"] = round(float(np.abs(tiled.astype(float) - whole).mean()), 2)
        result["crops"] = [str(p) for p in crops(tiled, f"instant_{size}_tiled", period)]
        crops(whole, f"instant_{size}_whole", period)
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str]) -> int:
    print(f"CPU: {cpu()}")
    print(f"load average at start: {os.getloadavg()}")
    what = argv[0] if argv else "table"
    if what == "table":
        engines = tuple(a for a in argv[1:] if not a.isdigit()) or ("instant", "optimise")
        sizes = tuple(int(a) for a in argv[1:] if a.isdigit()) or (2048, 4096, 8192)
        table(engines, sizes)
    elif what == "print":
        print_run(*(int(a) for a in argv[1:]))
    elif what == "instant-seams":
        instant_seams(*(int(a) for a in argv[1:]))
    elif what == "quality":
        folder = Path(argv[1]) if len(argv) > 1 else OUT
        quality(folder / "print_4096.png", folder / "default_512.png", int(argv[2]))
    else:
        print(__doc__)
        return 2
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

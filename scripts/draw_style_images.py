"""Draw the bundled style images procedurally (numpy + Pillow only, fixed seeds).

Each style is built to have texture at several scales (the Gram matrices of
style transfer feed on it): large colour regions, mid-sized marks and fine grain.

    python scripts/draw_style_images.py [--out data/style] [--only swirls]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 640  # output side in pixels
SS = 2  # supersampling factor for anti-aliased drawing

Colour = tuple[int, int, int]


# --------------------------------------------------------------------------- building blocks


def hex_colours(*codes: str) -> list[Colour]:
    return [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in codes]  # type: ignore[misc]


def value_noise(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field: a coarse random grid upsampled bicubically."""
    grid = rng.random((cells + 3, cells + 3)).astype(np.float32)
    big = Image.fromarray(grid, "F").resize((w + 2 * w // cells, h + 2 * h // cells), Image.BICUBIC)
    off_y, off_x = h // cells, w // cells  # crop the border, where bicubic flattens out
    return np.asarray(big)[off_y : off_y + h, off_x : off_x + w]


def fractal_noise(
    h: int, w: int, rng: np.random.Generator, base: int = 3, octaves: int = 5, gain: float = 0.5
) -> np.ndarray:
    """Sum of value-noise octaves, normalised to 0..1."""
    total = np.zeros((h, w), np.float32)
    amp = 1.0
    for octave in range(octaves):
        total += amp * value_noise(h, w, base * 2**octave, rng)
        amp *= gain
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def ramp(t: np.ndarray, colours: Sequence[Colour]) -> np.ndarray:
    """Map values in 0..1 through evenly spaced colour stops to float RGB."""
    stops = np.linspace(0.0, 1.0, len(colours))
    table = np.asarray(colours, np.float32)
    return np.stack([np.interp(t, stops, table[:, c]) for c in range(3)], axis=-1)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float array (HxW or HxWxC), done in the Fourier domain."""
    pad = int(3 * sigma) + 1
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (a.ndim - 2)
    padded = np.pad(a.astype(np.float32), widths, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    gain = np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    if a.ndim == 3:
        gain = gain[..., None]
    spectrum = np.fft.rfft2(padded, axes=(0, 1)) * gain
    out = np.fft.irfft2(spectrum, s=padded.shape[:2], axes=(0, 1))
    return out[pad:-pad, pad:-pad].astype(np.float32)


def paper(
    h: int, w: int, rng: np.random.Generator, tint: Colour, grain: float = 14.0
) -> np.ndarray:
    """Warm paper or canvas: soft blotches, fibres and fine grain."""
    blotch = fractal_noise(h, w, rng, base=4, octaves=4) - 0.5
    fibres = blur(rng.standard_normal((h, w)).astype(np.float32), 0.7)
    fibres = np.clip(fibres * 3, -1, 1)
    streak = blur(rng.standard_normal((h, w // 4)).astype(np.float32), 1.0)
    streak = np.asarray(Image.fromarray(streak, "F").resize((w, h), Image.BICUBIC))
    shade = blotch * grain * 1.4 + fibres * grain * 0.35 + streak * grain * 0.6
    return np.asarray(tint, np.float32) + shade[..., None]


def to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")


def jitter(colour: Sequence[float], rng: np.random.Generator, amount: float) -> Colour:
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in colour)  # type: ignore[return-value]


def flow_angle(h: int, w: int, rng: np.random.Generator, base: int = 2, turns: float = 2.0):
    """A smooth angle field: strokes that follow it curve gently, like a painter's hand."""
    return fractal_noise(h, w, rng, base=base, octaves=3) * (2 * math.pi * turns)


def trace(
    x: float, y: float, angle: np.ndarray, steps: int, step: float, sign: float = 1.0
) -> list[tuple[float, float]]:
    """Follow an angle field from (x, y) in canvas pixels; returns the polyline."""
    h, w = angle.shape
    points = [(x, y)]
    for _ in range(steps):
        a = angle[int(min(max(y, 0), h - 1)), int(min(max(x, 0), w - 1))]
        x += sign * math.cos(a) * step
        y += sign * math.sin(a) * step
        if not (-20 <= x <= w + 20 and -20 <= y <= h + 20):
            break
        points.append((x, y))
    return points


def downsample(img: Image.Image) -> Image.Image:
    return img.resize((img.width // SS, img.height // SS), Image.LANCZOS)


def stroke(
    draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour: Colour, width: int
) -> None:
    """A brush stroke: thick polyline with rounded ends that tapers off at the tail."""
    taper = max(1, len(points) // 3)
    body, tail = points[: len(points) - taper + 1], points[len(points) - taper :]
    if len(body) > 1:
        draw.line(body, fill=colour, width=width, joint="curve")
    r = width / 2
    x, y = points[0]
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    for i in range(len(tail) - 1):
        wi = max(2, int(width * (1 - (i + 1) / (len(tail) + 1))))
        draw.line(tail[i : i + 2], fill=colour, width=wi)


# --------------------------------------------------------------------------- styles


def brush_strokes(rng: np.random.Generator) -> Image.Image:
    """Impressionist landscape: thick bristled strokes along a flow field."""
    n = SIZE * SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    scene_noise = fractal_noise(n, n, rng, base=3, octaves=4)
    horizon = 0.42 + 0.06 * (value_noise(1, n, 5, rng)[0] - 0.5)
    sky_t = np.clip(yy / horizon + 0.3 * (scene_noise - 0.5), 0, 1)
    sky = ramp(sky_t, hex_colours("#27407f", "#4f7fc4", "#9fc0de", "#f4d27a", "#f19a52"))
    sun = np.exp(-(((xx - 0.7) ** 2 + (yy - 0.22) ** 2) / 0.006))[..., None]
    glow = np.exp(-(((xx - 0.7) ** 2 + (yy - 0.22) ** 2) / 0.03))[..., None]
    sky = sky * (1 - sun) + np.array([255, 236, 160]) * sun + glow * np.array([60, 40, 0])
    field_t = np.clip((yy - horizon) / (1 - horizon) + 0.55 * (scene_noise - 0.5), 0, 1)
    field = ramp(field_t, hex_colours("#e8b84e", "#a8b04a", "#5f9144", "#2f6b3c", "#1c3a2c"))
    # A winding ochre path and dark tree masses give the picture large-scale shapes.
    path_x = 0.35 + 0.5 * (yy - horizon) + 0.06 * np.sin(yy * 14)
    path = np.clip(1 - np.abs(xx - path_x) / (0.02 + 0.12 * (yy - horizon)), 0, 1) * (yy > horizon)
    field = field * (1 - path[..., None]) + np.array([214, 160, 92]) * path[..., None]
    near_horizon = np.clip(1 - np.abs(yy - horizon + 0.04) / 0.11, 0, 1)
    trees = fractal_noise(n, n, rng, base=7, octaves=3) + 0.45 * near_horizon > 0.95
    trees |= (np.abs(xx - 0.16) < 0.035 * (1 - (horizon - yy) / 0.4)) & (yy < horizon + 0.05)
    trees &= yy > horizon - 0.4
    scene = np.where((yy < horizon)[..., None], sky, field)
    scene = np.where(
        trees[..., None], np.array([30, 62, 44]) * (0.7 + 0.6 * scene_noise[..., None]), scene
    )
    angle = flow_angle(n, n, rng, base=2, turns=0.5) - 0.4
    angle = np.where(trees, -math.pi / 2 + 0.3 * (scene_noise - 0.5), angle)  # trees: upright
    angle = np.where(yy > horizon, angle * 0.5 + 0.15, angle)  # fields lie flatter

    canvas = to_image(blur(scene, 10))
    draw = ImageDraw.Draw(canvas)
    for count, width, length in [(1100, 36, 8), (2600, 24, 7), (3800, 13, 6)]:
        for _ in range(count):
            x, y = rng.uniform(0, n), rng.uniform(0, n)
            base = scene[int(y), int(x)]
            points = trace(x, y, angle, steps=length, step=width * 0.6, sign=rng.choice((-1, 1)))
            if len(points) < 3:
                continue
            colour = jitter(base * rng.uniform(0.82, 1.15), rng, 9)
            stroke(draw, points, colour, width)
            # Bristle marks: thin lighter and darker threads inside the stroke.
            a = angle[int(y), int(x)] + math.pi / 2
            for _ in range(3):
                off = rng.uniform(-0.35, 0.35) * width
                dx, dy = math.cos(a) * off, math.sin(a) * off
                thread = jitter(np.asarray(colour) * rng.choice((0.8, 1.2)), rng, 6)
                draw.line(
                    [(px + dx, py + dy) for px, py in points[:-1]],
                    fill=thread,
                    width=max(2, width // 8),
                )
    return downsample(canvas)


def voronoi(h: int, w: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest point index, distance to it, and distance to the nearest cell edge per pixel."""
    label = np.empty((h, w), np.int32)
    d_near = np.empty((h, w), np.float32)
    d_edge = np.empty((h, w), np.float32)
    xs = np.arange(w, dtype=np.float32)
    for y0 in range(0, h, 32):
        ys = np.arange(y0, min(y0 + 32, h), dtype=np.float32)
        dsq = (xs[None, :, None] - points[None, None, :, 0]) ** 2
        dsq = dsq + (ys[:, None, None] - points[None, None, :, 1]) ** 2
        two = np.argpartition(dsq, 1, axis=-1)[..., :2]
        d2 = np.take_along_axis(dsq, two, axis=-1)
        order = np.argsort(d2, axis=-1)
        first = np.take_along_axis(two, order[..., :1], -1)[..., 0]
        second = np.take_along_axis(two, order[..., 1:], -1)[..., 0]
        d1sq, d2sq = np.sort(d2, axis=-1).transpose(2, 0, 1)
        gap = np.linalg.norm(points[first] - points[second], axis=-1)
        label[y0 : y0 + len(ys)] = first
        d_near[y0 : y0 + len(ys)] = np.sqrt(d1sq)
        # Exact distance to the bisector between the two nearest sites.
        d_edge[y0 : y0 + len(ys)] = (d2sq - d1sq) / (2 * np.maximum(gap, 1e-3))
    return label, d_near, d_edge


def stained_glass(rng: np.random.Generator) -> Image.Image:
    """Rose window: jewel-toned Voronoi panes with glowing centres and dark lead came."""
    n = SIZE * SS
    c = n / 2
    sites = [(c, c)]
    rings = [(0.07, 6), (0.15, 12), (0.24, 18), (0.33, 24), (0.43, 30), (0.55, 36), (0.68, 40)]
    for ring, (radius, count) in enumerate(rings):
        phase = (ring % 2) * math.pi / count
        for k in range(count):
            a = phase + 2 * math.pi * k / count + rng.normal(0, 0.04)
            r = radius * n * (1 + rng.normal(0, 0.03))
            sites.append((c + r * math.cos(a), c + r * math.sin(a)))
    sites += [tuple(p) for p in rng.uniform(0, n, (60, 2))]
    points = np.asarray(sites, np.float32)
    label, d_near, d_edge = voronoi(n, n, points)

    jewels = hex_colours(
        "#9b111e",
        "#c2272d",
        "#1f3fa6",
        "#2c6fd1",
        "#0f7a4a",
        "#2f9e5b",
        "#e0a526",
        "#f2c53d",
        "#6a2c8f",
        "#d8632a",
        "#138a9c",
    )
    radius_of = np.hypot(points[:, 0] - c, points[:, 1] - c) / n
    angle_of = np.arctan2(points[:, 1] - c, points[:, 0] - c)
    # Colour follows the rings and alternates by sector, so the window looks designed.
    ring_idx = np.digitize(radius_of, [r for r, _ in rings]) * 3
    sector = (np.floor((angle_of + math.pi) / (2 * math.pi) * 12).astype(int) % 2) * 5
    pick = (ring_idx + sector + rng.integers(0, 2, len(points)) * 4) % len(jewels)
    colours = np.asarray(jewels, np.float32)[pick]

    cell_size = np.sqrt(n * n / len(points))
    glow = 1.15 - 0.55 * np.clip(d_near / (0.8 * cell_size), 0, 1)
    ripple = fractal_noise(n, n, rng, base=24, octaves=3)
    streaks = value_noise(n // 8, n, 40, rng)
    streaks = np.asarray(Image.fromarray(streaks, "F").resize((n, n), Image.BICUBIC))
    light = glow * (0.8 + 0.45 * ripple) * (0.9 + 0.2 * streaks)
    glass = colours[label] * light[..., None]
    glass += 40 * (ripple[..., None] > 0.82)  # bright flecks in the glass

    lead_w = 6.0 * SS
    lead = np.clip((lead_w - d_edge) / 2.0, 0, 1)[..., None]
    came = np.array([28, 24, 22], np.float32) + 30 * np.clip(1 - d_edge / lead_w, 0, 1)[..., None]
    out = glass * (1 - lead) + came * lead
    # Dark outer vignette as if the window sat in stone.
    r = np.hypot(*(np.mgrid[0:n, 0:n] - c)) / n
    out *= np.clip(1.25 - 0.6 * r, 0.55, 1.0)[..., None]
    return downsample(to_image(out))


def ink_wash(rng: np.random.Generator) -> Image.Image:
    """Sumi-e landscape: layered misty mountains, wet washes, bamboo and a red seal."""
    n = SIZE * SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    density = np.zeros((n, n), np.float32)
    # Mountains: back to front, each darker, fading into mist below the ridge.
    for layer, (base, height, strength) in enumerate(
        [(0.38, 0.22, 0.28), (0.52, 0.2, 0.45), (0.68, 0.16, 0.65), (0.85, 0.1, 0.85)]
    ):
        profile = fractal_noise(1, n, rng, base=2 + layer, octaves=5, gain=0.45)[0]
        for _ in range(2):  # a couple of steep peaks per range
            px = rng.uniform(0.1, 0.9)
            profile += 0.6 * np.exp(-np.abs(np.linspace(0, 1, n) - px) / rng.uniform(0.04, 0.1))
        ridge = base - height * (0.1 + 0.9 * (profile / profile.max()) ** 1.4)
        ridge -= 0.012 * (value_noise(1, n, 60, rng)[0] - 0.5)  # small crags along every ridge
        below = yy - ridge[None, :]
        mist = np.exp(-np.clip(below, 0, None) / (0.05 + 0.03 * layer))
        dry = fractal_noise(n, n, rng, base=8, octaves=4)
        # Dry-brush streaks, slanting like the side of a brush dragged down the slope.
        streak = value_noise(n, n // 16, 30 + 10 * layer, rng)
        streak = np.asarray(Image.fromarray(streak, "F").resize((n, n), Image.BICUBIC))
        wash = (below > 0) * mist * (0.45 + 0.5 * dry) * (0.75 + 0.5 * streak)
        rim = np.exp(-np.abs(below) / 0.006) * (below > -0.002) * 0.5  # ink pools at the edge
        density = 1 - (1 - density) * (1 - strength * np.clip(wash + rim, 0, 1))
    # Soft grey wash blobs in the sky.
    for _ in range(5):
        bx, by, br = rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.12)
        blob = np.exp(-(((xx - bx) / 2.2) ** 2 + (yy - by) ** 2) / br**2)
        density = 1 - (1 - density) * (
            1 - 0.18 * blob * fractal_noise(n, n, rng, base=5, octaves=3)
        )

    # Calligraphic strokes: bamboo stalks and leaves, drawn as an ink mask.
    mask_img = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(mask_img)
    for stalk in range(3):
        x = n * (0.08 + 0.09 * stalk + rng.uniform(-0.02, 0.02))
        width = int(n * rng.uniform(0.014, 0.022))
        y = n * 1.02
        top = n * rng.uniform(0.05, 0.35)
        while y > top:
            seg = n * rng.uniform(0.08, 0.14)
            lean = rng.uniform(-0.015, 0.015) * n
            draw.line(
                [(x, y - 4), (x + lean, y - seg + 6)], fill=int(rng.uniform(180, 240)), width=width
            )
            x += lean
            y -= seg
            draw.line(
                [(x - width * 0.7, y), (x + width * 0.7, y)], fill=255, width=max(3, width // 4)
            )
            if rng.random() < 0.6:  # a spray of leaves at the node
                for _ in range(rng.integers(2, 5)):
                    a = rng.uniform(-0.3, 1.2) * rng.choice((1, -1)) + (
                        0 if rng.random() < 0.5 else math.pi
                    )
                    length = n * rng.uniform(0.07, 0.13)
                    leaf_w = length * 0.13
                    bend = rng.uniform(-0.25, 0.25)
                    left, right = [], []
                    for t in np.linspace(0, 1, 12):
                        # Leaf: swells quickly, tapers slowly to a point, and curves a little.
                        cx = x + math.cos(a + bend * t) * length * t
                        cy = y + math.sin(a + bend * t) * length * t + length * 0.25 * t * t
                        half = leaf_w * math.sin(math.pi * t**0.6)
                        nx, ny = -math.sin(a + bend * t) * half, math.cos(a + bend * t) * half
                        left.append((cx + nx, cy + ny))
                        right.append((cx - nx, cy - ny))
                    draw.polygon(left + right[::-1], fill=int(rng.uniform(190, 255)))
    strokes = np.asarray(mask_img, np.float32) / 255
    strokes = blur(strokes, 1.2) * (0.75 + 0.35 * fractal_noise(n, n, rng, base=40, octaves=2))
    density = 1 - (1 - density) * (1 - np.clip(strokes, 0, 1))

    page = paper(n, n, rng, (236, 228, 208), grain=10)
    ink = np.array([22, 22, 30], np.float32)
    out = page * (1 - density[..., None]) + ink * density[..., None]
    # Red seal in the corner: a solid border round a block of carved-out squares.
    sx, sy, ss = int(n * 0.86), int(n * 0.08), int(n * 0.07)
    carved = np.kron(rng.random((6, 6)) < 0.4, np.ones((ss // 6 + 1, ss // 6 + 1), bool))
    carved = carved[:ss, :ss]
    carved[:6] = carved[-6:] = carved[:, :6] = carved[:, -6:] = False
    seal = np.zeros((n, n), bool)
    seal[sy : sy + ss, sx : sx + ss] = ~carved
    out[seal] = out[seal] * 0.25 + np.array([178, 34, 34]) * 0.75
    return downsample(to_image(out))


def swirls(rng: np.random.Generator) -> Image.Image:
    """Starry-night sky: curling streamlines of blue and yellow dashes around glowing stars."""
    n = SIZE * SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    vx = np.zeros((n, n), np.float32)
    vy = np.zeros((n, n), np.float32)
    vortices = [(0.42, 0.36, 0.16, 1.0), (0.22, 0.22, 0.09, -1.0), (0.72, 0.5, 0.11, 1.0)]
    for cx, cy, r, spin in vortices:
        dx, dy = xx - cx, yy - cy
        d2 = dx * dx + dy * dy
        strength = spin * np.exp(-d2 / (2 * r * r)) / np.sqrt(d2 + 1e-4) * r
        vx += -dy * strength * 6
        vy += dx * strength * 6
    vx += 0.9  # the sky drifts to the right, like wind
    wobble = fractal_noise(n, n, rng, base=3, octaves=3)
    angle = np.arctan2(vy, vx) + (wobble - 0.5) * 1.2
    hills = yy > 0.72 + 0.08 * np.sin(xx * 5 + 1) + 0.04 * (value_noise(1, n, 6, rng)[0] - 0.5)
    angle = np.where(hills, 0.25 * np.sin(xx * 9) + (wobble - 0.5) * 0.8, angle)

    stars = [
        (0.82, 0.14, 0.07),
        (0.1, 0.45, 0.035),
        (0.58, 0.12, 0.03),
        (0.9, 0.38, 0.04),
        (0.32, 0.08, 0.03),
        (0.63, 0.32, 0.025),
    ]
    halo = np.zeros((n, n), np.float32)
    for sx, sy, sr in stars:
        halo = np.maximum(halo, np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * (sr * 1.6) ** 2)))
    swirl_light = fractal_noise(n, n, rng, base=4, octaves=3)
    t = np.clip(0.15 + 0.55 * swirl_light + 0.2 * (1 - yy), 0, 1)
    sky = ramp(t, hex_colours("#0d1a4a", "#1c3680", "#2f5bb0", "#5d8fd0", "#a9c8e8"))
    sky = (
        sky * (1 - halo[..., None])
        + ramp(halo, hex_colours("#8fb4e3", "#f3e27a", "#fff6c8")) * halo[..., None]
    )
    land_t = np.clip(wobble + (yy - 0.75), 0, 1)
    land = ramp(land_t, hex_colours("#35508a", "#2c5a4a", "#1e3b3a", "#0e1a24"))
    scene = np.where(hills[..., None], land, sky)

    canvas = to_image(blur(scene, 6))
    draw = ImageDraw.Draw(canvas)
    for count, width, length in [(2600, 22, 9), (5200, 14, 8), (5200, 8, 7)]:
        for _ in range(count):
            x, y = rng.uniform(0, n), rng.uniform(0, n)
            points = trace(x, y, angle, steps=length, step=width * 0.7)
            if len(points) < 3:
                continue
            colour = jitter(scene[int(y), int(x)] * rng.uniform(0.85, 1.25), rng, 10)
            stroke(draw, points, colour, width)
    # Concentric rings of dashes around each star; a dark flame-shaped cypress in front.
    for sx, sy, sr in stars:
        for ring in range(1, 6):
            r = sr * n * ring / 3.2
            steps = int(2 * math.pi * r / 18)
            for k in range(steps):
                a0 = 2 * math.pi * k / steps + rng.normal(0, 0.05)
                a1 = a0 + 2 * math.pi / steps * 0.8
                colour = jitter((255, 236, 140) if ring < 3 else (240, 210, 90), rng, 15)
                box = (sx * n - r, sy * n - r, sx * n + r, sy * n + r)
                draw.arc(
                    box,
                    math.degrees(a0),
                    math.degrees(a1),
                    fill=colour,
                    width=max(4, int(14 - 2 * ring)),
                )
        core = sr * n * 0.35
        draw.ellipse(
            (sx * n - core, sy * n - core, sx * n + core, sy * n + core), fill=(255, 250, 215)
        )
    # The cypress: upward flame-like strokes that lean and curl.
    for _ in range(700):
        v = rng.uniform(0, 1)
        y = n * (0.2 + 0.8 * v)
        half = n * 0.07 * math.sin(math.pi * min(1.0, 0.15 + v)) ** 0.7
        x = n * 0.16 + rng.uniform(-half, half) + 0.015 * n * math.sin(v * 18)
        lean, length = rng.normal(0, 0.35), rng.uniform(40, 90)
        pts = [(x + math.sin(lean * t) * length * t, y - length * t) for t in np.linspace(0, 1, 5)]
        stroke(draw, pts, jitter((24, 52, 34) if rng.random() < 0.8 else (58, 88, 50), rng, 10), 16)
    return downsample(canvas)


PURE_HUES = hex_colours(
    "#e63b2e",
    "#f28c28",
    "#f7d038",
    "#9bc53d",
    "#3aa655",
    "#1f9e89",
    "#2f80c0",
    "#3a4fb5",
    "#7d3ab5",
    "#d6478f",
    "#ffffff",
    "#f4e3b5",
)


def pointillism(rng: np.random.Generator) -> Image.Image:
    """Seurat-like seaside: the scene is built only from dots of pure, broken colour."""
    n = SIZE * SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    cloud = fractal_noise(n, n, rng, base=3, octaves=4)
    sky = ramp(
        np.clip(yy / 0.5 + 0.3 * (cloud - 0.5), 0, 1),
        hex_colours("#4f86c6", "#8fc1e3", "#f6d9a8", "#f3a56b"),
    )
    sky += 60 * np.clip(cloud - 0.55, 0, 1)[..., None]
    sea_t = np.clip((yy - 0.5) / 0.2, 0, 1) + 0.1 * np.sin(yy * 180 + 4 * cloud)
    sea = ramp(np.clip(sea_t, 0, 1), hex_colours("#5fa8c9", "#2a7f9e", "#1c5d7a"))
    shore = 0.72 + 0.05 * np.sin(xx * 4 + 0.5) + 0.03 * (cloud - 0.5)
    sand = ramp(
        np.clip((yy - shore) / 0.28 + 0.3 * (cloud - 0.5), 0, 1),
        hex_colours("#f1cf8a", "#d9a25e", "#9c6b3a"),
    )
    scene = np.where((yy < 0.5)[..., None], sky, np.where((yy < shore)[..., None], sea, sand))
    sun = (xx - 0.28) ** 2 + (yy - 0.36) ** 2 < 0.004
    scene[sun] = (255, 200, 90)
    # The sun's reflection: broken horizontal bands of light on the water.
    glitter = (yy > 0.5) & (yy < shore) & (np.abs(xx - 0.28) < 0.02 + 0.2 * (yy - 0.5))
    glitter &= np.sin(yy * n / 9 + 6 * cloud) > 0.2
    scene[glitter] = scene[glitter] * 0.3 + np.array([255, 228, 150]) * 0.7
    for bx, by, bs in [(0.62, 0.6, 0.07), (0.8, 0.56, 0.05)]:  # sailboats
        sail = (yy < by) & (yy > by - bs * 1.6) & (xx > bx) & (xx < bx + (by - yy) * 0.5 + 0.005)
        sail = sail & (xx - bx < (yy - (by - bs * 1.6)) * 0.55)
        scene[sail] = (250, 245, 235)
        hull = (np.abs(yy - by - 0.008) < 0.008) & (np.abs(xx - bx - bs * 0.25) < bs * 0.6)
        scene[hull] = (150, 60, 40)
    tree_x = 0.88 + 0.02 * np.sin(yy * 9)
    trunk = (np.abs(xx - tree_x) < 0.012) & (yy > 0.25)
    crown = ((xx - 0.86) / 1.4) ** 2 + (yy - 0.22) ** 2 < 0.012 + 0.004 * cloud
    scene[crown] = ramp(cloud[crown], hex_colours("#1f5a2c", "#3c8a3e", "#86b84a"))
    scene[trunk] = (90, 60, 50)

    hues = np.asarray(PURE_HUES, np.float32)
    canvas = Image.fromarray(np.full((n, n, 3), (244, 234, 212), np.uint8))
    draw = ImageDraw.Draw(canvas)
    for radius, count in [(9, 16000), (7, 22000), (5, 26000)]:
        xs, ys = rng.uniform(0, n, count), rng.uniform(0, n, count)
        for x, y in zip(xs, ys, strict=True):
            base = scene[int(y), int(x)]
            # Optical mixing: each dot is the scene colour pulled toward a nearby pure hue,
            # with an occasional complementary accent.
            dist = np.abs(hues - base).sum(axis=1)
            near = hues[np.argsort(dist)[rng.integers(0, 3)]]
            if rng.random() < 0.08:
                near = 255 - near * 0.7
            colour = jitter(base * 0.45 + near * 0.55, rng, 12)
            r = radius * rng.uniform(0.8, 1.2)
            draw.ellipse((x - r, y - r * 0.9, x + r, y + r * 0.9), fill=colour)
    return downsample(canvas)


def polygon_cells(n: int, lines: np.ndarray, circles: np.ndarray) -> np.ndarray:
    """Label each pixel by which side of every line and circle it lies on (an arrangement)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    key = np.zeros((n, n), np.int64)
    for i, (a, b, c) in enumerate(lines):
        key |= ((a * xx + b * yy + c) > 0).astype(np.int64) << i
    for j, (cx, cy, r) in enumerate(circles):
        key |= (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r).astype(np.int64) << (len(lines) + j)
    return np.unique(key, return_inverse=True)[1].reshape(n, n)


def cubist_shards(rng: np.random.Generator) -> Image.Image:
    """Analytic-cubist still life: faceted planes in ochre, umber and slate with broken outlines."""
    n = SIZE * SS
    centre = np.array([n * 0.5, n * 0.5])
    lines = []
    for _ in range(15):
        # Lines pass near the centre, so facets are small there and large at the edges.
        a = rng.uniform(0, math.pi)
        px, py = centre + rng.normal(0, n * 0.2, 2)
        lines.append((math.sin(a), -math.cos(a), -(math.sin(a) * px - math.cos(a) * py)))
    lines = np.asarray(lines, np.float32)
    circles = np.asarray(
        [
            (n * 0.42, n * 0.55, n * 0.16),
            (n * 0.63, n * 0.36, n * 0.1),
            (n * 0.5, n * 0.78, n * 0.22),
        ],
        np.float32,
    )
    label = polygon_cells(n, lines, circles)
    count = int(label.max()) + 1

    palette = np.asarray(
        hex_colours(
            "#c49a5a",
            "#7a5230",
            "#6d7f8c",
            "#8c8a5a",
            "#e3d3b0",
            "#3a3530",
            "#a8573a",
            "#4f6272",
            "#d9b779",
            "#2e3b44",
        ),
        np.float32,
    )
    colours = palette[rng.integers(0, len(palette), count)]
    direction = rng.uniform(0, 2 * math.pi, count)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    proj = np.cos(direction)[label] * xx + np.sin(direction)[label] * yy
    # Normalise the gradient within each facet so each one goes light-to-dark across itself.
    lo = np.full(count, np.inf, np.float32)
    hi = np.full(count, -np.inf, np.float32)
    np.minimum.at(lo, label.ravel(), proj.ravel())
    np.maximum.at(hi, label.ravel(), proj.ravel())
    t = (proj - lo[label]) / np.maximum(hi[label] - lo[label], 1e-6)
    shade = 0.6 + 0.65 * t
    texture = fractal_noise(n, n, rng, base=10, octaves=5)
    # Scumbled paint: short directional streaks on top of the blotchy texture.
    scumble = value_noise(n // 6, n, 120, rng)
    scumble = np.asarray(Image.fromarray(scumble, "F").resize((n, n), Image.BICUBIC))
    scumble = np.asarray(Image.fromarray(scumble, "F").rotate(35, Image.BICUBIC))
    surface = 0.72 + 0.4 * texture + 0.22 * (scumble - 0.5)
    out = colours[label] * (shade * surface)[..., None]
    # Hatching in some facets.
    hatched = rng.random(count) < 0.3
    h_angle = rng.uniform(0, math.pi, count)[label]
    stripes = np.sin((xx * np.cos(h_angle) + yy * np.sin(h_angle)) * n / 5.5) > 0.55
    out[hatched[label] & stripes] *= 0.62
    canvas = to_image(out)

    draw = ImageDraw.Draw(canvas, "RGBA")
    for a, b, c in lines:
        # Parametrise the line and ink a few broken segments of it.
        p0 = np.array([-a * c, -b * c])
        d = np.array([-b, a])
        for _ in range(rng.integers(1, 4)):
            s0 = rng.uniform(-n, n)
            s1 = s0 + rng.uniform(0.15, 0.6) * n
            seg = [tuple(p0 + d * s0), tuple(p0 + d * s1)]
            draw.line(
                seg, fill=(30, 24, 20, int(rng.uniform(150, 235))), width=int(rng.uniform(3, 9))
            )
    for cx, cy, r in circles:
        start = rng.uniform(0, 360)
        draw.arc(
            (cx - r, cy - r, cx + r, cy + r),
            start,
            start + rng.uniform(120, 300),
            fill=(30, 24, 20, 220),
            width=int(rng.uniform(4, 9)),
        )
    return downsample(canvas)


def woodcut(rng: np.random.Generator) -> Image.Image:
    """Two-block woodcut print: carved lines whose width follows the tone, plus indigo and red."""
    n = SIZE * SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    warp = fractal_noise(n, n, rng, base=3, octaves=4) - 0.5
    # Scene: a sun, two mountains and a rolling sea, as a darkness (tone) map 0..1.
    peaks = [(0.3, 0.24, 0.3), (0.74, 0.32, 0.28)]  # x, summit height, half-width
    ridges = [0.56 - h * np.clip(1 - np.abs(xx - px) / w, 0, 1) ** 1.3 for px, h, w in peaks]
    ridge = np.minimum(*ridges) + 0.012 * warp
    front = ridges[0] <= ridges[1]
    sea_top = 0.64 + 0.015 * np.sin(xx * 20)
    sun_d = np.hypot(xx - 0.6, yy - 0.2)
    tone = np.clip(0.12 + 0.55 * yy + 0.2 * warp, 0, 1)  # sky darkens toward the horizon
    tone = np.where(sun_d < 0.09, 0.0, tone)
    mountain = (yy > ridge) & (yy < sea_top)
    # Lit from the upper right: the right flank of each peak is light, the left dark.
    peak_x = np.where(front, peaks[0][0], peaks[1][0])
    lit = np.tanh((xx - peak_x) / 0.03)
    mtn_tone = 0.55 - 0.3 * lit + 0.4 * (yy - ridge) + 0.25 * warp
    tone = np.where(mountain, np.clip(mtn_tone, 0.05, 1), tone)
    sea = yy >= sea_top
    tone = np.where(sea, np.clip(0.3 + 0.5 * (yy - 0.64) / 0.36 + 0.35 * warp, 0, 1), tone)

    # Carving direction: level in the sky, rings round the sun, slope lines on the mountains,
    # waves in the sea. Ink wherever the stripe is darker than the tone asks for.
    phase = (yy + 0.03 * warp) * n / 6.5
    phase = np.where(sun_d < 0.16, sun_d * n / 6.5, phase)
    slope = np.where(lit > 0, -1.0, 1.0)
    phase = np.where(mountain, (yy + 0.35 * slope * (xx - peak_x)) * n / 5.5 + warp * 6, phase)
    wave = 0.02 * np.sin(xx * 26 + 5 * warp) + 0.008 * np.sin(xx * 70 + yy * 30)
    phase = np.where(sea, (yy + wave) * n / 6.0, phase)
    stripe = 0.5 + 0.5 * np.sin(2 * math.pi * phase)
    ink = stripe < tone
    ray_angle = np.arctan2(yy - 0.2, xx - 0.6)
    rays = (sun_d > 0.115) & (sun_d < 0.2 + 0.08 * np.cos(ray_angle * 9) ** 2)
    rays &= np.cos(ray_angle * 18) > 0.9
    ink |= rays & ~mountain & ~sea
    ink |= (np.abs(yy - ridge) < 0.0035) | (np.abs(yy - sea_top) < 0.003)  # key outlines
    # Wood grain, running along the block: thin streaks where the ink did not take.
    grain = value_noise(n, n // 32, 160, rng)
    grain = np.asarray(Image.fromarray(grain, "F").resize((n, n), Image.BICUBIC))
    speck = rng.random((n, n)).astype(np.float32)
    ink &= (grain > 0.2) | (speck > 0.6)

    page = paper(n, n, rng, (236, 224, 196), grain=9)
    colour_block = np.zeros((n, n, 3), np.float32)
    colour_mask = np.zeros((n, n), np.float32)
    # Colour blocks, printed slightly off-register as real prints are.
    for region, colour, strength, shift in [
        (sea, (46, 70, 118), 0.8, (5, -4)),
        (sun_d < 0.1, (200, 62, 40), 0.92, (-4, 6)),
        (mountain & (lit > -0.2), (120, 134, 110), 0.45, (3, 3)),
        ((yy < ridge) & (sun_d > 0.1) & (warp > 0.12), (214, 170, 120), 0.5, (0, 0)),
    ]:
        moved = np.roll(region, shift, axis=(0, 1))
        colour_block[moved] = colour
        colour_mask[moved] = strength
    colour_mask *= 0.85 + 0.15 * grain
    out = page * (1 - colour_mask[..., None]) + colour_block * colour_mask[..., None]
    out[ink] = out[ink] * 0.12 + np.array([20, 16, 14]) * 0.88
    edge = np.minimum(np.minimum(xx, 1 - xx), np.minimum(yy, 1 - yy))
    out[(edge < 0.026) & (edge > 0.016)] = (20, 16, 14)  # printed frame
    out[edge <= 0.016] = page[edge <= 0.016]
    return downsample(to_image(out))


def drip_painting(rng: np.random.Generator) -> Image.Image:
    """Action painting: layers of poured, looping lines and splatter on raw canvas."""
    n = SIZE * SS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    weave = 6 * np.sin(xx * 1.3) * np.sin(yy * 1.3) + 4 * np.sin(xx * 0.7 + yy * 0.05)
    canvas = to_image(paper(n, n, rng, (214, 198, 170), grain=12) + weave[..., None])
    draw = ImageDraw.Draw(canvas, "RGBA")
    layers = [
        ((120, 110, 100), 10, 14, 0.5),  # grey ground lines
        ((178, 118, 48), 14, 12, 0.45),  # ochre
        ((48, 96, 104), 12, 10, 0.35),  # teal
        ((236, 232, 222), 14, 7, 0.3),  # white
        ((150, 52, 36), 8, 7, 0.3),  # rust
        ((18, 16, 16), 26, 6, 0.25),  # black, thin and energetic
    ]
    for colour, pours, max_width, splat in layers:
        for _ in range(pours):
            x, y = rng.uniform(0, n), rng.uniform(0, n)
            heading = rng.uniform(0, 2 * math.pi)
            turn = 0.0
            width = rng.uniform(2, max_width)
            points = [(x, y)]
            for _ in range(int(rng.uniform(150, 450))):
                turn = 0.9 * turn + rng.normal(0, 0.09)  # momentum: long arcs and sudden loops
                heading += turn
                step = rng.uniform(6, 14)
                x += math.cos(heading) * step
                y += math.sin(heading) * step
                if not (0 <= x < n and 0 <= y < n):
                    heading += math.pi * 0.8  # bounce back inside the canvas
                    x, y = min(max(x, 0), n - 1), min(max(y, 0), n - 1)
                points.append((x, y))
            # Width swells and thins along the pour, as paint flow changes.
            for i in range(0, len(points) - 1, 4):
                w = max(1, int(width * (0.4 + 0.9 * abs(math.sin(i * 0.05 + width)))))
                draw.line(
                    points[i : i + 5], fill=(*jitter(colour, rng, 6), 235), width=w, joint="curve"
                )
                if rng.random() < splat * 0.3:
                    px, py = points[i]
                    for _ in range(rng.integers(3, 14)):
                        r = abs(rng.normal(0, 3.5)) + 1
                        sx, sy = px + rng.normal(0, 25), py + rng.normal(0, 25)
                        draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=(*colour, 230))
                if rng.random() < splat * 0.05:  # a pooled blot
                    px, py = points[i]
                    r = rng.uniform(8, 22)
                    draw.ellipse((px - r, py - r * 0.8, px + r, py + r * 0.8), fill=(*colour, 240))
    return downsample(canvas)


STYLES: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "brush_strokes": brush_strokes,
    "stained_glass": stained_glass,
    "ink_wash": ink_wash,
    "swirls": swirls,
    "pointillism": pointillism,
    "cubist_shards": cubist_shards,
    "woodcut": woodcut,
    "drip_painting": drip_painting,
}
SEEDS = {name: 1000 + i for i, name in enumerate(STYLES)}


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=root / "data" / "style")
    parser.add_argument("--only", nargs="*", choices=sorted(STYLES), help="draw just these styles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or STYLES:
        image = STYLES[name](np.random.default_rng(SEEDS[name]))
        target = args.out / f"{name}.jpg"
        image.convert("RGB").save(target, "JPEG", quality=92, optimize=True)
        print(f"{target}  {image.width}x{image.height}  {target.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()

"""Animations of a run's evolution: a bounded frame recorder and a GIF/MP4 writer.

:class:`FrameRecorder` sits in the optimisation loop and keeps an evenly spaced, bounded subset
of the step images; :func:`write_animation` and :func:`encode_animation` turn them into a
looping GIF (or an MP4 when ``imageio-ffmpeg`` is installed) that fits a byte budget.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .images import ImageError, fit_long_side, resize_to, to_uint8, write_bytes_atomic

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: GIF delays are stored in centiseconds and most viewers treat anything under 20 ms as 100 ms.
MIN_GIF_DELAY_MS = 20
#: While shrinking to fit a byte budget: halve frames down to this count before downscaling...
_KEEP_FRAMES = 16
#: ...and downscale the long side down to this before dropping more frames.
_KEEP_SIDE = 96
_SHRINK = 0.7  # long-side factor per downscaling step (about half the pixels)
_MIN_SIDE = 16


def _as_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as uint8 HxWx3 (grey is replicated, alpha dropped, floats clipped)."""
    array = np.asarray(frame)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape[:2]:
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 frame, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise TypeError(f"cannot animate frames of dtype {array.dtype}; use uint8 or float")
        array = to_uint8(array)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def _shrunk(frame: np.ndarray, max_side: int) -> np.ndarray:
    """``frame`` as uint8 RGB with its long side at most ``max_side`` (never enlarged)."""
    frame = _as_frame(frame)
    return fit_long_side(frame, max_side) if max(frame.shape[:2]) > max_side else frame.copy()


class FrameRecorder:
    """Keep a bounded, evenly subsampled set of a run's frames.

    Every ``stride``-th frame is kept. When ``max_frames - 1`` are kept and another is due,
    every other kept frame is dropped and the stride doubles, so memory stays bounded however
    long the run is and the kept frames stay evenly spaced (a geometric thinning: each frame is
    resized once and never moved). The last frame added is held separately and always appended
    by :attr:`frames`, so an animation ends on the final result.

    Args:
        max_frames: most frames :attr:`frames` returns (at least 2: the first and the last).
        max_side: frames are downscaled so their long side is at most this many pixels.
    """

    def __init__(self, max_frames: int = 60, max_side: int = 384) -> None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
            raise ValueError(f"max_frames must be a whole number of 2 or more, not {max_frames!r}")
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
            raise ValueError(f"max_side must be a whole number of 1 or more, not {max_side!r}")
        self.max_frames = max_frames
        self.max_side = max_side
        self._kept: list[tuple[int, np.ndarray]] = []  # (index added, downscaled frame)
        self._stride = 1
        self._added = 0
        # The newest frame, full size until needed: most are superseded by the next step, so
        # downscaling each one eagerly would cost a resize per step for nothing.
        self._last: np.ndarray | None = None

    @property
    def added(self) -> int:
        """How many frames have been added so far."""
        return self._added

    def add(self, frame: np.ndarray) -> None:
        """Offer the next frame of the run (uint8 or float RGB, 0..255)."""
        index = self._added
        due = index % self._stride == 0
        if due and len(self._kept) >= self.max_frames - 1:
            self._kept = self._kept[::2]
            self._stride *= 2
            due = index % self._stride == 0
        if due:
            self._kept.append((index, _shrunk(frame, self.max_side)))
            self._last = None  # the kept copy serves as the last frame
        else:
            self._last = _as_frame(frame).copy()  # the caller may reuse its buffer
        self._added += 1

    @property
    def frames(self) -> list[np.ndarray]:
        """The kept frames in order, ending with the last frame added (at most ``max_frames``)."""
        out = [frame for _, frame in self._kept]
        if self._last is not None:
            self._last = _shrunk(self._last, self.max_side)  # idempotent once shrunk
            out.append(self._last)
        return out


def _common_size(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """All frames as uint8 RGB at the size of the last one (the final result matters most)."""
    if len(frames) == 0:
        raise ImageError("There are no frames to animate; run at least one step first.")
    prepared = [_as_frame(frame) for frame in frames]
    height, width = prepared[-1].shape[:2]
    return [f if f.shape[:2] == (height, width) else resize_to(f, height, width) for f in prepared]


def _thin(indices: list[int]) -> list[int]:
    """Every other index, always keeping the first and the last."""
    thinned = indices[::2]
    if thinned[-1] != indices[-1]:
        thinned.append(indices[-1])
    return thinned


# An encoder gets the frames (same size) and the effective frame rate, and returns the file.
_Encoder = Callable[[list[np.ndarray], float, float], bytes]


def _encode_gif(frames: list[np.ndarray], fps: float, hold_last: float) -> bytes:
    # Each frame gets its own adaptive palette: a run's colours change a lot from the first
    # step to the last, so one global palette would band either end. Fast octree, because
    # median cut costs ~100x more (seconds per animation) for no visible gain on textures.
    images = [
        Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE) for frame in frames
    ]
    delay = max(MIN_GIF_DELAY_MS, round(1000.0 / fps))
    durations = [delay] * len(images)
    durations[-1] = delay + round(1000.0 * hold_last)  # one long frame, not many repeats
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,  # forever
    )
    return buffer.getvalue()


def _encode_mp4(frames: list[np.ndarray], fps: float, hold_last: float) -> bytes:
    import imageio.v2 as imageio

    # yuv420p (the only format every player takes) needs even sides.
    height, width = (max(2, side - side % 2) for side in frames[0].shape[:2])
    frames = [resize_to(f, height, width) for f in frames]
    held = frames + [frames[-1]] * round(hold_last * fps)
    with tempfile.TemporaryDirectory(prefix="stransfer-") as folder:
        target = os.path.join(folder, "animation.mp4")
        writer = imageio.get_writer(
            target,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=2,
            ffmpeg_log_level="error",
        )
        try:
            for frame in held:
                writer.append_data(frame)
        finally:
            writer.close()
        return Path(target).read_bytes()


def _check_timing(fps: float, hold_last: float, max_bytes: int) -> None:
    if not (isinstance(fps, int | float) and math.isfinite(fps) and 0 < fps <= 100):
        raise ValueError(f"fps must be a number more than 0 and at most 100, not {fps!r}")
    if not (isinstance(hold_last, int | float) and math.isfinite(hold_last) and hold_last >= 0):
        raise ValueError(f"hold_last must be a number of seconds, 0 or more, not {hold_last!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a whole number of 1 or more, not {max_bytes!r}")


def _encode_within(
    frames: Sequence[np.ndarray],
    fps: float,
    hold_last: float,
    max_bytes: int,
    encoder: _Encoder,
) -> bytes:
    """Encode, and while the result is over ``max_bytes``, drop frames and/or downscale.

    Frames are halved first (down to ``_KEEP_FRAMES``; the evolution reads fine from fewer),
    then the size (down to ``_KEEP_SIDE``), then whatever is left. Each round applies as many
    reductions as the size overshoot suggests, so a big overshoot costs few re-encodes. The
    playing time stays the same: fewer frames play at a lower frame rate.
    """
    _check_timing(fps, hold_last, max_bytes)
    full = _common_size(frames)
    height, width = full[0].shape[:2]
    indices = list(range(len(full)))
    side = max(height, width)
    while True:
        scale = side / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        chosen = [
            full[i] if side == max(height, width) else resize_to(full[i], *size) for i in indices
        ]
        data = encoder(chosen, fps * len(indices) / len(full), hold_last)
        if len(data) <= max_bytes:
            return data
        # Bytes scale roughly with frames x pixels; aim a little under the budget.
        excess = len(data) / max_bytes * 1.1
        reduced = False
        while excess > 1.0:
            if len(indices) > _KEEP_FRAMES or (side <= _KEEP_SIDE and len(indices) > 2):
                thinned = _thin(indices)
                excess *= len(thinned) / len(indices)
                indices = thinned
            elif side > _MIN_SIDE:
                smaller = max(_MIN_SIDE, math.floor(side * _SHRINK))
                excess *= (smaller / side) ** 2
                side = smaller
            else:
                break  # nothing left to reduce: try what we have
            reduced = True
        if not reduced:
            raise ImageError(
                f"The animation does not fit in {max_bytes:,} bytes even at {len(indices)} "
                f"frame(s) of {side} px; allow more bytes."
            )


def write_animation(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float = 10.0,
    hold_last: float = 1.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Write ``frames`` as a looping GIF, or an MP4 if ``path`` ends in ``.mp4``.

    Frames are resized to the size of the last one, which is held for ``hold_last`` extra
    seconds. If the file would exceed ``max_bytes``, frames are dropped (keeping the first and
    last) and/or downscaled until it fits. The file is written atomically.

    Raises:
        ImageError: unsupported suffix; ``.mp4`` without ``imageio-ffmpeg``; no frames; or
            the budget cannot be met.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        encoder: _Encoder = _encode_gif
    elif suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401  (only checking that it is there)
        except ImportError:
            raise ImageError(
                f"Cannot save {path.name}: MP4 needs the imageio-ffmpeg package; "
                "use a name ending in .gif, or run `pip install imageio-ffmpeg`."
            ) from None
        encoder = _encode_mp4
    else:
        raise ImageError(
            f"Cannot save {path.name}: unsupported animation type; "
            "use a name ending in .gif (or .mp4)."
        )
    payload = _encode_within(frames, fps, hold_last, max_bytes, encoder)
    write_bytes_atomic(path, payload)
    return path


def encode_animation(
    frames: Sequence[np.ndarray],
    *,
    fps: float = 10.0,
    hold_last: float = 1.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """The GIF that :func:`write_animation` would write, as bytes (for download buttons)."""
    return _encode_within(frames, fps, hold_last, max_bytes, _encode_gif)

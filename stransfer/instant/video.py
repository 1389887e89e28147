"""Stylise a video frame by frame with the instant engine, keeping its audio.

Frames are decoded and encoded by the ffmpeg that imageio-ffmpeg ships. Flicker is kept low by
construction: one style vector and one "own" vector (for strength, from the first frame) serve
every frame, so only the picture changes between frames; ``blend`` optionally mixes each
result with the previous one (an exponential moving average over time). The audio stream, if
any, is re-encoded to AAC beside the new pictures. The output is written to a hidden temporary
file and moved into place, so a failed run never leaves half a video under the output's name.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.settings import SettingsError
from ..io.images import resize_to, to_uint8
from .engine import MIN_SIDE, BuiltinStyle, Style, content_vector, stylise, working_shape

#: What a video may be; beyond these the message says how to cut it down.
MAX_VIDEO_BYTES = 2 * 1024**3
MAX_FRAMES = 20_000  # about 11 minutes at 30 frames/s
MAX_FRAME_PIXELS = 4096 * 2304  # a little above 4K UHD
MAX_VIDEO_SIDE = 1920  # long side of the result
VIDEO_SUFFIXES = (".mp4",)


class VideoError(ValueError):
    """A video could not be used or written; ``str(e)`` is one line naming the fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from a video's header."""

    width: int
    height: int
    fps: float
    frames: int | None  # estimated from duration x fps; None when unknown
    audio: bool


@dataclass(frozen=True)
class VideoResult:
    """What :func:`stylise_video` made."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float
    audio: bool
    seconds: float


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:  # a runtime requirement; only a broken install lacks it
        raise VideoError("video needs imageio-ffmpeg; pip install imageio-ffmpeg") from None
    return imageio_ffmpeg


def _why(err: BaseException, path: Path) -> str:
    """The useful end of an ffmpeg error: its last line, without the file's path."""
    lines = [line for line in str(err).replace(str(path), path.name).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else type(err).__name__
    return last.rsplit(". ", 1)[-1][:100]


def _unreadable(path: Path, why: str) -> VideoError:
    return VideoError(
        f"{path.name} is not a video that can be read ({why}); choose an MP4, MOV, WebM or MKV "
        "file, or re-encode it with ffmpeg -i IN -c:v libx264 OUT.mp4"
    )


def probe(path: str | os.PathLike) -> VideoInfo:
    """Check that ``path`` is a readable video within the limits; return its size, rate, audio."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path} does not exist; check the file name")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"video {path.name} is empty (0 bytes); choose a different file")
    if size > MAX_VIDEO_BYTES:
        raise VideoError(
            f"video {path.name} is {size / 1024**3:.1f} GiB, over the {MAX_VIDEO_BYTES // 1024**3} "
            "GiB limit; cut it shorter first, e.g. ffmpeg -i IN -t 60 -c copy OUT.mp4"
        )
    reader = _ffmpeg().read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, ValueError) as err:
        raise _unreadable(path, _why(err, path)) from None
    finally:
        reader.close()
    width, height = (int(v) for v in meta.get("size") or (0, 0))
    fps = float(meta.get("fps") or 0.0)
    if width < 1 or height < 1 or not math.isfinite(fps) or fps <= 0:
        raise _unreadable(path, "no video stream with a frame size and rate")
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(
            f"video {path.name} has {width}x{height} frames, more than the "
            f"{MAX_FRAME_PIXELS:,} pixel limit; scale it down first, e.g. "
            "ffmpeg -i IN -vf scale=1920:-2 OUT.mp4"
        )
    duration = float(meta.get("duration") or 0.0)
    frames = round(duration * fps) if math.isfinite(duration) and duration > 0 else None
    if frames is not None and frames > MAX_FRAMES:
        raise VideoError(
            f"video {path.name} has about {frames:,} frames, more than the {MAX_FRAMES:,} limit "
            f"(about {MAX_FRAMES / fps / 60:.0f} minutes); cut it shorter first, e.g. "
            "ffmpeg -i IN -t 60 -c copy OUT.mp4"
        )
    return VideoInfo(width, height, fps, frames, bool(meta.get("audio_codec")))


def output_shape(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """``(height, width)`` of the result: long side ``size`` (capped), both sides even."""
    if size is not None and size > MAX_VIDEO_SIDE:
        raise SettingsError(
            f"size for a video must be at most {MAX_VIDEO_SIDE} px, not {size}", "size"
        )
    height, width = working_shape((info.height, info.width), size)
    return max(MIN_SIDE, height - height % 2), max(MIN_SIDE, width - width % 2)  # yuv420p


def _frames(path: Path, info: VideoInfo) -> Iterator[np.ndarray]:
    reader = _ffmpeg().read_frames(str(path), pix_fmt="rgb24")
    try:
        next(reader)  # metadata, checked by probe()
        for count, raw in enumerate(reader, start=1):
            if count > MAX_FRAMES:
                raise VideoError(f"video {path.name} has more than {MAX_FRAMES:,} frames; cut it")
            yield np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)
    except (OSError, RuntimeError) as err:
        raise _unreadable(path, _why(err, path)) from None
    finally:
        reader.close()


def stylise_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    style: Style,
    *,
    size: int | None = 640,
    strength: float = 100.0,
    preserve_color: str = "none",
    blend: float = 0.0,
    on_frame: Callable[[int, int | None, float], None] | None = None,
) -> VideoResult:
    """Stylise every frame of ``source`` into ``output`` (``.mp4``, H.264, audio kept).

    Args:
        style: a style vector or a :class:`BuiltinStyle`, fixed for the whole video.
        size: long side of the result (at most ``MAX_VIDEO_SIDE``); None keeps the source's.
        strength, preserve_color: as for :func:`stransfer.instant.stylise`.
        blend: 0..1, the weight of the previous result in each frame (temporal smoothing);
            0 is off.
        on_frame: called after each frame with (frames done, frames expected or None,
            seconds since the start).
    """
    started = time.perf_counter()
    output = Path(output)
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"output {output} must end in .mp4, e.g. {output.with_suffix('.mp4')}")
    if isinstance(blend, bool) or not isinstance(blend, int | float) or not 0 <= blend < 1:
        raise SettingsError(
            f"blend must be a number from 0 up to (not including) 1, not {blend!r}", "blend"
        )
    source = Path(source)
    info = probe(source)
    height, width = output_shape(info, size)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".mp4", dir=output.parent)
    os.close(fd)
    writer = _ffmpeg().write_frames(
        tmp,
        (width, height),
        fps=info.fps,
        quality=8,
        macro_block_size=2,
        ffmpeg_log_level="error",
        audio_path=str(source) if info.audio else None,
        audio_codec="aac" if info.audio else None,
    )
    done, previous, own = 0, None, None
    try:
        writer.send(None)
        for frame in _frames(source, info):
            frame = resize_to(frame, height, width)
            if own is None and strength < 100 and not isinstance(style, BuiltinStyle):
                own = content_vector(frame)  # one "own" vector for all frames: no flicker
            result = stylise(
                frame,
                style,
                size=None,
                strength=strength,
                preserve_color=preserve_color,
                own_vector=own,
            ).astype(np.float32)
            if previous is not None and blend > 0:
                result = (1.0 - blend) * result + blend * previous
            previous = result
            writer.send(np.ascontiguousarray(to_uint8(result)))
            done += 1
            if on_frame is not None:
                on_frame(done, info.frames, time.perf_counter() - started)
        if done == 0:
            raise VideoError(f"video {source.name} has no frames that can be read; choose another")
        writer.close()
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs should be shareable
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(Exception):  # ffmpeg may already have failed
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return VideoResult(
        output, done, width, height, info.fps, info.audio, time.perf_counter() - started
    )

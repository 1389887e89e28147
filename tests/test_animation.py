"""Evolution animations: the bounded frame recorder and the GIF/MP4 writer."""

import io
import sys

import numpy as np
import pytest
from PIL import Image

from stransfer.io.animation import FrameRecorder, encode_animation, write_animation
from stransfer.io.images import ImageError


def _frame(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A frame whose mean brightness encodes ``i`` and that differs from its neighbours."""
    rng = np.random.default_rng(i)
    base = np.full((height, width, 3), (i * 7) % 200, dtype=np.int16)
    noise = rng.integers(0, 50, (height, width, 3))
    return (base + noise).astype(np.uint8)


def _frame_id(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0])


def _gif_info(data: bytes) -> tuple[int, int | None, list[int], tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "GIF"
        durations = []
        for index in range(im.n_frames):
            im.seek(index)
            durations.append(im.info["duration"])
        return im.n_frames, im.info.get("loop"), durations, im.size


def test_recorder_stays_bounded_and_keeps_first_and_last() -> None:
    recorder = FrameRecorder(max_frames=10, max_side=32)
    tags = []
    for i in range(1000):
        frame = np.full((40, 80, 3), 0, np.uint8)
        frame[..., 0] = i % 256
        frame[..., 1] = i // 256
        tags.append((i % 256, i // 256))
        recorder.add(frame)
        assert len(recorder.frames) <= 10
    frames = recorder.frames
    assert recorder.added == 1000
    assert 5 <= len(frames) <= 10
    assert all(f.shape == (16, 32, 3) and f.dtype == np.uint8 for f in frames)
    indices = [int(f[0, 0, 0]) + 256 * int(f[0, 0, 1]) for f in frames]
    assert indices[0] == 0 and indices[-1] == 999
    # Kept frames (all but the appended last one) are evenly spaced.
    gaps = set(np.diff(indices[:-1]).tolist())
    assert len(gaps) == 1


def test_recorder_small_runs_and_no_upscaling() -> None:
    recorder = FrameRecorder(max_frames=4, max_side=384)
    assert recorder.frames == []
    recorder.add(_frame(1))
    assert len(recorder.frames) == 1 and recorder.frames[0].shape == (48, 64, 3)
    for i in range(2, 4):
        recorder.add(_frame(i).astype(np.float32))  # floats are accepted
    assert [_frame_id(f) for f in recorder.frames] == [_frame_id(_frame(i)) for i in (1, 2, 3)]


def test_recorder_copies_frames() -> None:
    recorder = FrameRecorder(max_frames=3)
    buffer = _frame(0)
    for _ in range(5):
        recorder.add(buffer)
    before = [f.copy() for f in recorder.frames]
    buffer[...] = 255
    assert all(np.array_equal(a, b) for a, b in zip(before, recorder.frames, strict=True))


def test_recorder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_frames"):
        FrameRecorder(max_frames=1)
    with pytest.raises(ValueError, match="max_side"):
        FrameRecorder(max_side=0)
    with pytest.raises(ValueError, match="shape"):
        FrameRecorder().add(np.zeros((4, 4, 2), np.uint8))


def test_write_gif(tmp_path) -> None:
    frames = [_frame(i) for i in range(12)]
    frames[3] = _frame(3, 30, 40)  # a different size is resized to the last frame's
    path = write_animation(frames, tmp_path / "sub" / "evolution.gif", fps=10, hold_last=1.5)
    assert path == tmp_path / "sub" / "evolution.gif"
    data = path.read_bytes()
    n_frames, loop, durations, size = _gif_info(data)
    assert n_frames == 12 and loop == 0 and size == (64, 48)
    assert durations[0] == 100 and durations[-1] == 1600  # last frame held 1.5 s longer
    assert len(data) < 10 * 1024 * 1024
    assert [p.name for p in path.parent.iterdir()] == ["evolution.gif"]  # no temp files left


def test_gif_over_budget_is_reduced(tmp_path) -> None:
    frames = [_frame(i, 96, 128) for i in range(40)]
    full = encode_animation(frames)
    limit = len(full) // 5
    data = encode_animation(frames, max_bytes=limit)
    assert len(data) <= limit
    n_frames, loop, durations, _ = _gif_info(data)
    assert 2 <= n_frames < 40 and loop == 0
    # The playing time is kept: fewer frames, each shown longer.
    assert abs(sum(durations) - 4000 - 1500) <= 40 * 10
    written = write_animation(frames, tmp_path / "small.GIF", max_bytes=limit)
    assert written.stat().st_size <= limit
    # First and last frames survive the thinning.
    with Image.open(written) as im:
        first = np.asarray(im.convert("RGB"), dtype=np.float64)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert abs(first.mean() - frames[0].mean()) < 6
    assert abs(last.mean() - frames[-1].mean()) < 6


def test_impossible_budget() -> None:
    with pytest.raises(ImageError, match="does not fit"):
        encode_animation([_frame(0), _frame(1)], max_bytes=50)


def test_bad_suffix_and_empty(tmp_path) -> None:
    with pytest.raises(ImageError, match=r"\.gif"):
        write_animation([_frame(0)], tmp_path / "anim.avi")
    with pytest.raises(ImageError, match="no frames"):
        write_animation([], tmp_path / "anim.gif")
    with pytest.raises(ValueError, match="fps"):
        encode_animation([_frame(0)], fps=0)
    assert list(tmp_path.iterdir()) == []


def test_mp4_without_ffmpeg_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes the import fail
    with pytest.raises(ImageError, match=r"\.gif.*pip install imageio-ffmpeg"):
        write_animation([_frame(0), _frame(1)], tmp_path / "anim.mp4")
    assert not (tmp_path / "anim.mp4").exists()


def test_mp4_when_available(tmp_path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    path = write_animation([_frame(i, 47, 63) for i in range(5)], tmp_path / "anim.mp4", fps=5)
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 100

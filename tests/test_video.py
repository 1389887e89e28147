"""``stransfer video``: round trip with audio, low flicker, progress, hostile inputs."""

from __future__ import annotations

import subprocess
from itertools import pairwise
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from stransfer.cli import main
from stransfer.instant import BuiltinStyle, style_vector
from stransfer.instant import models as M
from stransfer.instant import video as V

ROOT = Path(__file__).resolve().parents[1]
ART = sorted((ROOT / "data" / "style").glob("*.jpg"))[0]


@pytest.fixture(scope="module", autouse=True)
def models() -> Path:
    return M.install()


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10, audio: bool = False):
    """A tiny H.264 video written by imageio-ffmpeg; with ``audio``, a 440 Hz tone muxed in."""
    height, width = frames[0].shape[:2]
    target = path.with_name("silent_" + path.name) if audio else path
    writer = imageio_ffmpeg.write_frames(
        str(target), (width, height), fps=fps, macro_block_size=2, ffmpeg_log_level="error"
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    if audio:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        seconds = str(len(frames) / fps)
        tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050", "-t", seconds]
        subprocess.run(
            [exe, "-y", "-loglevel", "error", "-i", str(target), *tone, "-c:v", "copy",
             "-c:a", "aac", "-shortest", str(path)],
            check=True, timeout=60,
        )  # fmt: skip
    return path


def _moving(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width]
    return [
        np.stack([(xx * 4 + 9 * t) % 256, (yy * 5) % 256, (xx + yy + 20 * t) % 256], -1).astype(
            np.uint8
        )
        for t in range(count)
    ]


def _read(path: Path) -> tuple[list[np.ndarray], dict]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    height_width = meta["size"][1], meta["size"][0]
    frames = [np.frombuffer(raw, np.uint8).reshape(*height_width, 3) for raw in reader]
    return frames, meta


def test_round_trip_keeps_frames_rate_and_audio(tmp_path, capsys):
    source = _write_video(tmp_path / "in.mp4", _moving(12), fps=10, audio=True)
    assert V.probe(source).audio
    out = tmp_path / "out" / "styled.mp4"
    code = main(["video", str(source), str(ART), "-o", str(out), "--size", "96", "--blend", "0.2"])
    assert code == 0
    frames, meta = _read(out)
    assert len(frames) == 12 and meta["size"] == (96, 72) and meta["fps"] == 10
    assert meta.get("audio_codec") == "aac"
    err = capsys.readouterr().err
    assert "frames/s" in err and "with its audio" in err
    # The pictures were really stylised, not copied: far from the resized input.
    source_frames, _ = _read(source)
    from stransfer.io.images import resize_to

    assert np.abs(frames[0].astype(float) - resize_to(source_frames[0], 72, 96)).mean() > 15


def test_no_audio_and_builtin_styles(tmp_path):
    source = _write_video(tmp_path / "in.mp4", _moving(5))
    result = V.stylise_video(source, tmp_path / "o.mp4", BuiltinStyle.of(5), size=64)
    assert (result.frames, result.audio, (result.width, result.height)) == (5, False, (64, 48))
    assert "audio_codec" not in _read(tmp_path / "o.mp4")[1]


def test_flicker_is_low_and_blend_lowers_it(tmp_path):
    """A still scene with sensor noise: output frames barely change; blending calms them more."""
    rng = np.random.default_rng(0)
    base = _moving(1, 64, 64)[0].astype(float)
    noisy = [
        np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(8)
    ]
    source = _write_video(tmp_path / "still.mp4", noisy)
    vector = style_vector(np.asarray(noisy[0]))

    def flicker(blend: float) -> float:
        out = V.stylise_video(source, tmp_path / f"b{blend}.mp4", vector, size=64, blend=blend)
        frames, _ = _read(out.path)
        return float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in pairwise(frames)]))

    plain, smooth = flicker(0.0), flicker(0.6)
    stylised_vs_input = np.abs(_read(tmp_path / "b0.0.mp4")[0][0].astype(float) - noisy[0]).mean()
    assert plain < 0.4 * stylised_vs_input  # frames change far less than the stylisation does
    assert smooth < 0.75 * plain


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_text("hello, I am text"), "is not a video that can be read"),
    (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200)), "not a video"),
    (None, "does not exist"),
])  # fmt: skip
def test_hostile_videos_get_one_line(tmp_path, capsys, make, message):
    path = tmp_path / "in.mp4"
    if make is not None:
        make(path)
    assert main(["video", str(path), str(ART), "-o", str(tmp_path / "o.mp4"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stransfer: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".o.*"))


def test_truncated_video_gets_one_line(tmp_path, capsys):
    good = _write_video(tmp_path / "good.mp4", _moving(10))
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[:600])
    code = main(["video", str(tmp_path / "cut.mp4"), "builtin:1", "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("stransfer: error: ") and err.count("\n") == 1


def test_huge_videos_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    source = _write_video(tmp_path / "in.mp4", _moving(30), fps=10)
    monkeypatch.setattr(V, "MAX_FRAMES", 20)
    assert main(["video", str(source), "builtin:1", "-o", str(tmp_path / "o.mp4")]) == 2
    assert "more than the 20 limit" in capsys.readouterr().err
    monkeypatch.setattr(V, "MAX_FRAMES", 20_000)
    monkeypatch.setattr(V, "MAX_FRAME_PIXELS", 1000)
    assert main(["video", str(source), "builtin:1", "-o", str(tmp_path / "o.mp4")]) == 2
    assert "pixel limit" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "x.gif"], "must end in .mp4"),
    (["-o", "x.mp4", "--blend", "1"], "--blend must be a number from 0 up to"),
    (["-o", "x.mp4", "--strength", "-5"], "--strength must be a number from 0 to 100"),
    (["-o", "x.mp4", "--style-weights", "1", "1"], "--style-weights has 2 weight(s)"),
    (["-o", "x.mp4", "--size", "5000"], "--size for a video must be at most 1920"),
])  # fmt: skip
def test_bad_options(tmp_path, capsys, monkeypatch, args, message):
    source = _write_video(tmp_path / "in.mp4", _moving(3))
    monkeypatch.chdir(tmp_path)
    assert main(["video", str(source), "builtin:2", *args]) == 2
    assert message in capsys.readouterr().err


def test_progress_writes_plain_lines_when_not_a_terminal():
    import io

    from stransfer.cli.video import PLAIN_EVERY, FrameProgress

    stream = io.StringIO()
    progress = FrameProgress(stream, tty=False)
    for i in range(1, 40):
        progress(i, 40, i * 0.5)  # 20 s at 2 frames/s
    lines = stream.getvalue().splitlines()
    assert 3 <= len(lines) <= 20 / PLAIN_EVERY + 1
    assert lines[0].startswith("frame 1/40") and "frames/s" in lines[-1] and "\r" not in lines[-1]

"""Tests for the command line (stransfer.cli): tiny images, untrained weights, no network."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stransfer import cli
from stransfer.optimize import StepEvent
from stransfer.settings import TransferSettings

ROOT = Path(__file__).resolve().parents[1]
# Untrained weights and tiny images keep every run to a second or two.
FAST = ["--weights", "random", "--precision", "float32", "--size", "64", "--steps", "2"]


def noise_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    return {
        "content": noise_image(tmp_path / "content.png", 60, 120, seed=1),
        "style": noise_image(tmp_path / "style.png", 48, 48, seed=2),
        "style2": noise_image(tmp_path / "style2.jpg", 40, 70, seed=3),
    }


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def png_text(path: Path) -> dict[str, str]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return dict(im.text)


# --------------------------------------------------------------------------- runs


def test_run_writes_png_keeping_aspect_and_settings(images, tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "out.png"  # the folders do not exist yet
    code, stdout, err = run_cli(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert code == 0, err
    assert stdout == ""
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (64, 32)  # content is 120x60: long side 64, aspect 2:1 kept
    text = png_text(out)
    settings = TransferSettings.from_dict(json.loads(text[cli.METADATA_KEY]))
    assert settings == replace(
        TransferSettings(steps=2, size=64, precision="float32"),
        content_layers=settings.content_layers,
        style_layers=settings.style_layers,
    )
    assert settings.style_layers  # the resolved defaults are recorded, not None
    run_info = json.loads(text[cli.RUN_METADATA_KEY])
    assert run_info["status"] == "done" and run_info["step"] == 2
    assert run_info["weights"] == "random"
    assert "step 2/2" in err and "total=" in err and "ETA" in err
    assert f"wrote {out}" in err.splitlines()[-1]
    assert not [p for p in out.parent.iterdir() if p.name != "out.png"]  # no temp files left


def test_save_every_writes_intermediate_images(images, tmp_path, capsys):
    out, snaps = tmp_path / "out.jpg", tmp_path / "snaps"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST, "--steps", "4",
        "--save-every", "2", snaps,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in snaps.iterdir()) == ["step_00002.png", "step_00004.png"]
    for snap in snaps.iterdir():
        assert json.loads(png_text(snap)[cli.METADATA_KEY])["steps"] == 4
        with Image.open(snap) as im:
            assert im.size == (64, 32)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (64, 32)


def test_two_styles_blended_with_weights(images, tmp_path, capsys):
    out = tmp_path / "blend.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], images["style2"], "-o", out, *FAST,
        "--style-weights", "1", "0", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # --quiet
    run_info = json.loads(png_text(out)[cli.RUN_METADATA_KEY])
    assert run_info["style_weights"] == [1.0, 0.0]
    assert run_info["styles"] == [str(images["style"]), str(images["style2"])]


def test_layer_weights_and_options_reach_the_settings(images, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST,
        "--model", "vgg19", "--optimizer", "adam", "--learning-rate", "2", "--init", "noise",
        "--seed", "7", "--scales", "1", "--style-scale", "0.5", "--tv-weight", "0",
        "--content-layers", "block4_conv2:0.5", "--style-layers", "block1_conv1:2", "block2_conv1",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(png_text(out)[cli.METADATA_KEY])
    assert data["model"] == "VGG19"
    assert (data["optimizer"], data["learning_rate"], data["init"]) == ("adam", 2.0, "noise")
    assert (data["seed"], data["scales"], data["style_scale"], data["tv_weight"]) == (7, 1, 0.5, 0)
    assert data["content_layers"] == {"block4_conv2": 0.5}
    assert data["style_layers"] == {"block1_conv1": 2.0, "block2_conv1": 1.0}


# --------------------------------------------------------------------------- bad input

BAD_ARGUMENTS = {
    "unknown model": (["{content}", "{style}", "-o", "{out}", "--model", "Nope"], "'Nope'"),
    "zero steps": (["{content}", "{style}", "-o", "{out}", "--steps", "0"], "--steps must be"),
    "size not a number": (["{content}", "{style}", "-o", "{out}", "--size", "abc"], "'abc'"),
    "missing content": (["{missing}", "{style}", "-o", "{out}"], "was not found"),
    "text as image": (["{text}", "{style}", "-o", "{out}"], "is not an image"),
    "text as style": (["{content}", "{text}", "-o", "{out}"], "style image notes.txt"),
    "unknown layer": (
        ["{content}", "{style}", "-o", "{out}", "--style-layers", "block9_conv9"],
        "no layer 'block9_conv9'",
    ),
    "bad layer weight": (
        ["{content}", "{style}", "-o", "{out}", "--content-layers", "block4_conv2:lots"],
        "must be a number",
    ),
    "bad output suffix": (["{content}", "{style}", "-o", "{out}.gif"], "-o "),
    "output is a folder": (["{content}", "{style}", "-o", "{folder}"], "is a folder"),
    "style weights count": (
        ["{content}", "{style}", "-o", "{out}", "--style-weights", "1", "2"],
        "one weight per STYLE",
    ),
    "all style weights zero": (
        ["{content}", "{style}", "-o", "{out}", "--style-weights", "0"],
        "above 0",
    ),
    "negative seed": (["{content}", "{style}", "-o", "{out}", "--seed", "-1"], "--seed"),
    "save every zero": (
        ["{content}", "{style}", "-o", "{out}", "--save-every", "0", "{folder}"],
        "at least 1",
    ),
    "missing weights file": (
        ["{content}", "{style}", "-o", "{out}", "--weights", "{missing}"],
        "does not exist",
    ),
    "no output": (["{content}", "{style}"], "-o/--output"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=list(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_with_one_line(case, images, tmp_path, capsys):
    template, fragment = BAD_ARGUMENTS[case]
    (tmp_path / "notes.txt").write_text("not a picture\n")
    (tmp_path / "folder").mkdir()
    values = {
        "content": images["content"],
        "style": images["style"],
        "out": tmp_path / "out.png",
        "missing": tmp_path / "missing.png",
        "text": tmp_path / "notes.txt",
        "folder": tmp_path / "folder",
    }
    argv = [part.format(**values) for part in template]
    if "--weights" not in argv:
        argv += ["--weights", "random"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 2
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stransfer: error: ")
    assert fragment in lines[0]
    assert not (tmp_path / "out.png").exists()


def test_bad_suffix_message_suggests_the_fix(images, tmp_path, capsys):
    code, _, err = run_cli(capsys, images["content"], images["style"], "-o", tmp_path / "x.gif")
    assert code == 2
    assert ".png, .jpg or .jpeg" in err and str(tmp_path / "x.png") in err


# --------------------------------------------------------------------------- endings


def test_ctrl_c_writes_last_image_and_exits_130(images, tmp_path, capsys, monkeypatch):
    real_transfer = cli.transfer

    def interrupted_after_one_step(*args, **kwargs):
        events = real_transfer(*args, **kwargs)
        yield next(events)
        events.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "transfer", interrupted_after_one_step)
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST, "--steps", "5"
    )
    assert code == 130
    assert err.strip().splitlines()[-1] == f"interrupted at step 1; wrote {out}"
    with Image.open(out) as im:
        im.load()
        assert im.size == (64, 32)
    assert json.loads(png_text(out)[cli.RUN_METADATA_KEY])["status"] == "interrupted"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_before_the_first_step_writes_nothing(images, tmp_path, capsys, monkeypatch):
    def interrupted_at_once(*args, **kwargs):
        raise KeyboardInterrupt
        yield  # a generator, like transfer()

    monkeypatch.setattr(cli, "transfer", interrupted_at_once)
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert code == 130
    assert "nothing written" in err
    assert not out.exists()


def fake_event(step: int, steps: int, status: str = "running", message: str = "") -> StepEvent:
    losses = {"total": 1.5, "content": 0.5, "style": 0.75, "tv": 0.25}
    image = np.full((32, 64, 3), 100, np.uint8)
    return StepEvent(step, steps, 1, 1, losses, 0.1 * step, 0.1, 0.1 * (steps - step), image,
                     status, message)  # fmt: skip


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        ("diverged", "the loss became non-finite at step 2", 1),
        ("time budget", "stopped at the 5 s budget", 0),
    ],
)
def test_early_endings_write_the_image(
    status, message, code, images, tmp_path, capsys, monkeypatch
):
    def ends_early(*args, **kwargs):
        yield fake_event(1, 10)
        yield fake_event(2, 10, status, message)

    monkeypatch.setattr(cli, "transfer", ends_early)
    out = tmp_path / "out.png"
    got, _, err = run_cli(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert got == code
    assert message in err
    assert json.loads(png_text(out)[cli.RUN_METADATA_KEY])["status"] == status


# --------------------------------------------------------------------------- progress


def test_progress_without_a_terminal_prints_about_every_tenth_step():
    stream = io.StringIO()
    progress = cli.Progress(stream, tty=False)
    for step in range(1, 101):
        progress.step(fake_event(step, 100, "done" if step == 100 else "running"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("step 10/100 total=1.5 content=0.5 style=0.75 tv=0.25 0.10 s/step")
    assert lines[-1].startswith("step 100/100 ")
    assert "\r" not in stream.getvalue()


def test_progress_on_a_terminal_updates_one_line():
    stream = io.StringIO()
    progress = cli.Progress(stream, tty=True)
    progress.step(replace(fake_event(9, 10), scales=2, scale=2, eta=75.0))
    progress.step(fake_event(10, 10, "done"))
    progress.info("wrote out.png")
    text = stream.getvalue()
    assert text.startswith("\rstep 9/10 [scale 2/2] total=1.5")
    assert "ETA 1m15s" in text
    assert text.count("\n") == 2 and text.endswith("\nwrote out.png\n")


def test_quiet_progress_prints_only_warnings():
    stream = io.StringIO()
    progress = cli.Progress(stream, quiet=True, tty=False)
    progress.step(fake_event(10, 10, "done"))
    progress.info("hidden")
    progress.warn("shown")
    assert stream.getvalue() == "shown\n"


def test_format_duration():
    assert [cli.format_duration(s) for s in (0, 12.4, 185, 3720)] == ["0s", "12s", "3m05s", "1h02m"]


# --------------------------------------------------------------------------- help


def test_every_option_documents_its_default():
    parser = cli.build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            word = "required" if action.required else "default"
            assert word in (action.help or ""), action.option_strings


def test_defaults_come_from_transfer_settings():
    args = cli.build_parser().parse_args(["c.png", "s.png", "-o", "o.png"])
    defaults = TransferSettings()
    for name in ("model", "steps", "size", "content_weight", "style_weight", "tv_weight",
                 "optimizer", "learning_rate", "precision", "scales", "init", "style_scale",
                 "seed", "max_seconds"):  # fmt: skip
        assert getattr(args, name) == getattr(defaults, name), name


def test_python_m_stransfer_help():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "stransfer", "--help"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: stransfer ")
    for option in ("--model", "--steps", "--size", "--content-weight", "--style-weight",
                   "--tv-weight", "--content-layers", "--style-layers", "--style-weights",
                   "--optimizer", "--learning-rate", "--precision", "--scales", "--init",
                   "--style-scale", "--seed", "--max-seconds", "--weights", "--save-every",
                   "--quiet", "examples:"):  # fmt: skip
        assert option in proc.stdout, option
    assert "Traceback" not in proc.stderr

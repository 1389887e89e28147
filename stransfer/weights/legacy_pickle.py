"""A reader for torch's legacy (pre-1.6) checkpoints without torch, through an allow-listed
unpickler: only the few names a tensor checkpoint uses resolve, to inert stand-ins."""

from __future__ import annotations

import collections
import io
import pickle
from typing import NamedTuple

import numpy as np

from .files import WeightsError

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


def decode_legacy_torch(data: bytes, source: str, fix: str) -> dict[str, np.ndarray]:
    """``name -> array`` from a legacy checkpoint; WeightsError naming ``fix`` if it is not one."""
    try:
        return _parse_legacy_torch(data)
    except Exception as err:  # any pickle/format error means "not this file format"
        problem = err if isinstance(err, WeightsError) else f"not a legacy torch checkpoint ({err})"
        raise WeightsError(f"{source}: {problem}; delete it and run `{fix} --force`") from None


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

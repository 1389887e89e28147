"""The content and style pickers: a file from ``data/<role>/``, an upload or (Instant mode) one
of the instant engine's 26 built-in styles.

Decoding is cached by file identity, so a widget change elsewhere costs nothing here.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import streamlit as st

from stransfer.io.images import (
    IMAGE_SUFFIXES,
    MAX_BYTES,
    ImageError,
    encode_png,
    fit_long_side,
    list_images,
    load_image,
    resize_to,
)

from . import project_folder
from .state import ImageChoice

BUILTIN_LABEL = "Built-in {}"  # the style picker's entry for built-in style N-1 (1..26)
SWATCH_SIDE = 192  # a built-in style's picture: a small photo painted in it

PREVIEW_SIDE = 384  # long side of the content/style previews
# Streamlit shrinks a thumbnail to 120 px wide; a preview thinner than 4 px would become 0 px.
PREVIEW_MIN_SIDE = 4
UPLOAD_MB = MAX_BYTES // 2**20  # the uploaders' limit; .streamlit/config.toml says the same


def data_dir() -> Path:
    """``STRANSFER_DATA_DIR``, else the project's ``data/`` (holds ``content/`` and ``style/``):
    in a checkout beside ``stransfer/``; where the package is installed (the container), in
    the working folder."""
    if os.environ.get("STRANSFER_DATA_DIR"):
        return Path(os.environ["STRANSFER_DATA_DIR"])
    return project_folder() / "data"


def files_of(role: str) -> dict[str, Path]:
    return {path.name: path for path in list_images(data_dir() / role)}


def decode_choice(name: str, data: bytes) -> ImageChoice:
    """An image file's pick: its shape, a small PNG preview and a digest (or its error)."""
    try:
        image = load_image(data, name=name)  # bytes: a refusal can say the size
    except ImageError as err:
        return ImageChoice(name=name, error=str(err))
    preview = fit_long_side(image, PREVIEW_SIDE)
    height, width = preview.shape[:2]
    if min(height, width) < PREVIEW_MIN_SIDE:  # e.g. a 4000x3 line: drawn a little thicker
        preview = resize_to(preview, max(height, PREVIEW_MIN_SIDE), max(width, PREVIEW_MIN_SIDE))
    return ImageChoice(
        name=name,
        data=data,
        shape=image.shape[:2],
        preview=encode_png(preview, fast=True),  # shown once, locally: speed over size
        digest=hashlib.sha256(data).hexdigest(),
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _decode(key: str, name: str, _data: bytes) -> ImageChoice:
    """An upload's pick, decoded once per upload ``key``."""
    return decode_choice(name, _data)


def from_path(path: Path) -> ImageChoice:
    try:
        stat = path.stat()
    except OSError as err:
        return ImageChoice(name=path.name, error=f"cannot read {path.name}: {err.strerror}")
    return _path_choice(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _path_choice(path: str, mtime_ns: int, size: int) -> ImageChoice:
    """A file's pick, read and decoded once per (path, mtime, size) in this process, for
    every session (``page.warm`` decodes the default picks before the first visitor)."""
    name = Path(path).name
    if size > MAX_BYTES:
        return ImageChoice(name=name, error=f"{name} is larger than {UPLOAD_MB} MB")
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return ImageChoice(name=name, error=f"cannot read {name}: {err.strerror}")
    return decode_choice(name, data)


def builtin_labels() -> dict[str, int]:
    """``Built-in 1`` .. ``Built-in 26`` -> the instant engine's built-in style index."""
    from stransfer.instant import BUILTIN_STYLES  # cheap: no onnxruntime session yet

    return {BUILTIN_LABEL.format(i + 1): i for i in range(len(BUILTIN_STYLES))}


def builtin_choice(index: int) -> ImageChoice:
    """A built-in style as a pick: no file, a small swatch painted in it as its picture."""
    return ImageChoice(
        name=BUILTIN_LABEL.format(index + 1),
        builtin=index,
        preview=builtin_swatch(index),
        digest=f"builtin:{index}",
    )


@st.cache_data(show_spinner=False, max_entries=32)
def builtin_swatch(index: int) -> bytes | None:
    """A built-in style's picture (the bundled content photo painted in it; about 0.1 s once),
    or None where the instant models are not installed."""
    from stransfer.instant import BuiltinStyle, InstantModelError, stylise

    photos = list_images(data_dir() / "content")
    try:
        photo = load_image(photos[0]) if photos else np.full((96, 128, 3), 128, np.uint8)
        image = stylise(photo, BuiltinStyle.of(index), size=SWATCH_SIDE)
    except (InstantModelError, ValueError, OSError):
        return None
    return encode_png(image)


def file_picker(
    label: str,
    role: str,
    key: str | None = None,
    default: int = 0,
    *,
    builtins: bool = False,
    builtin_default: int | None = None,
) -> ImageChoice:
    """A selectbox over ``data/<role>/`` (and, with ``builtins``, the 26 built-in styles);
    ``key`` prefixes the widget key (default: ``role``), ``default`` picks the entry shown
    first (the n-th style picker starts at the n-th file), ``builtin_default`` (with
    ``builtins``) the built-in style shown first instead."""
    key = key or role
    files = files_of(role)
    extra = builtin_labels() if builtins else {}
    options = [*files, *extra]
    if builtin_default is not None and extra:
        default = len(files) + builtin_default % len(extra)
    # An upload (its widget's value from the last script run) replaces the pick: the picker
    # names it, greyed out, and keeps the picked file for when the upload is removed.
    upload = st.session_state.get(f"{key}_upload")
    name = st.selectbox(
        f"{label} image",
        options,
        index=default % len(options) if options else 0,
        key=f"{key}_file",
        placeholder=f"No images in data/{role}/: upload one",
        disabled=upload is not None,
        format_func=(lambda _: f"Your upload: {upload.name}") if upload is not None else str,
        help="Remove the upload (under Upload your own images) to pick a file again."
        if upload is not None
        else None,
    )
    if upload is not None:
        return ImageChoice()  # ``upload_picker`` gives the upload in its place
    if name in extra:
        return builtin_choice(extra[name])
    choice = from_path(files[name]) if name is not None and name in files else ImageChoice()
    if choice.error:
        st.error(choice.error)
    return choice


def upload_picker(label: str, key: str, picked: ImageChoice) -> ImageChoice:
    """An uploader; an upload, when given, replaces ``picked``."""
    upload = st.file_uploader(
        f"Upload a {label[:1].lower()}{label[1:]} image",
        type=[suffix.lstrip(".") for suffix in IMAGE_SUFFIXES],
        key=f"{key}_upload",
        max_upload_size=UPLOAD_MB,
    )
    if upload is None:
        return picked
    choice = _decode(f"upload:{upload.file_id}", upload.name, upload.getvalue())
    if choice.error:
        st.error(choice.error)
    return choice

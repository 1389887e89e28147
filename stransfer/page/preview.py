"""The instant preview: the feed-forward stylisation of the current picks, shown before Run.

It comes from ``stransfer.instant`` (onnxruntime, no TensorFlow), computed in the page's own
process so it never waits behind anyone's optimisation in the job queue, where its models are
installed; otherwise the page simply shows no preview (or one sentence on how to get
it). Cached by the inputs, so only a change of content, style(s), shares, strength, colour mode
or size computes a new one.
"""

from __future__ import annotations

import io
from typing import Any

import streamlit as st

from stransfer.io.images import encode_png, load_image

from .state import MIXED_BLEND, Request

PREVIEW_MAX_SIDE = 512  # the preview's long side at most (about 0.5 s on 2 cores)


def available() -> bool:
    try:
        import stransfer.instant  # noqa: F401
    except ImportError:
        return False
    return True


def instant_preview(request: Request) -> tuple[bytes | None, str | None]:
    """(PNG of the preview, None) or (None, a sentence why there is none, or None)."""
    if request.content.data is None or not all(c.ready for c in request.styles):
        return None, None
    if not available() or not any(w > 0 for w in request.mix):
        return None, None
    if request.mixed_blend:
        return None, f"No instant preview: {MIXED_BLEND}."
    fields = request.fields
    if request.regions is not None and request.regions.active:
        from .regions import regions_preview

        return regions_preview(request, min(int(fields["size"]), PREVIEW_MAX_SIDE))
    return _preview(
        request.content.digest,
        tuple(c.digest for c in request.styles),
        tuple(request.mix),
        float(fields["strength"]),
        str(fields["preserve_color"]),
        min(int(fields["size"]), PREVIEW_MAX_SIDE),
        request.content.data,
        [c.data if c.builtin is None else c.builtin for c in request.styles],
    )


@st.cache_data(show_spinner=False, max_entries=16)
def _preview(
    content_key: str,
    style_keys: tuple[str, ...],
    mix: tuple[float, ...],
    strength: float,
    colour: str,
    size: int,
    _content: bytes,
    _styles: list[bytes | int],
) -> tuple[bytes | None, str | None]:
    from stransfer.instant import BuiltinStyle, InstantModelError, instant

    del content_key, style_keys  # the cache key (the bytes are not hashed)
    try:
        content = load_image(io.BytesIO(_content))
        styles: Any
        if all(isinstance(style, int) for style in _styles):  # built-in styles: one blend
            blend: dict[int, float] = {}
            for index, weight in zip(_styles, mix, strict=True):
                blend[index] = blend.get(index, 0.0) + weight
            styles = BuiltinStyle.of(blend)
        else:
            styles = [
                (load_image(io.BytesIO(data)), weight)
                for data, weight in zip(_styles, mix, strict=True)
                if weight > 0
            ]
        image = instant(content, styles, size=size, strength=strength, preserve_color=colour)
    except InstantModelError as err:
        return None, f"No instant preview: {err}"
    except ValueError as err:  # SettingsError, ImageError: said elsewhere on the page
        return None, f"No instant preview: {err}"
    return encode_png(image, fast=True), None  # shown once, locally: speed over size

"""The page's print sizes: a select beside the size slider (2K, 4K, 8K) for both engines.

A print runs on the same path as any run (the library tiles it within the memory budget and
follows the print schedule, ``core.plan``); the page only offers the sizes. The picture on
screen stays small (the service's preview frames are shrunk, ``service.execute``); the full-size
PNG with its record is the download.
"""

from __future__ import annotations

import functools
import io

import streamlit as st
from PIL import Image

#: The choices, and the long side each asks for (None: the slider's size).
PRINT_SIZES: dict[str, int | None] = {
    "Screen (the slider)": None,
    "2K print (2048 px)": 2048,
    "4K print (4096 px)": 4096,
    "8K print (8192 px)": 8192,
}


def print_size(key: str, slider_size: int) -> int:
    """The long side to run at: the slider's, or a print size chosen beside it."""
    choice = st.selectbox(
        "Print size",
        list(PRINT_SIZES),
        key=key,
        help="Prints run tile by tile within the memory available, coarse to fine from about "
        "512 px; the time is stated before Run. The picture here stays small: download the "
        "full-size PNG.",
    )
    size = PRINT_SIZES[choice]
    return slider_size if size is None else size


#: Longest side of a picture drawn on the page (a print's full-size PNG is the download).
SCREEN_SIDE = 1024


@functools.lru_cache(maxsize=4)
def screen_png(png: bytes) -> bytes:
    """``png`` as drawn on the page: shrunk to :data:`SCREEN_SIDE` when larger (a 4K print's
    PNG is tens of MB, too much to send to the browser on every poll)."""
    with Image.open(io.BytesIO(png)) as image:
        if max(image.size) <= SCREEN_SIDE:
            return png
        image.thumbnail((SCREEN_SIDE, SCREEN_SIDE))
        out = io.BytesIO()
        image.save(out, format="PNG")
    return out.getvalue()

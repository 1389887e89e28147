"""What one browser session keeps between script runs, and the request the sidebar builds."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from stransfer.service.jobs import JobView

PAGE_KEY = "page"
GALLERY_SIZE = 4  # recent results kept in the gallery
MAX_STYLES = 4  # style images in one blend
MIXED_BLEND = "blend built-in styles with built-ins, images with images"  # the instant rule


@dataclass(frozen=True)
class ImageChoice:
    """The image picked for one role (content or style): a file, an upload, or nothing.

    ``data`` is the file's bytes (what a job carries); ``preview`` a small PNG to show. Frozen:
    a file's pick is shared by every session (``inputs`` decodes it once per process).
    """

    name: str | None = None
    data: bytes | None = None
    shape: tuple[int, int] | None = None  # (height, width) of the decoded image
    preview: bytes | None = None
    error: str | None = None
    digest: str = ""
    builtin: int | None = None  # one of the instant engine's built-in styles (no file)

    @property
    def ready(self) -> bool:
        """An image to send: a file's bytes or a built-in style."""
        return self.data is not None or self.builtin is not None


@dataclass
class Request:
    """Everything the sidebar asks for on this script run."""

    content: ImageChoice
    styles: list[ImageChoice]
    # settings field -> value (β and TV at 100 %), plus ``strength`` and ``engine``
    fields: dict[str, Any]
    mix: list[float] = field(default_factory=lambda: [100.0])  # blend weight per style, %
    budget_mode: bool = True
    problem: str | None = None  # a sentence that stops Run (e.g. a model without weights)
    run: bool = False
    stop: bool = False
    resume: bool = False
    video: Any = None  # the Instant mode's video upload (an UploadedFile), or None
    regions: Any = None  # ``page.regions.RegionsChoice`` (painted or uploaded masks), or None

    @property
    def mixed_blend(self) -> bool:
        """A blend of built-in styles and images: the instant engine takes one kind only."""
        builtins = [choice.builtin is not None for choice in self.styles]
        return any(builtins) and not all(builtins)

    @property
    def instant(self) -> bool:
        return self.fields.get("engine") == "instant"

    def signature(self) -> str:
        """Identifies the inputs and settings: a result made from others is out of date."""
        parts = {
            "content": self.content.digest,
            "styles": [choice.digest for choice in self.styles],
            "mix": self.mix,
            "fields": self.fields,
            "regions": self.regions.digest if self.regions is not None else "",
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Shown:
    """A job the page shows (the current one or one in the gallery)."""

    job_id: str
    number: int
    content: str
    styles: tuple[str, ...]
    colour: str
    model: str
    strength: float
    signature: str
    budget: float | None
    rows_before: list[tuple[int, float, float, float]] = field(default_factory=list)
    view: JobView | None = None
    rows: list[tuple[int, float, float, float]] = field(default_factory=list)
    image: bytes | None = None  # the latest frame (PNG)
    result: bytes | None = None  # the final PNG with its record
    record_json: bytes | None = None
    gif: bytes | None = None
    notices: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()  # the jobs this one continues, oldest first (``?after=``)
    restore: bool = False  # re-attached: put its settings into the widgets once it has ended
    seen: str = ""  # while ``restore`` waits: the sidebar's signature (a change cancels it)

    @property
    def file_stem(self) -> str:
        """``stransfer_CONTENT_STYLE[_STYLE...]``: file-name-safe (``Built-in 7`` ->
        ``builtin-7``), no spaces or ``+``."""
        names = [self.content, *self.styles]
        return "_".join(["stransfer", *map(file_slug, names)])

    @property
    def final(self) -> bool:
        return self.view is not None and self.view.final


def file_slug(name: str) -> str:
    """A picture's name for a file name: its stem, lower case, runs of other characters "-"."""
    from pathlib import Path

    stem = Path(name).stem.lower().replace("built-in", "builtin")
    return re.sub(r"[^a-z0-9_]+", "-", stem).strip("-") or "image"


@dataclass
class PageState:
    """Per-session state: the result on show, the gallery and the last error."""

    current: Shown | None = None
    previous: Shown | None = None  # shown while a continued/new job has no image yet
    gallery: list[Shown] = field(default_factory=list)  # finished results, oldest first
    count: int = 0
    error: str | None = None  # why the last Run could not start
    error_for: str = ""  # the request signature it was said for (shown until that changes)

    def show(self, shown: Shown) -> None:
        if self.current is not None and self.current.image is not None:
            self.previous = self.current
        self.current = shown

    def keep(self, shown: Shown) -> None:
        """Put a finished result in the gallery (once)."""
        if all(item.job_id != shown.job_id for item in self.gallery):
            self.gallery = [*self.gallery, shown][-GALLERY_SIZE:]


def page_state() -> PageState:
    if PAGE_KEY not in st.session_state:
        st.session_state[PAGE_KEY] = PageState()
    return st.session_state[PAGE_KEY]

"""Stransfer's Streamlit page: a thin UI over the ``stransfer`` library.

    streamlit run app.py

The sidebar gathers a ``RunRequest``; Run feeds it to ``stransfer.transfer`` and draws every
``StepEvent``. The latest image, loss history and settings are kept in ``st.session_state`` (a
``Page``) at every step, so Stop (a rerun that interrupts the loop), a widget change during a run
and a finished run all leave the last image on screen.

Environment: ``STRANSFER_DATA_DIR`` (default: ``data/`` next to this file) holds ``content/`` and
``style/``; ``STRANSFER_WEIGHTS``, when set, is passed to ``load_extractor`` (``random`` for
untrained weights, or a ``.h5`` file); otherwise ImageNet weights are resolved.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from stransfer import (
    BACKBONE_NAMES,
    Backbone,
    BackboneError,
    FeatureExtractor,
    ImageError,
    SettingsError,
    StepEvent,
    TransferSettings,
    WeightsError,
    get_backbone,
    load_extractor,
    load_image,
    plan_run,
    transfer,
)
from stransfer.features import PRECISIONS
from stransfer.images import IMAGE_SUFFIXES, MAX_BYTES, encode_png, fit_long_side, list_images
from stransfer.settings import MAX_STEPS, OPTIMIZERS

#: Errors whose message is meant for the user: shown with st.error, never as a traceback.
USER_ERRORS = (ImageError, SettingsError, BackboneError, WeightsError)
DEFAULTS = TransferSettings()
PAGE_KEY = "page"
IMAGE_EVERY_S = 0.1  # redraw the output (and progress) at most this often during a run
CHART_EVERY_S = 0.5  # redraw the loss chart at most this often
PREVIEW_SIDE = 384  # long side of the content/style previews
LAYER_WEIGHT_MAX = 10.0
LOSS_PARTS = ("content", "style", "tv")


# -- data the page passes around -------------------------------------------------------------


@dataclass
class ImageChoice:
    """The image picked for one role (content or style): a file, an upload, or nothing."""

    name: str | None = None
    image: np.ndarray | None = None
    preview: np.ndarray | None = None
    error: str | None = None


@dataclass
class RunRequest:
    """Everything the sidebar asks for on this rerun."""

    content: ImageChoice
    style: ImageChoice
    settings: TransferSettings
    run: bool = False
    stop: bool = False


@dataclass
class RunResult:
    """The latest run, kept in session state and updated in place at every step."""

    settings: TransferSettings
    content_name: str
    style_name: str
    notices: tuple[str, ...] = ()
    event: StepEvent | None = None
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    png: bytes | None = None

    def record(self, event: StepEvent) -> None:
        self.event = event
        self.history.append((event.step, *(event.losses[part] for part in LOSS_PARTS)))
        self.status, self.message, self.png = event.status, event.message, None

    def png_bytes(self) -> bytes:
        """The output as PNG with the settings (and image names) as JSON under ``stransfer``."""
        if self.png is None:
            assert self.event is not None
            record = {**self.settings.to_dict(), "content": self.content_name}
            record["style"] = self.style_name
            self.png = encode_png(self.event.image, {"stransfer": json.dumps(record)})
        return self.png


@dataclass
class Page:
    """Per-session state, shared with a run loop that a newer rerun may have cut off.

    With fast reruns (Streamlit's default) the next script run starts at once, while the old
    one stops only at its next Streamlit call, so the two can overlap for a step. ``rerun``
    counts script runs: a loop started in an older one records nothing more and asks
    ``transfer`` to stop, so it can never overwrite what the newer run shows.
    """

    result: RunResult | None = None
    rerun: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class Views:
    """Placeholders in the main area that a run redraws."""

    messages: st.delta_generator.DeltaGenerator
    notices: st.delta_generator.DeltaGenerator
    output: st.delta_generator.DeltaGenerator
    progress: st.delta_generator.DeltaGenerator
    stats: st.delta_generator.DeltaGenerator
    status: st.delta_generator.DeltaGenerator
    download: st.delta_generator.DeltaGenerator
    chart: st.delta_generator.DeltaGenerator


class Throttle:
    """Says yes at most once per ``interval`` seconds, and always when forced."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -math.inf

    def __call__(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def page_state() -> Page:
    if PAGE_KEY not in st.session_state:
        st.session_state[PAGE_KEY] = Page()
    return st.session_state[PAGE_KEY]


# -- library access --------------------------------------------------------------------------


def data_dir() -> Path:
    return Path(os.environ.get("STRANSFER_DATA_DIR") or Path(__file__).resolve().parent / "data")


def weights_choice() -> str | None:
    """``STRANSFER_WEIGHTS`` (``random`` or a file) if set, else None: resolve ImageNet."""
    return os.environ.get("STRANSFER_WEIGHTS") or None


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_extractor(model: str, precision: str, weights: str | None) -> FeatureExtractor:
    return load_extractor(model, precision, weights)


@st.cache_data(show_spinner=False, max_entries=32)
def _load_file(path: str, mtime_ns: int, size: int) -> np.ndarray:
    del mtime_ns, size  # cache key only: a rewritten file is loaded again
    return load_image(path)


def load_choice(name: str, load) -> ImageChoice:
    try:
        image = load()
    except ImageError as err:
        return ImageChoice(name=name, error=str(err))
    return ImageChoice(name=name, image=image, preview=fit_long_side(image, PREVIEW_SIDE))


def load_path(path: Path) -> np.ndarray:
    try:
        stat = path.stat()
    except OSError:
        return load_image(path)  # raises an ImageError that says what is wrong
    return _load_file(str(path), stat.st_mtime_ns, stat.st_size)


# -- sidebar ---------------------------------------------------------------------------------


def sidebar() -> RunRequest:
    with st.sidebar:
        run_col, stop_col = st.columns(2)
        run = run_col.button("Run", key="run", type="primary", width="stretch")
        stop = stop_col.button("Stop", key="stop", width="stretch")
        content = image_picker("Content", "content")
        style = image_picker("Style", "style")
        thumbnails(content, style)
        st.header("Model")
        model = st.selectbox(
            "Model", BACKBONE_NAMES, index=BACKBONE_NAMES.index(DEFAULTS.model), key="model"
        )
        steps = st.number_input("Steps", 1, MAX_STEPS, DEFAULTS.steps, step=1, key="steps")
        size = st.slider(
            "Intermediate image size (long side, px)", 100, 1000, DEFAULTS.size, 4, key="size"
        )
        options = advanced_options()
        weights = loss_weights()
        content_layers, style_layers = layer_weights(get_backbone(model))
    settings = TransferSettings(
        model=model,
        steps=int(steps),
        size=int(size),
        content_layers=content_layers,
        style_layers=style_layers,
        **weights,
        **options,
    )
    return RunRequest(content, style, settings, run=run, stop=stop)


def image_picker(label: str, role: str) -> ImageChoice:
    """A selectbox over ``data/<role>/`` plus an uploader; an upload, when given, wins."""
    files = {path.name: path for path in list_images(data_dir() / role)}
    name = st.selectbox(
        f"{label} image",
        list(files),
        key=f"{role}_file",
        placeholder=f"No images in data/{role}/: upload one",
    )
    upload = st.file_uploader(
        f"…or upload a {role} image",
        type=[suffix.lstrip(".") for suffix in IMAGE_SUFFIXES],
        key=f"{role}_upload",
        max_upload_size=MAX_BYTES // 2**20,
    )
    if upload is not None:
        choice = load_choice(upload.name, lambda: load_image(upload, name=upload.name))
    elif name is not None and name in files:
        choice = load_choice(name, lambda: load_path(files[name]))
    else:
        choice = ImageChoice()
    if choice.error:
        st.error(choice.error)
    return choice


def thumbnails(content: ImageChoice, style: ImageChoice) -> None:
    for column, choice in zip(st.columns(2), (content, style), strict=True):
        if choice.preview is not None:
            column.image(choice.preview, caption=choice.name, width=120)


def advanced_options() -> dict:
    with st.expander("Advanced"):
        optimizer = st.selectbox(
            "Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULTS.optimizer), key="optimizer"
        )
        learning_rate = st.number_input(
            "Learning rate (Adam only)", 0.01, 255.0, DEFAULTS.learning_rate, key="learning_rate"
        )
        precision = st.selectbox(
            "Precision", PRECISIONS, index=PRECISIONS.index(DEFAULTS.precision), key="precision"
        )
        scales = st.slider("Scales (coarse to fine)", 1, 3, DEFAULTS.scales, key="scales")
        budget = st.number_input("Time budget (s, 0 = none)", 0, 86_400, 0, key="max_seconds")
        seed = st.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="seed")
    return {
        "optimizer": optimizer,
        "learning_rate": float(learning_rate),
        "precision": precision,
        "scales": int(scales),
        "max_seconds": float(budget) if budget else None,
        "seed": int(seed),
    }


def loss_weights() -> dict[str, float]:
    st.header("Loss weights")
    fields = (
        ("content_weight", "Content weight (α)", 0.1),
        ("style_weight", "Style weight (β)", 1.0),
        ("tv_weight", "Smoothness (TV) weight", 0.1),
    )
    weights = {}
    for key, label, step in fields:
        default = float(getattr(DEFAULTS, key))
        value = st.number_input(label, 0.0, None, default, step, format="%g", key=key)
        weights[key] = float(value)
    return weights


def layer_weights(backbone: Backbone) -> tuple[dict[str, float], dict[str, float]]:
    """One slider per layer (keyed by model, so a new model brings its own layers)."""
    content = layer_sliders("Content layers", "content", backbone, backbone.content_layers)
    style = layer_sliders("Style layers", "style", backbone, backbone.style_layers)
    used = [layer for layer in backbone.layers if content[layer] or style[layer]]
    if used:
        chart = pd.DataFrame(
            {"content": [content[n] for n in used], "style": [style[n] for n in used]},
            index=pd.Index(used, name="layer"),
        )
        st.bar_chart(chart, sort=False, stack=False, height=220, y_label="weight")
    return content, style


def layer_sliders(
    title: str, role: str, backbone: Backbone, defaults: dict[str, float]
) -> dict[str, float]:
    weights = {}
    with st.expander(title):
        for layer in backbone.layers:
            default = float(defaults.get(layer, 0.0))
            key = f"{role}_layer:{backbone.name}:{layer}"
            weights[layer] = st.slider(layer, 0.0, LAYER_WEIGHT_MAX, default, 0.1, key=key)
    return weights


# -- main area -------------------------------------------------------------------------------


def layout(request: RunRequest) -> Views:
    messages = st.container()
    notices = st.empty()
    content_col, style_col, output_col = st.columns([1, 1, 2])
    show_input(content_col, "Content", request.content)
    show_input(style_col, "Style", request.style)
    with output_col:
        st.subheader("Output")
        output, progress, stats, status, download = (st.empty() for _ in range(5))
    chart = st.empty()
    return Views(messages, notices, output, progress, stats, status, download, chart)


def show_input(column, label: str, choice: ImageChoice) -> None:
    column.subheader(label)
    if choice.preview is not None:
        column.image(choice.preview, caption=choice.name)
    else:
        column.caption(f"No {label.lower()} image chosen.")


def start_rerun(page: Page, stop_clicked: bool) -> int:
    """Count this script run; a result still 'running' was cut off by Stop or a widget change."""
    with page.lock:
        page.rerun += 1
        result = page.result
        if result is not None and result.status == "running" and result.event is not None:
            settle(result, stop_clicked)
        return page.rerun


def settle(result: RunResult, stop_clicked: bool) -> None:
    where = f"at step {result.event.step} of {result.event.steps}"
    if stop_clicked:
        result.status, result.message = "stopped", f"stopped {where}"
    else:
        result.status = "interrupted"
        result.message = f"the run was interrupted {where} by a change on the page"


def require_images(request: RunRequest) -> tuple[np.ndarray, np.ndarray]:
    for role, choice in (("content", request.content), ("style", request.style)):
        if choice.image is None:
            raise ImageError(
                choice.error
                or f"no {role} image: add one to data/{role}/ or upload one in the sidebar"
            )
    return request.content.image, request.style.image


def run(request: RunRequest, page: Page, rerun: int, views: Views) -> None:
    """Check the request, load the model (cached) and stream the run into ``views``.

    ``rerun`` is this script run's number (see ``Page``): once a newer one starts, the loop
    stops at the next step and leaves the page to it.
    """
    try:
        content, style = require_images(request)
        settings = request.settings.validated()
        plan = plan_run(content.shape[:2], settings, get_backbone(settings.model).min_side)
        with views.messages, st.spinner(f"Loading {settings.model}…"):
            extractor = cached_extractor(settings.model, settings.precision, weights_choice())
        result = RunResult(settings, request.content.name, request.style.name, plan.notices)
        show_notices(views, result.notices)

        def stale() -> bool:
            return page.rerun != rerun

        events = transfer(content, style, settings, extractor, should_stop=stale)
        stream(events, result, page, views, stale)
    except USER_ERRORS as err:
        views.messages.error(str(err))


def stream(
    events: Iterable[StepEvent],
    result: RunResult,
    page: Page,
    views: Views,
    stale: Callable[[], bool],
) -> None:
    """Record every step in the session's Page; redraw at most every IMAGE_EVERY_S."""
    frame_due, chart_due = Throttle(IMAGE_EVERY_S), Throttle(CHART_EVERY_S)
    for event in events:
        with page.lock:
            if stale():
                return  # cut off by a newer rerun, which owns the page now
            result.record(event)
            page.result = result  # the previous result stays until this run has a step
        final = event.status != "running"
        if frame_due(final):
            show_output(views, result)
            show_progress(views, result)
        if chart_due(final):
            show_chart(views, result)


def show_result(page: Page, views: Views) -> None:
    result = page.result
    if result is None or result.event is None:
        views.output.info("Choose a content and a style image, then press Run.")
        return
    show_notices(views, result.notices)
    show_output(views, result)
    show_progress(views, result)
    show_chart(views, result)
    show_status(views, result)
    views.download.download_button(
        "Download PNG",
        data=result.png_bytes(),
        file_name=f"stransfer_{Path(result.content_name).stem}_{Path(result.style_name).stem}.png",
        mime="image/png",
        key="download",
        on_click="ignore",
    )


def show_notices(views: Views, notices: tuple[str, ...]) -> None:
    with views.notices.container():
        for notice in notices:
            st.info(notice)


def show_output(views: Views, result: RunResult) -> None:
    height, width = result.event.image.shape[:2]
    views.output.image(result.event.image, caption=f"Output · {width}x{height}")


def show_progress(views: Views, result: RunResult) -> None:
    event = result.event
    text = f"step {event.step}/{event.steps}"
    if event.scales > 1:
        text += f" · scale {event.scale}/{event.scales}"
    views.progress.progress(event.step / event.steps, text=text)
    losses = " · ".join(f"{part} {event.losses[part]:.4g}" for part in ("total", *LOSS_PARTS))
    timing = f"{event.seconds_per_step:.2f} s/step · "
    if result.status == "running":
        timing += f"{duration(event.eta)} left"
    else:
        timing += f"{duration(event.elapsed)} in all"
    views.stats.caption(f"Loss: {losses}  \n{timing}")


def show_chart(views: Views, result: RunResult) -> None:
    history = pd.DataFrame(result.history, columns=["step", *LOSS_PARTS]).set_index("step")
    views.chart.line_chart(history, x_label="step", y_label="loss", height=260)


def show_status(views: Views, result: RunResult) -> None:
    if result.status == "done":
        event = result.event
        views.status.success(f"Done: {event.steps} steps in {duration(event.elapsed)}")
    elif result.status == "diverged":
        views.status.warning(result.message)
    elif result.status != "running":  # stopped, interrupted, time budget
        views.status.info(result.message[:1].upper() + result.message[1:])


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def main() -> None:
    st.set_page_config(page_title="Stransfer", page_icon="🎨", layout="wide")
    st.title("Stransfer")
    st.caption("Neural style transfer: paint a photo in the style of another image, step by step.")
    request = sidebar()
    page = page_state()
    rerun = start_rerun(page, stop_clicked=request.stop)
    views = layout(request)
    if request.run:
        if page.result is not None:
            show_output(views, page.result)  # on screen while the model loads
        run(request, page, rerun, views)
    show_result(page, views)


if __name__ == "__main__":
    main()

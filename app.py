"""Stransfer's Streamlit page: a thin UI over the ``stransfer`` library.

    streamlit run app.py

The sidebar gathers a ``RunRequest``; Run feeds it to ``stransfer.transfer`` and draws every
``StepEvent``; Continue does the same from the last result's image. The latest image, loss
history and settings are kept in ``st.session_state`` (a ``Page``) at every step, so Stop (a
rerun that interrupts the loop), a widget change during a run and a finished run all leave the
last image on screen. Every result carries a ``RunRecord`` (in its PNG and its JSON download);
"Load settings" puts a record's settings back into the widgets. The last few results stay in a
small gallery.

Environment: ``STRANSFER_DATA_DIR`` (default: ``data/`` next to this file) holds ``content/`` and
``style/``; ``STRANSFER_WEIGHTS``, when set, is passed to ``load_extractor`` (``random`` for
untrained weights, or a ``.h5`` file); otherwise ImageNet weights are resolved.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
from stransfer.core.settings import COLOR_MODES, INITS, MAX_STEPS, OPTIMIZERS, PRECISIONS
from stransfer.core.strength import strength_extra, strength_from_extra, strength_to_weights
from stransfer.engine.run import format_duration
from stransfer.io.animation import FrameRecorder, encode_animation
from stransfer.io.images import (
    IMAGE_SUFFIXES,
    MAX_BYTES,
    encode_png,
    fit_long_side,
    image_sha256,
    list_images,
    resize_to,
)
from stransfer.io.records import (
    RecordError,
    RunRecord,
    load_record,
    png_metadata,
    record_of_step,
    settings_from_record,
)

#: Errors whose message is meant for the user: shown with st.error, never as a traceback.
USER_ERRORS = (ImageError, SettingsError, BackboneError, WeightsError)
DEFAULTS = TransferSettings()
PAGE_KEY = "page"
IMAGE_EVERY_S = 0.1  # redraw the output (and progress) at most this often during a run
CHART_EVERY_S = 0.5  # redraw the loss chart at most this often
PREVIEW_SIDE = 384  # long side of the content/style previews
# Streamlit shrinks a thumbnail to 120 px wide; a preview thinner than 4 px would become 0 px.
PREVIEW_MIN_SIDE = 4
LAYER_WEIGHT_MAX = 10.0
LOSS_PARTS = ("content", "style", "tv")
MAX_STYLES = 4  # style images in one blend
GALLERY_SIZE = 4  # recent results kept in the gallery
SIZE_RANGE = (100, 1000)  # the size slider's range (px)
MAX_SCALES = 3  # the scales slider's maximum
STYLE_SCALE_RANGE = (0.5, 2.0)
SEED_MAX = 2**31 - 1
BUDGET_MAX = 86_400  # the time budget's maximum (s)
LOAD_KEY = "load_settings"  # the Load settings uploader
LOAD_NOTE_KEY = "load_settings_note"  # ("success" | "error", text) about the last load


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
    styles: list[ImageChoice]
    settings: TransferSettings
    style_mix: list[float] = field(default_factory=lambda: [100.0])  # blend weight per style, %
    extra: dict[str, Any] = field(default_factory=dict)  # for the run record: strength, colours
    run: bool = False
    stop: bool = False
    resume: bool = False  # Continue: go on from the last result


@dataclass(frozen=True)
class RunInputs:
    """What a run's record says besides its settings and last step; fixed when the run starts."""

    content_name: str
    style_names: tuple[str, ...]
    style_weights: tuple[float, ...] = (1.0,)
    precision: str = ""
    content_sha256: str = ""
    style_sha256: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """The latest run, kept in session state and updated in place at every step."""

    settings: TransferSettings
    inputs: RunInputs
    notices: tuple[str, ...] = ()
    event: StepEvent | None = None
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    steps_before: int = 0  # steps of the runs that this one continues
    number: int = 0  # 1, 2, ... in this session (set when it is first shown)
    frames: FrameRecorder | None = field(default_factory=FrameRecorder, repr=False)
    files: tuple[bytes, bytes] | None = field(default=None, repr=False)  # PNG and JSON
    gif: bytes | None = field(default=None, repr=False)

    def record(self, event: StepEvent) -> None:
        self.event = event
        self.history.append((event.step, *(event.losses[part] for part in LOSS_PARTS)))
        self.status, self.message, self.files = event.status, event.message, None
        if self.frames is not None:
            self.frames.add(event.image)  # subsampled and bounded by the recorder

    def run_record(self) -> RunRecord:
        """Everything that decided the current image (see ``stransfer.records``)."""
        event, inputs = self.event, self.inputs
        assert event is not None
        extra = {**inputs.extra, "content": inputs.content_name, "status": self.status}
        extra["styles"] = list(inputs.style_names)
        if self.steps_before:
            extra["continued_after_steps"] = self.steps_before
        return record_of_step(
            self.settings,
            event,
            precision=inputs.precision,
            content_sha256=inputs.content_sha256,
            style_sha256=inputs.style_sha256,
            style_weights=inputs.style_weights,
            extra=extra,
        )

    def png_bytes(self) -> bytes:
        """The output as PNG carrying the run record (``load_record`` reads it back)."""
        return self._files()[0]

    def json_bytes(self) -> bytes:
        """The same run record as a JSON sidecar."""
        return self._files()[1]

    def _files(self) -> tuple[bytes, bytes]:
        if self.files is None:
            assert self.event is not None
            record = self.run_record()
            png = encode_png(self.event.image, png_metadata(record))
            self.files = png, (record.to_json() + "\n").encode("utf-8")
        return self.files

    def gif_bytes(self) -> bytes | None:
        """The run's evolution as a looping GIF (None once the frames are released)."""
        if self.gif is None and self.frames is not None and self.frames.added:
            self.gif = encode_animation(self.frames.frames)
        return self.gif

    def release_frames(self) -> None:
        """Drop the animation frames (only the result on show offers an animation)."""
        self.frames, self.gif = None, None

    @property
    def file_stem(self) -> str:
        styles = "+".join(Path(name).stem for name in self.inputs.style_names)
        return f"stransfer_{Path(self.inputs.content_name).stem}_{styles}"


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
    gallery: list[RunResult] = field(default_factory=list)  # the last results, oldest first
    count: int = 0  # results shown so far

    def adopt(self, result: RunResult) -> None:
        """Show ``result`` from now on (called with the lock held, at its first step)."""
        if self.result is not None and self.result is not result:
            self.result.release_frames()
        self.count += 1
        result.number = self.count
        self.result = result
        self.gallery = [*self.gallery, result][-GALLERY_SIZE:]


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
    gallery: st.delta_generator.DeltaGenerator


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
    preview = fit_long_side(image, PREVIEW_SIDE)
    height, width = preview.shape[:2]
    if min(height, width) < PREVIEW_MIN_SIDE:  # e.g. a 4000x3 line: drawn a little thicker
        preview = resize_to(preview, max(height, PREVIEW_MIN_SIDE), max(width, PREVIEW_MIN_SIDE))
    return ImageChoice(name=name, image=image, preview=preview)


def load_path(path: Path) -> np.ndarray:
    try:
        stat = path.stat()
    except OSError:
        return load_image(path)  # raises an ImageError that says what is wrong
    return _load_file(str(path), stat.st_mtime_ns, stat.st_size)


# -- sidebar ---------------------------------------------------------------------------------


def sidebar() -> RunRequest:
    with st.sidebar:
        run, resume, stop = run_buttons()
        settings_loader()
        content = image_picker("Content", "content")
        styles, mix = style_pickers()
        thumbnails(content, styles)
        st.header("Model")
        model = st.selectbox(
            "Model", BACKBONE_NAMES, index=BACKBONE_NAMES.index(DEFAULTS.model), key="model"
        )
        steps = st.number_input("Steps", 1, MAX_STEPS, DEFAULTS.steps, step=1, key="steps")
        size = st.slider(
            "Intermediate image size (long side, px)", *SIZE_RANGE, DEFAULTS.size, 4, key="size"
        )
        weights, extra = style_controls()
        options = advanced_options()
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
    return RunRequest(content, styles, settings, mix, extra, run=run, stop=stop, resume=resume)


def run_buttons() -> tuple[bool, bool, bool]:
    # Continue is never disabled: the sidebar is drawn before a run, so it would stay disabled
    # after the first run until some other rerun. Without a result it explains instead.
    with st.container(horizontal=True):
        run = st.button("Run", key="run", type="primary")
        resume = st.button(
            "Continue",
            key="continue",
            help="Run the current settings for Steps more steps, at full size, starting from "
            "the last result.",
        )
        stop = st.button("Stop", key="stop")
    return run, resume, stop


def style_pickers() -> tuple[list[ImageChoice], list[float]]:
    """Up to MAX_STYLES style pickers, each with a blend weight (%) when there are several."""
    count = st.number_input(
        "Style images",
        1,
        MAX_STYLES,
        1,
        key="style_count",
        help="Blend several styles: each gets its own image and weight.",
    )
    styles, mix = [], []
    for index in range(int(count)):
        label, key = style_label(index)
        styles.append(image_picker(label, "style", key, default=index))
        if count > 1:
            weight = st.slider(
                f"{label} weight", 0.0, 100.0, 100.0, 1.0, format="%.0f%%", key=f"style_mix:{index}"
            )
            mix.append(float(weight))
        else:
            mix.append(100.0)
    return styles, mix


def style_label(index: int) -> tuple[str, str]:
    """Label and widget-key prefix of the style picker ``index`` (the first keeps ``style``)."""
    return ("Style", "style") if index == 0 else (f"Style {index + 1}", f"style{index + 1}")


def image_picker(label: str, role: str, key: str | None = None, default: int = 0) -> ImageChoice:
    """A selectbox over ``data/<role>/`` plus an uploader; an upload, when given, wins.

    ``key`` prefixes the widget keys (default: ``role``); ``default`` picks the file shown
    first (the n-th style picker starts at the n-th file).
    """
    key = key or role
    files = {path.name: path for path in list_images(data_dir() / role)}
    name = st.selectbox(
        f"{label} image",
        list(files),
        index=default % len(files) if files else 0,
        key=f"{key}_file",
        placeholder=f"No images in data/{role}/: upload one",
    )
    upload = st.file_uploader(
        f"…or upload a {label.lower()} image",
        type=[suffix.lstrip(".") for suffix in IMAGE_SUFFIXES],
        key=f"{key}_upload",
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


def thumbnails(content: ImageChoice, styles: list[ImageChoice]) -> None:
    choices = [content, *styles]
    width = 120 if len(choices) == 2 else "stretch"  # several styles share the sidebar's width
    for column, choice in zip(st.columns(len(choices)), choices, strict=True):
        if choice.preview is not None:
            column.image(choice.preview, caption=choice.name, width=width)


def style_controls() -> tuple[dict[str, float], dict[str, Any]]:
    """Style strength, colour preservation and the weights behind them.

    Returns the settings' loss weights and colour mode, and the record's ``extra`` (the strength
    and the weights it scaled, so Load settings can put the slider back).
    """
    st.header("Style")
    strength = st.slider(
        "Style strength",
        0.0,
        100.0,
        100.0,
        1.0,
        format="%.0f%%",
        key="strength",
        help="Scales the style weight (β) and the TV weight together, a tenfold change per "
        "third of the slider; 0% returns the content.",
    )
    preserve = st.selectbox(
        "Preserve colours",
        COLOR_MODES,
        index=COLOR_MODES.index(DEFAULTS.preserve_color),
        key="preserve_color",
        help="luminance: apply the style to brightness only and keep the content's colours; "
        "histogram: recolour the style images to the content's palette first.",
    )
    weights, extra = loss_weights(float(strength))
    return {**weights, "preserve_color": preserve}, {**extra, "preserve_color": preserve}


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
        scales = st.slider("Scales (coarse to fine)", 1, MAX_SCALES, DEFAULTS.scales, key="scales")
        style_scale = st.slider(
            "Style scale",
            *STYLE_SCALE_RANGE,
            DEFAULTS.style_scale,
            0.05,
            key="style_scale",
            help="Size of the style images relative to the output: below 1 gives finer "
            "strokes, above 1 coarser ones.",
        )
        init = st.selectbox(
            "Initialisation",
            INITS,
            index=INITS.index(DEFAULTS.init),
            key="init",
            help="Start from the content image, seeded noise, or the first style image.",
        )
        budget = st.number_input("Time budget (s, 0 = none)", 0, BUDGET_MAX, 0, key="max_seconds")
        seed = st.number_input("Seed", 0, SEED_MAX, DEFAULTS.seed, key="seed")
    return {
        "optimizer": optimizer,
        "learning_rate": float(learning_rate),
        "precision": precision,
        "scales": int(scales),
        "style_scale": float(style_scale),
        "init": init,
        "max_seconds": float(budget) if budget else None,
        "seed": int(seed),
    }


def loss_weights(strength: float) -> tuple[dict[str, float], dict[str, float]]:
    """The α, β and TV fields, where β and TV are the weights at 100 % strength.

    Returns the settings' weights (β and TV scaled by ``strength``) and the record's
    ``strength_extra`` (the strength and the fields' own β and TV).
    """
    fields = (
        ("content_weight", "Content weight (α)", 0.1),
        ("style_weight", "Style weight (β) at 100% strength", 1.0),
        ("tv_weight", "Smoothness (TV) weight at 100% strength", 0.1),
    )
    values = {}
    with st.expander("Advanced weights"):
        for key, label, step in fields:
            default = float(getattr(DEFAULTS, key))
            values[key] = float(
                st.number_input(label, 0.0, None, default, step, format="%g", key=key)
            )
        style, tv = strength_to_weights(
            strength, style_weight=values["style_weight"], tv_weight=values["tv_weight"]
        )
        st.caption(f"At {strength:.0f}% strength: β = {style:.3g}, TV = {tv:.3g}")
    weights = {"content_weight": values["content_weight"], "style_weight": style, "tv_weight": tv}
    extra = strength_extra(
        strength, style_weight=values["style_weight"], tv_weight=values["tv_weight"]
    )
    return weights, extra


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
            key = layer_key(role, backbone.name, layer)
            weights[layer] = st.slider(layer, 0.0, LAYER_WEIGHT_MAX, default, 0.1, key=key)
    return weights


def layer_key(role: str, model: str, layer: str) -> str:
    return f"{role}_layer:{model}:{layer}"


# -- load settings ---------------------------------------------------------------------------


def settings_loader() -> None:
    """An uploader for a result's PNG or JSON; its callback puts the settings in the widgets."""
    note = st.session_state.get(LOAD_NOTE_KEY)
    with st.expander("Load settings", expanded=note is not None):
        st.file_uploader(
            "A PNG saved by Stransfer, or its .json",
            type=["json", "png"],
            key=LOAD_KEY,
            on_change=restore_settings,
            help="Restores the settings of that run (page or command line); the images are "
            "picked again when they are in data/.",
        )
        if note is not None:
            kind, text = note
            (st.error if kind == "error" else st.success)(text)


def restore_settings() -> None:
    """``on_change`` of the Load settings uploader.

    Callbacks run before the script, before any widget exists, so this is where widget values
    may be set; the rerun that follows draws the widgets with them.
    """
    upload = st.session_state.get(LOAD_KEY)
    if upload is None:
        st.session_state.pop(LOAD_NOTE_KEY, None)
        return
    try:
        values, notes = widget_values(load_record(upload.getvalue()))
    except (RecordError, *USER_ERRORS) as err:
        st.session_state[LOAD_NOTE_KEY] = ("error", f"{upload.name}: {err}")
        return
    st.session_state.update(values)
    st.session_state[LOAD_NOTE_KEY] = ("success", " ".join([f"Loaded {upload.name}.", *notes]))


def widget_values(record: RunRecord) -> tuple[dict[str, Any], list[str]]:
    """Widget key -> value for a run record, and notes on what could not be restored exactly.

    Raises RecordError, SettingsError or BackboneError for settings no run could use.
    """
    settings = settings_from_record(record).validated()
    notes: list[str] = []
    strength, style_weight, tv_weight = strength_from_extra(
        record.extra, style_weight=settings.style_weight, tv_weight=settings.tv_weight
    )
    values: dict[str, Any] = {
        "model": settings.model,
        "steps": settings.steps,
        "size": fit("size", settings.size, *SIZE_RANGE, notes),
        "strength": float(strength),
        "preserve_color": settings.preserve_color,
        "content_weight": float(settings.content_weight),
        "style_weight": float(style_weight),
        "tv_weight": float(tv_weight),
        "optimizer": settings.optimizer,
        "learning_rate": float(fit("learning rate", settings.learning_rate, 0.01, 255.0, notes)),
        "precision": settings.precision,
        "scales": fit("scales", settings.scales, 1, MAX_SCALES, notes),
        "style_scale": float(fit("style scale", settings.style_scale, *STYLE_SCALE_RANGE, notes)),
        "init": settings.init,
        "max_seconds": round(fit("time budget", settings.max_seconds or 0, 0, BUDGET_MAX, notes)),
        "seed": fit("seed", settings.seed, 0, SEED_MAX, notes),
    }
    return {**values, **layer_values(settings), **style_values(record, notes)}, notes


def fit(name: str, value: float, low: float, high: float, notes: list[str]) -> float:
    """``value`` clipped to a widget's range, with a note when it had to be."""
    clipped = min(max(value, low), high)
    if clipped != value:
        notes.append(f"The {name} {value:g} is outside this page's range, so it is {clipped:g}.")
    return clipped


def layer_values(settings: TransferSettings) -> dict[str, float]:
    backbone = get_backbone(settings.model)
    values = {}
    for role, layers in (("content", settings.content_layers), ("style", settings.style_layers)):
        for layer in backbone.layers:
            weight = min(float(layers.get(layer, 0.0)), LAYER_WEIGHT_MAX)
            values[layer_key(role, backbone.name, layer)] = weight
    return values


def style_values(record: RunRecord, notes: list[str]) -> dict[str, Any]:
    """Number of styles, their weights (the largest at 100%) and the image picks by name."""
    weights = list(record.style_weights) or [1.0]
    if len(weights) > MAX_STYLES:
        notes.append(f"Only the first {MAX_STYLES} of {len(weights)} style images are restored.")
        weights = weights[:MAX_STYLES]
    top = max(weights) or 1.0
    values: dict[str, Any] = {"style_count": len(weights)}
    values.update({f"style_mix:{i}": 100.0 * w / top for i, w in enumerate(weights)})
    styles = record.extra.get("styles")
    names = styles if isinstance(styles, list) else []
    picks = [("content", "content", record.extra.get("content"))]
    picks += [("style", style_label(i)[1], name) for i, name in enumerate(names[: len(weights)])]
    missing = []
    for role, key, name in picks:
        if not isinstance(name, str) or not name:
            continue
        base = Path(name).name
        if base in {path.name for path in list_images(data_dir() / role)}:
            values[f"{key}_file"] = base
        else:
            missing.append(base)
    if missing:
        notes.append(f"Not in data/, so choose or upload again: {', '.join(missing)}.")
    return values


# -- main area -------------------------------------------------------------------------------


def layout(request: RunRequest) -> Views:
    messages = st.container()
    notices = st.empty()
    content_col, style_col, output_col = st.columns([1, 1, 2])
    show_input(content_col, "Content", request.content)
    show_styles(style_col, request.styles, request.style_mix)
    with output_col:
        st.subheader("Output")
        output, progress, stats, status, download = (st.empty() for _ in range(5))
    chart, gallery = st.empty(), st.empty()
    return Views(messages, notices, output, progress, stats, status, download, chart, gallery)


def show_input(column, label: str, choice: ImageChoice) -> None:
    column.subheader(label)
    if choice.preview is not None:
        column.image(choice.preview, caption=choice.name)
    else:
        column.caption(f"No {label.lower()} image chosen.")


def show_styles(column, styles: list[ImageChoice], mix: list[float]) -> None:
    if len(styles) == 1:
        show_input(column, "Style", styles[0])
        return
    column.subheader("Styles")
    for index, (choice, weight) in enumerate(zip(styles, mix, strict=True)):
        if choice.preview is not None:
            column.image(choice.preview, caption=f"{choice.name} · {weight:.0f}%")
        else:
            column.caption(f"{style_label(index)[0]}: no image chosen.")


def start_rerun(page: Page, stop_clicked: bool) -> int:
    """Count this script run; a result still 'running' was cut off by Stop or a widget change."""
    with page.lock:
        page.rerun += 1
        result = page.result
        if result is not None and result.status == "running" and result.event is not None:
            settle(result, stop_clicked)
        return page.rerun


def settle(result: RunResult, stop_clicked: bool) -> None:
    result.files = None  # the record says how the run ended
    where = f"at step {result.event.step} of {result.event.steps}"
    if stop_clicked:
        result.status, result.message = "stopped", f"stopped {where}"
    else:
        result.status = "interrupted"
        result.message = f"the run was interrupted {where} by a change on the page"


def require_images(request: RunRequest) -> tuple[np.ndarray, list[tuple[np.ndarray, float]]]:
    """The content image and the ``(style image, weight)`` blend; ImageError if one is missing."""
    labels = [("content", "content", request.content)]
    labels += [(style_label(i)[0].lower(), "style", c) for i, c in enumerate(request.styles)]
    for label, role, choice in labels:
        if choice.image is None:
            raise ImageError(
                choice.error
                or f"no {label} image: add one to data/{role}/ or upload one in the sidebar"
            )
    if not any(weight > 0 for weight in request.style_mix):
        raise SettingsError("every style weight is 0%: give at least one style image a weight")
    styles = [c.image for c in request.styles]
    return request.content.image, list(zip(styles, request.style_mix, strict=True))


def start_point(request: RunRequest, page: Page) -> tuple[TransferSettings, np.ndarray | None, int]:
    """Settings, starting image and steps already done: Run starts afresh; Continue goes on
    from the last result's image, at full size only (a coarse scale would blur it again)."""
    if not request.resume:
        return request.settings, None, 0
    last = page.result
    if last is None or last.event is None:
        raise SettingsError("there is no result to continue yet: press Run first")
    done = last.steps_before + last.event.step
    return replace(request.settings, scales=1), last.event.image, done


def run_inputs(request: RunRequest, precision: str) -> RunInputs:
    return RunInputs(
        content_name=request.content.name or "",
        style_names=tuple(choice.name or "" for choice in request.styles),
        style_weights=tuple(request.style_mix),
        precision=precision,
        content_sha256=image_sha256(request.content.image),
        style_sha256=tuple(image_sha256(choice.image) for choice in request.styles),
        extra=dict(request.extra),
    )


def run(request: RunRequest, page: Page, rerun: int, views: Views) -> None:
    """Check the request, load the model (cached) and stream the run into ``views``.

    ``rerun`` is this script run's number (see ``Page``): once a newer one starts, the loop
    stops at the next step and leaves the page to it.
    """
    try:
        content, styles = require_images(request)
        settings, init_image, steps_before = start_point(request, page)
        settings = settings.validated()
        plan = plan_run(content.shape[:2], settings, get_backbone(settings.model).min_side)
        with views.messages, st.spinner(f"Loading {settings.model}…"):
            extractor = cached_extractor(settings.model, settings.precision, weights_choice())
        inputs = run_inputs(request, extractor.precision)
        result = RunResult(settings, inputs, plan.notices, steps_before=steps_before)
        show_notices(views, result.notices)

        def stale() -> bool:
            return page.rerun != rerun

        events = transfer(
            content, styles, settings, extractor, init_image=init_image, should_stop=stale
        )
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
            if page.result is not result:  # the previous result stays until this one has a step
                page.adopt(result)
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
    with views.download.container(horizontal=True):  # wraps when the column is narrow
        show_downloads(result)


def show_downloads(result: RunResult) -> None:
    """The PNG and JSON (both carrying the run record) and the animation of the run."""
    stem = result.file_stem
    st.download_button(
        "Download PNG",
        data=result.png_bytes(),
        file_name=f"{stem}.png",
        mime="image/png",
        key="download",
        on_click="ignore",
    )
    st.download_button(
        "Download settings (JSON)",
        data=result.json_bytes(),
        file_name=f"{stem}.json",
        mime="application/json",
        key="download_json",
        on_click="ignore",
    )
    try:
        gif = result.gif_bytes()
    except ImageError as err:  # the animation would not fit its byte budget
        st.caption(str(err))
        return
    if gif is not None:
        st.download_button(
            "Download animation (GIF)",
            data=gif,
            file_name=f"{stem}.gif",
            mime="image/gif",
            key="download_gif",
            on_click="ignore",
        )


def show_gallery(page: Page, views: Views) -> None:
    """The last GALLERY_SIZE results, newest first, each with its caption and PNG."""
    results = [result for result in page.gallery if result.event is not None]
    if not results:
        return
    with views.gallery.container():
        st.subheader("Recent results")
        columns = st.columns(GALLERY_SIZE)
        for column, result in zip(columns, reversed(results), strict=False):
            column.image(result.event.image, caption=gallery_caption(result))
            column.download_button(
                "PNG",
                data=result.png_bytes(),
                file_name=f"{result.file_stem}_{result.number}.png",
                mime="image/png",
                key=f"gallery:{result.number}",
                on_click="ignore",
            )


def gallery_caption(result: RunResult) -> str:
    event, settings = result.event, result.settings
    strength = result.inputs.extra.get("strength", 100.0)
    steps = result.steps_before + event.step
    losses = ", ".join(f"{part} {event.losses[part]:.3g}" for part in ("total", "content", "style"))
    return (
        f"Run {result.number} · {settings.model} · {steps} steps · strength {strength:.0f}% · "
        f"loss {losses}"
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
        timing += f"{format_duration(event.eta)} left"
    else:
        timing += f"{format_duration(event.elapsed)} in all"
    views.stats.caption(f"Loss: {losses}  \n{timing}")


def show_chart(views: Views, result: RunResult) -> None:
    history = pd.DataFrame(result.history, columns=["step", *LOSS_PARTS]).set_index("step")
    views.chart.line_chart(history, x_label="step", y_label="loss", height=260)


def show_status(views: Views, result: RunResult) -> None:
    if result.status == "done":
        event = result.event
        views.status.success(f"Done: {event.steps} steps in {format_duration(event.elapsed)}")
    elif result.status == "diverged":
        views.status.warning(result.message)
    elif result.status != "running":  # stopped, interrupted, time budget
        views.status.info(result.message[:1].upper() + result.message[1:])


def main() -> None:
    st.set_page_config(page_title="Stransfer", page_icon="🎨", layout="wide")
    st.title("Stransfer")
    st.caption("Neural style transfer: paint a photo in the style of another image, step by step.")
    request = sidebar()
    page = page_state()
    rerun = start_rerun(page, stop_clicked=request.stop)
    views = layout(request)
    if request.run or request.resume:
        if page.result is not None:
            show_output(views, page.result)  # on screen while the model loads
        run(request, page, rerun, views)
    show_result(page, views)
    show_gallery(page, views)


if __name__ == "__main__":
    main()

"""The sidebar: the engine choice, the essentials above the fold, the rest in a few groups.

Two engines: Optimise (the Gatys explorer: model, time or steps, loss weights, layers) and
Instant (the feed-forward engine: size, strength, colours, a blend that may use the 26 built-in
styles, and a short video).

Everything here is cheap (no TensorFlow, cached images), so a widget change reruns in
milliseconds. The values become a ``Request``; the settings' own ranges are checked by the
library when a job is submitted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from stransfer.core.models import MODEL_NAMES, ModelSpec, get_model
from stransfer.core.plan import scales_for
from stransfer.core.settings import (
    COLOR_MODES,
    INITS,
    MAX_STEPS,
    OPTIMIZERS,
    PRECISIONS,
    TransferSettings,
    field_info,
)
from stransfer.core.strength import strength_to_weights

from .inputs import file_picker, upload_picker
from .prints import print_size
from .regions import regions_group
from .state import MAX_STYLES, ImageChoice, Request
from .video import video_uploader

DEFAULTS = TransferSettings()
LAYER_WEIGHT_MAX = 10.0
LAYER_NAME_PX, LAYER_NUMBER_PX = 96, 52  # the layer table's columns: 200 px, the sidebar's
SIZE_RANGE = (100, 1000)  # the output size slider's range (px)
SCALES_RANGE = (int(field_info("scales").low), int(field_info("scales").high))  # as the CLI's
STYLE_SCALE_RANGE = (0.5, 2.0)
SEED_MAX = 2**31 - 1
BUDGET_MAX = 86_400  # the time budget's maximum (s)
BUDGET_MIN = 5
DEFAULT_BUDGET = 60  # s: the default promise (a finished picture in a minute)
DEFAULT_STRENGTH = 100.0  # %, both engines
RUN_FOR = ("time", "steps")
LAYERS_VERSION_KEY = "layers_version"  # bumped by Load settings to rebuild the layer editor
ENGINES = {"optimise": "Optimise", "instant": "Instant"}  # engine -> its label
INSTANT_SIZE_RANGE = (64, 1600)  # the instant engine keeps real detail up to 1600 px and more
INSTANT_DEFAULT_SIZE = 512


# The groups whose contents are drawn only while open (``lazy_group``), and the settings'
# fields their widgets hold (each widget's key is its field's name).
LAZY_FIELDS = {
    "group:weights": ("preserve_color", "content_weight", "style_weight", "tv_weight"),
    "group:optimiser": (
        "optimizer",
        "learning_rate",
        "precision",
        "init",
        "scales",
        "style_scale",
        "seed",
    ),
}
LAYERS_GROUP = "group:layers"  # the layer table (its edits are kept by ``layer_editor``)
LAZY_GROUPS = (*LAZY_FIELDS, LAYERS_GROUP)


def lazy_group(label: str, key: str) -> Any | None:
    """An expander drawn empty while closed (None) and with its contents once opened.

    Every widget on the page costs each rerun time in the browser: with the three advanced
    groups drawn only while open, an idle widget change took 0.15 s instead of 0.25 s
    (``python -m bench.page --only idle``). Their values live on in session state meanwhile
    (``keep_lazy_values``)."""
    box = st.expander(label, key=key, on_change="rerun")
    return box if box.open else None


def keep_lazy_values() -> None:
    """Keep the values of the closed groups' widgets: Streamlit forgets a widget's value
    after a run that did not draw it, unless the script sets it again (its documented way)."""
    for fields in LAZY_FIELDS.values():
        for field in fields:
            if field in st.session_state:
                st.session_state[field] = st.session_state[field]


def lazy_value(field: str) -> Any:
    """A closed group's value for ``field``: the widget's last one, else the default."""
    return st.session_state.get(field, getattr(DEFAULTS, field))


def weights_choice() -> str | None:
    """``STRANSFER_WEIGHTS`` (``random`` or a file) if set, else None: resolve ImageNet."""
    return os.environ.get("STRANSFER_WEIGHTS") or None


@st.cache_data(show_spinner=False, ttl=300)  # VGG19's check hashes an 80 MB file
def model_problems(weights: str | None) -> dict[str, str]:
    """Model name -> one sentence on what to do, for every model that cannot run here."""
    if weights is not None:  # random or a user file: every model builds
        return {}
    from stransfer.weights import INSTALL_CMD, WeightsError, local_weights

    problems = {}
    for name in MODEL_NAMES:
        try:
            found = local_weights(name)
        except WeightsError as err:
            problems[name] = f"{name}'s weights file is damaged: {err}."
            continue
        if found is None:
            problems[name] = missing_weights(get_model(name), INSTALL_CMD)
    return problems


def default_select(
    label: str, field: str, options: Sequence[str], *, key: str | None = None, **kwargs: Any
) -> str:
    """A selectbox over ``options`` that starts at the settings' default for ``field`` (its
    widget key is ``field`` unless given)."""
    index = list(options).index(getattr(DEFAULTS, field))
    return st.selectbox(label, options, index=index, key=key or field, **kwargs)


def missing_weights(spec: ModelSpec, install_cmd: str) -> str:
    if spec.offline:
        return f"{spec.name}'s weights are not installed yet: run `{install_cmd}` once."
    from stransfer.weights import FETCH_CMD

    fetch = f"{FETCH_CMD} {spec.name.lower()}"
    return (
        f"{spec.name} needs its ImageNet weights, which are not on this machine: fetch them "
        f"once while online with `{fetch}`, or choose VGG19, which works offline."
    )


@dataclass
class Top:
    """The top of the sidebar, drawn first so the images can be shown at once."""

    run: bool
    resume: bool
    stop: bool
    promise: Any  # a placeholder for the time Run will take
    content: ImageChoice
    style: ImageChoice
    engine: str = "optimise"


def sidebar_top() -> Top:
    """The engine, Run (Continue and Stop for the optimiser) and the two image pickers."""
    with st.sidebar:
        engine = st.radio(
            "Engine",
            list(ENGINES),
            key="engine",
            horizontal=True,
            format_func=ENGINES.__getitem__,
            help="Optimise: the picture is painted step by step, every setting yours (seconds "
            "to minutes). Instant: a feed-forward network paints it in about a second, also "
            "from 26 built-in styles and for short videos.",
        )
        instant = engine == "instant"
        with st.container(horizontal=True, key="run_buttons"):
            run = st.button("Run", key="run", type="primary")
            resume = stop = False
            if not instant:
                resume = st.button(
                    "Continue",
                    key="continue",
                    help="Go on from the last result with the current settings, at full size.",
                )
                stop = st.button("Stop", key="stop")
        promise = st.empty()
        content = file_picker("Content", "content")
        style = file_picker("Style", "style", builtins=instant)
    return Top(run, resume, stop, promise, content, style, engine)


def sidebar(top: Top) -> Request:
    """The rest of the sidebar; returns the request."""
    keep_lazy_values()
    if top.engine == "instant":
        return instant_sidebar(top)
    with st.sidebar:
        problems = model_problems(weights_choice())
        model = default_select(
            "Model",
            "model",
            MODEL_NAMES,
            format_func=lambda name: f"{name} · needs weights" if name in problems else name,
            help="The network whose features define content and style. VGG19 works offline.",
        )
        problem = problems.get(model)
        if problem:
            st.warning(problem)
        run_fields, budget_mode = time_or_steps()
        size = st.slider("Output size (long side, px)", *SIZE_RANGE, DEFAULTS.size, 4, key="size")
        strength = strength_slider(
            "strength",
            "How strongly the style is applied: 0% returns the photo. Scales the style "
            "and smoothness loss weights together, tenfold per third of the slider.",
        )
        size = print_size("print_size", size)  # below Strength: that stays above the fold
        content, first_style = uploads(top.content, top.style)
        styles, mix = blend(first_style)
        regions = regions_group(content)
        weights = loss_weights(float(strength))
        options = optimiser_options()
        content_layers, style_layers = layer_editor(get_model(model))
    fields: dict[str, Any] = {
        "model": model,
        "size": int(size),
        "content_layers": content_layers,
        "style_layers": style_layers,
        "strength": float(strength),
        **run_fields,
        **weights,
        **options,
    }
    return Request(
        content,
        styles,
        fields,
        mix,
        budget_mode,
        problem,
        top.run,
        top.stop,
        top.resume,
        regions=regions,
    )


def strength_slider(key: str, help: str) -> float:
    """The 0-100 % style strength slider (each engine keeps its own value under ``key``)."""
    return st.slider(
        "Strength", 0.0, 100.0, DEFAULT_STRENGTH, 1.0, format="%.0f%%", key=key, help=help
    )


def instant_sidebar(top: Top) -> Request:
    """Instant mode: its own size, strength, colours and blend (built-in styles included)."""
    with st.sidebar:
        size = st.slider(
            "Output size (long side, px)",
            *INSTANT_SIZE_RANGE,
            INSTANT_DEFAULT_SIZE,
            4,
            key="instant_size",
            help="The instant engine paints at this size with real detail (about 1 s at "
            "512 px, 8 s at 1600 px on 2 cores).",
        )
        strength = strength_slider(
            "instant_strength",
            "0% returns the photo; 100% is the network's full painting.",
        )
        size = print_size("instant_print_size", size)  # below Strength, as in Optimise mode
        colour = default_select(
            "Keep the photo's colours",
            "preserve_color",
            COLOR_MODES,
            key="instant_preserve_color",
            help="luminance: paint the brightness only; histogram: the style's strokes in the "
            "photo's palette.",
        )
        content, first_style = uploads(top.content, top.style)
        styles, mix = blend(first_style, prefix="instant_", builtins=True)
        regions = regions_group(content)
        video = video_uploader()
    fields: dict[str, Any] = {
        "engine": "instant",
        "size": int(size),
        "strength": float(strength),
        "preserve_color": colour,
    }
    return Request(content, styles, fields, mix, False, None, top.run, video=video, regions=regions)


def time_or_steps() -> tuple[dict[str, Any], bool]:
    """A time budget by default (the page can promise when it ends), steps as an option."""
    mode = st.radio(
        "Run for",
        RUN_FOR,
        key="run_for",
        horizontal=True,
        format_func=lambda m: {"time": "a time budget", "steps": "a number of steps"}[m],
    )
    if mode == "time":
        budget = st.number_input(
            "Time budget (s)",
            BUDGET_MIN,
            BUDGET_MAX,
            DEFAULT_BUDGET,
            step=10,
            key="max_seconds",
            help="The run stops with its best picture when the time is up.",
        )
        return {"steps": MAX_STEPS, "max_seconds": float(budget)}, True
    steps = st.number_input(
        "Steps", 1, MAX_STEPS, DEFAULTS.steps, step=1, key="steps", help="Optimisation steps."
    )
    return {"steps": int(steps), "max_seconds": None}, False


def uploads(content: ImageChoice, style: ImageChoice) -> tuple[ImageChoice, ImageChoice]:
    """Your own images, in one group (an upload replaces the picked file)."""
    with st.expander("Upload your own images"):
        content = upload_picker("Content", "content", content)
        style = upload_picker("Style", "style", style)
    return content, style


def blend(
    first: ImageChoice, *, prefix: str = "", builtins: bool = False
) -> tuple[list[ImageChoice], list[float]]:
    """Up to MAX_STYLES style images, each with a blend weight (%) when there are several.

    ``prefix`` keeps each engine's blend controls apart; ``builtins`` lists the built-in
    styles in the pickers (a blend is either all built-ins or all images)."""
    with st.expander("Blend several styles"):
        count = st.number_input(
            "Style images",
            1,
            MAX_STYLES,
            1,
            key=f"{prefix}style_count",
            help="Blend several styles: each gets its own image and weight."
            + (" Blend built-in styles with built-ins, images with images." if builtins else ""),
        )
        styles, mix = [first], []
        for index in range(1, int(count)):
            label, key = style_label(index)
            # A blend is all built-ins or all images: the next pickers follow the first one.
            follow = None if first.builtin is None else first.builtin + index
            picked = file_picker(
                label, "style", prefix + key, index, builtins=builtins, builtin_default=follow
            )
            styles.append(upload_picker(label, prefix + key, picked))
        for index in range(int(count)):
            if count > 1:
                label = style_label(index)[0]
                weight = st.slider(
                    f"{label} share",
                    0.0,
                    100.0,
                    100.0,
                    1.0,
                    format="%.0f%%",
                    key=f"{prefix}style_mix:{index}",
                )
                mix.append(float(weight))
            else:
                mix.append(100.0)
    return styles, mix


def style_label(index: int) -> tuple[str, str]:
    """Label and widget-key prefix of the style picker ``index`` (the first keeps ``style``)."""
    return ("Style", "style") if index == 0 else (f"Style {index + 1}", f"style{index + 1}")


def loss_weights(strength: float) -> dict[str, Any]:
    """Colour mode and the α, β and TV fields (β and TV are the weights at 100 % strength)."""
    fields = (
        ("content_weight", "Content loss weight (α)", 0.1),
        ("style_weight", "Style loss weight (β)", 1.0),
        ("tv_weight", "Smoothness loss weight (TV)", 0.1),
    )
    box = lazy_group("Colour and loss weights", "group:weights")
    if box is None:
        return {field: lazy_value(field) for field in LAZY_FIELDS["group:weights"]}
    values: dict[str, Any] = {}
    with box:
        values["preserve_color"] = default_select(
            "Keep the photo's colours",
            "preserve_color",
            COLOR_MODES,
            help="luminance: apply the style to brightness only and keep the content's colours; "
            "histogram: recolour the style images to the content's palette first.",
        )
        for key, label, step in fields:
            default = float(getattr(DEFAULTS, key))
            values[key] = float(
                st.number_input(label, 0.0, None, default, step, format="%g", key=key)
            )
        style, tv = strength_to_weights(
            strength, style_weight=values["style_weight"], tv_weight=values["tv_weight"]
        )
        st.caption(f"Strength {strength:.0f}% applies β = {style:.3g} and TV = {tv:.3g}.")
    return values


def optimiser_options() -> dict[str, Any]:
    box = lazy_group("Optimiser, scales and seed", "group:optimiser")
    if box is None:
        return {field: lazy_value(field) for field in LAZY_FIELDS["group:optimiser"]}
    with box:
        optimizer = default_select("Optimiser", "optimizer", OPTIMIZERS)
        learning_rate = st.number_input(
            "Learning rate (Adam only)", 0.01, 255.0, DEFAULTS.learning_rate, key="learning_rate"
        )
        precision = default_select("Precision", "precision", PRECISIONS)
        init = default_select(
            "Initialisation",
            "init",
            INITS,
            help="Start from the content image, seeded noise, the first style image, or the "
            "instant engine's painting (the style's palette from the first step).",
        )
        # An instant start is planned at full size only (core.plan.scales_for): say so.
        one_scale = scales_for(replace(DEFAULTS, init=init)) == 1
        scales = st.slider(
            "Scales (coarse to fine)",
            *SCALES_RANGE,
            DEFAULTS.scales,
            key="scales",
            disabled=one_scale,
            help="Starting from the instant painting, every step is at full size."
            if one_scale
            else "Coarse scales settle the layout cheaply before the full-size steps.",
        )
        style_scale = st.slider(
            "Style scale",
            *STYLE_SCALE_RANGE,
            DEFAULTS.style_scale,
            0.05,
            key="style_scale",
            help="Size of the style images relative to the output: below 1 gives finer "
            "strokes, above 1 coarser ones.",
        )
        seed = st.number_input("Seed", 0, SEED_MAX, DEFAULTS.seed, key="seed")
    return {
        "optimizer": optimizer,
        "learning_rate": float(learning_rate),
        "precision": precision,
        "scales": int(scales),
        "style_scale": float(style_scale),
        "init": init,
        "seed": int(seed),
    }


LAYER_BAR_PX = 22  # the chart's height per used layer: every layer's name stays readable


def layer_chart(used) -> None:
    """Bars of the used layers' weights, shallow to deep, one labelled row per layer (a plain
    Vega-Lite spec: no Altair). Rows, not columns: the sidebar is too narrow for a dozen
    upright layer names, and Vega-Lite dropped all but two or three of them."""
    values = [
        {"layer": layer, "role": role, "weight": float(row[role])}
        for layer, row in used.iterrows()
        for role in ("content", "style")
        if row[role] > 0
    ]
    order = list(used.index)
    st.vega_lite_chart(
        spec={
            "data": {"values": values},
            "mark": {"type": "bar"},
            "height": LAYER_BAR_PX * len(order),
            "encoding": {
                "y": {
                    "field": "layer",
                    "type": "nominal",
                    "sort": order,
                    "title": None,
                    "axis": {"labelOverlap": False, "labelLimit": 140},
                },
                "yOffset": {"field": "role"},
                "x": {"field": "weight", "type": "quantitative", "title": "weight"},
                "color": {
                    "field": "role",
                    "type": "nominal",
                    "title": None,
                    "legend": {  # above the bars from the left: centred, it ran off the sidebar
                        "orient": "none",
                        "direction": "horizontal",
                        "legendX": -60,
                        "legendY": -44,
                    },
                },
            },
            "autosize": {"type": "fit-x", "contains": "padding"},
            "padding": {"top": 40, "right": 14},  # the legend sits in the top one
        },
        width="stretch",
    )


def layer_base_key(model: str) -> str:
    return f"layers_base:{model}"


def default_layers(spec: ModelSpec):
    import pandas as pd  # 0.3 s to import: only once the images are on screen

    return pd.DataFrame(
        {
            "content": [float(spec.content_layers.get(name, 0.0)) for name in spec.layers],
            "style": [float(spec.style_layers.get(name, 0.0)) for name in spec.layers],
        },
        index=pd.Index(spec.layers, name="layer"),
    )


def layer_editor(spec: ModelSpec) -> tuple[dict[str, float], dict[str, float]]:
    """One small table of per-layer weights (keyed by model) beside a chart of the used ones,
    drawn only while its group is open (``lazy_group``)."""
    base_key, edited_key = layer_base_key(spec.name), f"layers_edited:{spec.name}"
    version = st.session_state.get(LAYERS_VERSION_KEY, 0)
    box = lazy_group("Layers", LAYERS_GROUP)
    if box is None:
        # A table edited while open becomes the base, so reopening shows the edits (a new
        # version: a fresh editor over them). A Load since then bumped the version: its table.
        edited = st.session_state.pop(edited_key, None)
        if edited is not None and edited[0] == version:
            st.session_state[base_key] = edited[1]
            st.session_state[LAYERS_VERSION_KEY] = version + 1
        table = st.session_state.get(base_key)
        if table is None:  # the defaults, in the table's form (every layer, unused ones 0)
            return (
                {name: float(spec.content_layers.get(name, 0.0)) for name in spec.layers},
                {name: float(spec.style_layers.get(name, 0.0)) for name in spec.layers},
            )
    else:
        with box:
            table = layer_table_editor(spec, version)
        st.session_state[edited_key] = (version, table)
    content = {name: float(table.at[name, "content"]) for name in spec.layers}
    style = {name: float(table.at[name, "style"]) for name in spec.layers}
    return content, style


def layer_table_editor(spec: ModelSpec, version: int):
    """The per-layer table (edits kept under the widget's key) and the chart of used layers."""
    st.caption(spec.why[:1].upper() + spec.why[1:] + ".")
    base = st.session_state.get(layer_base_key(spec.name))
    if base is None:
        base = default_layers(spec)
    # Narrow number columns: the table fits the sidebar, a phone's too, without scrolling
    # sideways (the style column was hidden behind a scroll bar).
    number = {
        "min_value": 0.0,
        "max_value": LAYER_WEIGHT_MAX,
        "step": 0.1,
        "width": LAYER_NUMBER_PX,
    }
    table = st.data_editor(
        base,
        key=f"layers:{spec.name}:{version}",
        column_config={
            "_index": st.column_config.TextColumn("layer", width=LAYER_NAME_PX),
            "content": st.column_config.NumberColumn(help="Content loss weight", **number),
            "style": st.column_config.NumberColumn(help="Style loss weight", **number),
        },
        height=min(36 * (len(spec.layers) + 1) + 3, 330),
        width="stretch",
    )
    table = table.fillna(0.0)
    used = table[(table["content"] > 0) | (table["style"] > 0)]
    if len(used):
        layer_chart(used)
    return table

"""Load settings: a result's PNG or JSON puts its settings back into the widgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from stransfer.core.models import ModelError, get_model
from stransfer.core.settings import MAX_STEPS, SettingsError, TransferSettings
from stransfer.core.strength import strength_from_extra
from stransfer.io.records import RecordError, RunRecord, load_record, settings_from_record

from .inputs import UPLOAD_MB, files_of
from .regions import region_values
from .sidebar import (
    BUDGET_MAX,
    BUDGET_MIN,
    LAYER_WEIGHT_MAX,
    LAYERS_VERSION_KEY,
    SCALES_RANGE,
    SEED_MAX,
    SIZE_RANGE,
    STYLE_SCALE_RANGE,
    layer_base_key,
    style_label,
)
from .state import MAX_STYLES

LOAD_KEY = "load_settings"  # the Load settings uploader
LOAD_NOTE_KEY = "load_settings_note"  # ("success" | "error", text) about the last load
LOAD_ERRORS = (RecordError, SettingsError, ModelError)


def settings_loader() -> None:
    """An uploader for a result's PNG or JSON; its callback puts the settings in the widgets."""
    note = st.session_state.get(LOAD_NOTE_KEY)
    with st.expander("Load settings", expanded=note is not None):
        st.file_uploader(
            "A PNG saved by Stransfer, or its .json",
            type=["json", "png"],
            key=LOAD_KEY,
            on_change=restore_settings,
            max_upload_size=UPLOAD_MB,
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
    except LOAD_ERRORS as err:
        st.session_state[LOAD_NOTE_KEY] = ("error", f"{upload.name}: {err}")
        return
    st.session_state.update(values)
    st.session_state[LAYERS_VERSION_KEY] = st.session_state.get(LAYERS_VERSION_KEY, 0) + 1
    st.session_state[LOAD_NOTE_KEY] = ("success", " ".join([f"Loaded {upload.name}.", *notes]))


def restore_job(png: bytes) -> bool:
    """Put the settings of a result (a re-attached job's PNG) into the widgets; call before
    they are drawn. True when every setting could be restored (an optimiser run whose
    pictures are in data/); False leaves the widgets (an instant run, a partial fit)."""
    try:
        record = load_record(png)
        if record.extra.get("engine") == "instant":
            return False
        values, notes = widget_values(record)
    except LOAD_ERRORS:
        return False
    if record.extra.get("continued_from_step"):
        values.pop("scales")  # Continue runs at one scale whatever the slider says
    st.session_state.update(values)
    st.session_state["engine"] = "optimise"
    st.session_state[LAYERS_VERSION_KEY] = st.session_state.get(LAYERS_VERSION_KEY, 0) + 1
    return not notes


def widget_values(record: RunRecord) -> tuple[dict[str, Any], list[str]]:
    """Session-state key -> value for a run record, and notes on what could not be restored.

    Raises RecordError, SettingsError or ModelError for settings no run could use.
    """
    settings = settings_from_record(record).validated()
    notes: list[str] = []
    strength, style_weight, tv_weight = strength_from_extra(
        record.extra, style_weight=settings.style_weight, tv_weight=settings.tv_weight
    )
    values: dict[str, Any] = {
        "model": settings.model,
        "size": fit("size", settings.size, *SIZE_RANGE, notes),
        "strength": float(strength),
        "preserve_color": settings.preserve_color,
        "content_weight": float(settings.content_weight),
        "style_weight": float(style_weight),
        "tv_weight": float(tv_weight),
        "optimizer": settings.optimizer,
        "learning_rate": float(fit("learning rate", settings.learning_rate, 0.01, 255.0, notes)),
        "precision": settings.precision,
        "scales": fit("scales", settings.scales, *SCALES_RANGE, notes),
        "style_scale": float(fit("style scale", settings.style_scale, *STYLE_SCALE_RANGE, notes)),
        "init": settings.init,
        "seed": fit("seed", settings.seed, 0, SEED_MAX, notes),
    }
    if settings.max_seconds is not None:
        budget = fit("time budget", settings.max_seconds, BUDGET_MIN, BUDGET_MAX, notes)
        values.update(run_for="time", max_seconds=round(budget))
        if settings.steps < MAX_STEPS:
            notes.append(f"It also stopped at {settings.steps} steps; this page runs for time.")
    else:
        values.update(run_for="steps", steps=settings.steps)
    values[layer_base_key(settings.model)] = layer_table(settings)
    return {**values, **style_values(record, notes), **region_values(record.extra, notes)}, notes


def fit(name: str, value: float, low: float, high: float, notes: list[str]) -> float:
    """``value`` clipped to a widget's range, with a note when it had to be."""
    clipped = min(max(value, low), high)
    if clipped != value:
        notes.append(f"The {name} {value:g} is outside this page's range, so it is {clipped:g}.")
    return clipped


def layer_table(settings: TransferSettings):
    """The layer editor's table (a DataFrame) for validated ``settings``."""
    import pandas as pd

    spec = get_model(settings.model)
    layers = {"content": settings.content_layers or {}, "style": settings.style_layers or {}}
    return pd.DataFrame(
        {
            role: [min(float(chosen.get(n, 0.0)), LAYER_WEIGHT_MAX) for n in spec.layers]
            for role, chosen in layers.items()
        },
        index=pd.Index(spec.layers, name="layer"),
    )


def style_values(record: RunRecord, notes: list[str]) -> dict[str, Any]:
    """Number of styles, their shares (the largest at 100%) and the image picks by name."""
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
        if base in files_of(role):
            values[f"{key}_file"] = base
        else:
            missing.append(base)
    if missing:
        notes.append(f"Not in data/, so choose or upload again: {', '.join(missing)}.")
    return values

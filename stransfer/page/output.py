"""The Output panel (a fragment that polls the job) and the gallery of recent results.

The panel redraws itself every ``poll_s`` (``main.poll_seconds``) while a job is active, so a
run never blocks the widgets for longer than one poll and a widget change never touches the
run. Every element has a fixed place, so nothing above it moves during a run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from stransfer.core.events import format_duration
from stransfer.core.plan import RunPlan, seconds_left
from stransfer.io.images import ImageError
from stransfer.io.records import load_record
from stransfer.service.jobs import Conflict, JobService, JobView

from .preview import instant_preview
from .prints import screen_png
from .state import PageState, Request, Shown, page_state

# The panel's redraw interval during a job (see ``main.poll_seconds``): a 512 px step takes
# 1-5 s on 2 cores, and every poll costs the browser about 0.1 CPU-s that the run could use.
POLL_S = 0.5
MAX_POLL_S = 2.0
POLL_SHARE = 0.9  # of the quickest measured step: a little quicker than the steps come
END_CHECK_S = 0.05  # how often a run that is about to end is asked whether it has
LOSS_PARTS = ("content", "style", "tv")
IDLE_TEXT = "Choose a content and a style image, then press Run."
PREVIEW_SHOWN_KEY = "_instant_preview_shown"  # set by the full run for the fragment


@dataclass(frozen=True)
class Rate:
    """This server's measured speed, per megapixel of output: ``step`` seconds per full-size
    step and ``start`` seconds before the first step (the instant start, the targets)."""

    step: float
    start: float = 0.0

    def seconds(self, plan: RunPlan) -> float:
        """How long ``plan`` takes at this speed, start included (before Run)."""
        height, width = plan.output_shape
        megapixels = height * width / 1e6
        return self.start * megapixels + seconds_left(plan, self.step * megapixels)


@st.cache_resource(show_spinner=False)
def rate_book() -> dict[tuple[str, str, str], Rate]:
    """(model, precision, optimizer) -> the speed measured on this server's last run."""
    return {}


def measured_rate(history: list[JobView], first_step: int, megapixels: float) -> Rate | None:
    """The speed a finished run showed: its full-size steps' mean from their elapsed times
    (a run's mean seconds per step counted its start and coarse steps: a 6-step run's promised
    32 s for 40 steps that took 21 s), and the time before its first step."""
    steps = [v for v in history if v.step > first_step and v.losses]
    if not steps:
        return None
    switches = [i for i, v in enumerate(steps) if v.phase.startswith("switching")]
    full = steps[switches[-1] + 1 :] if switches else steps
    if len(full) >= 2:
        step = (full[-1].elapsed - full[0].elapsed) / (full[-1].step - full[0].step)
    else:
        step = steps[-1].seconds_per_step
    same_scale = len(steps) >= 2 and (not switches or switches[0] > 0)
    first = steps[1].elapsed - steps[0].elapsed if same_scale else step
    start = max(0.0, steps[0].elapsed - first * (steps[0].step - first_step))
    return Rate(step / megapixels, start / megapixels)


def show_png(target: Any, png: bytes, caption: str) -> None:
    """Draw PNG bytes as they are. Streamlit's default ("auto") decodes an RGB PNG and encodes
    it again as JPEG on every rerun: 20-40 ms an image, each time the panel polls a job."""
    target.image(screen_png(png), caption=caption, output_format="PNG")


def output_panel(runner: JobService, request: Request, poll_s: float = POLL_S) -> None:
    """Draw (and, while a job runs, keep redrawing every ``poll_s``) the Output panel; before
    Run (or when the result on show was made with other settings) the instant preview of the
    current picks."""
    active = (current := page_state().current) is not None and not current.final
    signature = request.signature()
    shown = current if current is not None and current.image is not None else None
    st.session_state[PREVIEW_SHOWN_KEY] = False
    # A re-attached job (no signature: its settings are not the sidebar's) keeps the panel.
    if not active and (shown is None or shown.signature not in ("", signature)):
        preview_panel(request, below=shown is not None)
    st.fragment(_panel, run_every=poll_s if active else None)(runner, signature, poll_s)


def preview_panel(request: Request, below: bool) -> None:
    png, why = instant_preview(request)
    # Either the preview or why there is none: the panel then says nothing more (no idle hint).
    st.session_state[PREVIEW_SHOWN_KEY] = png is not None or bool(why and not below)
    if png is not None:
        after = "for the full-size picture" if request.instant else "to optimise"
        show_png(st, png, f"Instant preview · press Run {after}")
    elif why and not below:
        st.caption(why)


def _panel(runner: JobService, signature: str, poll_s: float) -> None:
    state = page_state()
    shown = state.current
    ended_now = False
    if shown is not None and not shown.final:
        await_end(runner, shown, poll_s)
        ended_now = poll(runner, shown, state)
    draw(state, signature)
    if ended_now:
        st.rerun(scope="app")  # stop polling; the gallery and buttons catch up


def await_end(runner: JobService, shown: Shown, poll_s: float) -> None:
    """When the job should end before the next poll, wait for it here (asking every
    END_CHECK_S), so its result shows as soon as it is saved instead of up to ``poll_s``
    later. This blocks the script at most ``poll_s``, only in a run's last moments."""
    view = shown.view
    if view is None or view.state != "running" or view.eta > poll_s or view.step == 0:
        return
    deadline = time.monotonic() + poll_s
    while time.monotonic() < deadline:
        time.sleep(END_CHECK_S)
        with contextlib.suppress(KeyError):
            if runner.get(shown.job_id).final:
                return


def poll(runner: JobService, shown: Shown, state: PageState) -> bool:
    """Fetch the job's news into ``shown``; True when it has just ended."""
    try:
        view = runner.get(shown.job_id)
    except KeyError:  # the service forgot it (restarted without its store)
        shown.view = JobView(shown.job_id, "failed", message="the job is no longer known")
        return True
    if shown.view is None or view.frame != shown.view.frame:
        shown.rows = loss_rows(runner, shown.job_id)
        shown.image = runner.frame(shown.job_id)  # PNG, encoded once per frame
    shown.view = view
    if not view.final:
        return False
    finish(runner, shown, state)
    return True


def loss_rows(runner: JobService, job_id: str) -> list[tuple[int, float, float, float]]:
    """(step, content, style, tv) of every step of the job so far (none for a forgotten job)."""
    try:
        history = runner.history(job_id)
    except KeyError:
        return []
    return [
        (v.step, *(float(v.losses.get(part, 0.0)) for part in LOSS_PARTS))
        for v in history
        if v.losses
    ]


def finish(runner: JobService, shown: Shown, state: PageState) -> None:
    """Keep the final PNG, its record, the animation and the measured speed."""
    view = shown.view
    assert view is not None
    if shown.image is None:
        return
    with contextlib.suppress(KeyError, ValueError, Conflict):
        shown.result = kept_result(runner, shown)
        shown.record_json = (load_record(shown.result).to_json() + "\n").encode()
    with contextlib.suppress(ImageError):
        shown.gif = runner.animation(shown.job_id)
    if shown.result is not None and not shown.model:  # re-attached: names from the record
        record = load_record(shown.result)
        shown.content = str(record.extra.get("content", ""))
        shown.styles = tuple(map(str, record.extra.get("styles", ())))
        shown.colour = str(record.settings.get("preserve_color", "none"))
        instant = record.extra.get("engine") == "instant"
        shown.model = "Instant" if instant else str(record.settings.get("model", ""))
        shown.strength = float(record.extra.get("strength", 100.0))
    # A stopped run measured the speed as well as a finished one.
    if view.state in ("done", "cancelled") and shown.model != "Instant" and shown.result:
        settings = load_record(shown.result).settings
        height, width = image_shape(shown.image)
        with contextlib.suppress(KeyError):
            rate = measured_rate(
                runner.history(shown.job_id), view.first_step, height * width / 1e6
            )
            if rate is not None and rate.step > 0:
                key = (shown.model, settings["precision"], settings["optimizer"])
                rate_book()[key] = rate
    state.keep(shown)


def kept_result(runner: JobService, shown: Shown) -> bytes:
    """The job's final PNG. A run stopped by a diverging loss ends as a failed job that kept
    its best image: the service has no result for it, but its last frame is that PNG."""
    try:
        return runner.result(shown.job_id)
    except Conflict:
        if not isinstance(shown.image, bytes):
            raise
        load_record(shown.image)  # only the kept final PNG carries a record (else RecordError)
        return shown.image


def image_shape(image: Any) -> tuple[int, int]:
    if hasattr(image, "shape"):
        return image.shape[:2]
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(image)) as probe:
        return probe.height, probe.width


def draw(state: PageState, signature: str) -> None:
    shown = state.current
    # Why the last Run could not start, until the sidebar changes (the fix, or anything else).
    error = state.error if state.error_for in ("", signature) else None
    if error:
        st.error(error)
    if shown is None:
        if not error and not preview_shown():
            st.info(IDLE_TEXT)
        return
    view = shown.view
    failed = view is not None and view.state == "failed"
    if failed:
        st.error(view.message[:1].upper() + view.message[1:])
    pictured = shown if shown.image is not None else state.previous
    # Parts that come and go sit in slots of their own: the panel's other elements keep their
    # places, so a redraw replaces each in place (a shifted one vanishes until it is re-sent).
    note_slot = st.empty()
    if pictured is not None and pictured.image is not None:
        known = bool(pictured.signature)  # a re-attached job's settings are not the sidebar's
        if known and pictured.signature != signature and (pictured.final or pictured is not shown):
            note_slot.caption(
                ":orange[Made with other settings than those in the sidebar now "
                f"({describe(pictured)}). Press Run to make one with these.]"
            )
        height, width = image_shape(pictured.image)
        show_png(st, pictured.image, f"Output · {width}x{height}")
    elif not failed:
        st.caption("The picture appears here after the first step.")
    if not failed:
        progress(shown)
    with st.empty().container():
        for notice in shown.notices:
            st.caption(notice)
        status(shown)
    # Downloads are the result on show: none while a run (a continued one too) is under way,
    # so an earlier result is not taken for it (the gallery keeps every finished one).
    downloads(shown if shown.final else None)
    chart(shown, pictured)


def preview_shown() -> bool:
    return bool(st.session_state.get(PREVIEW_SHOWN_KEY))


def describe(shown: Shown) -> str:
    styles = " + ".join(shown.styles)
    colour = "" if shown.colour == "none" else f", colours kept by {shown.colour}"
    return f"{shown.content} in the style of {styles}{colour}, {shown.model}"


def progress(shown: Shown) -> None:
    view = shown.view
    if view is None or view.frame == 0:  # queued, starting, loading: no step yet
        text = view.phase if view is not None and view.phase else "starting"
        st.progress(0.0, text=text)
        st.caption(" ")  # the stats line's place
        return
    if shown.model == "Instant":  # one feed-forward pass: no steps, losses or rates to show
        st.progress(1.0 if view.final else 0.0, text="painted" if view.final else view.phase)
        st.caption(" ")
        return
    budget = shown.budget
    done = view.step - view.first_step
    if budget:
        fraction = min(1.0, view.elapsed / budget)
        text = f"step {view.step} · {format_duration(view.elapsed)} of {format_duration(budget)}"
    else:
        fraction = min(1.0, max(0.0, done / max(1, view.steps - view.first_step)))
        text = f"step {view.step}/{view.steps}"
    if view.state == "running" and not view.phase.startswith("step"):
        text += f" · {view.phase}"  # loading, switching sizes
    st.progress(fraction, text=text)
    losses = " · ".join(
        f"{part} {view.losses.get(part, 0.0):.4g}" for part in ("total", *LOSS_PARTS)
    )
    timing = f"{view.seconds_per_step:.2f} s/step · "
    if view.state == "running":
        timing += f"{format_duration(view.eta)} left"
    else:
        timing += f"{format_duration(view.elapsed)} in all"
    st.caption(f"Loss: {losses}  \n{timing}")


def status(shown: Shown) -> None:
    view = shown.view
    if view is None or view.state in ("queued", "running", "failed"):
        return
    if view.state == "cancelled":
        if view.frame == 0:
            st.info("Stopped before the first step")
        elif shown.budget:
            st.info(f"Stopped at step {view.step}")
        else:
            st.info(f"Stopped at step {view.step} of {view.steps}")
    elif shown.model == "Instant":
        st.success(f"Done: painted in {view.elapsed:.1f} s (instant engine)")
    elif view.message and "budget" not in view.message:  # diverged
        st.warning(view.message)
    else:
        done = view.step - view.first_step
        how = " (time budget)" if shown.budget else ""
        # A continued run names its steps as the progress bar counts them (on from the last).
        steps = f"steps {view.first_step + 1}-{view.step}" if view.first_step else f"{done} steps"
        st.success(f"Done: {steps} in {format_duration(view.elapsed)}{how}")


def downloads(shown: Shown | None) -> None:
    """The PNG and JSON (both carrying the run record) and the animation of the run."""
    if shown is None or shown.result is None:
        return
    stem = shown.file_stem
    with st.container(horizontal=True, key="downloads"):
        button("Download PNG", shown.result, f"{stem}.png", "image/png", "download")
        if shown.record_json is not None:
            button(
                "Download settings (JSON)",
                shown.record_json,
                f"{stem}.json",
                "application/json",
                "download_json",
            )
        if shown.gif is not None:
            button(
                "Download animation (GIF)", shown.gif, f"{stem}.gif", "image/gif", "download_gif"
            )


def button(label: str, data: bytes | Callable[[], bytes], name: str, mime: str, key: str) -> None:
    st.download_button(label, data=data, file_name=name, mime=mime, key=key, on_click="ignore")


def chart(shown: Shown, pictured: Shown | None) -> None:
    rows = shown.rows_before + shown.rows
    if not shown.rows and pictured is not None and pictured is not shown:
        rows = pictured.rows_before + pictured.rows  # a continued run: the chart so far
    if not rows:
        return
    # A hand-written Vega-Lite spec with the rows inline: st.line_chart goes through pandas,
    # Arrow and Altair on every redraw, which cost the server more CPU than the run could spare.
    values = [
        {"step": step, "loss": part, "value": value}
        for step, *losses in rows
        for part, value in zip(LOSS_PARTS, losses, strict=True)
    ]
    spec = {
        "data": {"values": values},
        "mark": {"type": "line"},
        "height": 220,
        "encoding": {
            "x": {
                "field": "step",
                "type": "quantitative",
                "title": "step",
                "axis": {"format": "d", "tickMinStep": 1},  # whole steps, never 1.5
            },
            "y": {"field": "value", "type": "quantitative", "title": "loss"},
            "color": {"field": "loss", "type": "nominal", "sort": list(LOSS_PARTS)},
        },
    }
    st.vega_lite_chart(spec=spec, width="stretch")


def gallery(state: PageState) -> None:
    """The last results, newest first, each with a caption naming what made it."""
    results = [shown for shown in state.gallery if shown.result is not None]
    if not results:
        return
    st.subheader("Recent results")
    columns = st.columns(4)
    for column, shown in zip(columns, reversed(results), strict=False):
        show_png(column, shown.result, gallery_caption(shown))
        column.download_button(
            "PNG",
            data=shown.result,
            file_name=f"{shown.file_stem}_{shown.number}.png",
            mime="image/png",
            key=f"gallery:{shown.number}",
            on_click="ignore",
        )


def gallery_caption(shown: Shown) -> str:
    view = shown.view
    assert view is not None
    styles = " + ".join(shown.styles)
    colour = "colour: style's" if shown.colour == "none" else f"colour: {shown.colour}"
    made = "instant" if shown.model == "Instant" else f"{shown.model} · {view.step} steps"
    return (
        f"Run {shown.number} · {shown.content} × {styles} · {colour} · {made} · "
        f"strength {shown.strength:.0f}%"
    )

"""The page's script: draw first, then act on the buttons; runs are jobs of the service.

Order matters for a cold start: the title, the pickers and the images are sent before
anything slow happens, and nothing here imports TensorFlow: the page is a client of
``stransfer.service`` (``local_service()``: a durable job store and worker processes).
"""

from __future__ import annotations

import streamlit as st

from stransfer.core.events import format_duration
from stransfer.core.models import ModelError
from stransfer.core.plan import RunPlan
from stransfer.core.settings import SettingsError
from stransfer.io.images import ImageError
from stransfer.service.jobs import JobError, JobRequest, JobService

from .output import (
    MAX_POLL_S,
    POLL_S,
    POLL_SHARE,
    Rate,
    gallery,
    loss_rows,
    output_panel,
    rate_book,
    show_png,
)
from .regions import problem as region_problem
from .regions import region_job, warm_regions
from .restore import restore_job, settings_loader
from .sidebar import sidebar, sidebar_top, style_label
from .state import MIXED_BLEND, ImageChoice, PageState, Request, Shown, page_state
from .video import video_panel

JOB_PARAM = "job"  # the URL's query parameter that names the job on show (reload re-attaches)
AFTER_PARAM = "after"  # the jobs the one on show continues, oldest first (its chart's start)
NARROW_PX = 768  # below this width the sidebar covers the page: Run closes it
OTHER_SETTINGS = "other"  # the signature of a result whose settings the sidebar does not hold
# The job service's refusals (``JobError``, with ``.field``) say what is wrong with the request.
USER_ERRORS = (JobError, ImageError, SettingsError, ModelError, ValueError)

CSS = """
<style>
/* A narrow screen stacks the columns: the Output comes first. */
@media (max-width: 640px) {
  [data-testid="stColumn"]:has(.st-key-output_panel) { order: -1; }
}
/* The progress bar jumps instead of gliding: its transition repainted the panel for a
   while after every poll (Chromium's CPU per poll fell by a third without it). */
[data-testid="stProgress"] * { transition: none !important; }
/* The sidebar's table and chart need no toolbars (search, download, full screen): a
   hovering one covered the Layers group's caption and first rows. */
[data-testid="stSidebar"] [data-testid="stElementToolbar"] { display: none; }
/* Streamlit's own "Running... Stop" corner flickered at every poll of a job, and its Stop
   stops the page's script, not the run: the sidebar's Stop is the one. */
[data-testid="stStatusWidget"] { visibility: hidden; }
/* Captions break between words, never inside one. */
[data-testid="stImageCaption"] { word-break: normal; overflow-wrap: break-word; }
</style>
"""

CLOSE_SIDEBAR_JS = f"""
<script>
if (window.innerWidth < {NARROW_PX}) {{
  const doc = window.parent?.document ?? document;
  doc.querySelector('[data-testid="stSidebarCollapseButton"] button')?.click();
}}
</script>
"""


@st.cache_resource(show_spinner=False)
def get_runner() -> JobService:
    """The job service the page is a client of: the process's ``local_service()`` (jobs in
    ``$STRANSFER_DATA``, ``$STRANSFER_WORKERS`` worker processes, or ``$STRANSFER_BROKER``)."""
    from stransfer.service import local_service

    return local_service()


def main() -> None:
    """Everything below the title (``header.header`` draws that first)."""
    st.html(CSS)
    state = page_state()
    adopt(state)  # before the widgets: a re-attached job's settings may go into them
    top = sidebar_top()
    content_col, style_col, output_col = st.columns([1, 1, 2])
    content_view = content_col.empty()
    with content_view.container():
        show_input(st, "Content", top.content)
    styles_view = style_col.empty()
    with styles_view.container():
        show_input(st, "Style", top.style)
    with output_col, st.container(key="output_panel"):
        st.subheader("Output")
        panel = st.container()
    request = sidebar(top)
    with st.sidebar:
        settings_loader()
    # An upload (drawn in the sidebar after the pickers) replaces the picked file on show too.
    if request.content is not top.content:
        with content_view.container():
            show_input(st, "Content", request.content)
    if len(request.styles) > 1:
        with styles_view.container():
            show_styles(request.styles, request.mix)
    elif request.styles[0] is not top.style:
        with styles_view.container():
            show_input(st, "Style", request.styles[0])
    runner = get_runner()
    settle_adopted(state, request)
    started = False
    if request.stop:
        stop(state, runner)
    if request.run or request.resume:
        started = start(request, state, runner)
    top.promise.caption(promise_text(request))
    with panel:
        output_panel(runner, request, poll_seconds(request))
    if request.instant:
        with output_col:
            video_panel(request)
    gallery(state)
    warm_regions(request)
    if started:
        with st.sidebar:
            st.html(CLOSE_SIDEBAR_JS, unsafe_allow_javascript=True)


def show_input(column, label: str, choice: ImageChoice) -> None:
    column.subheader(label)
    if choice.preview is not None:
        show_png(column, choice.preview, choice.name)
    elif choice.error:  # a broken upload or file: what is wrong with it, not "none chosen"
        column.caption(f":red[{choice.error}]")
    else:
        column.caption(f"No {label.lower()} image chosen.")


def show_styles(styles: list[ImageChoice], mix: list[float]) -> None:
    st.subheader("Styles")
    for index, (choice, weight) in enumerate(zip(styles, mix, strict=True)):
        if choice.preview is not None:
            show_png(st, choice.preview, f"{choice.name} · {weight:.0f}%")
        else:
            st.caption(f"{style_label(index)[0]}: no image chosen.")


def sentence(err: Exception) -> str:
    text = str(err)
    return text[:1].upper() + text[1:]


def missing_image(request: Request) -> str | None:
    labelled = [("content", "content", request.content)]
    labelled += [(style_label(i)[0].lower(), "style", c) for i, c in enumerate(request.styles)]
    for label, role, choice in labelled:
        if choice.error:  # a file's name that starts it keeps its spelling
            named = choice.name and choice.error.startswith(choice.name)
            return choice.error if named else sentence(ImageError(choice.error))
        if not choice.ready:
            where = f"add one to data/{role}/ or upload one in the sidebar"
            return sentence(ImageError(f"no {label} image: {where}"))
    return None


def start(request: Request, state: PageState, runner: JobService) -> bool:
    """Submit Run or Continue as a job; on a problem, say it in one sentence instead."""
    state.error = missing_image(request) or request.problem or region_problem(request)
    if not state.error and request.mixed_blend:  # said in the page's words, not the API's
        state.error = sentence(
            ValueError(f"this blend mixes built-in styles and images: {MIXED_BLEND}")
        )
    state.error_for = request.signature()
    if state.error:
        return False
    fields = dict(request.fields)
    resume_from, rows_before, first_step, chain = None, [], 0, ()
    if request.resume:
        last = latest_result(state)
        if last is None or last.view is None:
            state.error = "There is no result to continue yet: press Run first."
            return False
        fields["scales"] = 1  # a coarse scale would blur the result again
        resume_from, rows_before = last.result, last.rows_before + last.rows
        first_step = last.view.step  # the continued run counts on from here
        chain = (*last.chain, last.job_id)
    if state.current is not None and not state.current.final:
        runner.cancel(state.current.job_id)  # a new run replaces the one in progress
    files = [(c, w) for c, w in zip(request.styles, request.mix, strict=True) if c.builtin is None]
    builtins = {
        str(c.builtin): w
        for c, w in zip(request.styles, request.mix, strict=True)
        if c.builtin is not None
    }
    if builtins:
        fields["builtin"] = builtins  # the service says it if images are blended in too
    region_styles, masks, what = region_job(request)
    if masks:
        files += region_styles
        fields["regions"] = what
    job = JobRequest(
        content=request.content.data,
        styles=[(c.data, w) for c, w in files],
        settings=fields,
        names=[request.content.name or "", *(c.name or "" for c, _ in files)],
        resume_from=resume_from,
        first_step=first_step,
        masks=masks,
    )
    try:
        view = runner.submit(job)
    except USER_ERRORS as err:
        state.error = sentence(err)
        return False
    state.count += 1
    state.show(
        Shown(
            job_id=view.id,
            number=state.count,
            content=request.content.name or "",
            styles=tuple(c.name or "" for c in request.styles),
            colour=fields["preserve_color"],
            model="Instant" if request.instant else fields["model"],
            strength=fields["strength"],
            signature=request.signature(),
            budget=fields.get("max_seconds"),
            rows_before=rows_before,
            view=view,
            notices=plan_notices(request, fields),
            chain=chain,
        )
    )
    st.query_params[JOB_PARAM] = view.id
    if chain:
        st.query_params[AFTER_PARAM] = ",".join(chain)
    elif AFTER_PARAM in st.query_params:
        del st.query_params[AFTER_PARAM]
    return True


def latest_result(state: PageState) -> Shown | None:
    for shown in (state.current, state.previous):
        if shown is not None and shown.result is not None:
            return shown
    return None


def stop(state: PageState, runner: JobService) -> None:
    if state.current is not None and not state.current.final:
        runner.cancel(state.current.job_id)


def adopt(state: PageState) -> None:
    """Before the widgets are drawn: re-attach to the job the address names (a reload or a
    second tab shows the same run), and once a re-attached job has ended, put its settings
    into the widgets (``restore.restore_job``), so the sidebar says what made the result."""
    if state.current is None and st.query_params.get(JOB_PARAM):
        reattach(state, get_runner())
    shown = state.current
    if shown is not None and shown.restore and shown.result is not None:
        shown.restore = False
        # Restored in full, the sidebar is now the job's; else the result says it is not.
        shown.signature = "" if restore_job(shown.result) else OTHER_SETTINGS


def settle_adopted(state: PageState, request: Request) -> None:
    """After the widgets: a restored job's settings are the sidebar's now. A widget changed
    while the job ran keeps its value (nothing is restored over it) and the result is marked
    as made with other settings."""
    shown = state.current
    if shown is None or shown.signature not in ("", OTHER_SETTINGS):
        return
    if shown.restore:  # still running: note what the sidebar was, to see a change
        shown.seen = shown.seen or request.signature()
        if shown.seen != request.signature():
            shown.restore, shown.signature = False, OTHER_SETTINGS
    elif not shown.signature and shown.result is not None:
        shown.signature = request.signature()


def reattach(state: PageState, runner: JobService) -> None:
    """Show the job the address names (running or done), its chart from the first job of a
    chain of Continues (``?after=``)."""
    job_id = st.query_params.get(JOB_PARAM)
    try:
        runner.get(job_id)  # KeyError: not (or no longer) a job of this service
    except KeyError:
        del st.query_params[JOB_PARAM]
        return
    chain = tuple(filter(None, st.query_params.get(AFTER_PARAM, "").split(",")))
    state.count += 1
    state.show(
        Shown(
            job_id=job_id,
            number=state.count,
            content="",
            styles=(),
            colour="none",
            model="",
            strength=100.0,
            signature="",
            budget=None,
            view=None,
            rows_before=[row for job in chain for row in loss_rows(runner, job)],
            chain=chain,
            restore=True,
        )
    )


def recipe_of(fields: dict):
    """The library's recipe for the optimiser's fields (raises the user's error)."""
    from stransfer.core.recipe import make_recipe

    return make_recipe(
        {k: v for k, v in fields.items() if k not in ("engine", "builtin", "regions")}
    )


def plan_notices(request: Request, fields: dict) -> tuple[str, ...]:
    shape = request.content.shape
    if shape is None or request.instant:
        return ()
    try:
        plan = recipe_of(fields).plan(shape)
    except USER_ERRORS:
        return ()
    return tuple(sentence(ValueError(notice)) + "." for notice in plan.notices)


def measured_plan(request: Request) -> tuple[RunPlan, Rate] | None:
    """The run's plan and the speed this server measured for its model, precision and
    optimiser, or None before a measurement. Raises the user's error for settings no run
    could use."""
    fields = request.fields
    rate = rate_book().get((fields.get("model"), fields.get("precision"), fields.get("optimizer")))
    if request.instant or rate is None or request.content.shape is None:
        return None
    return recipe_of(fields).plan(request.content.shape), rate


def poll_seconds(request: Request) -> float:
    """How often the Output panel asks for a running job's news: POLL_SHARE of the quickest
    step of the plan at the speed this server measured, between POLL_S and MAX_POLL_S; POLL_S
    before anything was measured. Polling no slower than a step shows every step's frame (at
    most one step ends between two polls); polling more often only costs the run CPU (each
    poll, the browser's redraw takes about 0.1 CPU-s). The run's end is caught by
    ``output.await_end`` instead."""
    try:
        measured = measured_plan(request)
    except USER_ERRORS:
        measured = None
    if measured is None:
        return POLL_S
    plan, rate = measured
    quickest = min(rate.step * height * width / 1e6 for height, width in plan.shapes)
    return min(max(POLL_S, quickest * POLL_SHARE), MAX_POLL_S)


def promise_text(request: Request) -> str:
    """How long Run will take, said before it is pressed."""
    fields = request.fields
    if request.instant:
        return (
            f"Run paints at {fields['size']} px in about a second (the preview below is "
            "already the instant engine's picture)."
        )
    budget = fields["max_seconds"]
    if budget:
        return (
            f"Run ends within {format_duration(budget)} with its best picture "
            "(the first run also loads the model)."
        )
    try:
        measured = measured_plan(request)
    except USER_ERRORS:
        return ""
    if measured is None:
        return (
            f"How long {fields['steps']} steps take is measured on the first run; "
            "a time budget says it in advance."
        )
    plan, rate = measured
    seconds = rate.seconds(plan)
    return f"About {format_duration(seconds)} for {fields['steps']} steps (measured here)."

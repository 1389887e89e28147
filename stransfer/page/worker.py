"""The engine's side of ``LocalRunner``: a worker process that runs one job at a time.

It lives in its own process because the page's process must not import TensorFlow: Streamlit
calls ``keras.backend.clear_session()`` after every script run once Keras is imported (which
breaks a run in progress), and a model load would stall the page. Messages to the page:
``("plan", shapes, steps, precision, hashes)``, ``("phase", text)``, ``("step", fields,
image)``, ``("failed", message)`` and ``("end",)``; each is a tuple after the job number.
"""

from __future__ import annotations

import io
import os
import traceback
from typing import Any

from stransfer.core.plan import plan_run
from stransfer.io.images import ImageError, image_sha256, load_image


def worker_main(inbox: Any, outbox: Any, cancelled: Any, weights: str | None) -> None:
    """Run jobs from ``inbox`` until it yields None; ``cancelled.value`` names a job to stop."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    while (message := inbox.get()) is not None:
        number, request, settings = message

        def send(*parts: Any, number: int = number) -> None:
            outbox.put((number, *parts))

        try:
            run_job(number, request, settings, weights, send, cancelled)
        except Exception as err:
            send("failed", one_line(err))
        send("end")


def one_line(err: Exception) -> str:
    """The user's sentence for an error: library errors as they are, others by type."""
    from stransfer.core.settings import SettingsError
    from stransfer.weights import WeightsError

    if isinstance(err, (ImageError, SettingsError, WeightsError, ValueError)):
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return text
    last = traceback.format_exception_only(err)[-1].strip().splitlines()[0]
    return f"the run failed unexpectedly ({last})"


def run_job(number, request, settings, weights, send, cancelled) -> None:
    content = load_image(io.BytesIO(request.content), name=input_name(request, 0))
    styles = [
        (load_image(io.BytesIO(data), name=input_name(request, i + 1)), float(weight))
        for i, (data, weight) in enumerate(request.styles)
    ]
    start_image = None
    if request.resume_from is not None:
        start_image = load_image(io.BytesIO(request.resume_from), name="the result")
    send("phase", "loading the model")
    from stransfer.engine.backbones import get_backbone
    from stransfer.engine.features import load_extractor
    from stransfer.engine.run import _scale_deadline, transfer

    plan = plan_run(content.shape[:2], settings, get_backbone(settings.model).min_side)
    extractor = load_extractor(settings.model, settings.precision, weights)
    hashes = (image_sha256(content), [image_sha256(style) for style, _ in styles])
    deadlines = [
        _scale_deadline(settings.max_seconds, plan, i) for i in range(len(plan.shapes))
    ]  # TODO(engine): a public scale-switch event instead of the private deadline
    send("plan", plan.shapes, plan.steps, extractor.precision, hashes, deadlines)
    height, width = plan.shapes[0]
    send("phase", f"preparing the style at {width}x{height}")
    events = transfer(
        content,
        styles,
        settings,
        extractor,
        init_image=start_image,
        should_stop=lambda: cancelled.value == number,
    )
    for event in events:
        fields = {
            key: getattr(event, key)
            for key in (
                "step",
                "steps",
                "scale",
                "scales",
                "losses",
                "elapsed",
                "seconds_per_step",
                "eta",
                "status",
                "message",
            )
        }
        send("step", fields, event.image)


def input_name(request: Any, index: int) -> str:
    """The display name of input ``index`` (content first) of a job request."""
    names = list(request.names)
    return names[index] if index < len(names) else ("content" if index == 0 else f"style {index}")

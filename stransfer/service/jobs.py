"""Jobs: what the page, the HTTP API and the workers exchange (no TensorFlow here).

A job is a request (settings + input image files with their hashes) plus its state, its
progress events and, once done, its result with the run record. The page and the API only
ever talk to a ``JobService``; the engine runs in worker processes.

This file is the contract between the stages. ``stransfer.service`` implements it with a
durable job store and workers; front ends import only these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
__all__ = [
    "FINAL_STATES",
    "STATES",
    "BadRequest",
    "Busy",
    "Conflict",
    "InvalidSettings",
    "JobError",
    "JobRequest",
    "JobService",
    "JobView",
    "NoSuchJob",
    "TooLarge",
]

STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})

#: The engines a job can run on.
Engine = Literal["optimise", "instant"]


@dataclass(frozen=True)
class JobRequest:
    """What a client submits.

    Attributes:
        content: the content image file's bytes (any format ``io.images.load_image`` takes).
        styles: each style image file's bytes with its blend weight.
        settings: ``TransferSettings`` field names and values (``{"steps": 20, "size": 256}``);
            missing fields take the defaults. Also accepted: ``strength`` (0..100),
            ``engine`` (``optimise`` or ``instant``) and, for an instant job without style
            files, ``builtin`` (a built-in style index 0..25, ``"builtin:N"`` or a blend
            ``{"3": 0.5, "12": 0.5}``).
        names: display names of the inputs (content first), for records and captions.
        resume_from: a PNG to start from (the page's Continue), or None.
        client: who submitted it (fair queueing and per-client limits).
        first_step: steps already done on ``resume_from`` (a continued run counts on from it).
        masks: region mask files (any image; white: the region), what each gets in
            ``settings["regions"]`` (see ``core.regions.parse_blends``); the style blend of
            ``styles`` goes where no mask is.
    """

    content: bytes
    styles: Sequence[tuple[bytes, float]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    names: Sequence[str] = ()
    resume_from: bytes | None = None
    client: str = ""
    first_step: int = 0
    masks: Sequence[bytes] = ()


@dataclass(frozen=True)
class JobView:
    """A job as a client sees it at one moment.

    ``phase`` says in words what is happening (``queued, position 2``, ``loading the model``,
    ``switching to 512x341``, ``step 7/20``); ``frame`` counts preview frames so a client can
    tell when a new one is there; ``first_step`` is the step a continued run started after.
    """

    id: str
    state: JobState
    step: int = 0
    steps: int = 0
    losses: Mapping[str, float] = field(default_factory=dict)
    message: str = ""
    position: int = 0
    phase: str = ""
    seconds_per_step: float = 0.0
    eta: float = 0.0
    elapsed: float = 0.0
    frame: int = 0
    first_step: int = 0
    created: float = 0.0
    updated: float = 0.0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class JobError(Exception):
    """A request the service refuses; ``str(e)`` is one line naming the problem and the fix.

    ``status`` is the HTTP status the API answers with; subclasses fix it. ``field`` names the
    setting the problem is about (``steps``, ``strength``, ``style_weights``, ``engine``...), or
    None; the API returns it beside the message so a client can point at its own control.
    """

    status = 400

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BadRequest(JobError):
    """Malformed input: bad JSON, a file that is not an image, a missing part."""

    status = 400


class InvalidSettings(JobError):
    """A setting that is unknown or out of range."""

    status = 422


class TooLarge(JobError):
    """An upload, an image or a job bigger than the limits allow."""

    status = 413


class NoSuchJob(JobError, KeyError):
    """No job with that id (or not an id of ours at all)."""

    status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "no such job"


class Conflict(JobError):
    """The job is not in a state that allows this (a result before it is done)."""

    status = 409


class Busy(JobError):
    """Too many queued jobs (for this client or in all); retry after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobService(Protocol):
    """Submit, watch, fetch and cancel jobs. Every method is quick: work happens in workers."""

    def submit(self, request: JobRequest) -> JobView:
        """Validate and store the job (durably) before returning it queued."""
        ...

    def get(self, job_id: str) -> JobView:
        """The job's current view; ``NoSuchJob`` (a KeyError) if there is no such job."""
        ...

    def history(self, job_id: str) -> list[JobView]:
        """Every progress view so far, oldest first (for charts and re-attaching)."""
        ...

    def frame(self, job_id: str) -> bytes | None:
        """The latest preview frame as PNG bytes, or None before the first."""
        ...

    def result(self, job_id: str) -> bytes:
        """The finished PNG with its run record in the metadata; raises if not done."""
        ...

    def animation(self, job_id: str) -> bytes | None:
        """The run's evolution as a looping GIF once the job has ended; None before that, and
        for a job without one (an instant job, a one-step run)."""
        ...

    def cancel(self, job_id: str) -> JobView:
        """Cancel a queued or running job (a running one keeps its last image)."""
        ...

    def health(self) -> dict[str, int]:
        """``{"workers": n, "queued": n, "running": n}``."""
        ...

"""Jobs, their durable store, workers and the HTTP API (the engine runs only in workers).

Front ends use ``local_service()`` (or ``LocalService``) through the ``JobService`` contract in
``service.jobs``; nothing imported here loads TensorFlow.
"""

from .jobs import (
    FINAL_STATES,
    STATES,
    BadRequest,
    Busy,
    Conflict,
    InvalidSettings,
    JobError,
    JobRequest,
    JobService,
    JobView,
    NoSuchJob,
    TooLarge,
)
from .limits import Limits
from .local import LocalService, local_service

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
    "Limits",
    "LocalService",
    "NoSuchJob",
    "TooLarge",
    "local_service",
]

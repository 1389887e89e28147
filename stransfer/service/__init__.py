"""Jobs, their durable store, workers and the HTTP API (the engine runs only in workers).

Front ends use ``local_service()`` (or ``LocalService``) through the ``JobService`` contract in
``service.jobs``; nothing imported here loads TensorFlow.
"""

from . import jobs
from .jobs import *  # noqa: F403 - the job contract's names (``jobs.__all__``)
from .limits import Limits
from .local import LocalService, local_service

__all__ = [*jobs.__all__, "Limits", "LocalService", "local_service"]

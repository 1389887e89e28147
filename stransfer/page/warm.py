"""The page's work done before its first visitor (``python -m stransfer page`` runs it).

A cold Streamlit server does everything on the first visit: it imports the page's modules,
decodes the pictures, opens the instant engine's models and starts the job service's worker,
all while that visitor waits (and the worker's TensorFlow import takes both cores from the
browser). Done in a thread as the server starts, the first visit costs what every later one
costs (``python -m bench.page --only visit``).
"""

from __future__ import annotations

import sys
import time

RUNTIME_WAIT_S = 30.0  # Streamlit's runtime exists within a second of start
READY = "stransfer page: ready in"  # the log line once warmed up (tools and tests wait for it)


def _runtime_started(timeout_s: float) -> bool:
    """Wait until Streamlit's runtime exists: the page's ``st.cache_*`` functions then bind
    to its caches as they do in a script run (imported earlier, each logs a warning)."""
    from streamlit import runtime

    deadline = time.monotonic() + timeout_s
    while not runtime.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def warm_up() -> list[str]:
    """Import the page, decode the default pictures, paint their instant preview (which opens
    the instant models; Streamlit's cache then serves it to every visitor), check the models'
    weights and start the job service. Returns what was done, for the log line."""
    done: list[str] = []
    if not _runtime_started(RUNTIME_WAIT_S):
        return done
    # Imported only now: the page's modules, and with them everything its first run needs.
    from stransfer.service import local_service

    from . import main  # noqa: F401 - the rest of the page
    from .inputs import files_of, from_path
    from .preview import available, instant_preview
    from .sidebar import DEFAULT_STRENGTH, DEFAULTS, model_problems, weights_choice
    from .state import Request

    done.append("page imported")
    picks = [next(iter(files.values())) for files in map(files_of, ("content", "style")) if files]
    choices = [from_path(path) for path in picks]
    done.append(f"{len(choices)} pictures decoded")
    if available() and len(choices) == 2 and all(c.ready for c in choices):
        # The default picks' preview, as the first visit's sidebar asks for it.
        fields = {
            "strength": DEFAULT_STRENGTH,
            "preserve_color": DEFAULTS.preserve_color,
            "size": DEFAULTS.size,
        }
        png, _ = instant_preview(Request(choices[0], [choices[1]], fields))
        if png is not None:
            done.append("default preview painted")
    model_problems(weights_choice())  # hashes VGG19's 80 MB file once (cached like the preview)
    done.append("weights checked")
    local_service()  # the worker imports TensorFlow now, not while the first visitor waits
    done.append("job service started")
    return done


def warm_up_and_log() -> None:
    """``warm_up`` with one line on stderr when it is done (the launcher's thread)."""
    started = time.perf_counter()
    try:
        done = warm_up()
    except Exception as err:  # never take the server down: the first visit does it instead
        sys.stderr.write(f"stransfer page: warm-up skipped ({type(err).__name__}: {err})\n")
        return
    took = time.perf_counter() - started
    sys.stderr.write(f"{READY} {took:.1f} s ({', '.join(done)})\n")
    sys.stderr.flush()

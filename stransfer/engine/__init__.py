"""Stage 3: the Gatys optimiser on TensorFlow/Keras.

Backbones -> features -> losses -> optimisers -> the run (``engine.run.transfer``).

TensorFlow is first imported here, for every engine module, through ``_import_tensorflow``:
its native libraries print start-up notices on stderr before ``TF_CPP_MIN_LOG_LEVEL`` can
apply (absl logs them before it is initialised), so they are filtered out of what the
import writes; everything else it writes passes through at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

#: Lines TensorFlow's native libraries write on every start (twice: two libraries), whatever
#: the log level: not a problem to show a user. Anything else on stderr is kept.
STARTUP_NOISE = (
    b"All log messages before absl::InitializeLog() is called are written to STDERR",
    b"oneDNN custom operations are on.",
)


@contextlib.contextmanager
def filtered_stderr(noise: tuple[bytes, ...] = STARTUP_NOISE) -> Iterator[None]:
    """Within the block, drop the lines of file descriptor 2 that contain one of ``noise``.

    Native code writes to the descriptor, not to ``sys.stderr``, so the descriptor goes through
    a pipe; a thread forwards every other line as it comes (an error before a crash still
    shows).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    read_end, write_end = os.pipe()

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(text in line for text in noise):
                    os.write(saved, line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread reads to its end
        thread.join(timeout=10)
        os.close(saved)


def _import_tensorflow() -> None:
    if "tensorflow" in sys.modules:
        return
    with filtered_stderr():
        import tensorflow  # noqa: F401


_import_tensorflow()

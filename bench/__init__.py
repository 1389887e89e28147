"""Benchmarks for Stransfer (not tests): run with ``python -m bench``."""

import os
import subprocess

# Before any benchmark module imports TensorFlow (as ``stransfer/__init__`` does for the library).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cpu() -> str:
    """``lscpu``'s model name, CPU count and the flags that decide the precision and the kernels
    (AVX, AMX, FMA, SSE4): printed by every benchmark, as the CPU changes between machines."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "lscpu not available"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    shown = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
    model, cpus = fields.get("Model name", "?").strip(), fields.get("CPU(s)", "?").strip()
    return f"{model}, {cpus} CPUs, flags: {' '.join(shown)}"


def forget_targets() -> None:
    """Forget the targets earlier runs kept (``stransfer.engine.features.TARGETS``), so that a
    timed run pays for its own, as a user's first run does: without this, the later of two
    runs on the same images (another scale count, another init) would get free targets and
    more steps in its budget."""
    from stransfer.engine.features import TARGETS

    TARGETS.clear()

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

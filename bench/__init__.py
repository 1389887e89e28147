"""Benchmarks for Stransfer (not tests): run with ``python -m bench``."""

import os

# Before any benchmark module imports TensorFlow (as ``stransfer/__init__`` does for the library).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

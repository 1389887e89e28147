"""Benchmarks for Stransfer (not tests): run with ``python -m bench``."""

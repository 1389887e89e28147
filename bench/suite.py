"""The test suite's wall time, each way beside its baseline, in one run.

    python -m bench.suite              # both parts (~12 min on 2 cores)
    python -m bench.suite --only page  # the page tests with and without Keras' clean-up

1. The page tests (``AppTest`` runs in the test process, beside in-thread workers that load
   Keras): baseline, Streamlit's ``keras.backend.clear_session()`` after every script run (a
   full garbage collection), as before issue 10; now, skipped by ``tests/conftest.py``, as in
   the page's own process, which never loads Keras.
2. The whole suite: baseline, one process (``python -m pytest``); now, with ``make test``'s
   options (read from the Makefile: two workers taking whole files).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench import cpu

ROOT = Path(__file__).resolve().parents[1]
PAGE_TESTS = ["tests/test_hostile_inputs.py", "tests/test_app.py", "tests/test_page_preview.py"]
KERAS_CLEANUP = {"STRANSFER_TEST_KERAS_CLEANUP": "1"}  # tests/conftest.py: Streamlit's default
BASE = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def make_test_args() -> list[str]:
    """The pytest options of ``make test`` (read from the Makefile, where they live)."""
    recipe = re.search(r"^test:.*\n\t.*-m pytest(.*)$", (ROOT / "Makefile").read_text(), re.M)
    if recipe is None:
        raise SystemExit("no `python -m pytest` line under the Makefile's test target")
    return recipe.group(1).split()


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds of one pytest run, and its summary line (failures are reported, not fatal:
    the baseline's own failures are part of what it shows)."""
    started = time.perf_counter()
    out = subprocess.run(
        [*BASE, *args], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    took = time.perf_counter() - started
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-300:]
    return took, summary


def report(title: str, rows: list[tuple[str, list[str], dict[str, str] | None]]) -> None:
    print(f"\n{title}")
    results = [(name, *timed(args, env)) for name, args, env in rows]
    for name, took, summary in results:
        print(f"  {name:38}{took:7.1f} s   ({summary})")
    print(f"  ratio baseline / now: {results[0][1] / results[1][1]:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.suite")
    parser.add_argument("--only", choices=("page", "suite"))
    args = parser.parse_args(argv)
    print(cpu())
    if args.only in (None, "page"):
        report(
            "page tests (" + ", ".join(Path(p).stem for p in PAGE_TESTS) + ")",
            [
                ("baseline: Keras clean-up per run", PAGE_TESTS, KERAS_CLEANUP),
                ("now: none, as in the page's process", PAGE_TESTS, None),
            ],
        )
    if args.only in (None, "suite"):
        workers = make_test_args()
        report(
            "whole suite",
            [
                ("baseline: one process", [], None),
                (f"now: make test ({' '.join(workers)})", workers, None),
            ],
        )


if __name__ == "__main__":
    main()

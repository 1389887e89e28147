"""``stransfer worker``: a worker process that runs jobs.

stransfer worker [--data DIR]          run jobs of the local data folder's queue
stransfer worker --join redis://HOST:6379/0
                                       join the distributed queue from any machine
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stransfer worker",
        description="Run style transfer jobs: from the local data folder's queue, or from a "
        "Redis broker (--join) so that workers on several machines share one queue.",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="data folder (default: $STRANSFER_DATA or ~/.local/share/stransfer)",
    )
    parser.add_argument(
        "--join",
        metavar="ADDRESS",
        default=None,
        help="broker address, redis://HOST:PORT/DB (the serve process's STRANSFER_BROKER)",
    )
    parser.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.join:
        from ..service.broker import run_worker

        try:
            return run_worker(args.join, parent=args.parent)
        except ValueError as err:
            sys.stderr.write(f"stransfer worker: error: {err}\n")
            return 2
    from ..service.worker import serve_store

    return serve_store(args.data, parent=args.parent)

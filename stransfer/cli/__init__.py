"""The ``stransfer`` command line: a style transfer run by default, or a named subcommand.

    stransfer CONTENT STYLE [STYLE ...] -o OUT.png [options]   (``cli.transfer``; ``--instant``
                                                               runs ``cli.instant``)
    stransfer SUBCOMMAND ...                                   (see ``SUBCOMMANDS``)

Each subcommand is a module of this package with ``main(argv) -> int``; it is imported only
when used, so ``--help`` of one never pays for another's dependencies. Shared pieces (exit
statuses, one-line errors, output checks, writing results) are in ``cli.common``.
"""

from __future__ import annotations

import importlib
import sys

#: Subcommand -> what it does (one line of ``stransfer --help``); each is the module of this
#: package of the same name. Anything else is a transfer run's arguments.
SUBCOMMANDS: dict[str, str] = {
    "page": "the Streamlit page, as `make run` starts it",
    "serve": "the HTTP API and its workers (API docs at /docs)",
    "worker": "a worker for serve's jobs, here or elsewhere (--join)",
    "video": "stylise a video: video IN.mp4 STYLE -o OUT.mp4",
    "weights": "offline weights: weights status | install MODEL",
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in SUBCOMMANDS:
        module = importlib.import_module(f".{args[0]}", __name__)
        return module.main(args[1:])
    from .transfer import main as transfer_main

    return transfer_main(args)

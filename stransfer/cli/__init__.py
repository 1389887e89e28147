"""The ``stransfer`` command line: a style transfer run by default, or a named subcommand.

    stransfer CONTENT STYLE [STYLE ...] -o OUT.png [options]   (``cli.transfer``)
    stransfer SUBCOMMAND ...                                   (see ``SUBCOMMANDS``)

Each subcommand is a module of this package with ``main(argv) -> int``; it is imported only
when used, so ``--help`` of one never pays for another's dependencies.
"""

from __future__ import annotations

import importlib
import sys

#: Subcommand -> module in this package. Anything else is a transfer run's arguments.
SUBCOMMANDS: dict[str, str] = {
    "serve": "serve",
    "video": "video",
    "weights": "weights",
    "worker": "worker",
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in SUBCOMMANDS:
        module = importlib.import_module(f".{SUBCOMMANDS[args[0]]}", __name__)
        return module.main(args[1:])
    if "--instant" in args:  # the feed-forward engine: never imports TensorFlow
        from .instant import main as instant_main

        return instant_main(args)
    from .transfer import main as transfer_main

    return transfer_main(args)

"""``python -m stransfer``: the command-line interface (see ``python -m stransfer --help``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

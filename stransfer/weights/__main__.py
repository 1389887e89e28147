"""``python -m stransfer.weights``: the same as ``stransfer weights`` (see ``cli.weights``)."""

from ..cli.weights import main

if __name__ == "__main__":
    raise SystemExit(main())

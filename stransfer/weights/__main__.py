"""``python -m stransfer.weights``: install offline weights, or show what each model resolves to."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())

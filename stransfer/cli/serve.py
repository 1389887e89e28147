"""``stransfer serve``: the HTTP API with its workers, on one machine by default.

    stransfer serve [--host 127.0.0.1] [--port 8000] [--workers N] [--data DIR]

With ``STRANSFER_BROKER=redis://HOST:PORT/DB`` the jobs go through that broker, and
``stransfer worker --join`` on other machines adds workers. The API process never imports
TensorFlow: the engine runs in the worker processes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stransfer serve",
        description="Serve the HTTP API (OpenAPI at /docs) and run its worker processes.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes to start on this machine (default: $STRANSFER_WORKERS or 1; "
        "0 with a broker: only workers that join from elsewhere)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="data folder for jobs and results (default: $STRANSFER_DATA or "
        "~/.local/share/stransfer)",
    )
    parser.add_argument(
        "--broker",
        metavar="URL",
        default=os.environ.get("STRANSFER_BROKER") or None,
        help="Redis URL of the distributed queue (default: $STRANSFER_BROKER; none: local "
        "workers on this machine's job store)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        sys.stderr.write(f"stransfer serve: error: --port {args.port} is not 0 to 65535\n")
        return 2
    import uvicorn

    from ..service.api import create_app
    from ..service.local import DEFAULT_WORKERS, LocalService
    from ..service.worker import setting

    workers = args.workers if args.workers is not None else int(setting("WORKERS", DEFAULT_WORKERS))
    if workers < 0:
        sys.stderr.write("stransfer serve: error: --workers must be 0 or more\n")
        return 2
    try:
        service = LocalService(args.data, workers=workers, broker=args.broker)
    except (OSError, ValueError) as err:
        sys.stderr.write(f"stransfer serve: error: {err}\n")
        return 2
    with service:
        _server(uvicorn, create_app(service), args.host, args.port).run()
    return 0


def address(host: str, port: int) -> str:
    """The URL of ``host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(uvicorn: Any, app: Any, host: str, port: int) -> Any:
    """uvicorn's server for ``app``, saying once it listens where (the port it got, for
    ``--port 0``); uvicorn's own lines are at warning level."""

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                bound = self.servers[0].sockets[0].getsockname()
                sys.stderr.write(f"stransfer serve: {address(*bound[:2])} (API docs at /docs)\n")
                sys.stderr.flush()

    return Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

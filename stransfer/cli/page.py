"""``stransfer page``: the Streamlit page, warmed up before its first visitor (``make run``).

    stransfer page [STREAMLIT OPTIONS]     e.g. --server.port 8600 --server.address 0.0.0.0

The same as ``streamlit run app.py`` from the project folder (its ``.streamlit/config.toml``
applies; every option is passed on), plus ``page.warm`` in a thread as the server starts: the
first visitor's pickers and pictures then draw as fast as any later visitor's.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

SCRIPT = "app.py"  # in ``page.project_folder()``


def page_script() -> Path | None:
    """The page's ``app.py`` (one that imports ``stransfer.page``), or None if there is none."""
    from ..page import project_folder

    path = project_folder() / SCRIPT
    if path.is_file() and "stransfer.page" in path.read_text(errors="replace"):
        return path
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(__doc__ or "")
        return 0
    app = page_script()
    if app is None:
        sys.stderr.write(
            f"stransfer page: error: no Stransfer {SCRIPT} here; run it in the project folder\n"
        )
        return 2
    from streamlit.web import cli as streamlit_cli

    from ..page.warm import warm_up_and_log

    os.chdir(app.parent)  # Streamlit reads .streamlit/config.toml from the working folder
    threading.Thread(target=warm_up_and_log, name="stransfer-warm-up", daemon=True).start()
    try:
        streamlit_cli.main.main(args=["run", str(app), *args], prog_name="streamlit")
    except SystemExit as end:
        return end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    return 0

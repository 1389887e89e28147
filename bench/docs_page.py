"""The API's `/docs` page offline: time for Swagger UI to draw the operations, and bytes.

    python -m bench.docs_page [--runs 5] [--other DIR]

Starts ``python -m stransfer serve --workers 0`` on 127.0.0.1 and opens ``/docs`` in headless
Chromium with every request beyond 127.0.0.1 aborted; prints the median time from navigation to
the first drawn operation, the bytes the page loaded, and the size of the Swagger UI files on
disk. ``--other DIR`` measures another Swagger UI distribution folder (``swagger-ui-bundle.js``
and ``swagger-ui.css`` in it, e.g. an unpacked wheel of another package) in the same run, on
the same API's OpenAPI document, served from 127.0.0.1 too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import Server

from bench import cpu

FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
OPERATION = "#swagger-ui .opblock-summary-path"


def _files_size(folder: Path) -> int:
    return sum((folder / name).stat().st_size for name in FILES)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Static files in UTF-8 (as uvicorn serves them), without a log line per request."""

    extensions_map: ClassVar[dict[str, str]] = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".html": "text/html; charset=utf-8",
        ".json": "application/json",
    }

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _other_page(folder: Path, spec: bytes) -> Iterator[str]:
    """A static page on 127.0.0.1: ``folder``'s Swagger UI on the API's OpenAPI document."""
    from fastapi.openapi.docs import get_swagger_ui_html

    site = Path(tempfile.mkdtemp())
    for name in FILES:
        (site / name).write_bytes((folder / name).read_bytes())
    (site / "openapi.json").write_bytes(spec)
    html = get_swagger_ui_html(
        openapi_url="openapi.json",
        title="other",
        swagger_js_url=FILES[0],
        swagger_css_url=FILES[1],
        swagger_favicon_url="data:,",
    )
    (site / "index.html").write_bytes(html.body)
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()


def _load(browser, url: str) -> tuple[float, int, list[str]]:
    """Seconds to the first drawn operation, bytes loaded, and requests refused."""
    refused: list[str] = []

    def only_loopback(route):
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    context = browser.new_context()  # a cold cache each time
    try:
        page = context.new_page()
        page.route("**/*", only_loopback)
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.locator(OPERATION).first.wait_for(timeout=60_000)
        seconds = time.perf_counter() - start
        loaded = page.evaluate(
            "() => performance.getEntriesByType('navigation').concat("
            "performance.getEntriesByType('resource'))"
            ".reduce((n, e) => n + (e.encodedBodySize || 0), 0)"
        )
        return seconds, int(loaded), refused
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.docs_page", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--other", type=Path, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    import fastapi_offline
    from playwright.sync_api import sync_playwright
    from test_e2e_browser import CHROMIUM_ARGS, _chromium

    ours = Path(fastapi_offline.__file__).parent / "static"
    server = Server(Path(tempfile.mkdtemp()), workers=0).start()
    try:
        spec = requests.get(server.url + "/openapi.json", timeout=10).content
        with contextlib.ExitStack() as stack:
            pages = {"fastapi-offline (served at /docs)": (server.url + "/docs", ours)}
            if args.other:
                url = stack.enter_context(_other_page(args.other, spec))
                pages[f"other: {args.other}"] = (url, args.other)
            times: dict[str, list[float]] = {name: [] for name in pages}
            loaded: dict[str, int] = {}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=_chromium(), args=CHROMIUM_ARGS
                )
                try:
                    for _ in range(args.runs):  # alternate, so both see the same load
                        for name, (url, _folder) in pages.items():
                            seconds, size, refused = _load(browser, url)
                            if refused:
                                raise SystemExit(f"{name} asked for the network: {refused}")
                            times[name].append(seconds)
                            loaded[name] = size
                finally:
                    browser.close()
    finally:
        server.stop()
    print(cpu())
    print(f"/docs offline in headless Chromium, {args.runs} cold loads each, alternated:")
    for name, (_url, folder) in pages.items():
        median = statistics.median(times[name])
        print(
            f"  {name}: first operation drawn after {median:.2f} s median "
            f"(min {min(times[name]):.2f}, max {max(times[name]):.2f}); page loaded "
            f"{loaded[name] / 2**20:.2f} MiB; {', '.join(FILES)} on disk "
            f"{_files_size(folder) / 2**20:.2f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

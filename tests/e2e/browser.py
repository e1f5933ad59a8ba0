"""A real browser for end-to-end tests: Debian's Chromium driven by Playwright.

Playwright's own browser builds are never downloaded; the system's ``chromium`` is
launched instead, and tests that need it are skipped on a machine without it (CI installs
it) or in a virtualenv made before playwright joined the test extra. Pages are served by a
tiny HTTP server on a loopback port of their own, so that the page and the API are on
different origins, as a frontend on ``localhost:3000`` would be.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

__all__ = ["CHROMIUM", "chromium", "needs_chromium", "serve_page"]

CHROMIUM = shutil.which("chromium")
_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or not _PLAYWRIGHT,
    reason="needs Debian's chromium and the test extra's playwright (scripts/test installs it)",
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium; the sandbox is off because tests may run as root."""
    from playwright.async_api import async_playwright  # only where the test extra is

    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.contextmanager
def serve_page(html: str) -> Iterator[str]:
    """``html`` at ``/`` of a new loopback origin, which is yielded (``http://127.0.0.1:N``)."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test's assertions say what happened."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""Run the mail catcher in a background thread on ephemeral ports, for tests and tools."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import uvicorn

from ..services import free_port, wait_http
from .catcher import build


@contextlib.contextmanager
def running_mail() -> Iterator[tuple[str, int]]:
    """Yields (HTTP base URL, SMTP port) of a catcher of its own."""
    http_port, smtp_port = free_port(), free_port()
    app, _box = build("127.0.0.1", http_port, smtp_port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{http_port}"
    wait_http(url + "/livez", timeout=30)
    try:
        yield url, smtp_port
    finally:
        server.should_exit = True
        thread.join(timeout=10)

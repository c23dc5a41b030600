"""Run the API in a background thread on an ephemeral port, for tests and tools."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from .app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_api(db_url: str, storage_root: Path | None = None) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) of an API serving `db_url`."""
    import tempfile

    tmp = None
    if storage_root is None:
        tmp = tempfile.TemporaryDirectory(prefix="koepon-storage-")
        storage_root = Path(tmp.name)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db_url, storage_root=storage_root), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    else:
        raise RuntimeError("the API did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if tmp:
            tmp.cleanup()

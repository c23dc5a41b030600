"""Run the API in a background thread on an ephemeral port, for tests and tools."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from ..services import free_port, wait_http
from .__main__ import KEEPALIVE
from .app import create_app

# The app behind each running test API, by base URL (a test may change its Auth settings).
APPS: dict = {}


@contextlib.contextmanager
def running_api(db_url: str, storage_root: Path | None = None,
                sign_in_sign_ups: int = 100_000, auth: dict | None = None) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) of an API serving `db_url`.

    `auth`: settings of the local Auth to change from config.toml's (e.g. enable_confirmations,
    smtp_port of a test's own mail catcher); e-mail links always point at this API. Without an
    smtp_port the API gets a mail catcher of its own, as `koepon up` gives it one (Auth's e-mail
    must go somewhere; the fixed port 54325 belongs to the developer's stack).

    `sign_in_sign_ups`: the per-IP limit of sign-in and sign-up requests per 5 minutes. Every test
    client comes from 127.0.0.1, so tests get a high one unless they test the limit itself."""
    import tempfile

    tmp = None
    stack = contextlib.ExitStack()
    auth = dict(auth or {})
    if "smtp_port" not in auth:
        from ..mail.testing import running_mail

        _mail_url, auth["smtp_port"] = stack.enter_context(running_mail())
    if storage_root is None:
        tmp = tempfile.TemporaryDirectory(prefix="koepon-storage-")
        storage_root = Path(tmp.name)
    port = free_port()
    app = create_app(db_url, storage_root=storage_root)
    app.state.api.auth.limits.sign_in_sign_ups = sign_in_sign_ups
    config = app.state.api.auth.config
    config.external_url = f"http://127.0.0.1:{port}/auth/v1"
    for key, value in auth.items():
        if not hasattr(config, key):
            raise TypeError(f"no Auth setting {key}")
        setattr(config, key, value)
    # proxy_headers=False: the API is the edge, as `python -m koepon.localstack.api` serves it.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, proxy_headers=False,
                                           timeout_keep_alive=KEEPALIVE))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", timeout=30)
    APPS[url] = app
    try:
        yield url
    finally:
        APPS.pop(url, None)
        server.should_exit = True
        thread.join(timeout=10)
        stack.close()
        if tmp:
            tmp.cleanup()

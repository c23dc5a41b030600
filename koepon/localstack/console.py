"""The console's server: the static files of `console/` as they are (no build step), its two pinned
libraries from `console/node_modules`, and `/config.json`, the only place the page learns where the
API, the payment service and the (fake) card form live and which anon key to use.

`koepon up` runs it on 54323 (`python -m koepon.localstack.console`); the browser tests run it on a
free port in a thread (`running_console`). Every answer carries a Content-Security-Policy without
'unsafe-inline' or 'unsafe-eval': the page runs only its own module files and the two libraries, and
talks only to the origins in its configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..settings import ANON_KEY

ROOT = Path(__file__).resolve().parents[2] / "console"
# The two libraries the page loads, by the URL it uses: their UMD builds define `supabase` and
# `Chart` on window, so the page needs neither a bundler nor an (inline) import map.
VENDOR = {
    "supabase.js": "@supabase/supabase-js/dist/umd/supabase.js",
    "chart.js": "chart.js/dist/chart.umd.js",
}
# What the page may fetch from this server: its own files, never package.json or node_modules.
STATIC_SUFFIXES = {".html", ".js", ".css", ".svg", ".png", ".json", ".ico", ".webmanifest"}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".json": "application/json", ".ico": "image/x-icon", ".webmanifest": "application/manifest+json"}


@dataclass(frozen=True)
class ConsoleConfig:
    supabase_url: str
    anon_key: str
    payments_url: str
    # Where the card form confirms a PaymentIntent (Stripe.js's API base) and with which publishable
    # key: the local fake Stripe locally, https://api.stripe.com with a pk_live_/pk_test_ key in production.
    stripe_api_base: str
    stripe_publishable_key: str = "pk_test_local"
    # The local mail catcher's web page, when the stack has one (password reset e-mails).
    mail_url: str | None = None


def _origin(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def csp(cfg: ConsoleConfig) -> str:
    api = _origin(cfg.supabase_url)
    ws = api.replace("http://", "ws://").replace("https://", "wss://")
    connect = " ".join(dict.fromkeys(["'self'", api, ws, _origin(cfg.payments_url), _origin(cfg.stripe_api_base)]))
    # Reward previews play signed Storage URLs (API origin) or blobs fetched from them.
    media = f"'self' blob: data: {api}"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src {media}; media-src {media}; connect-src {connect}; font-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def create_console_app(cfg: ConsoleConfig, root: Path = ROOT) -> Starlette:
    policy = csp(cfg)
    headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}
    modules = root / "node_modules"

    async def config(_request):
        return JSONResponse(asdict(cfg), headers=headers)

    async def vendor(request):
        name = request.path_params["name"]
        if name not in VENDOR:
            return Response("not found", 404, headers=headers)
        path = modules / VENDOR[name]
        if not path.is_file():
            return Response(f"{VENDOR[name]} is not installed: run scripts/bootstrap.sh (npm ci in console/)",
                            503, headers=headers)
        return FileResponse(path, media_type=TYPES[".js"], headers=headers)

    async def static(request):
        rel = request.path_params.get("path") or "index.html"
        path = (root / rel).resolve()
        if (root not in path.parents or "node_modules" in path.parts or path.name.startswith("package")
                or path.suffix not in STATIC_SUFFIXES or not path.is_file()):
            # The page routes with the fragment (#/...), so any other path is simply not ours.
            return Response("not found", 404, headers=headers)
        return FileResponse(path, media_type=TYPES[path.suffix], headers=headers)

    async def health(_request):
        return JSONResponse({"status": "ok"}, headers=headers)

    return Starlette(routes=[
        Route("/health", health),
        Route("/config.json", config),
        Route("/vendor/{name}", vendor),
        Route("/", static),
        Route("/{path:path}", static),
    ])


@contextlib.contextmanager
def running_console(cfg: ConsoleConfig, port: int | None = None) -> Iterator[str]:
    """The console on `port` (default: a free one) in a thread (tests); yields its base URL."""
    import uvicorn

    from .services import free_port, wait_http

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(create_console_app(cfg), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", timeout=30)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(prog="python -m koepon.localstack.console", description="the Koepon web console")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api-url", required=True)
    ap.add_argument("--payments-url", required=True)
    ap.add_argument("--stripe-api-base", required=True, help="where the card form confirms payments")
    ap.add_argument("--anon-key", default=ANON_KEY)
    ap.add_argument("--mail-url", default=None)
    args = ap.parse_args(argv)
    cfg = ConsoleConfig(args.api_url, args.anon_key, args.payments_url, args.stripe_api_base,
                        mail_url=args.mail_url)
    print(json.dumps({"console": f"http://{args.host}:{args.port}", **asdict(cfg)}), flush=True)
    uvicorn.run(create_console_app(cfg), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

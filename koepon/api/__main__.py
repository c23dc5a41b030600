"""`python -m koepon.api --port N`: serve the local API (uvicorn; uvloop/httptools when installed)."""

from __future__ import annotations

import argparse
import importlib.util
import os

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description="Koepon local Supabase-compatible API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=54321)
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes (each with its own pool and schema cache)")
    args = parser.parse_args()
    if args.db_url:
        os.environ["KOEPON_DB_URL"] = args.db_url
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    uvicorn.run("koepon.api.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, loop=loop, http=http, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

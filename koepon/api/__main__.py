"""`python -m koepon.api --port N`: serve the local API (uvicorn, one process)."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Koepon local Supabase-compatible API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=54321)
    parser.add_argument("--db-url", default=None)
    args = parser.parse_args()
    uvicorn.run(create_app(args.db_url), host=args.host, port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()

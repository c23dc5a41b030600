"""`python -m koepon.localstack.mail --port 54324 --smtp-port 54325`: the mail catcher."""

from __future__ import annotations

import argparse

import uvicorn

from . import MAIL_PORT, SMTP_PORT
from .catcher import build


def main() -> None:
    parser = argparse.ArgumentParser(description="Koepon local mail catcher (SMTP in, Mailpit API out)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=MAIL_PORT)
    parser.add_argument("--smtp-port", type=int, default=SMTP_PORT)
    args = parser.parse_args()
    app, _box = build(args.host, args.port, args.smtp_port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""`python -m koepon.localstack.api --port N`: serve the local API (uvicorn; uvloop/httptools when installed)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

# Seconds an idle keep-alive connection stays open. uvicorn's default (5 s) equals httpx's
# keepalive_expiry (the payment service's, the soak's and the Python clients' pools), so a client
# could send a request on a connection the server was closing ("Connection reset by peer",
# "Server disconnected"): the server must keep a connection longer than its clients do.
KEEPALIVE = 75


def _nodelay(sock: socket.socket) -> socket.socket:
    """TCP_NODELAY on the listening socket; Linux copies it to every accepted connection.

    With --workers > 1 uvicorn binds the socket itself as socket.socket(family) (proto 0), and
    asyncio only sets TCP_NODELAY on transports whose socket says proto == IPPROTO_TCP: every
    response then waited for the client's delayed ACK (Nagle), a fixed ~40 ms per keep-alive
    request, which the benchmarks measured as a 40 ms floor on every call. With one worker
    uvicorn's create_server(host, port) sets it.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


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
    config = uvicorn.Config("koepon.localstack.api.app:create_app", factory=True, host=args.host, port=args.port,
                            workers=args.workers, loop=loop, http=http, log_level="warning", access_log=False,
                            # Realtime as Phoenix serves it: no compression, no server pings
                            # (clients heartbeat; an idle socket is closed after 60 s).
                            ws_per_message_deflate=False, ws_ping_interval=None,
                            # This server is the edge: uvicorn's default trusts X-Forwarded-For
                            # from 127.0.0.1, so any local client could choose the address the
                            # database sees (rate limits, the download log).
                            proxy_headers=False, timeout_keep_alive=KEEPALIVE)
    if config.workers > 1:
        Multiprocess(config, sockets=[_nodelay(config.bind_socket())]).run()
    else:
        server = uvicorn.Server(config)
        server.run(sockets=[_nodelay(config.bind_socket())])
        if not server.started:
            raise SystemExit(3)


if __name__ == "__main__":
    main()

"""Is a port free for a server to listen on, taken by another server, or only held for a while?

The stack's fixed ports (54321-54329) lie inside Linux's default ephemeral range (32768-60999),
so after a load test a *client* socket may have used, say, 127.0.0.1:54322 as its own port. Once
that connection is closed the kernel keeps the port in TIME-WAIT for 60 s (TCP_TIMEWAIT_LEN, not
tunable), and a server's bind() fails with "Address already in use" although nothing listens.
`ensure_free` tells the cases apart: another server listening (refuse at once, say so), a port
only held by TIME-WAIT (wait it out, up to the TIME-WAIT period, saying why), a port held by a
live client connection (refuse: it may last for ever). Machines that run load tests can keep the
stack's ports out of the ephemeral range with net.ipv4.ip_local_reserved_ports (docs/operations.md).
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from collections.abc import Callable

import psutil

from ..errors import KoeponError

# Linux keeps a closed connection's port in TIME-WAIT for 60 s; a little slack for the timer wheel.
TIME_WAIT_SECONDS = 65.0
RESERVED_PORTS_HINT = ("to keep this from happening, reserve the stack's ports from the ephemeral range: "
                       "sysctl -w net.ipv4.ip_local_reserved_ports=54321-54329 (docs/operations.md)")


def port_state(port: int, host: str = "127.0.0.1") -> str:
    """'free', 'listening' (a server accepts on it), 'time_wait' (only closed connections in TIME-WAIT
    hold it) or 'held' (a live connection uses it as its local port)."""
    with socket.socket() as s:
        s.settimeout(0.3)
        if s.connect_ex((host, port)) == 0:
            return "listening"
    with socket.socket() as s:
        # As the servers bind (PostgreSQL, uvicorn and gunicorn all set SO_REUSEADDR).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return "free"
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    states = {c.status for c in _tcp_connections() if c.laddr and c.laddr.port == port}
    if states and states <= {psutil.CONN_TIME_WAIT}:
        return "time_wait"
    if psutil.CONN_LISTEN in states:
        return "listening"  # on another address of this machine
    return "held"


def _tcp_connections():
    try:
        return psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # macOS without root: only our own sockets are visible
        return []


def ensure_free(port: int, what: str, host: str = "127.0.0.1", wait: float = TIME_WAIT_SECONDS,
                taken_hint: str = "stop it and try again", notify: Callable[[str], None] | None = None,
                state: Callable[[int, str], str] = port_state) -> None:
    """Returns when a server can bind `port`; raises KoeponError when another program has it."""
    notify = notify or (lambda msg: print(msg, file=sys.stderr, flush=True))
    deadline = time.monotonic() + wait
    told = False
    while True:
        now = state(port, host)
        if now == "free":
            if told:
                notify(f"port {port} is free again; starting {what}")
            return
        if now == "listening":
            raise KoeponError(f"port {port} is already taken by another program listening on it ({what} "
                              f"cannot start there): {taken_hint}")
        if now == "held":
            raise KoeponError(f"port {port} for {what} is used by an open client connection of another "
                              f"program (nothing listens on it); close that program, then try again. "
                              f"{RESERVED_PORTS_HINT}")
        if time.monotonic() >= deadline:
            raise KoeponError(f"port {port} for {what} is still held by a closed connection in TIME-WAIT "
                              f"after {wait:.0f}s; try again. {RESERVED_PORTS_HINT}")
        if not told:
            notify(f"port {port} for {what} is held by a closed client connection in TIME-WAIT (nothing "
                   f"listens on it; the kernel frees it within 60 s): waiting. {RESERVED_PORTS_HINT}")
            told = True
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

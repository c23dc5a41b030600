"""Ports held by TIME-WAIT are told from ports another server listens on (koepon/ports.py).

The TIME-WAIT here is real: a client socket bound to the port connects to a listener and closes
first (the active closer keeps TIME-WAIT), exactly what a load test leaves behind when the kernel
picks one of the stack's ports as a client's ephemeral port.
"""

from __future__ import annotations

import socket
import time

import pytest

from koepon.db.cluster import Cluster
from koepon.db.ports import ensure_free, port_state
from koepon.errors import KoeponError
from koepon.settings import Paths

from .conftest import free_port


def _time_wait_on(port: int) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.socket()  # no SO_REUSEADDR, as an ordinary client
        client.bind(("127.0.0.1", port))
        client.connect(listener.getsockname())
        server_side, _ = listener.accept()
        client.close()  # the client closes first: its port goes to TIME-WAIT
        server_side.recv(1)
        server_side.close()
    deadline = time.monotonic() + 5
    while port_state(port) != "time_wait" and time.monotonic() < deadline:
        time.sleep(0.05)


def _time_wait_port() -> int:
    """A free port put in TIME-WAIT; another program on this busy machine may grab a free port
    between the look and the bind, so a few ports are tried."""
    for _ in range(5):
        port = free_port()
        try:
            _time_wait_on(port)
        except OSError:
            continue
        if port_state(port) == "time_wait":
            return port
    raise AssertionError("could not put a port in TIME-WAIT")


def test_a_port_held_by_time_wait_is_not_a_listener():
    port = _time_wait_port()
    assert port_state(port) == "time_wait"
    assert port_state(free_port()) == "free"
    # The bug this guards against: nothing answers on the port, yet a server cannot bind it.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            server.bind(("127.0.0.1", port))


def test_time_wait_is_waited_for_with_a_message_then_refused_after_the_bound():
    port = _time_wait_port()
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(KoeponError) as err:
        ensure_free(port, "the api service", wait=1.0, notify=said.append)
    assert time.monotonic() - started >= 1.0, "it waited"
    assert len(said) == 1 and "TIME-WAIT" in said[0] and "nothing listens" in said[0]
    assert "ip_local_reserved_ports" in said[0]
    assert "TIME-WAIT" in str(err.value) and "ip_local_reserved_ports" in str(err.value)


def test_waiting_ends_as_soon_as_the_kernel_frees_the_port():
    states = iter(["time_wait", "time_wait", "free"])
    said: list[str] = []
    ensure_free(1, "PostgreSQL", wait=30, notify=said.append, state=lambda port, host: next(states))
    assert len(said) == 2 and "waiting" in said[0] and "free again" in said[1]


def test_a_listener_is_refused_at_once_without_waiting():
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        assert port_state(port) == "listening"
        started = time.monotonic()
        with pytest.raises(KoeponError, match="already taken by another program listening"):
            ensure_free(port, "the payments service", wait=30, notify=pytest.fail)
        assert time.monotonic() - started < 5


def test_a_live_client_connection_on_the_port_is_refused():
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.socket() as client:
            client.bind(("127.0.0.1", port))
            client.connect(listener.getsockname())
            conn, _ = listener.accept()
            with conn:
                assert port_state(port) == "held"
                with pytest.raises(KoeponError, match="open client connection"):
                    ensure_free(port, "the api service", wait=30, notify=pytest.fail)


def test_db_start_on_a_time_wait_port_says_why_it_waits(tmp_path, monkeypatch):
    """`koepon db start`'s cluster: a TIME-WAIT port gets the message, not PostgreSQL's bind error."""
    port = _time_wait_port()
    cluster = Cluster(Paths(tmp_path), port=port)
    said: list[str] = []
    import koepon.db.cluster as cluster_module

    original = cluster_module.ensure_free
    # Only the bound is shortened (the real one is the 60 s TIME-WAIT period).
    monkeypatch.setattr(cluster_module, "ensure_free",
                        lambda *a, **kw: original(*a, **{**kw, "wait": 0.5, "notify": said.append}))
    with pytest.raises(KoeponError, match="TIME-WAIT"):
        cluster.start()
    assert said and f"port {port} for PostgreSQL" in said[0]
    assert not cluster.initialised(), "no data directory left behind"


def test_koepon_up_services_on_a_time_wait_port_say_why(tmp_path, monkeypatch):
    """`koepon up`'s API and payment service get the same check before they are spawned."""
    import koepon.localstack.services as stack_module

    port = _time_wait_port()
    said: list[str] = []
    original = stack_module.ensure_free
    monkeypatch.setattr(stack_module, "ensure_free",
                        lambda *a, **kw: original(*a, **{**kw, "wait": 0.5, "notify": said.append}))
    svc = stack_module.Service("payments", ("false",), port, "/health")
    with pytest.raises(KoeponError, match="TIME-WAIT"):
        stack_module.start(Paths(tmp_path), svc, {})
    assert said and f"port {port} for the payments service" in said[0]
    assert not (tmp_path / ".koepon" / "run" / "payments.pid").exists(), "nothing was spawned"

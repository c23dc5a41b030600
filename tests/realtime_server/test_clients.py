"""Broadcast and Presence with the real clients: the Python `realtime` package (vsn 1.0.0) and
supabase-js (vsn 2.0.0, binary broadcast frames), talking to each other through the local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid

import pytest
import uvicorn
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from koepon.localstack.api.app import create_app
from koepon.settings import ANON_KEY


def rt_url(api_url: str) -> str:
    return api_url.replace("http://", "ws://") + "/realtime/v1"


async def until(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def subscribed(channel, timeout=10.0):
    states = []
    await channel.subscribe(lambda s, e: states.append((s, e)))
    await until(lambda: states, timeout, "a subscribe state")
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED, states
    return channel


def test_python_clients_broadcast_to_each_other(api_url):
    async def main():
        a = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
        b = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
        await a.connect()
        await b.connect()
        got = []
        ca = await subscribed(a.channel("chat", {"config": {"broadcast": {"ack": True}}}))
        cb = b.channel("chat")
        cb.on_broadcast("msg", lambda m: got.append(m))
        await subscribed(cb)
        await ca.send_broadcast("msg", {"text": "こんにちは"})
        await until(lambda: got, what="the broadcast")
        assert got == [{"event": "msg", "payload": {"text": "こんにちは"}}]
        await a.close()
        await b.close()

    asyncio.run(main())


def test_supabase_js_and_python_exchange_broadcasts(js, api_url):
    client = js()
    client.send(op="channel", name="c", topic="mixed", broadcast=["ping", "pong"],
                config={"broadcast": {"ack": True}})
    assert client.status("c")["status"] == "SUBSCRIBED"

    async def main():
        py = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
        await py.connect()
        got = []
        ch = py.channel("mixed")
        ch.on_broadcast("ping", lambda m: got.append(m))
        await subscribed(ch)
        # supabase-js sends a binary user-broadcast frame; Python (vsn 1.0.0) gets it as JSON
        client.send(op="send", name="c", event="ping", payload={"n": 1, "s": "絵文字 🎉"})
        assert client.wait(lambda e: e["ev"] == "sent")["result"] == "ok"
        await until(lambda: got, what="the js broadcast")
        assert got[0]["payload"] == {"n": 1, "s": "絵文字 🎉"}
        await ch.send_broadcast("pong", {"n": 2})
        msg = client.wait(lambda e: e["ev"] == "broadcast" and e["msg"]["event"] == "pong")["msg"]
        assert msg["payload"] == {"n": 2} and msg["type"] == "broadcast"
        await py.close()

    asyncio.run(main())


def test_presence_join_sync_and_leave_across_js_and_python(js, api_url):
    watcher = js()
    watcher.send(op="channel", name="w", topic="gacha:presence-test", presence=True,
                 config={"presence": {"key": "watcher"}})
    assert watcher.status("w")["status"] == "SUBSCRIBED"
    watcher.send(op="track", name="w", payload={"role": "watcher"})
    assert watcher.wait(lambda e: e["ev"] == "tracked")["result"] == "ok"

    async def main():
        py = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
        await py.connect()
        ch = py.channel("gacha:presence-test", {"config": {"presence": {"key": "fan-1"}}})
        syncs = []
        ch.on_presence_sync(lambda: syncs.append(dict(ch.presence_state())))
        await subscribed(ch)
        await until(lambda: any("watcher" in s for s in syncs), what="the watcher in the python state")
        await ch.track({"role": "fan"})
        join = watcher.wait(lambda e: e["ev"] == "presence" and e["kind"] == "join" and e["key"] == "fan-1")
        assert join["metas"][0]["role"] == "fan"
        sync = watcher.wait(lambda e: e["ev"] == "presence" and e["kind"] == "sync" and "fan-1" in e["state"])
        assert set(sync["state"]) == {"watcher", "fan-1"}
        await py.close()  # a dropped socket untracks: the watcher sees the leave
        leave = watcher.wait(lambda e: e["ev"] == "presence" and e["kind"] == "leave" and e["key"] == "fan-1")
        assert leave["metas"][0]["role"] == "fan"

    asyncio.run(main())


def test_presence_untrack_and_channel_leave(js):
    a, b = js(), js()
    for c, name in ((a, "a"), (b, "b")):
        c.send(op="channel", name=name, topic="room:untrack", presence=True, config={"presence": {"key": name}})
        assert c.status(name)["status"] == "SUBSCRIBED"
    a.send(op="track", name="a", payload={"x": 1})
    b.wait(lambda e: e["ev"] == "presence" and e["kind"] == "join" and e["key"] == "a")
    a.send(op="untrack", name="a")
    b.wait(lambda e: e["ev"] == "presence" and e["kind"] == "leave" and e["key"] == "a")
    a.send(op="track", name="a", payload={"x": 2})
    b.wait(lambda e: e["ev"] == "presence" and e["kind"] == "join" and e["key"] == "a" and e["metas"][0]["x"] == 2)
    a.send(op="leave", name="a")
    assert a.wait(lambda e: e["ev"] == "left")["result"] == "ok"
    b.wait(lambda e: e["ev"] == "presence" and e["kind"] == "leave" and e["key"] == "a"
           and e["metas"][0]["x"] == 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(db_url: str, port: int):
    server = uvicorn.Server(uvicorn.Config(create_app(db_url), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


RESTART_PAUSE = 3.5  # seconds the server stays down between the two runs


@pytest.mark.parametrize("client_kind", ["python", "js"])
def test_clients_rejoin_after_the_server_restarts(seeded_db_url, js_dir, client_kind):
    from .conftest import JsClient

    port = _free_port()
    with _serve(seeded_db_url, port) as url:
        if client_kind == "js":
            c = JsClient(js_dir, url)
            c.send(op="channel", name="r", topic="restart", broadcast=["after"])
            assert c.status("r")["status"] == "SUBSCRIBED"
        else:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, daemon=True).start()
            got: list = []

            async def join():
                cl = AsyncRealtimeClient(rt_url(url), ANON_KEY, auto_reconnect=True, max_retries=30,
                                         initial_backoff=0.2)
                await cl.connect()
                ch = cl.channel("restart")
                ch.on_broadcast("after", lambda m: got.append(m))
                await subscribed(ch)
                return cl
            cl = asyncio.run_coroutine_threadsafe(join(), loop).result(15)
    # The server is down now. It stays down past the clients' first reconnect attempts (supabase-js
    # tries after 1 s and 3 s), so every run proves a client survives refused attempts and keeps
    # trying; a restart quicker than that would let a client that gives up after one failure pass.
    time.sleep(RESTART_PAUSE)
    # It comes back on the same port.
    with _serve(seeded_db_url, port) as url:
        async def send_until_heard(heard):
            sender = AsyncRealtimeClient(rt_url(url), ANON_KEY)
            await sender.connect()
            ch = await subscribed(sender.channel("restart"))
            # realtime-js reconnects after 1, 2, 5 and then every 10 s, so the next attempt after the
            # server is back comes within 10 s however long it was down; 30 s leaves room for a loaded
            # machine.
            deadline = time.monotonic() + 30
            while not heard():
                seen = f"; supabase-js saw: {c.events[-20:]}" if client_kind == "js" else ""
                assert time.monotonic() < deadline, "the client never rejoined" + seen
                await ch.send_broadcast("after", {"n": 1})
                await asyncio.sleep(0.5)
            await sender.close()

        if client_kind == "js":
            asyncio.run(send_until_heard(lambda: c.matching(lambda e: e["ev"] == "broadcast")))
            c.close()
        else:
            asyncio.run(send_until_heard(lambda: got))
            asyncio.run_coroutine_threadsafe(cl.close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)


def test_supabase_js_token_expiry_closes_the_channel_and_set_auth_refreshes_it(js):
    from .conftest import token

    # Both clients join with 3-second tokens at once (one wait for both expiries): `short` keeps its
    # token and is closed; `refreshed` sends a fresh one and stays after its first would have expired.
    short, refreshed = js(), js()
    first_expiry = time.time() + 3
    short.send(op="setAuth", token=token(str(uuid.uuid4()), ttl=3))
    short.send(op="channel", name="c", topic="expiry-js", broadcast=["x"])
    refreshed.send(op="setAuth", token=token(str(uuid.uuid4()), ttl=3))
    refreshed.send(op="channel", name="c", topic="expiry-js", broadcast=["x"])
    assert short.status("c")["status"] == "SUBSCRIBED"
    assert refreshed.status("c")["status"] == "SUBSCRIBED"
    refreshed.send(op="setAuth", token=token(str(uuid.uuid4()), ttl=600))  # the access_token event
    refreshed.wait(lambda e: e["ev"] == "setAuth")

    system = short.wait(lambda e: e["ev"] == "system" and e["payload"].get("status") == "error", 10)
    assert system["payload"]["message"].startswith("Token has expired")
    assert short.wait(lambda e: e["ev"] == "status" and e["status"] == "CLOSED", 5)

    time.sleep(max(0.0, first_expiry + 1 - time.time()))  # refreshed's first token is a second past expiry
    sender = js()
    sender.send(op="channel", name="s", topic="expiry-js", config={"broadcast": {"ack": True}})
    assert sender.status("s")["status"] == "SUBSCRIBED"
    sender.send(op="send", name="s", event="x", payload={"still": "here"})
    msg = refreshed.wait(lambda e: e["ev"] == "broadcast")["msg"]
    assert msg["payload"] == {"still": "here"}
    assert not refreshed.matching(lambda e: e["ev"] == "system" and e["payload"].get("status") == "error")

"""The Phoenix channel protocol on the wire, frame by frame, as Supabase Realtime answers.

Raw websockets (no client library smoothing things over), in both serialisations: vsn 1.0.0
objects and vsn 2.0.0 arrays with binary user-broadcast frames.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from koepon.settings import ANON_KEY, JWT_SECRET

from .conftest import token, ws_url


def sock(api_url, vsn="1.0.0", apikey=ANON_KEY):
    q = {"vsn": vsn}
    if apikey is not None:
        q["apikey"] = apikey
    return connect(ws_url(api_url) + "?" + urlencode(q), open_timeout=10)


def recv(ws, timeout=5):
    raw = ws.recv(timeout=timeout)
    return raw if isinstance(raw, bytes) else json.loads(raw)


def recv_until(ws, pred, timeout=5):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            msg = recv(ws, timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        seen.append(msg)
        if pred(msg):
            return msg
    raise AssertionError(f"no matching frame; saw {seen}")


def v1(topic, event, payload, ref, join_ref=None):
    return json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref})


def test_heartbeat_is_answered_on_the_phoenix_topic(api_url):
    with sock(api_url) as ws:
        ws.send(v1("phoenix", "heartbeat", {}, "1"))
        assert recv(ws) == {"topic": "phoenix", "event": "phx_reply", "ref": "1",
                            "payload": {"status": "ok", "response": {}}}
    with sock(api_url, "2.0.0") as ws:
        ws.send(json.dumps([None, "7", "phoenix", "heartbeat", {}]))
        assert recv(ws) == [None, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}]


def test_join_reply_leave_and_close_in_vsn_2(api_url):
    with sock(api_url, "2.0.0") as ws:
        ws.send(json.dumps(["1", "1", "realtime:room", "phx_join", {"config": {"broadcast": {"self": False}}}]))
        assert recv(ws) == ["1", "1", "realtime:room", "phx_reply",
                            {"status": "ok", "response": {"postgres_changes": []}}]
        ws.send(json.dumps(["1", "2", "realtime:room", "phx_leave", {}]))
        assert recv(ws) == ["1", "2", "realtime:room", "phx_reply", {"status": "ok", "response": {}}]
        assert recv(ws) == ["1", "1", "realtime:room", "phx_close", {}]
        # the channel is gone: a push to it is an unmatched topic (Phoenix's encode_ignore)
        ws.send(json.dumps(["1", "3", "realtime:room", "broadcast", {"type": "broadcast", "event": "x",
                                                                      "payload": {}}]))
        assert recv(ws) == [None, "3", "realtime:room", "phx_reply",
                            {"status": "error", "response": {"reason": "unmatched topic"}}]


def test_topics_outside_realtime_and_empty_names_are_refused(api_url):
    with sock(api_url) as ws:
        ws.send(v1("rooms:lobby", "phx_join", {}, "1", "1"))
        assert recv(ws)["payload"] == {"status": "error", "response": {"reason": "unmatched topic"}}
        ws.send(v1("realtime:", "phx_join", {}, "2", "2"))
        assert recv(ws)["payload"] == {"status": "error", "response": {
            "reason": "TopicNameRequired: You must provide a topic name"}}


@pytest.mark.parametrize("apikey, status, message", [
    (None, 401, "API key is missing"),
    (token(ttl=-10, role="anon"), 401, "Token has expired"),
    (jwt.encode({"role": "anon", "exp": int(time.time()) + 60}, "another-secret-of-at-least-32-chars!!",
                algorithm="HS256"), 401, "Failed to validate JWT signature"),
    ("not-a-jwt", 401, "The token provided is not a valid JWT"),
    (jwt.encode({"role": "anon"}, JWT_SECRET, algorithm="HS256"), 401, "Fields `role` and `exp` are required in JWT"),
])
def test_connect_refuses_bad_api_keys_with_realtimes_http_answer(api_url, apikey, status, message):
    with pytest.raises(InvalidStatus) as err:
        with sock(api_url, apikey=apikey):
            pass
    assert err.value.response.status_code == status
    assert json.loads(err.value.response.body) == {"error": message}


def test_join_with_an_expired_or_forged_user_token_is_refused(api_url):
    with sock(api_url) as ws:
        ws.send(v1("realtime:a", "phx_join", {"access_token": token("u1", ttl=-5)}, "1", "1"))
        reason = recv(ws)["payload"]["response"]["reason"]
        assert reason.startswith("InvalidJWTToken: Token has expired ") and reason.endswith(" seconds ago")
        forged = jwt.encode({"role": "service_role", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
        ws.send(v1("realtime:a", "phx_join", {"access_token": forged}, "2", "2"))
        assert recv(ws)["payload"]["response"] == {"reason": "JwtSignatureError: Failed to validate JWT signature"}


def test_binary_user_broadcast_frames_and_their_json_form_for_vsn_1(api_url):
    with sock(api_url, "2.0.0") as a, sock(api_url, "2.0.0") as b, sock(api_url) as c:
        for ws, vsn2 in ((a, True), (b, True), (c, False)):
            if vsn2:
                ws.send(json.dumps(["1", "1", "realtime:bin", "phx_join", {"config": {}}]))
            else:
                ws.send(v1("realtime:bin", "phx_join", {"config": {}}, "1", "1"))
            recv(ws)
        # kind 3 (user broadcast push), JSON encoding, from realtime-js's serializer
        topic, event, body = b"realtime:bin", b"hello", b'{"n":1}'
        frame = bytes([3, 1, 1, len(topic), len(event), 0, 1]) + b"1" + b"2" + topic + event + body
        a.send(frame)
        got = recv(b)
        assert got == bytes([4, len(topic), len(event), 0, 1]) + topic + event + body
        assert recv(c) == {"topic": "realtime:bin", "event": "broadcast", "ref": None,
                           "payload": {"event": "hello", "payload": {"n": 1}, "type": "broadcast"}}
        # a binary payload cannot travel as vsn 1.0.0 JSON: the v1 client gets nothing
        frame = bytes([3, 1, 1, len(topic), len(event), 0, 0]) + b"1" + b"3" + topic + event + b"\x00\xff"
        a.send(frame)
        assert recv(b) == bytes([4, len(topic), len(event), 0, 0]) + topic + event + b"\x00\xff"
        with pytest.raises(TimeoutError):
            recv(c, timeout=0.5)


def test_broadcast_self_and_ack(api_url):
    with sock(api_url) as a, sock(api_url) as b:
        a.send(v1("realtime:r", "phx_join", {"config": {"broadcast": {"self": True, "ack": True}}}, "1", "1"))
        b.send(v1("realtime:r", "phx_join", {"config": {}}, "1", "1"))
        recv(a), recv(b)
        a.send(v1("realtime:r", "broadcast", {"type": "broadcast", "event": "e", "payload": {"k": 1}}, "2", "1"))
        frames = [recv(a), recv(a)]
        assert {"topic": "realtime:r", "event": "phx_reply", "ref": "2",
                "payload": {"status": "ok", "response": {}}} in frames
        assert {"topic": "realtime:r", "event": "broadcast", "ref": None,
                "payload": {"type": "broadcast", "event": "e", "payload": {"k": 1}}} in frames
        assert recv(b)["payload"]["payload"] == {"k": 1}
        b.send(v1("realtime:r", "broadcast", {"type": "broadcast", "event": "e", "payload": {"k": 2}}, "2", "1"))
        assert recv(a)["payload"]["payload"] == {"k": 2}
        with pytest.raises(TimeoutError):  # no self, no ack: the sender hears nothing
            recv(b, timeout=0.5)


def test_token_expiry_on_an_open_channel_closes_it_with_a_system_message(api_url):
    with sock(api_url) as ws:
        ws.send(v1("realtime:exp", "phx_join", {"access_token": token("u1", ttl=2)}, "1", "1"))
        assert recv(ws)["payload"]["status"] == "ok"
        system = recv_until(ws, lambda m: m["event"] == "system", timeout=6)
        assert system["payload"]["extension"] == "system" and system["payload"]["status"] == "error"
        assert system["payload"]["channel"] == "exp"
        assert system["payload"]["message"].startswith("Token has expired")
        assert recv(ws) == {"topic": "realtime:exp", "event": "phx_close", "payload": {}, "ref": "1"}


def test_access_token_refresh_keeps_the_channel_open(api_url):
    with sock(api_url) as ws, sock(api_url) as other:
        ws.send(v1("realtime:ref", "phx_join", {"access_token": token("u1", ttl=2)}, "1", "1"))
        other.send(v1("realtime:ref", "phx_join", {}, "1", "1"))
        recv(ws), recv(other)
        ws.send(v1("realtime:ref", "access_token", {"access_token": token("u1", ttl=600)}, "2", "1"))
        time.sleep(3)
        other.send(v1("realtime:ref", "broadcast", {"type": "broadcast", "event": "e", "payload": {}}, "2", "1"))
        assert recv(ws)["event"] == "broadcast", "the refreshed channel must still be open"


def test_access_token_refresh_with_an_expired_token_closes_the_channel(api_url):
    with sock(api_url) as ws:
        ws.send(v1("realtime:ref2", "phx_join", {"access_token": token("u1")}, "1", "1"))
        recv(ws)
        ws.send(v1("realtime:ref2", "access_token", {"access_token": token("u1", ttl=-30)}, "2", "1"))
        system = recv(ws)
        assert system["event"] == "system" and system["payload"]["message"].startswith("Token has expired")
        assert recv(ws)["event"] == "phx_close"


def test_malformed_frames_are_ignored_and_the_socket_lives_on(api_url):
    with sock(api_url) as ws:
        ws.send("{not json")
        ws.send(json.dumps([1, 2, 3]))
        ws.send(v1("phoenix", "heartbeat", {}, "9"))
        assert recv(ws)["ref"] == "9"

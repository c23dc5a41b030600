"""The Phoenix channel wire format in the two serialisations Supabase Realtime speaks.

vsn 1.0.0 (the Python `realtime` client): one JSON object per text frame,
``{"topic", "event", "payload", "ref"}`` out (Phoenix's V1 JSONSerializer writes only those four
fields), and ``join_ref`` also read in.

vsn 2.0.0 (realtime-js, the default of supabase-js): one JSON array per text frame,
``[join_ref, ref, topic, event, payload]``, plus binary frames for user broadcasts. Realtime's
own V2Serializer (supabase/realtime lib/realtime_web/socket/v2_serializer.ex) reads kind 3
("user broadcast push": client to server) and writes kind 4 ("user broadcast": server to client):

    kind 3: u8 3, u8 len(join_ref), u8 len(ref), u8 len(topic), u8 len(event), u8 len(meta),
            u8 encoding (0 binary, 1 json), join_ref, ref, topic, event, meta, payload
    kind 4: u8 4, u8 len(topic), u8 len(event), u8 len(meta), u8 encoding, topic, event, meta, payload

A user broadcast reaches a vsn 1.0.0 client as the JSON broadcast
``{"event", "payload", "type": "broadcast", "meta"?}`` (UserBroadcast.convert_to_json_broadcast);
one with a binary payload cannot be represented there and is not sent to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

V1 = "1.0.0"
V2 = "2.0.0"
USER_BROADCAST_PUSH = 3
USER_BROADCAST = 4
BINARY, JSON = 0, 1


class ProtocolError(ValueError):
    """A frame that is not a Phoenix message (Realtime logs MalformedWebSocketMessage and goes on)."""


@dataclass
class Message:
    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True)
class UserBroadcast:
    """A broadcast whose payload stays encoded bytes end to end (client push or database row)."""

    event: str
    encoding: int  # BINARY or JSON
    payload: bytes
    meta: dict | None = None


def negotiate(vsn: str | None) -> str | None:
    """Phoenix defaults a missing vsn to 1.0.0; Realtime serves ~> 1.0.0 and ~> 2.0.0."""
    vsn = vsn or V1
    major = vsn.split(".", 1)[0]
    return V1 if major == "1" else V2 if major == "2" else None


def decode(vsn: str, data: str | bytes) -> Message:
    if isinstance(data, bytes | bytearray):
        if vsn != V2:
            raise ProtocolError("binary frames need vsn 2.0.0")
        return _decode_binary(bytes(data))
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(str(exc)) from exc
    if vsn == V2:
        if not isinstance(raw, list) or len(raw) < 5:
            raise ProtocolError(f"expected V2 array, got: {data[:200]!r}")
        join_ref, ref, topic, event, payload = raw[:5]
    else:
        if not isinstance(raw, dict):
            raise ProtocolError("V1 JSON Serializer expected a map")
        missing = [k for k in ("topic", "event", "payload", "ref") if k not in raw]
        if missing:
            raise ProtocolError(f"missing key {missing[0]!r}")
        join_ref, ref, topic, event, payload = (raw.get("join_ref"), raw["ref"], raw["topic"], raw["event"],
                                                raw["payload"])
    if not isinstance(topic, str) or not isinstance(event, str):
        raise ProtocolError("topic and event must be strings")
    return Message(topic, event, payload, None if ref is None else str(ref),
                   None if join_ref is None else str(join_ref))


def _decode_binary(buf: bytes) -> Message:
    if len(buf) < 7 or buf[0] != USER_BROADCAST_PUSH:
        raise ProtocolError("unknown binary frame kind")
    jr, rf, tp, ev, md, enc = buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]
    pos = 7
    fields = []
    for size in (jr, rf, tp, ev, md):
        if pos + size > len(buf):
            raise ProtocolError("truncated binary frame")
        fields.append(buf[pos:pos + size])
        pos += size
    join_ref, ref, topic, event, meta = (f.decode() for f in fields)
    metadata = orjson.loads(meta) if meta else {}
    body = UserBroadcast(event, BINARY if enc == 0 else JSON, buf[pos:], metadata or None)
    return Message(topic, "broadcast", body, ref or None, join_ref or None)


def encode(vsn: str, msg: Message) -> str | bytes | None:
    """The frame for one client; None when that client cannot receive it (binary on vsn 1.0.0)."""
    payload = msg.payload
    if isinstance(payload, UserBroadcast):
        if vsn == V2:
            return _encode_user_broadcast(msg.topic, payload)
        if payload.encoding != JSON:
            return None
        payload = {"event": payload.event, "payload": orjson.Fragment(payload.payload), "type": "broadcast"}
        if msg.payload.meta:
            payload["meta"] = msg.payload.meta
    if vsn == V2:
        return orjson.dumps([msg.join_ref, msg.ref, msg.topic, msg.event, payload]).decode()
    return orjson.dumps({"topic": msg.topic, "event": msg.event, "payload": payload, "ref": msg.ref}).decode()


def _encode_user_broadcast(topic: str, ub: UserBroadcast) -> bytes:
    t, e = topic.encode(), ub.event.encode()
    m = orjson.dumps(ub.meta) if ub.meta else b""
    for name, part in (("topic", t), ("user_event", e), ("metadata", m)):
        if len(part) > 255:
            raise ProtocolError(f"{name} must be at most 255 bytes")
    return bytes([USER_BROADCAST, len(t), len(e), len(m), ub.encoding]) + t + e + m + ub.payload


def reply(topic: str, ref: str | None, join_ref: str | None, status: str, response: dict) -> Message:
    return Message(topic, "phx_reply", {"status": status, "response": response}, ref, join_ref)

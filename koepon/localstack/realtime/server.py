"""The local Realtime server: Phoenix channels over a websocket at /realtime/v1/websocket.

A pipeline like the local API's: `protocol` reads and writes frames, `tokens` checks JWTs,
`authz` asks RLS on realtime.messages about private channels, `changes` reads the WAL; this
module keeps the channels, fans messages out and answers as Supabase Realtime does. References
to Realtime's behaviour name files of github.com/supabase/realtime (RealtimeChannel is
lib/realtime_web/channels/realtime_channel.ex) and of Phoenix (lib/phoenix/socket.ex).

Topics: a channel joined as `realtime:<name>` with `private: true` and one joined without it
are different rooms (Tenants.tenant_topic), so a public subscriber never sees a private message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import zlib
from dataclasses import dataclass, field

import orjson
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import authz, protocol, tokens
from .protocol import JSON, Message, UserBroadcast

log = logging.getLogger("koepon.realtime")
PATH = "/realtime/v1/websocket"
CONFIRM_TOKEN_INTERVAL = 5 * 60  # RealtimeChannel @confirm_token_ms_interval
IDLE_TIMEOUT = 60.0  # Phoenix.Transport websocket `timeout` default (ms 60_000)
_CLOSE = object()


@dataclass
class Policies:
    """None: not evaluated yet (Realtime's Policies struct distinguishes nil from false)."""

    broadcast_read: bool | None = None
    broadcast_write: bool | None = None
    presence_read: bool | None = None
    presence_write: bool | None = None


@dataclass(eq=False)
class Channel:
    conn: Connection
    topic: str
    sub_topic: str
    join_ref: str | None
    private: bool
    self_broadcast: bool
    ack: bool
    presence_key: str
    presence_enabled: bool
    token: str
    claims: dict
    policies: Policies | None
    pg_changes: list[dict] = field(default_factory=list)
    tracked: dict | None = None  # this channel's presence meta, phx_ref included
    track_payload: dict | None = None
    confirm: asyncio.TimerHandle | None = None

    @property
    def key(self) -> tuple[str, bool]:
        return (self.sub_topic, self.private)

    def reads_broadcast(self) -> bool:
        return not self.private or bool(self.policies and self.policies.broadcast_read)

    def reads_presence(self) -> bool:
        return not self.private or bool(self.policies and self.policies.presence_read)


def _flag(value) -> bool:
    """Realtime's FlexibleBoolean: true/false, "true"/"false" and the like."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1", "yes", "on")
    return bool(value)


def _pg_change_id(params: dict) -> int:
    """A stable id per postgres_changes entry (Realtime uses :erlang.phash2, range 0..2^27)."""
    return zlib.crc32(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)) & 0x7FFFFFF


class Connection:
    def __init__(self, hub: Realtime, ws: WebSocket, vsn: str, apikey: str):
        self.hub = hub
        self.ws = ws
        self.vsn = vsn
        self.apikey = apikey
        self.channels: dict[str, Channel] = {}
        self.queue: asyncio.Queue = asyncio.Queue()
        self.open = True

    # -- output ---------------------------------------------------------------------------

    def push(self, msg: Message) -> None:
        frame = protocol.encode(self.vsn, msg)
        if frame is not None:
            self.push_frame(frame)

    def push_frame(self, frame) -> None:
        if self.open:
            self.queue.put_nowait(frame)

    def reply(self, msg: Message, status: str, response: dict, *, no_join_ref: bool = False) -> None:
        """A phx_reply to `msg`; Phoenix leaves join_ref out of heartbeat and unmatched-topic replies."""
        self.push(protocol.reply(msg.topic, msg.ref, None if no_join_ref else msg.join_ref, status, response))

    async def writer(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is _CLOSE:
                with contextlib.suppress(Exception):
                    await self.ws.close(1001)
                return
            try:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_text(frame)
            except Exception:  # the peer went away; the reader notices and cleans up
                self.open = False
                return

    # -- input ----------------------------------------------------------------------------

    async def handle(self, msg: Message) -> None:
        if msg.topic == "phoenix" and msg.event == "heartbeat":
            self.reply(msg, "ok", {}, no_join_ref=True)
            return
        if msg.event == "phx_join":
            await self.join(msg)
            return
        ch = self.channels.get(msg.topic)
        if ch is None:
            if msg.event == "phx_leave":
                self.reply(msg, "ok", {})
            else:
                # Phoenix's encode_ignore: the channel is gone or was never joined
                self.reply(msg, "error", {"reason": "unmatched topic"}, no_join_ref=True)
            return
        if msg.join_ref is not None and msg.join_ref != ch.join_ref:
            return  # a stale message for an earlier join of this topic (Phoenix ignores it)
        if msg.event == "phx_leave":
            self.reply(msg, "ok", {})
            self.close_channel(ch)
        elif msg.event == "broadcast":
            await self.hub.client_broadcast(ch, msg)
        elif msg.event == "presence":
            await self.hub.client_presence(ch, msg)
        elif msg.event == "access_token":
            await self.hub.refresh_token(ch, msg)
        # anything else: Realtime logs "Unexpected message from client" and answers nothing

    async def join(self, msg: Message) -> None:
        hub = self.hub
        topic = msg.topic
        if not topic.startswith("realtime:"):
            self.reply(msg, "error", {"reason": "unmatched topic"}, no_join_ref=True)
            return
        if topic in self.channels:  # Phoenix closes the existing channel before the new join
            self.close_channel(self.channels[topic])
        sub_topic = topic[len("realtime:"):]
        if not sub_topic:
            await self.join_error(msg, "TopicNameRequired: You must provide a topic name")
            return
        params = msg.payload if isinstance(msg.payload, dict) else {}
        config = params.get("config") if isinstance(params.get("config"), dict) else {}
        broadcast = config.get("broadcast") if isinstance(config.get("broadcast"), dict) else {}
        presence = config.get("presence") if isinstance(config.get("presence"), dict) else {}
        changes = config.get("postgres_changes") if isinstance(config.get("postgres_changes"), list) else []
        token = params.get("access_token") or params.get("user_token")
        if not isinstance(token, str) or token.startswith("sb_"):
            token = self.apikey
        try:
            claims = tokens.verify(token, hub.secret)
        except tokens.TokenError as exc:
            await self.join_error(msg, exc.reason)
            return
        ch = Channel(self, topic, sub_topic, msg.join_ref or msg.ref, _flag(config.get("private", False)),
                     _flag(broadcast.get("self", False)), _flag(broadcast.get("ack", False)),
                     str(presence.get("key") or "") or secrets.token_hex(16), _flag(presence.get("enabled", False)),
                     token, claims, None)
        if ch.private:
            extensions = ("broadcast", "presence") if ch.presence_enabled else ("broadcast",)
            try:
                got = await authz.read(hub.pool, sub_topic, claims, extensions)
            except authz.PolicyError as exc:
                log.warning("realtime: RlsPolicyError on %s: %s", sub_topic, exc)
                got = {}
            ch.policies = Policies(broadcast_read=got.get("broadcast", False),
                                   presence_read=got.get("presence") if ch.presence_enabled else None)
            if not (ch.policies.broadcast_read or ch.policies.presence_read):
                await self.join_error(
                    msg, f"Unauthorized: You do not have permissions to read from this Channel topic: {sub_topic}")
                return
        if hub.changes is not None:
            await hub.changes.wait_ready()
        pg = [c for c in changes if isinstance(c, dict)]
        ch.pg_changes = [{**c, "id": _pg_change_id(c)} for c in pg]
        self.channels[topic] = ch
        hub.subscribe(ch)
        self.reply(msg, "ok", {"postgres_changes": ch.pg_changes})
        if ch.presence_enabled and ch.reads_presence():
            self.push(Message(topic, "presence_state", hub.presence_state(ch.key)))
        if ch.pg_changes:
            error = await hub.changes_subscribe(ch)
            self.push(Message(topic, "system", {
                "extension": "postgres_changes", "status": "error" if error else "ok",
                "message": error or "Subscribed to PostgreSQL", "channel": sub_topic}))
        hub.schedule_confirm(ch)

    async def join_error(self, msg: Message, reason: str) -> None:
        if self.hub.join_error_backoff:
            await asyncio.sleep(self.hub.join_error_backoff)
        self.reply(msg, "error", {"reason": reason})

    def close_channel(self, ch: Channel) -> None:
        """The channel process stopped normally: Phoenix sends phx_close with ref = join_ref."""
        self.hub.unsubscribe(ch)
        self.channels.pop(ch.topic, None)
        self.push(Message(ch.topic, "phx_close", {}, ch.join_ref, ch.join_ref))

    def shutdown(self, ch: Channel, message: str) -> None:
        """RealtimeChannel.shutdown_response: a system error, then the channel closes."""
        self.push(Message(ch.topic, "system", {"extension": "system", "status": "error", "message": message,
                                               "channel": ch.sub_topic}))
        self.close_channel(ch)


class Realtime:
    def __init__(self, db_url: str, jwt_secret: str, *, join_error_backoff: float = 0.0,
                 poll_interval: float = 0.05, linger: float | None = None):
        # Hosted Realtime reaches the project database as supabase_admin (the platform base has
        # that role locally); a database without it (or refusing it) is reached as given.
        self.db_url = db_url
        self.secret = jwt_secret
        self.join_error_backoff = join_error_backoff
        self.poll_interval = poll_interval
        # Seconds the WAL slot outlives the last connection (changes.LINGER unless a test that
        # watches the slot go away sets a shorter one).
        from .changes import LINGER

        self.linger = linger if linger is not None else LINGER
        self.pool: AsyncConnectionPool | None = None
        self.rooms: dict[tuple[str, bool], dict[Channel, None]] = {}
        self.presences: dict[tuple[str, bool], dict[str, dict[Channel, dict]]] = {}
        self.connections: set[Connection] = set()
        self.changes = None  # the WAL reader (koepon.realtime.changes), started with the server
        self.stats = {"delivered": 0}
        self._tasks: set[asyncio.Task] = set()

    def routes(self) -> list:
        return [WebSocketRoute(PATH, self.endpoint)]

    async def _admin_url(self) -> str:
        admin = make_conninfo(self.db_url, user="supabase_admin")
        try:
            conn = await psycopg.AsyncConnection.connect(admin, connect_timeout=5)
            await conn.close()
            return admin
        except psycopg.Error:
            return self.db_url

    async def start(self) -> None:
        self.db_url = await self._admin_url()
        self.pool = AsyncConnectionPool(self.db_url, min_size=1, max_size=4, open=False,
                                        kwargs={"autocommit": False})
        await self.pool.open(wait=True)
        from .changes import WalReader

        self.changes = WalReader(self, self.db_url, self.poll_interval)
        await self.changes.start()

    async def stop(self) -> None:
        if self.changes is not None:
            await self.changes.stop()
        for conn in list(self.connections):
            conn.push_frame(_CLOSE)
        if self.pool is not None:
            await self.pool.close()

    # -- websocket ------------------------------------------------------------------------

    async def endpoint(self, ws: WebSocket) -> None:
        vsn = protocol.negotiate(ws.query_params.get("vsn"))
        if vsn is None:
            await ws.send_denial_response(JSONResponse(
                {"error": f"The client's requested transport version \"{ws.query_params.get('vsn')}\" "
                          "cannot be matched with any supported serializer"}, 403))
            return
        apikey = ws.headers.get("x-api-key") or ws.query_params.get("apikey")
        try:
            tokens.verify(apikey, self.secret)
        except tokens.TokenError as exc:
            status, message = tokens.CONNECT_ERRORS.get(exc.kind, (500, "Error connecting to Realtime"))
            await ws.send_denial_response(JSONResponse({"error": message}, status))
            return
        await ws.accept()
        conn = Connection(self, ws, vsn, apikey)
        self.connections.add(conn)
        if self.changes is not None:
            self.changes.want()
        writer = asyncio.create_task(conn.writer())
        try:
            while True:
                try:
                    event = await asyncio.wait_for(ws.receive(), IDLE_TIMEOUT)
                except TimeoutError:
                    # Phoenix's websocket `timeout`: a client that sent nothing (not even a
                    # heartbeat) for 60 s is gone; the clients heartbeat every 25-30 s.
                    await ws.close(1000)
                    break
                if event["type"] == "websocket.disconnect":
                    break
                data = event.get("text") if event.get("text") is not None else event.get("bytes")
                if data is None:
                    continue
                try:
                    msg = protocol.decode(vsn, data)
                except (protocol.ProtocolError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
                    log.info("realtime: MalformedWebSocketMessage: %s", exc)
                    continue
                await conn.handle(msg)
        except WebSocketDisconnect:
            pass
        finally:
            conn.open = False
            self.connections.discard(conn)
            for ch in list(conn.channels.values()):
                self.unsubscribe(ch)
            conn.channels.clear()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    # -- rooms ----------------------------------------------------------------------------

    def subscribe(self, ch: Channel) -> None:
        self.rooms.setdefault(ch.key, {})[ch] = None

    def unsubscribe(self, ch: Channel) -> None:
        if ch.confirm is not None:
            ch.confirm.cancel()
            ch.confirm = None
        room = self.rooms.get(ch.key)
        if room is not None:
            room.pop(ch, None)
            if not room:
                del self.rooms[ch.key]
        if self.changes is not None:
            self.changes.unsubscribe(ch)
        self.untrack(ch)

    def fanout(self, key: tuple[str, bool], event: str, payload, *, exclude: Channel | None = None,
               presence: bool = False) -> int:
        """Send one message to every channel in a room, encoding it once per serialisation."""
        room = self.rooms.get(key)
        if not room:
            return 0
        msg = Message("realtime:" + key[0], event, payload)
        frames: dict[str, object] = {}
        sent = 0
        for ch in room:
            if ch is exclude or not (ch.reads_presence() if presence else ch.reads_broadcast()):
                continue
            vsn = ch.conn.vsn
            if vsn not in frames:
                frames[vsn] = protocol.encode(vsn, msg)
            if frames[vsn] is not None:
                ch.conn.push_frame(frames[vsn])
                sent += 1
        self.stats["delivered"] += sent
        return sent

    # -- broadcast ------------------------------------------------------------------------

    async def client_broadcast(self, ch: Channel, msg: Message) -> None:
        """BroadcastHandler.handle: private channels need the insert policy; ack replies ok."""
        if ch.private:
            if ch.policies.broadcast_write is None:
                try:
                    got = await authz.write(self.pool, ch.sub_topic, ch.claims, ("broadcast",))
                except authz.PolicyError as exc:
                    log.warning("realtime: RlsPolicyError on %s: %s", ch.sub_topic, exc)
                    return
                ch.policies.broadcast_write = got["broadcast"]
            if not ch.policies.broadcast_write:
                return  # Realtime answers nothing, not even with ack
        payload = msg.payload
        if not isinstance(payload, dict | UserBroadcast):
            return
        self.fanout(ch.key, "broadcast", payload, exclude=None if ch.self_broadcast else ch)
        if ch.ack:
            ch.conn.reply(msg, "ok", {})

    def broadcast_from_database(self, topic: str, private: bool, event: str, payload: bytes, message_id: str) -> int:
        """A realtime.messages row: a JSON user broadcast whose meta carries the row id."""
        return self.fanout((topic, private), "broadcast", UserBroadcast(event, JSON, payload, {"id": message_id}))

    # -- presence -------------------------------------------------------------------------

    def presence_state(self, key) -> dict:
        out: dict[str, dict] = {}
        for pkey, metas in self.presences.get(key, {}).items():
            out[pkey] = {"metas": list(metas.values())}
        return out

    async def client_presence(self, ch: Channel, msg: Message) -> None:
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        event = payload.get("event")
        if not isinstance(event, str):
            ch.conn.reply(msg, "ok", {})
            return
        event = event.lower()
        if event == "track":
            if ch.private and ch.policies.presence_write is None:
                try:
                    if ch.policies.presence_read is None:
                        got = await authz.read(self.pool, ch.sub_topic, ch.claims, ("presence",))
                        ch.policies.presence_read = got["presence"]
                    got = await authz.write(self.pool, ch.sub_topic, ch.claims, ("presence",))
                    ch.policies.presence_write = got["presence"]
                except authz.PolicyError as exc:
                    log.warning("realtime: RlsPolicyError on %s: %s", ch.sub_topic, exc)
                    ch.conn.reply(msg, "error", {})
                    return
            if ch.private and not ch.policies.presence_write:
                ch.conn.reply(msg, "error", {})
                return
            body = payload.get("payload", {})
            if not isinstance(body, dict):
                ch.conn.reply(msg, "error", {"reason": "Presence track payload must be a map"})
                return
            ch.presence_enabled = True
            if body != ch.track_payload:
                self.track(ch, body)
            ch.conn.reply(msg, "ok", {})
        elif event == "untrack":
            self.untrack(ch)
            ch.conn.reply(msg, "ok", {})
        else:
            log.info("realtime: UnknownPresenceEvent %s", event)
            ch.conn.reply(msg, "error", {})

    def track(self, ch: Channel, body: dict) -> None:
        """Phoenix.Presence: a join diff, or for an update a leave of the old meta and a join of the new."""
        metas = self.presences.setdefault(ch.key, {}).setdefault(ch.presence_key, {})
        meta = {**body, "phx_ref": secrets.token_urlsafe(9)}
        leaves = {}
        old = metas.get(ch)
        if old is not None:
            meta["phx_ref_prev"] = old["phx_ref"]
            leaves = {ch.presence_key: {"metas": [old]}}
        metas[ch] = meta
        ch.tracked, ch.track_payload = meta, body
        self.fanout(ch.key, "presence_diff", {"joins": {ch.presence_key: {"metas": [meta]}}, "leaves": leaves},
                    presence=True)

    def untrack(self, ch: Channel) -> None:
        if ch.tracked is None:
            return
        room = self.presences.get(ch.key, {})
        metas = room.get(ch.presence_key, {})
        old = metas.pop(ch, None)
        if not metas:
            room.pop(ch.presence_key, None)
        if not room:
            self.presences.pop(ch.key, None)
        ch.tracked = ch.track_payload = None
        if old is not None:
            self.fanout(ch.key, "presence_diff", {"joins": {}, "leaves": {ch.presence_key: {"metas": [old]}}},
                        presence=True)

    # -- tokens ---------------------------------------------------------------------------

    def schedule_confirm(self, ch: Channel) -> None:
        """Re-check the token every 5 minutes or when it expires, whichever comes first."""
        if ch.confirm is not None:
            ch.confirm.cancel()
        left = max(0.0, float(ch.claims["exp"]) - time.time())
        loop = asyncio.get_running_loop()

        def fire() -> None:  # the loop keeps only weak references to tasks: hold this one
            task = loop.create_task(self.confirm_token(ch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        ch.confirm = loop.call_later(min(CONFIRM_TOKEN_INTERVAL, left) + 0.05, fire)

    async def confirm_token(self, ch: Channel) -> None:
        ch.confirm = None
        if ch.conn.channels.get(ch.topic) is not ch:
            return
        try:
            ch.claims = tokens.verify(ch.token, self.secret)
        except tokens.TokenError as exc:
            ch.conn.shutdown(ch, exc.message)
            return
        self.schedule_confirm(ch)

    async def refresh_token(self, ch: Channel, msg: Message) -> None:
        """RealtimeChannel.handle_in("access_token"): re-check the token and the read policies."""
        token = msg.payload.get("access_token") if isinstance(msg.payload, dict) else None
        if not isinstance(token, str) or token.startswith("sb_") or token == ch.token:
            return
        try:
            claims = tokens.verify(token, self.secret)
        except tokens.TokenError as exc:
            ch.conn.shutdown(ch, exc.message)
            return
        previous = ch.policies
        if ch.private:
            extensions = ("broadcast", "presence") if ch.presence_enabled else ("broadcast",)
            try:
                got = await authz.read(self.pool, ch.sub_topic, claims, extensions)
            except authz.PolicyError:
                got = {}
            policies = Policies(broadcast_read=got.get("broadcast", False), presence_read=got.get("presence"))
            if not (policies.broadcast_read or policies.presence_read):
                ch.conn.shutdown(ch, f"You do not have permissions to read from this Channel topic: {ch.sub_topic}")
                return
            if (previous.broadcast_read and not policies.broadcast_read) or (
                    previous.presence_read and policies.presence_read is False):
                ch.conn.shutdown(ch, f"You no longer have permission to read from this Channel topic: {ch.sub_topic}")
                return
            ch.policies = policies
        ch.token, ch.claims = token, claims
        if self.changes is not None:
            self.changes.claims_changed(ch)
        self.schedule_confirm(ch)

    # -- postgres changes -------------------------------------------------------------------

    async def changes_subscribe(self, ch: Channel) -> str | None:
        if self.changes is None:
            return "Realtime was unable to connect to the project database"
        return await self.changes.subscribe(ch)

"""SMTP in (aiosmtpd), Mailpit's HTTP API out, both on one asyncio loop.

The HTTP side answers with Mailpit's shapes (server/apiv1 and internal/storage/structs.go of
axllent/mailpit), so tooling written against `supabase start`'s catcher reads ours:

* `GET /api/v1/messages?start=&limit=`: `{total, unread, count, messages_count, messages_unread,
  start, tags, messages: [MessageSummary]}`, newest first;
* `GET /api/v1/message/{ID}` (`latest` for the newest): the whole message with `Text` and `HTML`;
  an unknown ID is 404 `404 page not found` (text/plain);
* `GET /api/v1/search?query=` with `to:ADDRESS`, `subject:WORD` or free words;
* `DELETE /api/v1/messages` with `{"IDs": [...]}`, or no body for all: `ok` (text/plain);
* `GET /` a plain page listing the mail, `GET /view/{ID}.html` one message's HTML body;
* `GET /livez` for health.

Messages live in memory (the last 500, as Mailpit's default `--max 500`): the catcher is for
reading what Auth sent a moment ago, not an archive.
"""

from __future__ import annotations

import datetime as dt
import html
import secrets
from collections import deque
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

import orjson
from aiosmtpd.smtp import SMTP
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

MAX_MESSAGES = 500
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # shortuuid's, as Mailpit's IDs


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _addresses(values) -> list[dict]:
    return [{"Name": name, "Address": addr} for name, addr in getaddresses([str(v) for v in values if v]) if addr]


class Mailbox:
    def __init__(self, limit: int = MAX_MESSAGES):
        self.messages: deque[dict] = deque(maxlen=limit)  # newest first

    def add(self, raw: bytes, envelope_to: list[str]) -> dict:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        text = text_part.get_content() if text_part is not None else ""
        body_html = html_part.get_content() if html_part is not None else ""
        created = dt.datetime.now(dt.UTC)
        try:
            date = parsedate_to_datetime(msg["date"]) if msg["date"] else created
        except (TypeError, ValueError):
            date = created
        to = _addresses(msg.get_all("to", [])) or [{"Name": "", "Address": a} for a in envelope_to]
        from_ = _addresses(msg.get_all("from", []))
        snippet_src = text or html.unescape(_strip_tags(body_html))
        entry = {
            "ID": "".join(secrets.choice(_ID_ALPHABET) for _ in range(22)),
            "MessageID": str(msg["message-id"] or "").strip("<>"),
            "Read": False,
            "From": from_[0] if from_ else None,
            "To": to, "Cc": _addresses(msg.get_all("cc", [])), "Bcc": [],
            "ReplyTo": _addresses(msg.get_all("reply-to", [])),
            "ReturnPath": str(msg["return-path"] or "").strip("<>"),
            "Subject": str(msg["subject"] or ""),
            "Created": _rfc3339(created), "Date": _rfc3339(date),
            "Tags": [], "Username": "", "Size": len(raw), "Attachments": [], "Inline": [],
            "Snippet": " ".join(snippet_src.split())[:250],
            "Text": text, "HTML": body_html,
            "ListUnsubscribe": {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""},
            "_raw": raw,
        }
        self.messages.appendleft(entry)
        return entry

    def get(self, ident: str) -> dict | None:
        if ident == "latest":
            return self.messages[0] if self.messages else None
        return next((m for m in self.messages if m["ID"] == ident), None)

    def search(self, query: str) -> list[dict]:
        out = list(self.messages)
        for term in query.split():
            key, sep, value = term.partition(":")
            if sep and key.lower() == "to":
                out = [m for m in out if any(value.lower() == a["Address"].lower() for a in m["To"])]
            elif sep and key.lower() == "subject":
                out = [m for m in out if value.lower() in m["Subject"].lower()]
            else:
                out = [m for m in out if term.lower() in (m["Subject"] + " " + m["Text"]).lower()]
        return out

    def delete(self, ids: list[str] | None) -> None:
        if not ids:
            self.messages.clear()
            return
        keep = [m for m in self.messages if m["ID"] not in set(ids)]
        self.messages.clear()
        self.messages.extend(keep)


def _strip_tags(s: str) -> str:
    import re

    return re.sub(r"<[^>]+>", " ", s)


_SUMMARY_KEYS = ("ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created",
                 "Username", "Tags", "Size", "Snippet")
_MESSAGE_KEYS = ("ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
                 "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML", "Size", "Inline", "Attachments")


def summary(m: dict) -> dict:
    out = {k: m[k] for k in _SUMMARY_KEYS}
    out["Attachments"] = len(m["Attachments"])
    return out


def message(m: dict) -> dict:
    return {k: m[k] for k in _MESSAGE_KEYS}


class _Handler:
    def __init__(self, box: Mailbox):
        self.box = box

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd's hook name
        self.box.add(envelope.original_content or envelope.content, list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def smtp_factory(box: Mailbox):
    """A protocol factory for `loop.create_server`: aiosmtpd speaks SMTP, the mailbox keeps what arrives."""
    handler = _Handler(box)
    return lambda: SMTP(handler, hostname="koepon-mail", ident="koepon mail catcher")


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _not_found() -> Response:
    return PlainTextResponse("404 page not found", status_code=404)


def _page(box: Mailbox, start: int, limit: int) -> dict:
    msgs = list(box.messages)
    page = msgs[start:start + limit] if limit else msgs[start:]
    return {"total": len(msgs), "unread": sum(not m["Read"] for m in msgs), "count": len(page),
            "messages_count": len(msgs), "messages_unread": sum(not m["Read"] for m in msgs),
            "start": start, "tags": [], "messages": [summary(m) for m in page]}


def _start_limit(request: Request) -> tuple[int, int]:
    def num(name: str, default: int, low: int) -> int:
        try:
            n = int(request.query_params.get(name, ""))
        except ValueError:
            return default
        return n if n >= low else default
    return num("start", 0, 1), num("limit", 50, 0)


def create_app(box: Mailbox, on_startup=None, on_shutdown=None) -> Starlette:
    async def messages(request: Request) -> Response:
        if request.method == "DELETE":
            body = await request.body()
            ids = None
            if body.strip():
                try:
                    data = orjson.loads(body)
                except orjson.JSONDecodeError:
                    data = {}
                ids = data.get("IDs") if isinstance(data, dict) else None
            box.delete([str(i) for i in ids] if isinstance(ids, list) else None)
            return PlainTextResponse("ok")
        start, limit = _start_limit(request)
        return _json(_page(box, start, limit))

    async def one(request: Request) -> Response:
        m = box.get(request.path_params["ident"])
        if m is None:
            return _not_found()
        m["Read"] = True
        return _json(message(m))

    async def raw(request: Request) -> Response:
        m = box.get(request.path_params["ident"])
        return _not_found() if m is None else PlainTextResponse(m["_raw"].decode("utf-8", "replace"))

    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "")
        if not query.strip():
            return PlainTextResponse("no search query", status_code=400)
        found = box.search(query)
        start, limit = _start_limit(request)
        page = found[start:start + limit] if limit else found[start:]
        return _json({"total": len(box.messages), "unread": sum(not m["Read"] for m in box.messages),
                      "count": len(page), "messages_count": len(found),
                      "messages_unread": sum(not m["Read"] for m in found), "start": start, "tags": [],
                      "messages": [summary(m) for m in page]})

    async def view(request: Request) -> Response:
        m = box.get(request.path_params["ident"])
        return _not_found() if m is None else HTMLResponse(m["HTML"] or f"<pre>{html.escape(m['Text'])}</pre>")

    async def index(request: Request) -> Response:
        rows = "".join(
            f"<tr><td>{html.escape(m['Created'])}</td><td>{html.escape(', '.join(a['Address'] for a in m['To']))}"
            f"</td><td><a href=\"/view/{m['ID']}.html\">{html.escape(m['Subject'])}</a></td>"
            f"<td>{html.escape(m['Snippet'][:120])}</td></tr>" for m in box.messages)
        return HTMLResponse(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Koepon mail catcher</title>"
            "<h1>Koepon mail catcher</h1><p>Auth e-mail sent by the local stack "
            f"({len(box.messages)} messages; API: <code>/api/v1/messages</code>).</p>"
            "<table border=\"1\" cellpadding=\"4\"><tr><th>Received</th><th>To</th><th>Subject</th>"
            f"<th>Snippet</th></tr>{rows}</table></html>")

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if on_startup:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown:
                await on_shutdown()

    return Starlette(routes=[
        Route("/", index),
        Route("/livez", livez),
        Route("/readyz", livez),
        Route("/api/v1/messages", messages, methods=["GET", "DELETE"]),
        Route("/api/v1/message/{ident}", one),
        Route("/api/v1/message/{ident}/raw", raw),
        Route("/api/v1/search", search),
        Route("/view/{ident}.html", view),
    ], lifespan=lifespan)


def build(host: str, http_port: int, smtp_port: int) -> tuple[Starlette, Mailbox]:
    """The HTTP app; its lifespan opens the SMTP listener on the same loop (and closes it)."""
    import asyncio

    box = Mailbox()
    state = {}

    async def start():
        loop = asyncio.get_running_loop()
        state["server"] = await loop.create_server(smtp_factory(box), host, smtp_port)

    async def stop():
        server = state.pop("server", None)
        if server:
            server.close()
            await server.wait_closed()

    return create_app(box, start, stop), box

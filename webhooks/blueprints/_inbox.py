"""The one database call a verified webhook makes (none for an event this process saw recorded)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from ..db import RpcError
from ..observability import count_outcome

log = logging.getLogger("webhooks.inbox")


class RecordedEvents:
    """(provider, event id) -> the inbox's answer, for events whose recording has committed.

    The inbox (app.payment_events) stays the authority: a recorded event's row never changes
    after the transaction that recorded it (order_id and outcome are set there), and a redelivery
    changes nothing, so a later delivery of the same event is answered from here without a call
    (a provider's redeliveries in a launch must not each cost a database round trip). The signature is still checked on
    every delivery before this lookup. Bounded (least recently used out); per process.
    """

    def __init__(self, size: int = 100_000):
        self._size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple[str, str]) -> dict | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple[str, str], answer: dict) -> None:
        with self._lock:
            self._items[key] = answer
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def record(svc, provider: str, event: dict) -> dict:
    key = (provider, event["id"])
    hit = svc.recorded.get(key)
    if hit is not None:
        count_outcome(provider, "duplicate")
        return {"received": True, "duplicate": True, "outcome": hit["outcome"], "order_id": hit["order_id"]}
    try:
        res = svc.db.rpc("service_record_payment_event", p_provider=provider, p_event_id=event["id"],
                         p_type=event["type"], p_payload=event)
    except RpcError as exc:
        if 400 <= exc.status < 500 and exc.status != 429:
            return _refused(provider, event, exc)
        raise
    log.info("%s %s %s -> %s%s", provider, event["type"], event["id"], res.get("outcome"),
             " (duplicate)" if res.get("duplicate") else "",
             extra={"provider": provider, "event_id": event["id"], "event_type": event["type"],
                    "outcome": res.get("outcome"), "duplicate": bool(res.get("duplicate")),
                    "order_id": res.get("order_id")})
    count_outcome(provider, "duplicate" if res.get("duplicate") else res.get("outcome") or "received")
    if res.get("outcome") and res.get("outcome") != "received":
        svc.recorded.put(key, {"outcome": res.get("outcome"), "order_id": res.get("order_id")})
    return {"received": True, "duplicate": res.get("duplicate"), "outcome": res.get("outcome"),
            "order_id": res.get("order_id")}


def _refused(provider: str, event: dict, exc: RpcError) -> dict:
    """A verified event the database refuses for good (its payload cannot be stored, its id or type
    is out of bounds): retrying it can never succeed, so it is answered 200 -- Stripe and KOMOJU
    retry every other answer for days -- and its refusal is logged with the event id at error
    level and counted (outcome "refused"), for an operator to look at."""
    log.error("%s event %s (%s) refused for good: %s %s", provider, event["id"], event["type"], exc.code,
              exc.detail, extra={"provider": provider, "event_id": event["id"], "event_type": event["type"],
                                 "outcome": "refused", "code": exc.code, "sqlstate": exc.sqlstate})
    count_outcome(provider, "refused")
    return {"received": True, "duplicate": False, "outcome": "refused", "order_id": None, "code": exc.code,
            "message": exc.detail}


def refuse_unreadable(provider: str, raw: bytes, reason: str) -> dict:
    """A body whose signature verifies (so the provider sent it) but that is not an event we can
    read: it can never succeed either, so it is answered 200 and its refusal logged with what
    identifies it (a hash of the body; the event id when there is one)."""
    import hashlib
    import json

    try:
        event_id = json.loads(raw).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        event_id = None
    log.error("%s: a signed body that is not a readable event refused for good: %s", provider, reason,
              extra={"provider": provider, "event_id": event_id if isinstance(event_id, str) else None,
                     "body_sha256": hashlib.sha256(raw).hexdigest(), "outcome": "refused", "code": "invalid_event"})
    count_outcome(provider, "refused")
    return {"received": True, "duplicate": False, "outcome": "refused", "order_id": None, "code": "invalid_event",
            "message": reason}

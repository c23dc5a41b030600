"""The one database call a verified webhook makes."""

from __future__ import annotations

import logging

from ..db import RpcError
from ..errors import Problem

log = logging.getLogger("webhooks.inbox")


def record(svc, provider: str, event: dict) -> dict:
    try:
        res = svc.db.rpc("service_record_payment_event", p_provider=provider, p_event_id=event["id"],
                         p_type=event["type"], p_payload=event)
    except RpcError as exc:
        if exc.status == 400:
            raise Problem(400, "invalid_event", f"{exc.code}: {exc.detail}") from exc
        raise
    log.info("%s %s %s -> %s%s", provider, event["type"], event["id"], res.get("outcome"),
             " (duplicate)" if res.get("duplicate") else "")
    return {"received": True, "duplicate": res.get("duplicate"), "outcome": res.get("outcome"),
            "order_id": res.get("order_id")}

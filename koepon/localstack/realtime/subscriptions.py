"""Postgres Changes subscriptions: what a channel's `postgres_changes` entries ask for, as hosted
Realtime parses them (event, schema, table, filter `eq neq lt lte gt gte in`, select), and whether
a record passes a filter."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

FILTER = re.compile(r"^([^=]+)=(eq|neq|lt|lte|gt|gte|in)\.(.*)$", re.S)
EVENTS = {"*", "INSERT", "UPDATE", "DELETE"}


@dataclass
class Sub:
    id: int
    event: str
    schema: str
    table: str | None
    filter: tuple[str, str, object] | None
    select: frozenset | None = None  # `select` columns (the primary key always comes along)


def parse_filter(text: str | None):
    if not text:
        return None
    m = FILTER.match(text)
    if not m:
        raise ValueError(f"invalid filter: {text}")
    col, op, value = m.groups()
    if op == "in":
        inner = value.strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            raise ValueError(f"invalid filter: {text}")
        value = [v.strip().strip('"') for v in inner[1:-1].split(",") if v.strip()]
        if len(value) > 100:
            raise ValueError("too many values for `in` filter. Maximum is 100")
    return (col.strip(), op, value)


def parse_entries(entries: list[dict]) -> list[Sub] | str:
    """A channel's postgres_changes entries as subscriptions, or hosted's error text for a bad one."""
    subs = []
    for params in entries:
        event = str(params.get("event") or "*").upper()
        schema = params.get("schema") or "public"
        table = params.get("table")
        try:
            if event not in EVENTS:
                raise ValueError(f"invalid event: {event}")
            flt = parse_filter(params.get("filter"))
        except ValueError as exc:
            return ("Unable to subscribe to changes with given parameters. "
                    f"An exception happened so please check your connect parameters: {exc}")
        select = params.get("select")
        if select is not None and not (isinstance(select, list) and all(isinstance(c, str) for c in select)):
            return ("Unable to subscribe to changes with given parameters. "
                    "An exception happened so please check your connect parameters: select must be a list")
        subs.append(Sub(params["id"], event, schema, None if table in (None, "*") else table, flt,
                        frozenset(select) if select else None))
    return subs


def _pair(actual, text: str):
    """The record's value and the filter's text as two comparable values of one kind."""
    if isinstance(actual, bool):
        return actual, text.strip().lower() in ("true", "t", "1", "yes", "on")
    if isinstance(actual, int | float):
        try:
            return float(actual), float(text)
        except ValueError:
            return str(actual), text
    return str(actual), text


def passes(flt, record: dict) -> bool:
    col, op, value = flt
    if col not in record:
        return True  # realtime.is_visible_through_filters: a column it cannot see does not filter
    actual = record[col]
    if actual is None:
        return False
    if op == "in":
        return any(a == b for a, b in (_pair(actual, v) for v in value))
    a, b = _pair(actual, value)
    return {"eq": a == b, "neq": a != b, "lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[op]


def covers(sub: Sub, table: tuple[str, str]) -> bool:
    return sub.schema in (table[0], "*") and sub.table in (None, table[1])


def params_to_log(sub: Sub, params: dict) -> str:
    """The entry as hosted Realtime's error names it (Subscriptions.params_to_log, Elixir's inspect)."""
    q = lambda v: orjson.dumps(str(v)).decode()  # noqa: E731 - Elixir's inspect of a string
    filters = "[]"
    if sub.filter is not None:
        col, op, value = sub.filter
        value = "{" + ",".join(value) + "}" if op == "in" else value
        filters = "[{" + ", ".join([q(col), q(op), q(value), "false"]) + "}]"
    select = params.get("select")
    select = "nil" if not select else "[" + ", ".join(q(c) for c in select) + "]"
    return f"event: {sub.event}, schema: {sub.schema}, table: {sub.table or '*'}, filters: {filters}, select: {select}"

"""Helpers for the economy tests: gachas and acting as a role (as PostgREST would)."""

from __future__ import annotations

import json


def make_gacha(conn, vtuber: str, items: list[dict], cap=None, pity_pulls=None, pity_rarity=None) -> str:
    return str(conn.execute("select econ_test.gacha(%s, %s, %s, %s, %s)",
                            (vtuber, json.dumps(items), cap, pity_pulls, pity_rarity)).fetchone()[0])


def act_as(conn, user_id: str | None, role: str = "authenticated") -> None:
    """Inside the current transaction, act as PostgREST would for this user (or service_role)."""
    claims = {"role": role} if user_id is None else {"sub": user_id, "role": role, "aud": "authenticated"}
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                 (json.dumps(claims), role))

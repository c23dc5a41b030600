"""Authorization attacks: every exposed view and RPC (enumerated from the OpenAPI the local API
serves, so a new one is attacked without editing this file), called by every role against a
victim fan's orders, pulls, rewards, ledger, refunds and downloads and a victim VTuber's draft
gacha, items and exchange items.

Per call: never a 5xx; a refusal carries a documented code; an accepted call returns none of
the victim's identifiers that the attacker did not already send; service functions refuse every
role but service_role (42501) and admin operations refuse non-admins. After every attack the
victims' rows are byte-for-byte unchanged.
"""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from reliability_support import (
    ADMIN,
    APPLICANT,
    FAN,
    HOSHI,
    HOSHI_EXCHANGE_UNLIMITED,
    HOSHI_GACHA,
    LUNA,
    LUNA_DRAFT_GACHA,
    LUNA_VTUBER,
    Client,
    anon,
    documented_codes,
    raise_rate_limits,
    service,
    sign_in,
    sign_up,
)

VICTIM_FAN = FAN[2]


@pytest.fixture(scope="module")
def world(api_url, seeded_db_url):
    """The victim fan's history (fulfilled 10-pull, pending order, exchange, refund request) and
    the attackers' sessions."""
    raise_rate_limits(seeded_db_url)
    fan = sign_in(api_url, FAN, "fan")
    svc = service(api_url)
    r = fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 10, "p_idempotency_key": "authz-paid"})
    assert r.status_code == 200, r.text
    paid = r.json()
    r = svc.rpc("service_fulfill_order", {"p_order_id": paid["order_id"], "p_provider": "stripe",
                                          "p_provider_payment_id": "pi_authz_victim", "p_amount": paid["amount_jpy"],
                                          "p_currency": "JPY"})
    assert r.status_code == 200 and r.json()["fulfilled"], r.text
    r = fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 1, "p_idempotency_key": "authz-pending"})
    pending = r.json()["order_id"]
    r = fan.rpc("exchange_medals", {"p_exchange_item_id": HOSHI_EXCHANGE_UNLIMITED, "p_quantity": 1,
                                    "p_idempotency_key": "authz-exchange"})
    assert r.status_code == 200, r.text
    exchange = r.json()
    r = fan.rpc("request_refund", {"p_order_id": paid["order_id"], "p_reason": "victim's refund"})
    assert r.status_code == 200, r.text
    refund = r.json()
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        rewards = [str(x[0]) for x in conn.execute("select id from app.user_rewards where user_id = %s",
                                                   (VICTIM_FAN,))]
        seed = str(conn.execute("select id from app.fairness_seeds where user_id = %s and active",
                                (VICTIM_FAN,)).fetchone()[0])
        draft_items = [str(x[0]) for x in conn.execute("select id from app.gacha_items where gacha_id = %s",
                                                       (LUNA_DRAFT_GACHA,))]
        luna_items = [str(x[0]) for x in conn.execute(
            "select id from app.exchange_items where vtuber_id = %s order by created_at", (LUNA_VTUBER,))]
        application = str(conn.execute("select id from app.vtuber_applications where user_id = %s",
                                        (APPLICANT[2],)).fetchone()[0])
    assert rewards and draft_items
    ids = {
        "paid_order": paid["order_id"], "pending_order": pending, "reward": rewards[0], "rewards": rewards,
        "refund": refund.get("refund_id") or refund.get("id"), "exchange": exchange.get("exchange_id"),
        "seed": seed, "draft_gacha": LUNA_DRAFT_GACHA, "draft_item": draft_items[0], "draft_items": draft_items,
        "luna_exchange_item": luna_items[0], "application": application,
    }
    attackers = {
        "anon": anon(api_url),
        "other_fan": sign_up(api_url, name="other_fan"),
        "vtuber": sign_in(api_url, HOSHI, "hoshi"),
        "other_vtuber": sign_in(api_url, LUNA, "luna"),
        "admin": sign_in(api_url, ADMIN, "admin"),
        "fan": fan,
    }
    return {"api": api_url, "db": seeded_db_url, "ids": ids, "as": attackers}


def _markers(ids: dict, role: str) -> set[str]:
    """What must not reach an attacker: the victim fan's private ids and, unless the caller is
    Luna herself ("other_vtuber", the owner), her draft gacha and its items."""
    out = {ids["paid_order"], ids["pending_order"], ids["refund"], ids["seed"], *ids["rewards"], FAN[0]}
    if ids["exchange"]:
        out.add(ids["exchange"])
    if role != "other_vtuber":
        out |= {ids["draft_gacha"], *ids["draft_items"]}
    return {m for m in out if m}


FINGERPRINTS = {
    "orders": "select * from app.orders where user_id = %(fan)s",
    "pulls": "select * from app.pulls where user_id = %(fan)s",
    "user_rewards": "select * from app.user_rewards where user_id = %(fan)s",
    "medal_ledger": "select * from app.medal_ledger where user_id = %(fan)s",
    "medal_balances": "select * from app.medal_balances where user_id = %(fan)s",
    "exchanges": "select * from app.exchanges where user_id = %(fan)s",
    "refunds": "select * from app.refunds where user_id = %(fan)s",
    "fairness_seeds": "select * from app.fairness_seeds where user_id = %(fan)s",
    "profiles": "select * from app.profiles where user_id = %(fan)s",
    "user_roles": "select * from app.user_roles where user_id in (%(fan)s, %(luna_user)s)",
    "luna_gachas": "select * from app.gachas where vtuber_id = %(luna)s",
    "luna_gacha_items": "select i.* from app.gacha_items i join app.gachas g on g.id = i.gacha_id "
                        "where g.vtuber_id = %(luna)s",
    "luna_exchange_items": "select * from app.exchange_items where vtuber_id = %(luna)s",
    "luna_vtuber": "select * from app.vtubers where id = %(luna)s",
    "applications": "select * from app.vtuber_applications where user_id = %(applicant)s",
}


def fingerprint(db_url: str) -> dict[str, str]:
    params = {"fan": VICTIM_FAN, "luna": LUNA_VTUBER, "luna_user": LUNA[2], "applicant": APPLICANT[2]}
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {k: conn.execute(f"select coalesce(md5(string_agg(x::text, '|' order by x::text)), '') "
                                f"from ({q}) x", params).fetchone()[0] for k, q in FINGERPRINTS.items()}


def rpc_operations(client: Client) -> dict[str, dict]:
    spec = client.http.get("/rest/v1/", headers=client.headers()).json()
    ops = {}
    for path, methods in spec["paths"].items():
        if path.startswith("/rpc/"):
            schema = methods["post"]["requestBody"]["content"]["application/json"]["schema"]
            ops[path[5:]] = schema.get("properties", {})
    return ops


def views(client: Client) -> list[str]:
    spec = client.http.get("/rest/v1/", headers=client.headers()).json()
    return [p[1:] for p in spec["paths"] if not p.startswith("/rpc/") and p != "/"]


def arguments(fn: str, props: dict, ids: dict, caller: str) -> dict:
    """Arguments aimed at the victims' objects."""
    by_name = {
        "p_order_id": ids["paid_order"], "p_user_reward_id": ids["reward"], "p_refund_id": ids["refund"],
        "p_gacha_id": ids["draft_gacha"], "p_item_id": ids["draft_item"],
        "p_exchange_item_id": ids["luna_exchange_item"], "p_user_id": VICTIM_FAN, "p_vtuber_id": LUNA_VTUBER,
        "p_application_id": ids["application"], "p_reason": "authz attack", "p_role": "admin",
        "p_decision": "approve", "p_approve": True, "p_delta": 1000, "p_amount": 1, "p_currency": "JPY",
        "p_provider": "stripe", "p_provider_payment_id": f"pi_attack_{uuid.uuid4().hex[:8]}",
        "p_provider_refund_id": f"re_attack_{uuid.uuid4().hex[:8]}",
        "p_provider_dispute_id": f"dp_attack_{uuid.uuid4().hex[:8]}",
        "p_status": "failed" if fn == "service_fail_order" else "pending" if fn == "list_vtuber_applications"
        else "lost",
        "p_patch": {"title": "pwned", "name": "pwned", "description": "pwned", "medal_cost": 1, "rate_ppm": 1},
        "p_quantity": 1, "p_pull_count": 10, "p_idempotency_key": f"attack-{caller}-{fn}",
        "p_event_id": f"evt_attack_{uuid.uuid4().hex[:8]}", "p_type": "payment_intent.succeeded",
        "p_payload": {"data": {"object": {"id": "pi_attack", "amount": 1, "currency": "jpy",
                                          "metadata": {"order_id": ids["pending_order"]}}}},
        "p_seed": "attacker-seed", "p_limit": 50, "p_offset": 0, "p_before_id": None,
        "p_display_name": "pwned", "p_birth_date": "1990-01-01", "p_vtuber_name": "pwned",
        "p_description": "pwned", "p_title": "pwned", "p_name": "pwned", "p_rarity": "N", "p_rate_ppm": 1,
        "p_content_path": f"{LUNA_VTUBER}/gacha/pwned.png", "p_medal_cost": 1,
        "p_start_at": "2030-01-01T00:00:00Z", "p_end_at": "2030-02-01T00:00:00Z",
    }
    args = {}
    for name, schema in props.items():
        if name in by_name:
            args[name] = by_name[name]
        elif schema.get("format") == "uuid":
            args[name] = str(uuid.uuid4())
        elif schema.get("type") == "integer":
            args[name] = 1
        elif schema.get("type") == "boolean":
            args[name] = True
        elif schema.get("format") == "date-time":
            args[name] = "2030-01-01T00:00:00Z"
        elif schema.get("format") == "date":
            args[name] = "2030-01-01"
        else:
            args[name] = "x"
    return args


def is_service(fn: str) -> bool:
    return fn.startswith("service_")


def is_admin_op(fn: str) -> bool:
    return fn.startswith("admin_") or fn in ("review_refund", "review_vtuber_application",
                                            "list_vtuber_applications")


ATTACKERS = ["anon", "other_fan", "vtuber", "other_vtuber", "admin"]


def _check_call(fn: str, role: str, args: dict, r, markers: set[str], documented: set[str]) -> str | None:
    if r.status_code >= 500:
        return f"{r.status_code} {r.text[:200]}"
    body = r.json() if r.content else None
    sent = {str(v) for v in args.values()}
    if is_service(fn):
        if r.status_code not in (401, 403) or body.get("code") != "42501":
            return f"service function not refused: {r.status_code} {r.text[:200]}"
        return None
    if is_admin_op(fn) and role != "admin":
        if r.status_code not in (401, 403) or (body.get("message") not in ("admin_only", "not_authenticated")
                                               and body.get("code") != "42501"):
            return f"admin operation not refused: {r.status_code} {r.text[:200]}"
    if r.status_code >= 400:
        if body.get("message") not in documented and body.get("code") not in documented:
            return f"undocumented error {body}"
        leaked = {m for m in markers if m in r.text} - sent
        return f"error leaks {leaked}" if leaked else None
    if is_admin_op(fn) and role == "admin":
        return None  # an admin's own operation: allowed to see what it acts on
    leaked = {m for m in markers if m in r.text} - sent
    if leaked:
        return f"{r.status_code} leaks {sorted(leaked)}: {r.text[:300]}"
    return None


def test_every_operation_is_enumerated(world):
    ops = rpc_operations(world["as"]["anon"])
    with psycopg.connect(world["db"], autocommit=True) as conn:
        exposed = {r[0] for r in conn.execute(
            "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'public' and (has_function_privilege('anon', p.oid, 'execute') "
            "or has_function_privilege('authenticated', p.oid, 'execute') "
            "or has_function_privilege('service_role', p.oid, 'execute'))")}
    assert exposed - set(ops) == set(), "functions callable through the API but not in the OpenAPI"
    assert len(ops) >= 40 and {"get_order", "request_download", "service_fulfill_order"} <= set(ops)
    assert {"gachas", "audit_log"} <= set(views(world["as"]["anon"]))


@pytest.mark.parametrize("role", ATTACKERS)
def test_rpc_attacks(world, role):
    ids, client = world["ids"], world["as"][role]
    markers = _markers(ids, role)
    documented = documented_codes()
    before = fingerprint(world["db"])
    problems = {}
    ops = rpc_operations(client)
    # Admin operations the admin is entitled to would change the victims by design.
    skip = {fn for fn in ops if role == "admin" and is_admin_op(fn) and not fn.startswith("list_")}
    for fn, props in sorted(ops.items()):
        if fn in skip:
            continue
        args = arguments(fn, props, ids, role)
        r = client.rpc(fn, args)
        problem = _check_call(fn, role, args, r, markers, documented)
        if problem:
            problems[fn] = problem
    assert problems == {}
    after = fingerprint(world["db"])
    if role == "other_vtuber":  # Luna may edit her own draft and exchange items
        before = {k: v for k, v in before.items() if not k.startswith("luna_")}
        after = {k: v for k, v in after.items() if not k.startswith("luna_")}
    assert after == before
    assert len(ops) - len(skip) >= 35


@pytest.mark.parametrize("role", ATTACKERS)
def test_view_attacks(world, role):
    client = world["as"][role]
    markers = _markers(world["ids"], role)
    before = fingerprint(world["db"])
    problems = {}
    for view in views(client):
        r = client.get(view, select="*", limit="1000")
        if r.status_code >= 500:
            problems[view] = r.text[:200]
            continue
        if r.status_code == 200:
            leaked = {m for m in markers if m in r.text}
            if leaked:
                problems[view] = f"leaks {sorted(leaked)}"
            if view == "audit_log" and role != "admin" and r.json():
                problems[view] = f"{len(r.json())} audit rows visible to {role}"
        # Writes through every view: refused, whatever the body.
        for method, kw in (("POST", {"json": {"id": str(uuid.uuid4())}}),
                           ("PATCH", {"json": {"title": "pwned", "name": "pwned", "status": "approved"},
                                      "params": {"id": "not.is.null"}}),
                           ("DELETE", {"params": {"id": "not.is.null"}})):
            w = client.request(method, f"/rest/v1/{view}", **kw)
            if w.status_code >= 500 or w.status_code < 400:
                # PostgREST answers 204/200 to a PATCH/DELETE that matched no visible row.
                if not (w.status_code in (200, 204) and method in ("PATCH", "DELETE")
                        and w.text in ("", "[]")):
                    problems[f"{method} {view}"] = f"{w.status_code} {w.text[:200]}"
    assert problems == {}
    assert fingerprint(world["db"]) == before


@pytest.mark.parametrize("role", ATTACKERS)
def test_embedding_attacks(world, role):
    """Every view embedding every other (plain, !inner, spread, and two levels deep): each embed
    runs as the caller, so the embedded view's RLS hides the victim's rows and Luna's draft
    gacha's items there too. Never a 5xx; a refusal is a documented PostgREST code."""
    client = world["as"][role]
    markers = _markers(world["ids"], role)
    names = views(client)
    before = fingerprint(world["db"])
    problems, embedded = {}, 0
    selects = [(v, f"*,{o}{bang}(*)") for v in names for o in names for bang in ("", "!inner")]
    selects += [(v, f"*,...{o}(*)") for v in names for o in names]
    selects += [(v, f"*,{o}(*,{p}(*))") for v in names for o in names for p in names if len({v, o, p}) == 3]
    for view, select in selects:
        r = client.get(view, select=select, limit="1000")
        if r.status_code >= 500:
            problems[f"{view}?select={select}"] = r.text[:200]
        elif r.status_code == 200:
            embedded += 1
            leaked = {m for m in markers if m in r.text}
            if leaked:
                problems[f"{view}?select={select}"] = f"leaks {sorted(leaked)}"
        elif r.json().get("code") not in ("PGRST200", "PGRST201", "42501", "42702"):
            problems[f"{view}?select={select}"] = f"{r.status_code} {r.text[:200]}"
    assert problems == {}
    assert embedded >= 10  # the gachas / gacha_items / vtubers / exchange_items relationships embed
    assert fingerprint(world["db"]) == before


def test_writes_through_read_only_views_are_4xx(world):
    """POST/PATCH/DELETE naming real columns of every view (so the request reaches PostgreSQL) are
    refused before any write: 42501, 401 anonymous / 403 signed in — never the rewriter's 55000."""
    spec = world["as"]["anon"].http.get("/rest/v1/", headers=world["as"]["anon"].headers()).json()
    columns = {p[1:]: list(op["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"]
                           ["properties"]) for p, op in spec["paths"].items() if not p.startswith("/rpc/")}
    assert {"gachas", "gacha_items", "gacha_rarity_odds", "exchange_items"} <= set(columns)
    before = fingerprint(world["db"])
    wrong = {}
    for role in ("anon", "other_fan", "admin", "service_role"):
        client = world["as"][role] if role in world["as"] else service(world["api"])
        for view in views(client):
            col = columns[view][0]
            filt = {col: "not.is.null"}
            for method, kw in (("POST", {"json": {col: str(uuid.uuid4())}}),
                               ("PATCH", {"json": {col: str(uuid.uuid4())}, "params": filt}),
                               ("DELETE", {"params": filt})):
                w = client.request(method, f"/rest/v1/{view}", **kw)
                expected = 401 if role == "anon" else 403
                if w.status_code != expected or w.json().get("code") != "42501":
                    wrong[(role, method, view)] = f"{w.status_code} {w.text[:200]}"
    assert wrong == {}
    assert fingerprint(world["db"]) == before


@pytest.mark.parametrize("fn,arg,key", [
    ("get_order", "p_order_id", "paid_order"),
    ("request_download", "p_user_reward_id", "reward"),
    ("request_refund", "p_order_id", "paid_order"),
    ("get_gacha", "p_gacha_id", "draft_gacha"),
    ("update_gacha", "p_gacha_id", "draft_gacha"),
    ("update_gacha_item", "p_item_id", "draft_item"),
])
def test_existence_is_not_revealed(world, fn, arg, key):
    """Another's object and a random id answer alike (status, code, message, details)."""
    for role in ("other_fan", "vtuber"):
        client = world["as"][role]
        base = {"p_reason": "x", "p_patch": {"title": "x", "name": "x"}}
        props = rpc_operations(client)[fn]
        extra = {k: v for k, v in base.items() if k in props}
        theirs = world["ids"][key]
        ghost = str(uuid.uuid4())
        a = client.rpc(fn, {arg: theirs, **extra})
        b = client.rpc(fn, {arg: ghost, **extra})
        assert a.status_code == b.status_code and a.status_code in (403, 404), (role, a.text, b.text)
        assert a.text.replace(theirs, "ID") == b.text.replace(ghost, "ID"), (role, a.text, b.text)


def test_the_victim_still_sees_their_own(world):
    """Control: the refusals above are about who asks, not broken objects."""
    fan = world["as"]["fan"]
    ids = world["ids"]
    r = fan.rpc("get_order", {"p_order_id": ids["paid_order"]})
    assert r.status_code == 200 and r.json()["status"] == "fulfilled"
    r = fan.rpc("list_my_rewards", {})
    assert r.status_code == 200 and ids["reward"] in r.text
    r = world["as"]["other_vtuber"].rpc("list_my_gachas", {})
    assert r.status_code == 200, r.text
    assert re.search(ids["draft_gacha"], r.text)

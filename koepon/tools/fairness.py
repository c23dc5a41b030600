"""Provably fair draws, recomputed outside the database (docs/fairness.md).

The same algorithm as `private.fair_roll` / `private.pick_entry` / `private.rate_table` in
sql/economy/10_fairness.sql: anyone holding a revealed server seed can recompute every pull
made with it. The verifier reads only what the fan's own API answers (get_fairness,
list_my_orders, get_order) and what anyone may read (get_rate_table, list_rate_table_log,
get_gacha): through PostgREST over HTTP, or in the database acting as the fan exactly as
PostgREST would (role `authenticated` and the fan's JWT claims) — never the tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

TWO_32 = 1 << 32


def roll(server_seed: bytes, client_seed: str, nonce: int, range_: int) -> int:
    """Uniform integer in [0, range_) from HMAC-SHA256(server_seed, "client:nonce:round")."""
    if not 1 <= range_ <= 1_000_000:
        raise ValueError("range must be 1..1000000")
    limit = (TWO_32 // range_) * range_
    rnd = 0
    while True:
        mac = hmac.new(server_seed, f"{client_seed}:{nonce}:{rnd}".encode(), hashlib.sha256).digest()
        x = int.from_bytes(mac[:4], "big")
        if x < limit:
            return x % range_
        rnd += 1


def seed_hash(server_seed: bytes) -> str:
    return hashlib.sha256(server_seed).hexdigest()


def rate_table_version(entries: list[list]) -> str:
    """SHA-256 of the lines "item_id:rarity:rate_ppm" (draw order) joined by newlines."""
    text = "\n".join(f"{item}:{rarity}:{rate}" for item, rarity, rate in entries)
    return hashlib.sha256(text.encode()).hexdigest()


def pick(entries: list[list], value: int) -> list:
    """The entry whose cumulative range [sum before, sum before + rate) holds the roll."""
    cum = 0
    for entry in entries:
        cum += int(entry[2])
        if value < cum:
            return entry
    raise ValueError("roll beyond the rate table")


def rate_log_hash(prev_hash: str | None, seq: int, gacha_id: str, pity: bool, version: str,
                  published_at: str) -> str:
    """SHA-256 of "prev_hash|seq|gacha_id|base or pity|version|published_at" (UTC, microseconds)."""
    at = dt.datetime.fromisoformat(published_at).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = "|".join([prev_hash or "", str(seq), gacha_id, "pity" if pity else "base", version, at])
    return hashlib.sha256(text.encode()).hexdigest()


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# The order of rarities "at least the pity rarity" refers to.
RANK = {"N": 1, "R": 2, "SR": 3, "SSR": 4, "UR": 5}


# ---------------------------------------------------------------------------------------------
# Where the public data comes from
# ---------------------------------------------------------------------------------------------
class Source(Protocol):
    def rpc(self, fn: str, args: dict) -> Any: ...


# Each RPC the verifier calls, with its argument types (PostgREST resolves them by name).
_RPC_SQL = {
    "get_fairness": "select public.get_fairness(p_limit => %(p_limit)s::integer, p_offset => %(p_offset)s::integer)",
    "list_my_orders": "select public.list_my_orders(p_limit => %(p_limit)s::integer, "
                      "p_offset => %(p_offset)s::integer)",
    "get_order": "select public.get_order(p_order_id => %(p_order_id)s::uuid)",
    "get_rate_table": "select public.get_rate_table(p_version => %(p_version)s::text)",
    "list_rate_table_log": "select public.list_rate_table_log(p_after_seq => %(p_after_seq)s::bigint, "
                           "p_limit => %(p_limit)s::integer)",
    "get_gacha": "select public.get_gacha(p_gacha_id => %(p_gacha_id)s::uuid)",
}


class RpcError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class DbFan:
    """Calls the public API functions in the database as PostgREST would for this fan."""

    def __init__(self, conn, user_id: str):
        self.conn = conn
        self.user_id = user_id

    def rpc(self, fn: str, args: dict) -> Any:
        import psycopg

        claims = json.dumps({"sub": self.user_id, "role": "authenticated", "aud": "authenticated"})
        try:
            with self.conn.transaction():
                self.conn.execute("select set_config('request.jwt.claims', %s, true), "
                                  "set_config('role', 'authenticated', true)", (claims,))
                return self.conn.execute(_RPC_SQL[fn], args).fetchone()[0]
        except psycopg.Error as exc:
            diag = exc.diag
            raise RpcError(diag.message_primary or "error", diag.message_detail or str(exc)) from exc


class HttpFan:
    """Calls PostgREST (`/rest/v1/rpc/...`) with the fan's access token."""

    def __init__(self, api_url: str, token: str, apikey: str):
        import httpx

        self.http = httpx.Client(base_url=api_url.rstrip("/") + "/rest/v1", timeout=30,
                                 headers={"apikey": apikey, "Authorization": f"Bearer {token}"})

    def rpc(self, fn: str, args: dict) -> Any:
        r = self.http.post(f"/rpc/{fn}", json=args)
        if r.status_code >= 400:
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            raise RpcError(body.get("message", str(r.status_code)), body.get("details") or r.text[:200])
        return r.json()


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
@dataclass
class Report:
    seeds: int = 0
    pulls: int = 0
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    rate_log_head: str | None = None
    rate_log_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_json(self) -> dict:
        return {"seeds": self.seeds, "pulls": self.pulls, "mismatches": self.mismatches, "ok": self.ok,
                "notes": self.notes, "orders": self.orders, "rate_log_head": self.rate_log_head,
                "rate_log_seq": self.rate_log_seq}


@dataclass
class Public:
    """Everything the verifier reads, as the API answered it."""
    active: dict
    revealed: list[dict]
    orders: dict[str, dict]              # order_id -> list_my_orders entry (+ pulls once fetched)
    log: list[dict]
    tables: dict[str, dict] = field(default_factory=dict)
    gachas: dict[str, dict | None] = field(default_factory=dict)


def collect(src: Source) -> Public:
    revealed: list[dict] = []
    active = None
    offset = 0
    while True:
        page = src.rpc("get_fairness", {"p_limit": 100, "p_offset": offset})
        active = active or page
        revealed.extend(page["revealed"])
        offset += len(page["revealed"])
        if not page["revealed"] or offset >= page["revealed_total"]:
            break
    orders: dict[str, dict] = {}
    offset = 0
    while True:
        page = src.rpc("list_my_orders", {"p_limit": 100, "p_offset": offset})
        for o in page:
            orders[o["order_id"]] = o
        offset += len(page)
        if len(page) < 100:
            break
    for oid, o in orders.items():
        if o["status"] == "fulfilled":
            orders[oid] = src.rpc("get_order", {"p_order_id": oid})
    log: list[dict] = []
    after = 0
    while True:
        page = src.rpc("list_rate_table_log", {"p_after_seq": after, "p_limit": 1000})
        log.extend(page)
        if len(page) < 1000:
            break
        after = page[-1]["seq"]
    return Public(active=active, revealed=revealed, orders=orders, log=log)


def _table(pub: Public, src: Source, version: str, rep: Report) -> dict | None:
    if version not in pub.tables:
        try:
            t = src.rpc("get_rate_table", {"p_version": version})
        except RpcError as exc:
            rep.mismatches.append(f"rate table {version}: not published ({exc})")
            t = None
        if t is not None:
            if rate_table_version(t["entries"]) != version:
                rep.mismatches.append(f"rate table {version}: its entries do not hash to its version")
            if sum(int(e[2]) for e in t["entries"]) != t["total_ppm"]:
                rep.mismatches.append(f"rate table {version}: total_ppm is not the sum of its rates")
        pub.tables[version] = t
    return pub.tables[version]


def _gacha(pub: Public, src: Source, gacha_id: str) -> dict | None:
    if gacha_id not in pub.gachas:
        try:
            pub.gachas[gacha_id] = src.rpc("get_gacha", {"p_gacha_id": gacha_id})
        except RpcError:
            pub.gachas[gacha_id] = None
    return pub.gachas[gacha_id]


def verify(src: Source, *, overrides: dict[str, bytes] | None = None, only_seed: str | None = None,
           receipts: list[dict] | None = None, saved_log: list[tuple[int, str]] | None = None) -> Report:
    """Check a fan's draws from public data: seeds against their commitments, every order's bound
    nonces and rate tables against the published log, every pull, the pity flags; recompute what
    unpaid orders under revealed seeds would have drawn."""
    rep = Report()
    overrides = overrides or {}
    pub = collect(src)

    # 1. The published rate-table log: an unbroken chain, one base (and pity) table per gacha.
    published: dict[tuple[str, bool], str] = {}
    prev = None
    for e in pub.log:
        if e["prev_hash"] != prev:
            rep.mismatches.append(f"rate-table log entry {e['seq']}: prev_hash does not chain to the entry before it")
        if rate_log_hash(e["prev_hash"], e["seq"], e["gacha_id"], e["pity"], e["version"],
                         e["published_at"]) != e["hash"]:
            rep.mismatches.append(f"rate-table log entry {e['seq']}: its hash does not match its content")
        if rate_table_version(e["entries"]) != e["version"]:
            rep.mismatches.append(f"rate-table log entry {e['seq']}: the table does not hash to version {e['version']}")
        key = (e["gacha_id"], e["pity"])
        if key in published and published[key] != e["version"]:
            rep.mismatches.append(f"gacha {e['gacha_id']}: its {'pity' if e['pity'] else 'base'} rate table was "
                                  f"published twice ({published[key]}, then {e['version']})")
        published.setdefault(key, e["version"])
        pub.tables.setdefault(e["version"], {"version": e["version"], "total_ppm": e["total_ppm"],
                                             "entries": e["entries"]})
        prev = e["hash"]
    rep.rate_log_head = prev
    rep.rate_log_seq = pub.log[-1]["seq"] if pub.log else None
    # A (seq, hash) anyone saved earlier pins everything up to it: a rewritten log cannot keep it.
    by_seq = {e["seq"]: e for e in pub.log}
    for seq, saved in saved_log or []:
        now = by_seq.get(seq, {}).get("hash")
        if now != saved:
            rep.mismatches.append(f"rate-table log entry {seq}: hash {now}, a copy saved earlier says {saved}")

    # 2. Seeds: the revealed server seed is the one committed; nonces are accounted for.
    seeds: dict[str, dict] = {}
    for s in pub.revealed + ([pub.active] if pub.active.get("seed_id") else []):
        seeds[s["seed_id"]] = s
    if only_seed and only_seed not in seeds:
        rep.mismatches.append(f"seed {only_seed}: not one of this fan's seeds")
        return rep
    secret: dict[str, bytes] = {}
    for sid, s in seeds.items():
        if only_seed and sid != only_seed:
            continue
        key = overrides.get(sid) or (bytes.fromhex(s["server_seed"]) if s.get("server_seed") else None)
        if key is None:
            continue  # still active: nothing a fan can recompute yet
        rep.seeds += 1
        if seed_hash(key) != s["server_seed_hash"]:
            rep.mismatches.append(f"seed {sid}: SHA-256 of the server seed is not the committed "
                                  f"{s['server_seed_hash']}")
            continue
        if s.get("committed_at") and _at(s["committed_at"]) > _at(s["created_at"]):
            rep.mismatches.append(f"seed {sid}: committed at {s['committed_at']}, after its client seed was set "
                                  f"({s['created_at']})")
        secret[sid] = key

    # 3. Orders: bound nonces and tables; pulls recomputed; unpaid outcomes recomputed.
    by_seed: dict[str, list[tuple[int, int, str]]] = {}
    pulls_all: list[dict] = []
    for oid, o in sorted(pub.orders.items(), key=lambda kv: kv[1]["created_at"]):
        if only_seed and o.get("seed_id") != only_seed and not any(
                p["seed_id"] == only_seed for p in o.get("pulls", [])):
            continue
        entry = {"order_id": oid, "status": o["status"], "gacha_id": o["gacha_id"], "pull_count": o["pull_count"],
                 "seed_id": o.get("seed_id"), "server_seed_hash": o.get("server_seed_hash"),
                 "first_nonce": o.get("first_nonce"), "rate_table_version": o.get("rate_table_version"),
                 "pity_rate_table_version": o.get("pity_rate_table_version"), "check": "ok"}
        before = len(rep.mismatches)
        pulls = o.get("pulls", [])
        pulls_all.extend({**p, "order_id": oid, "gacha_id": o["gacha_id"]} for p in pulls)
        sid = o.get("seed_id")
        if sid is None:
            # First protocol: nonces were taken at fulfilment from the pair then active.
            entry["protocol"] = 1
            for p in pulls:
                by_seed.setdefault(p["seed_id"], []).append((p["nonce"], p["nonce"] + 1, oid))
        else:
            entry["protocol"] = 2
            first, count = o["first_nonce"], o["pull_count"]
            entry["nonces"] = [first, first + count - 1]
            by_seed.setdefault(sid, []).append((first, first + count, oid))
            s = seeds.get(sid)
            if s is None:
                rep.mismatches.append(f"order {oid}: bound to seed {sid}, which is not one of the fan's seeds")
            elif s["server_seed_hash"] != o.get("server_seed_hash"):
                rep.mismatches.append(f"order {oid}: committed seed hash {o.get('server_seed_hash')} is not seed "
                                      f"{sid}'s {s['server_seed_hash']}")
            for pity, field_ in ((False, "rate_table_version"), (True, "pity_rate_table_version")):
                want = published.get((o["gacha_id"], pity))
                if o.get(field_) != want:
                    rep.mismatches.append(f"order {oid}: committed {'pity' if pity else 'base'} rate table "
                                          f"{o.get(field_)} is not the gacha's published {want}")
            if o["status"] == "fulfilled":
                nonces = sorted(p["nonce"] for p in pulls)
                if nonces != list(range(first, first + count)):
                    rep.mismatches.append(f"order {oid}: pulls drew nonces {nonces}, the order was bound to "
                                          f"{first}..{first + count - 1}")
                for p in pulls:
                    if p["seed_id"] != sid:
                        rep.mismatches.append(f"pull {p['pull_id']} (order {oid}): seed {p['seed_id']}, "
                                              f"the order was bound to {sid}")
                    want = o.get("pity_rate_table_version") if p["pity"] else o["rate_table_version"]
                    if p["rate_table_version"] != want:
                        rep.mismatches.append(f"pull {p['pull_id']} (order {oid}): rate table "
                                              f"{p['rate_table_version']}, the order committed {want}")
            elif sid in secret:
                # Never paid: the nonces are burned; what they would have drawn is public now.
                t = _table(pub, src, o["rate_table_version"], rep)
                if t is not None:
                    entry["would_have_drawn"] = [
                        pick(t["entries"], roll(secret[sid], seeds[sid]["client_seed"], n, t["total_ppm"]))[1]
                        for n in range(first, first + count)]
        for p in pulls:
            sid_p = p["seed_id"]
            if sid_p not in secret:
                continue
            rep.pulls += 1
            t = _table(pub, src, p["rate_table_version"], rep)
            if t is None:
                continue
            expected = roll(secret[sid_p], seeds[sid_p]["client_seed"], p["nonce"], t["total_ppm"])
            if expected != p["roll"]:
                rep.mismatches.append(f"pull {p['pull_id']} (seed {sid_p}, nonce {p['nonce']}): roll {p['roll']}, "
                                      f"recomputed {expected}")
                continue
            item, rarity, _rate = pick(t["entries"], expected)
            if item != p["gacha_item_id"] or rarity != p["rarity"]:
                rep.mismatches.append(f"pull {p['pull_id']} (seed {sid_p}, nonce {p['nonce']}): item "
                                      f"{p['gacha_item_id']}, recomputed {item}")
        if pulls:
            entry["drawn"] = [p["rarity"] for p in sorted(pulls, key=lambda p: p["nonce"])]
        entry["revealed"] = sid in secret if sid else all(p["seed_id"] in secret for p in pulls) and bool(pulls)
        if len(rep.mismatches) > before:
            entry["check"] = "mismatch"
        elif sid and sid not in secret:
            entry["check"] = "committed (seed not revealed yet)"
        rep.orders.append(entry)

    # Every nonce of a revealed seed belongs to exactly one order: no gaps, no overlaps.
    for sid, ranges in by_seed.items():
        if sid not in secret:
            continue
        ranges.sort()
        expect = 0
        for lo, hi, oid in ranges:
            if lo < expect:
                rep.mismatches.append(f"seed {sid}: nonce {lo} of order {oid} was already used")
            elif lo > expect:
                rep.mismatches.append(f"seed {sid}: nonces {expect}..{lo - 1} belong to none of the fan's orders")
            expect = max(expect, hi)
        if expect != seeds[sid]["next_nonce"]:
            rep.mismatches.append(f"seed {sid}: next_nonce is {seeds[sid]['next_nonce']}, the orders account "
                                  f"for {expect}")

    if receipts:
        _check_receipts(pub, receipts, rep)
    if not only_seed:
        rep.mismatches.extend(_verify_pity(pub, src, pulls_all, rep))
    return rep


def _check_receipts(pub: Public, receipts: list[dict], rep: Report) -> None:
    """A create_order answer the fan's device kept must still match what the API says now."""
    seeds = {s["seed_id"]: s for s in pub.revealed + ([pub.active] if pub.active.get("seed_id") else [])}
    for r in receipts:
        oid = r.get("order_id")
        o = pub.orders.get(oid)
        if o is None:
            rep.mismatches.append(f"receipt {oid}: the order is not among the fan's orders")
            continue
        for k in ("seed_id", "server_seed_hash", "client_seed", "first_nonce", "rate_table_version",
                  "pity_rate_table_version", "pull_count", "gacha_id"):
            if k in r and r[k] != o.get(k):
                rep.mismatches.append(f"receipt {oid}: {k} was {r[k]!r} when ordered, now {o.get(k)!r}")
        s = seeds.get(r.get("seed_id"))
        if s is not None and "server_seed_hash" in r and s["server_seed_hash"] != r["server_seed_hash"]:
            rep.mismatches.append(f"receipt {oid}: seed {s['seed_id']} now claims hash {s['server_seed_hash']}, "
                                  f"the order was promised {r['server_seed_hash']}")


def _verify_pity(pub: Public, src: Source, pulls: list[dict], rep: Report) -> list[str]:
    """Replays each gacha's streak in draw order (pull id): a pull is a pity pull exactly when
    pity_pulls - 1 pulls below pity_rarity precede it; refunds do not change the streak."""
    out = []
    streak: dict[str, int] = {}
    last_nonce: dict[str, tuple[str, int]] = {}
    for p in sorted(pulls, key=lambda p: p["pull_id"]):
        g = _gacha(pub, src, p["gacha_id"])
        pity_cfg = g.get("pity") if g else None
        if g is None:
            if p["pity"]:
                rep.notes.append(f"pull {p['pull_id']}: gacha {p['gacha_id']} is not public any more; pity not checked")
            continue
        if pity_cfg is None:
            if p["pity"]:
                out.append(f"pull {p['pull_id']}: marked pity on a gacha without pity")
            continue
        pity_pulls, pity_rarity = pity_cfg["pulls"], pity_cfg["rarity"]
        s = streak.get(p["gacha_id"], 0)
        expected = s >= pity_pulls - 1
        if expected != p["pity"]:
            out.append(f"pull {p['pull_id']}: pity {p['pity']}, expected {expected} after {s} pulls below "
                       f"{pity_rarity}")
        if p["pity"] and RANK[p["rarity"]] < RANK[pity_rarity]:
            out.append(f"pull {p['pull_id']}: pity pull drew {p['rarity']}, below {pity_rarity}")
        streak[p["gacha_id"]] = 0 if RANK[p["rarity"]] >= RANK[pity_rarity] else s + 1
        prev = last_nonce.get(p["gacha_id"])
        if prev and prev[0] == p["seed_id"] and p["nonce"] < prev[1]:
            rep.notes.append(f"pull {p['pull_id']} (order {p['order_id']}): drawn after a later nonce of the same "
                             f"pity gacha (orders fulfilled out of nonce order: the operator chose the order)")
        last_nonce[p["gacha_id"]] = (p["seed_id"], p["nonce"])
    return out


def verify_user(conn, user_id: str, seed_id: str | None = None, server_seed_hex: str | None = None,
                receipts: list[dict] | None = None) -> Report:
    """`verify` for one fan, reading the database only through the fan's public API functions."""
    overrides = {seed_id: bytes.fromhex(server_seed_hex)} if seed_id and server_seed_hex else {}
    return verify(DbFan(conn, user_id), overrides=overrides, only_seed=seed_id, receipts=receipts)

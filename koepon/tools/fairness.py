"""Provably fair draws, recomputed outside the database (docs/fairness.md).

The same algorithm as `private.fair_roll` / `private.pick_entry` / `private.rate_table` in
sql/economy/10_fairness.sql: anyone holding a revealed server seed can recompute every pull
made with it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

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


RANK = {"N": 1, "R": 2, "SR": 3, "SSR": 4, "UR": 5}


@dataclass
class Report:
    seeds: int = 0
    pulls: int = 0
    mismatches: list[str] | None = None

    def __post_init__(self):
        self.mismatches = self.mismatches or []

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_user(conn, user_id: str, seed_id: str | None = None,
                server_seed_hex: str | None = None) -> Report:
    """Recompute every pull of a fan's revealed seeds (or one seed) and the pity decisions."""
    rep = Report()
    q = ("select id::text, server_seed, server_seed_hash, client_seed, active from app.fairness_seeds "
         "where user_id = %s" + (" and id = %s" if seed_id else "") + " order by created_at")
    seeds = conn.execute(q, (user_id, seed_id) if seed_id else (user_id,)).fetchall()
    if seed_id and not seeds:
        rep.mismatches.append(f"seed {seed_id}: not found for user {user_id}")
        return rep
    tables: dict[str, tuple[int, list]] = {}
    for sid, stored_seed, committed, client_seed, active in seeds:
        if active and not server_seed_hex:
            continue  # not revealed yet: nothing a fan could verify
        server_seed = bytes.fromhex(server_seed_hex) if server_seed_hex else bytes(stored_seed)
        rep.seeds += 1
        if seed_hash(server_seed) != committed:
            rep.mismatches.append(f"seed {sid}: SHA-256 of the server seed is not the committed {committed}")
            continue
        pulls = conn.execute(
            "select id, nonce, roll, gacha_item_id::text, rarity, rate_table_version from app.pulls "
            "where seed_id = %s order by nonce", (sid,)).fetchall()
        for pull_id, nonce, stored_roll, item_id, rarity, version in pulls:
            rep.pulls += 1
            if version not in tables:
                total, entries = conn.execute(
                    "select total_ppm, entries from app.rate_tables where version = %s", (version,)).fetchone()
                if rate_table_version(entries) != version:
                    rep.mismatches.append(f"rate table {version}: its content does not hash to its version")
                tables[version] = (total, entries)
            total, entries = tables[version]
            expected = roll(server_seed, client_seed, nonce, total)
            if expected != stored_roll:
                rep.mismatches.append(f"pull {pull_id} (seed {sid}, nonce {nonce}): roll {stored_roll}, "
                                      f"recomputed {expected}")
                continue
            item, item_rarity, _rate = pick(entries, expected)
            if item != item_id or item_rarity != rarity:
                rep.mismatches.append(f"pull {pull_id} (seed {sid}, nonce {nonce}): item {item_id}, "
                                      f"recomputed {item}")
    rep.mismatches.extend(_verify_pity(conn, user_id))
    return rep


def _verify_pity(conn, user_id: str) -> list[str]:
    """A pull is a pity pull exactly when pity_pulls - 1 pulls below pity_rarity precede it."""
    out = []
    rows = conn.execute(
        "select p.id, p.gacha_id::text, p.rarity, p.pity, g.pity_pulls, g.pity_rarity from app.pulls p "
        "join app.gachas g on g.id = p.gacha_id where p.user_id = %s order by p.gacha_id, p.id",
        (user_id,)).fetchall()
    streak: dict[str, int] = {}
    for pull_id, gacha_id, rarity, pity, pity_pulls, pity_rarity in rows:
        if pity_pulls is None:
            if pity:
                out.append(f"pull {pull_id}: marked pity on a gacha without pity")
            continue
        s = streak.get(gacha_id, 0)
        expected = s >= pity_pulls - 1
        if expected != pity:
            out.append(f"pull {pull_id}: pity {pity}, expected {expected} after {s} pulls below {pity_rarity}")
        if pity and RANK[rarity] < RANK[pity_rarity]:
            out.append(f"pull {pull_id}: pity pull drew {rarity}, below {pity_rarity}")
        streak[gacha_id] = 0 if RANK[rarity] >= RANK[pity_rarity] else s + 1
    return out

"""The demo seed's logins and fixed ids (supabase/seed.sql): the one copy every tool and test reads.

Local only: these passwords are public. `koepon up` prints the logins; the soak, the demo and
the reliability tests sign in with them.
"""

from __future__ import annotations

from typing import NamedTuple


class Login(NamedTuple):
    email: str
    password: str
    user_id: str


ADMIN = Login("admin@koepon.local", "koepon-admin-pass", "00000000-0000-4000-a000-000000000001")
HOSHI = Login("hoshi@koepon.local", "koepon-vtuber-pass", "00000000-0000-4000-a000-000000000002")
LUNA = Login("luna@koepon.local", "koepon-vtuber-pass", "00000000-0000-4000-a000-000000000003")
APPLICANT = Login("applicant@koepon.local", "koepon-fan-pass", "00000000-0000-4000-a000-000000000004")
FAN = Login("fan@koepon.local", "koepon-fan-pass", "00000000-0000-4000-a000-000000000005")
MINOR = Login("minor@koepon.local", "koepon-fan-pass", "00000000-0000-4000-a000-000000000006")

# (role shown by `koepon status`, login), in the order it prints them.
DEMO_LOGINS: list[tuple[str, Login]] = [
    ("admin", ADMIN), ("vtuber", HOSHI), ("vtuber", LUNA), ("applicant", APPLICANT), ("fan", FAN),
    ("fan (14)", MINOR),
]

HOSHI_VTUBER = "00000000-0000-4000-b000-000000000001"
LUNA_VTUBER = "00000000-0000-4000-b000-000000000002"
HOSHI_GACHA = "00000000-0000-4000-d000-000000000001"  # Hoshi Starlight Voice Gacha: on sale, 10 pulls ¥3000
LUNA_GACHA = "00000000-0000-4000-d000-000000000002"
ENDED_GACHA = "00000000-0000-4000-d000-000000000003"
LUNA_DRAFT_GACHA = "00000000-0000-4000-d000-000000000004"
EXCHANGE_ITEMS = {HOSHI_VTUBER: ["00000000-0000-4000-f000-000000000001", "00000000-0000-4000-f000-000000000002",
                                 "00000000-0000-4000-f000-000000000003", "00000000-0000-4000-f000-000000000004"],
                  LUNA_VTUBER: ["00000000-0000-4000-f000-000000000005"]}
HOSHI_EXCHANGE_UNLIMITED = EXCHANGE_ITEMS[HOSHI_VTUBER][0]
RETIRED_EXCHANGE_ITEM = "00000000-0000-4000-f000-000000000006"
